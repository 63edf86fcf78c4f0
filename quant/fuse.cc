#include "quant/fuse.h"

#include <ATen/ATen.h>

#include "quant/modules.h"

namespace qb {

std::pair<at::Tensor, at::Tensor> fold_batch_norm(const at::Tensor& conv_weight,
                                                  const at::Tensor& conv_bias,
                                                  const at::Tensor& running_mean,
                                                  const at::Tensor& running_var, double eps,
                                                  const at::Tensor& bn_weight,
                                                  const at::Tensor& bn_bias) {
  at::Tensor bias = conv_bias.defined() ? conv_bias : at::zeros_like(running_mean);
  at::Tensor inv_std = at::rsqrt(running_var + eps);
  std::vector<int64_t> per_channel(conv_weight.dim(), 1);
  per_channel[0] = -1;
  at::Tensor weight = conv_weight * (bn_weight * inv_std).reshape(per_channel);
  at::Tensor folded_bias = (bias - running_mean) * inv_std * bn_weight + bn_bias;
  return {weight, folded_bias};
}

namespace {

// The module kind a node runs ("Conv2d"), or its function name ("relu"), or "".
std::string node_kind(const GraphModule& gm, const Node& node) {
  if (node.op == NodeOp::kCallModule) return gm.module(node.target).kind();
  if (node.op == NodeOp::kCallFunction) return node.target;
  return "";
}

bool is_relu(const GraphModule& gm, const Node& node) {
  std::string kind = node_kind(gm, node);
  return kind == "ReLU" || (node.op == NodeOp::kCallFunction && kind == "relu");
}

bool skipped(const GraphModule& gm, const QConfigMapping& mapping, const Node& node) {
  std::string path = node.op == NodeOp::kCallModule ? node.target : "";
  return !mapping.qconfig_for(path, node_kind(gm, node)).has_value();
}

// The single user of `name` if it has exactly one, else nullptr.
const Node* only_user(const Graph& graph, const std::string& name) {
  std::vector<std::string> users = graph.users(name);
  return users.size() == 1 ? &graph.node(users[0]) : nullptr;
}

// Removes `node` from the graph, making its users read its input instead.
void bypass(Graph& graph, std::string node) {
  std::string input = graph.node(node).inputs.at(0);
  graph.replace_all_uses(node, input);
  graph.erase(node);
}

}  // namespace

GraphModule fuse(const GraphModule& gm, const QConfigMapping& mapping) {
  GraphModule fused = gm;  // modules are shared until replaced below
  std::vector<std::string> anchors;
  for (const Node& node : gm.graph.nodes()) {
    std::string kind = node_kind(gm, node);
    if (kind == "Conv2d" || kind == "Linear") anchors.push_back(node.name);
  }
  for (const std::string& anchor : anchors) {
    const Node& head = fused.graph.node(anchor);
    if (skipped(fused, mapping, head)) continue;
    std::string path = head.target;

    const Node* bn = nullptr;
    const Node* next = only_user(fused.graph, anchor);
    if (next && node_kind(fused, *next) == "BatchNorm2d" &&
        fused.module(head.target).kind() == "Conv2d" && !skipped(fused, mapping, *next)) {
      bn = next;
      next = only_user(fused.graph, bn->name);
    }
    const Node* relu = next && is_relu(fused, *next) && !skipped(fused, mapping, *next) ? next : nullptr;
    if (!bn && !relu) continue;

    std::shared_ptr<Module> replacement;
    if (auto* conv = dynamic_cast<Conv2d*>(&fused.module(path))) {
      Conv2dOptions options = conv->options();
      options.bias = options.bias || bn != nullptr;
      auto folded = std::make_shared<Conv2d>(options);
      at::Tensor weight = conv->tensor("weight").detach().clone();
      at::Tensor bias = conv->options().bias ? conv->tensor("bias").detach().clone() : at::Tensor();
      if (bn) {
        const Module& norm = fused.module(bn->target);
        double eps = dynamic_cast<const BatchNorm2d&>(norm).eps();
        std::tie(weight, bias) =
            fold_batch_norm(weight, bias, norm.tensor("running_mean"), norm.tensor("running_var"),
                            eps, norm.tensor("weight"), norm.tensor("bias"));
      }
      folded->set_tensor("weight", weight);
      if (bias.defined()) folded->set_tensor("bias", bias);
      if (relu) folded->fuse_relu();
      replacement = folded;
    } else {
      std::unique_ptr<Module> linear = fused.module(path).clone();
      static_cast<Linear&>(*linear).fuse_relu();
      replacement = std::move(linear);
    }
    fused.replace_module(path, replacement);
    std::string relu_name = relu ? relu->name : "";
    if (bn) bypass(fused.graph, bn->name);
    if (!relu_name.empty()) bypass(fused.graph, relu_name);
  }
  // A BatchNorm no conv took in, followed by a relu: BNReLU2d.
  std::vector<std::string> norms;
  for (const Node& node : fused.graph.nodes()) {
    if (node_kind(fused, node) == "BatchNorm2d") norms.push_back(node.name);
  }
  for (const std::string& norm : norms) {
    const Node& bn = fused.graph.node(norm);
    const Node* relu = only_user(fused.graph, norm);
    if (skipped(fused, mapping, bn) || !relu || !is_relu(fused, *relu) || skipped(fused, mapping, *relu)) {
      continue;
    }
    std::unique_ptr<Module> bn_relu = fused.module(bn.target).clone();
    static_cast<BatchNorm2d&>(*bn_relu).fuse_relu();
    fused.replace_module(bn.target, std::move(bn_relu));
    bypass(fused.graph, relu->name);
  }
  fused.remove_unused_modules();
  lint(fused);
  return fused;
}

}  // namespace qb
