#include "quant/fp32_fallback.h"

#include <map>
#include <set>
#include <stdexcept>

#include "quant/ops.h"

namespace qb {

namespace {

std::string kind_of(const GraphModule& gm, const Node& node) {
  return node.op == NodeOp::kCallModule ? gm.module(node.target).kind() : node.target;
}

bool is_relu_kind(const std::string& kind) { return kind == "ReLU" || kind == "relu"; }

// The relu convert lowers together with `add` as one add_relu: prepare observed the relu's
// output instead of the add's, so the add's only user is the relu itself.
const Node* add_relu_partner(const GraphModule& prepared, const Node& add) {
  if (add.target != "add") return nullptr;
  const std::vector<std::string> users = prepared.graph.users(add.name);
  if (users.size() != 1) return nullptr;
  const Node& user = prepared.graph.node(users[0]);
  if (user.op == NodeOp::kOutput || !is_relu_kind(kind_of(prepared, user))) return nullptr;
  return prepared.qconfigs.count(user.name) ? &user : nullptr;
}

// The module at `node`'s path plus those fusion merged into it: in the unfused `model`, the
// chain of single users whose nodes prepare's graph no longer has. A merged module that another
// node still calls (a BasicBlock's relu, called again after its add) is left out: naming it
// would keep that other node in fp32 too.
std::vector<std::string> module_paths(const GraphModule& model, const GraphModule& prepared,
                                      const Node& node) {
  std::vector<std::string> paths = {node.target};
  if (!model.graph.contains(node.name)) return paths;
  std::set<std::string> called;
  for (const Node& n : prepared.graph.nodes()) {
    if (n.op == NodeOp::kCallModule) called.insert(n.target);
  }
  std::string current = node.name;
  for (;;) {
    const std::vector<std::string> users = model.graph.users(current);
    if (users.size() != 1) break;
    const Node& user = model.graph.node(users[0]);
    if (user.op != NodeOp::kCallModule || prepared.graph.contains(user.name)) break;
    if (!called.count(user.target)) paths.push_back(user.target);
    current = user.name;
  }
  return paths;
}

void check_layer(const GraphModule& prepared, const QuantizedLayer& layer) {
  for (const std::string& node : layer.nodes) {
    if (!prepared.qconfigs.count(node)) {
      throw GraphError("layer '" + layer.name() + "': node '" + node +
                       "' is not a quantized node of the prepared model");
    }
  }
}

}  // namespace

std::vector<QuantizedLayer> quantized_layers(const GraphModule& model, const GraphModule& prepared) {
  std::vector<QuantizedLayer> layers;
  std::map<std::string, bool> taken;  // relus already part of an add_relu layer
  for (const Node& node : prepared.graph.nodes()) {
    if (!prepared.qconfigs.count(node.name) || taken.count(node.name)) continue;
    QuantizedLayer layer;
    layer.nodes = {node.name};
    layer.kind = kind_of(prepared, node);
    if (const Node* relu = add_relu_partner(prepared, node)) {
      layer.nodes.push_back(relu->name);
      taken[relu->name] = true;
    }
    if (node.op == NodeOp::kCallModule) layer.module_paths = module_paths(model, prepared, node);
    layers.push_back(std::move(layer));
  }
  return layers;
}

GraphModule without_quantization_of(const GraphModule& prepared,
                                    const std::vector<QuantizedLayer>& fp32_layers) {
  GraphModule copy = prepared;
  for (const QuantizedLayer& layer : fp32_layers) {
    check_layer(prepared, layer);
    for (const std::string& node : layer.nodes) copy.qconfigs.erase(node);
  }
  return copy;
}

GraphModule with_only_quantized(const GraphModule& prepared,
                                const std::vector<QuantizedLayer>& int8_layers) {
  GraphModule copy = prepared;
  copy.qconfigs.clear();
  for (const QuantizedLayer& layer : int8_layers) {
    check_layer(prepared, layer);
    for (const std::string& node : layer.nodes) copy.qconfigs.emplace(node, prepared.qconfigs.at(node));
  }
  return copy;
}

QConfigMapping with_fp32_layers(QConfigMapping mapping, const std::vector<QuantizedLayer>& fp32_layers) {
  for (const QuantizedLayer& layer : fp32_layers) {
    if (layer.module_paths.empty()) {
      throw std::invalid_argument("layer '" + layer.name() + "' (" + layer.kind +
                                  ") is a function call: a module_name entry cannot keep it in fp32");
    }
    for (const std::string& path : layer.module_paths) mapping.set_module_name(path, std::nullopt);
  }
  return mapping;
}

}  // namespace qb
