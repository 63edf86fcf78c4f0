#include "quant/equalization.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "quant/modules.h"

namespace qb {

namespace {

// Layers equalize may rescale; a pair joins two of one family (a conv's output has spatial
// dimensions a Linear cannot read without a flatten in between, which ends the chain).
enum class Family { kNone, kConv, kLinear };

Family family_of(const Module& module) {
  if (dynamic_cast<const Conv2d*>(&module)) return Family::kConv;
  if (dynamic_cast<const Linear*>(&module)) return Family::kLinear;
  return Family::kNone;
}

int64_t groups_of(const Module& module) {
  const auto* conv = dynamic_cast<const Conv2d*>(&module);
  return conv ? conv->options().groups : 1;
}

bool has_tensor(const Module& module, const std::string& name) {
  const auto& slots = module.tensors();
  return std::any_of(slots.begin(), slots.end(), [&](const TensorSlot& s) { return s.name == name; });
}

enum class Activation { kNone, kRelu, kRelu6 };

// What sits between conv1 and conv2, or nullopt for a node that breaks the chain.
std::optional<Activation> activation_of(const GraphModule& gm, const Node& node) {
  if (node.op == NodeOp::kCallFunction && node.target == "relu") return Activation::kRelu;
  if (node.op != NodeOp::kCallModule) return std::nullopt;
  std::string kind = gm.module(node.target).kind();
  if (kind == "ReLU") return Activation::kRelu;
  if (kind == "ReLU6") return Activation::kRelu6;
  return std::nullopt;
}

// A layer's weights in double while equalize works on them, viewed as
// [groups, out / groups, in / groups, rest] so grouped and depthwise convs read their
// input channels the same way as groups == 1 convs and Linear (rest == 1) do.
struct Layer {
  std::string node;
  std::string path;
  at::Tensor weight;
  at::Tensor bias;  // undefined without one
  int64_t groups = 1;

