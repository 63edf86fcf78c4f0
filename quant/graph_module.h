#pragma once
// A Graph plus the table of named modules its call_module nodes refer to: the
// C++ counterpart of torch.fx.GraphModule.

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "quant/graph.h"
#include "quant/module.h"
#include "quant/qconfig.h"

namespace qb {

/// Named tensors in PyTorch's state_dict order ("layer1.0.conv1.weight").
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

class GraphModule {
 public:
  Graph graph;
  /// The qconfig prepare chose for each quantized node (by node name), as prepare_fx
  /// records module.qconfig; convert takes the weight observer from it.
  std::map<std::string, QConfig> qconfigs;

  /// Registers a module under a dotted path; order of registration is state_dict order.
  void add_module(const std::string& path, std::shared_ptr<Module> module);
  /// Swaps the module at an existing path (passes build new modules, never edit shared ones).
  void replace_module(const std::string& path, std::shared_ptr<Module> module);
  bool has_module(const std::string& path) const { return index_.count(path) != 0; }
  /// The module at `path`; throws GraphError naming the path when absent.
  Module& module(const std::string& path) const;
  std::shared_ptr<Module> module_ptr(const std::string& path) const;
  /// All modules with their paths, in registration order.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& modules() const {
    return modules_;
  }

  /// Parameters and buffers as `path.name` -> tensor; the tensors alias the modules'.
  NamedTensors state_dict() const;
  /// Parameters only (what an optimizer updates).
  NamedTensors parameters() const;

  /// Drops modules no call_module node refers to (after fusion, say), as FX does.
  void remove_unused_modules();

  /// Copies the graph and clones every module, so nothing is shared with `*this`.
  /// A module registered under several paths stays one module in the copy.
  GraphModule deep_copy() const;
  /// Sets training mode on every module (BatchNorm statistics, Dropout).
  void train(bool on);

  /// Modules, then the graph, as `print(gm)` and `print(gm.graph)` show them.
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> modules_;
  std::unordered_map<std::string, size_t> index_;
};

/// lint(graph) plus: every call_module target names a registered module.
void lint(const GraphModule& gm);

}  // namespace qb
