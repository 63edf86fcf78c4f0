#include "quant/bias_correction.h"

#include <ATen/ATen.h>

#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "quant/interpreter.h"
#include "quant/modules.h"

namespace qb {

namespace {

// A layer to correct: its node, its module's path and where its output channels are.
struct Target {
  std::string node;
  std::string module;
  // Counted from the end so unbatched inputs work too: 3 for a conv's (N, C, H, W), 1 for
  // a Linear's (..., C).
  int64_t channel_from_end;
};

// The output channels' running sums over every batch and position.
class ChannelMean {
 public:
  void add(const std::string& node, const at::Tensor& value, int64_t channel_from_end) {
    const int64_t dim = value.dim() - channel_from_end;
    if (dim < 0) {
      throw GraphError("node '" + node + "': output of " + std::to_string(value.dim()) +
                       " dims has no channel dimension");
    }
    // Dequantized and in double: int8 outputs of a layer sum over many positions, and the
    // shift sought is a small difference of two such means. Logical dims, whatever the layout.
    at::Tensor v = (value.is_quantized() ? value.dequantize() : value).to(at::kDouble);
    at::Tensor rows = v.movedim(dim, 0).reshape({v.size(dim), -1});
    at::Tensor sums = rows.sum(1);
    if (!sum_.defined()) {
      sum_ = sums;
    } else if (sum_.size(0) != sums.size(0)) {
      throw GraphError("node '" + node + "': " + std::to_string(sums.size(0)) +
                       " output channels here, " + std::to_string(sum_.size(0)) + " before");
    } else {
      sum_ += sums;
    }
    count_ += rows.size(1);
  }

  bool empty() const { return count_ == 0; }
  at::Tensor mean() const { return sum_ / static_cast<double>(count_); }