  int64_t out_channels() const { return weight.size(0); }
  int64_t in_channels() const { return weight.size(1) * groups; }
  at::Tensor grouped() const {
    return weight.view({groups, out_channels() / groups, weight.size(1), -1});
  }
  // r1: max |w| over each output channel's weights.
  at::Tensor output_ranges() const { return weight.abs().reshape({out_channels(), -1}).amax(1); }
  // r2: max |w| over the weights that read each input channel (its group's output channels).
  at::Tensor input_ranges() const { return grouped().abs().amax({1, 3}).reshape({-1}); }
  void scale_outputs(const at::Tensor& factor) {
    std::vector<int64_t> shape(weight.dim(), 1);
    shape[0] = -1;
    weight.mul_(factor.view(shape));
    if (bias.defined()) bias.mul_(factor);
  }
  void scale_inputs(const at::Tensor& factor) {
    grouped().mul_(factor.view({groups, 1, weight.size(1), 1}));
  }
};

struct Candidate {
  std::string first;
  std::string second;
  std::string activation;
  bool relu6 = false;
};

}  // namespace

GraphModule equalize(const GraphModule& fused, const EqualizationOptions& options,
                     std::vector<EqualizedPair>* pairs) {
  if (options.max_iterations < 0) throw std::invalid_argument("equalize: max_iterations < 0");
  if (!(options.tolerance >= 0)) throw std::invalid_argument("equalize: tolerance < 0");
  const Graph& graph = fused.graph;

  // Calls per module object and per path: rescaling a module run by two nodes, or replacing
  // a ReLU6 path also called outside a pair, would change nodes outside the chains.
  std::unordered_map<const Module*, int> object_calls;
  std::unordered_map<std::string, int> path_calls;
  for (const Node& node : graph.nodes()) {
    if (node.op != NodeOp::kCallModule) continue;
    ++object_calls[&fused.module(node.target)];
    ++path_calls[node.target];
  }
  auto rescalable = [&](const Node& node) {
    if (node.op != NodeOp::kCallModule) return Family::kNone;
    const Module& module = fused.module(node.target);
    return object_calls.at(&module) == 1 ? family_of(module) : Family::kNone;
  };
  auto only_user = [&](const std::string& name) -> const Node* {
    std::vector<std::string> users = graph.users(name);
    return users.size() == 1 ? &graph.node(users[0]) : nullptr;
  };

  std::vector<Candidate> candidates;
  std::map<std::string, int> relu6_uses;  // ReLU6 path -> candidates replacing it
  for (const Node& node : graph.nodes()) {
    Family family = rescalable(node);
    if (family == Family::kNone) continue;
    const Node* next = only_user(node.name);
    if (!next) continue;
    Candidate candidate{node.name, "", "", false};
    if (rescalable(*next) == Family::kNone) {
      std::optional<Activation> activation = activation_of(fused, *next);
      if (!activation || (*activation == Activation::kRelu6 && !options.replace_relu6)) continue;
      candidate.activation = next->name;
      candidate.relu6 = *activation == Activation::kRelu6;
      next = only_user(next->name);
      if (!next) continue;
    }
    if (rescalable(*next) != family || next->inputs.size() != 1) continue;
    candidate.second = next->name;
    if (candidate.relu6) ++relu6_uses[graph.node(candidate.activation).target];
    candidates.push_back(std::move(candidate));
  }
  candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                  [&](const Candidate& c) {
                                    if (!c.relu6) return false;
                                    const std::string& path = graph.node(c.activation).target;
                                    return relu6_uses.at(path) != path_calls.at(path);
                                  }),
                   candidates.end());

  GraphModule result = fused;  // modules stay shared until replaced below
  std::map<std::string, Layer> layers;
  auto layer = [&](const std::string& node_name) -> Layer& {
    auto found = layers.find(node_name);
    if (found != layers.end()) return found->second;
    const Node& node = graph.node(node_name);
    const Module& module = fused.module(node.target);
    // Double arithmetic keeps the fp32 drift to the final rounding of each weight.
    auto to_double = [](const at::Tensor& t) {
      return t.detach().to(at::kDouble, /*non_blocking=*/false, /*copy=*/true).contiguous();
    };
    Layer entry{node_name, node.target, to_double(module.tensor("weight")), at::Tensor(),
                groups_of(module)};
    if (has_tensor(module, "bias")) entry.bias = to_double(module.tensor("bias"));
    return layers.emplace(node_name, std::move(entry)).first->second;
  };

  std::vector<at::Tensor> total_scales;
  for (const Candidate& c : candidates) {
    const Layer& first = layer(c.first);
    const Layer& second = layer(c.second);
    if (first.out_channels() != second.in_channels()) {
      throw GraphError("equalize: node '" + c.first + "' has " +
                       std::to_string(first.out_channels()) + " output channels but '" + c.second +
                       "' reads " + std::to_string(second.in_channels()));
    }
    total_scales.push_back(at::ones({first.out_channels()}, at::kDouble));
  }

  for (int pass = 0; pass < options.max_iterations; ++pass) {
    double largest_move = 0;
    for (size_t p = 0; p < candidates.size(); ++p) {
      Layer& first = layers.at(candidates[p].first);
      Layer& second = layers.at(candidates[p].second);
      at::Tensor r1 = first.output_ranges();
      at::Tensor r2 = second.input_ranges();
      // A dead channel on either side has no range to balance: leave it where it is.
      at::Tensor scale =
          at::where((r1 > 0).logical_and(r2 > 0), at::sqrt(r1 / r2), at::ones_like(r1));
      first.scale_outputs(scale.reciprocal());
      second.scale_inputs(scale);
      total_scales[p].mul_(scale);
      largest_move = std::max(largest_move, (scale - 1).abs().max().item<double>());
    }
    if (largest_move <= options.tolerance) break;
  }

  for (const auto& [name, entry] : layers) {
    const Module& original = fused.module(entry.path);
    std::shared_ptr<Module> copy = original.clone();
    copy->set_tensor("weight", entry.weight.to(original.tensor("weight").scalar_type()));
    if (entry.bias.defined()) {
      copy->set_tensor("bias", entry.bias.to(original.tensor("bias").scalar_type()));
    }
    result.replace_module(entry.path, std::move(copy));
  }
  for (const Candidate& c : candidates) {
    if (c.relu6) result.replace_module(graph.node(c.activation).target, std::make_shared<ReLU>());
  }

  if (pairs) {
    for (size_t p = 0; p < candidates.size(); ++p) {
      const Candidate& c = candidates[p];
      double max_scale = std::max(total_scales[p].max().item<double>(),
                                  total_scales[p].reciprocal().max().item<double>());
      pairs->push_back({c.first, c.second, c.activation, c.relu6, max_scale});
    }
  }
  return result;
}

}  // namespace qb
