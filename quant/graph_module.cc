#include "quant/graph_module.h"

#include <sstream>
#include <unordered_set>

namespace qb {

void GraphModule::add_module(const std::string& path, std::shared_ptr<Module> module) {
  if (index_.count(path)) throw GraphError("module path '" + path + "' is registered twice");
  index_.emplace(path, modules_.size());
  modules_.emplace_back(path, std::move(module));
}

void GraphModule::replace_module(const std::string& path, std::shared_ptr<Module> module) {
  auto it = index_.find(path);
  if (it == index_.end()) throw GraphError("no module at path '" + path + "'");
  modules_[it->second].second = std::move(module);
}

Module& GraphModule::module(const std::string& path) const { return *module_ptr(path); }

std::shared_ptr<Module> GraphModule::module_ptr(const std::string& path) const {
  auto it = index_.find(path);
  if (it == index_.end()) throw GraphError("no module at path '" + path + "'");
  return modules_[it->second].second;
}

NamedTensors GraphModule::state_dict() const {
  NamedTensors result;
  for (const auto& [path, module] : modules_) {
    for (const auto& slot : module->tensors()) result.emplace_back(path + "." + slot.name, slot.tensor);
  }
  return result;
}

NamedTensors GraphModule::parameters() const {
  NamedTensors result;
  for (const auto& [path, module] : modules_) {
    for (const auto& slot : module->tensors()) {
      if (slot.is_parameter) result.emplace_back(path + "." + slot.name, slot.tensor);
    }
  }
  return result;
}

GraphModule GraphModule::deep_copy() const {
  GraphModule copy;
  copy.graph = graph;
  copy.qconfigs = qconfigs;
  // A module registered under several paths (a shared observer) stays shared in the copy.
  std::unordered_map<const Module*, std::shared_ptr<Module>> clones;
  for (const auto& [path, module] : modules_) {
    auto& clone = clones[module.get()];
    if (!clone) clone = module->clone();
    copy.add_module(path, clone);
  }
  return copy;
}

void GraphModule::remove_unused_modules() {
  std::unordered_set<std::string> used;
  for (const auto& node : graph.nodes()) {
    if (node.op == NodeOp::kCallModule) used.insert(node.target);
  }
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> kept;
  for (auto& entry : modules_) {
    if (used.count(entry.first)) kept.push_back(std::move(entry));
  }
  modules_ = std::move(kept);
  index_.clear();
  for (size_t i = 0; i < modules_.size(); ++i) index_.emplace(modules_[i].first, i);
}

void GraphModule::train(bool on) {
  for (auto& entry : modules_) entry.second->set_training(on);
}

std::string GraphModule::str() const {
  std::ostringstream out;
  out << "GraphModule(\n";
  for (const auto& [path, module] : modules_) out << "  (" << path << "): " << module->repr() << "\n";
  out << ")\n\n" << graph.str();
  return out.str();
}

void lint(const GraphModule& gm) {
  lint(gm.graph);
  for (const auto& node : gm.graph.nodes()) {
    if (node.op == NodeOp::kCallModule && !gm.has_module(node.target)) {
      throw GraphError("node '" + node.name + "' calls module '" + node.target +
                       "', which is not registered");
    }
  }
}

}  // namespace qb