 private:
  at::Tensor sum_;
  int64_t count_ = 0;
};

// The bias tensor when `module` has one (Conv2d(bias=False) and Linear(bias=False) do not).
const at::Tensor* bias_of(const Module& module) {
  for (const TensorSlot& slot : module.tensors()) {
    if (slot.name == "bias") return slot.tensor.defined() ? &slot.tensor : nullptr;
  }
  return nullptr;
}

// The quantized Conv2d / Linear nodes with a bias, in graph order.
std::vector<Target> find_targets(const GraphModule& prepared) {
  std::vector<Target> targets;
  for (const Node& node : prepared.graph.nodes()) {
    if (node.op != NodeOp::kCallModule || prepared.qconfigs.count(node.name) == 0) continue;
    const Module& module = prepared.module(node.target);
    int64_t channel_from_end = 0;
    if (dynamic_cast<const Conv2d*>(&module)) {
      channel_from_end = 3;
    } else if (dynamic_cast<const Linear*>(&module)) {
      channel_from_end = 1;
    } else {
      continue;
    }
    if (bias_of(module)) targets.push_back({node.name, node.target, channel_from_end});
  }
  return targets;
}

// Mean over output channels of |difference|.
double mean_abs(const at::Tensor& difference) { return difference.abs().mean().item<double>(); }

// Per-channel output means of the nodes `targets[wanted[k]]`, k in order, in `model` over all
// batches. `model_name` says which model lacks a node.
std::vector<at::Tensor> channel_means(const GraphModule& model, const std::vector<Target>& targets,
                                      const std::vector<size_t>& wanted,
                                      const std::vector<at::Tensor>& batches,
                                      const std::string& model_name) {
  std::unordered_map<std::string, size_t> index;
  for (size_t k = 0; k < wanted.size(); ++k) index.emplace(targets[wanted[k]].node, k);
  std::vector<ChannelMean> sums(wanted.size());
  Interpreter interpreter(model);
  for (const at::Tensor& batch : batches) {
    // Reduced at once, so no value is held and later ops may still reuse its memory.
    interpreter.run({batch}, [&](const Node& node, const at::Tensor& value) {
      auto it = index.find(node.name);
      if (it == index.end()) return;
      sums[it->second].add(node.name, value, targets[wanted[it->second]].channel_from_end);
    });
  }
  std::vector<at::Tensor> means;
  for (size_t k = 0; k < wanted.size(); ++k) {
    if (sums[k].empty()) {
      throw GraphError("node '" + targets[wanted[k]].node + "' to bias-correct computes nothing in " +
                       model_name);
    }
    means.push_back(sums[k].mean());
  }
  return means;
}

// channel_means of the int8 model convert makes of `current`.
std::vector<at::Tensor> int8_means(const GraphModule& current, const std::vector<Target>& targets,
                                   const std::vector<size_t>& wanted,
                                   const std::vector<at::Tensor>& batches,
                                   const ConvertOptions& options) {
  return channel_means(convert(current, options), targets, wanted, batches, "the converted model");
}

// A copy of `module` whose bias is moved by `shift` (double, one per output channel).
std::shared_ptr<Module> with_shifted_bias(const Module& module, const std::string& node,
                                          const at::Tensor& shift) {
  const at::Tensor& bias = *bias_of(module);
  if (bias.sizes() != shift.sizes()) {
    throw GraphError("node '" + node + "': bias of " + std::to_string(bias.numel()) +
                     " elements for " + std::to_string(shift.numel()) + " output channels");
  }
  std::shared_ptr<Module> copy = module.clone();
  copy->set_tensor("bias", bias + shift.to(bias.scalar_type()));
  return copy;
}

}  // namespace

GraphModule correct_bias(const GraphModule& prepared, const GraphModule& reference,
                         const std::vector<at::Tensor>& batches,
                         const BiasCorrectionOptions& options,
                         std::vector<CorrectedLayer>* corrected) {
  if (batches.empty()) {
    throw std::invalid_argument("correct_bias: no batches to measure the layers' output shifts on");
  }
  at::NoGradGuard no_grad;

  const std::vector<Target> targets = find_targets(prepared);
  const size_t total = targets.size();
  std::vector<size_t> all(total);
  for (size_t i = 0; i < total; ++i) {
    if (!reference.graph.contains(targets[i].node)) {
      throw GraphError("node '" + targets[i].node +
                       "' to bias-correct is missing from the fp32 reference (pass the model "
                       "prepare was given, fused: fuse(model, mapping))");
    }
    all[i] = i;
  }
  const std::vector<at::Tensor> fp32 =
      channel_means(reference, targets, all, batches, "the fp32 reference");

  GraphModule current = prepared;  // shares modules; each corrected one is replaced by a copy
  std::vector<CorrectedLayer> layers;
  for (size_t i = 0; i < total; ++i) {
    // One pass measures this layer before its correction and the previous one after its own.
    std::vector<size_t> wanted = {i};
    if (i > 0) wanted.push_back(i - 1);
    std::vector<at::Tensor> int8 = int8_means(current, targets, wanted, batches, options.convert);
    if (i > 0) layers.back().mean_abs_shift_after = mean_abs(fp32[i - 1] - int8[1]);

    const Target& target = targets[i];
    if (fp32[i].sizes() != int8[0].sizes()) {
      throw GraphError("node '" + target.node + "': the fp32 reference has " +
                       std::to_string(fp32[i].numel()) + " output channels, the int8 model " +
                       std::to_string(int8[0].numel()));
    }
    at::Tensor shift = fp32[i] - int8[0];
    layers.push_back({target.node, mean_abs(shift), 0.0});
    current.replace_module(target.module,
                           with_shifted_bias(current.module(target.module), target.node, shift));

    if (i + 1 == total && corrected) {
      // The last layer has no next pass to measure it: one more, when the figures are asked for.
      layers.back().mean_abs_shift_after =
          mean_abs(fp32[i] - int8_means(current, targets, {i}, batches, options.convert)[0]);
    }
    if (options.on_layer) options.on_layer(i + 1, total);
  }
  if (corrected) *corrected = std::move(layers);
  return current;
}

}  // namespace qb
