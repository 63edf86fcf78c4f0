#pragma once
// Runs a GraphModule: the graph is compiled once into a flat list of steps over
// value slots, and each value is released right after its last use.

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quant/ops.h"
#include "quant/graph_module.h"

namespace qb {

class Interpreter {
 public:
  /// Lints and compiles `gm`; the interpreter keeps the modules alive itself.
  explicit Interpreter(const GraphModule& gm);
  // Steps point into graph_, so a copy would dangle; moving keeps the nodes in place.
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;
  Interpreter(Interpreter&&) = default;
  Interpreter& operator=(Interpreter&&) = default;

  /// Runs the graph on one tensor per placeholder and returns the output values. One run
  /// at a time: layers build and keep kernels per input shape (quant/onednn_convolution.h).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) const;
  /// The common case: one input, one output.
  at::Tensor run(const at::Tensor& input) const;

  /// Sees each call_module / call_function node's value as soon as it is computed.
  using NodeHook = std::function<void(const Node&, const at::Tensor&)>;
  /// run() that calls `hook` after every step, in graph order (quant/inspect.h uses
  /// it). A hook may keep the tensor: later ops then see a second reference and
  /// leave it intact instead of overwriting it in place.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const NodeHook& hook) const;

  /// Number of compiled steps (every node but placeholders and output).
  size_t num_steps() const { return steps_.size(); }

 private:
  struct Step {
    const Node* node;
    std::shared_ptr<Module> module;  // set for call_module
    const Function* function;        // set for call_function
    std::vector<int> input_slots;
    int output_slot;
    std::vector<int> release_after;  // slots whose last reader is this step
    std::vector<bool> hand_over;     // per input: last use, so the step gets the only reference
  };

  std::vector<at::Tensor> run_steps(const std::vector<at::Tensor>& inputs,
                                    const NodeHook* hook) const;

  Graph graph_;  // owned copy: steps point into its nodes
  std::vector<Step> steps_;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  int num_slots_ = 0;
};

}  // namespace qb
