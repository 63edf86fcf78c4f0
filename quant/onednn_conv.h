#pragma once
// An fp32 convolution as torch.jit.optimize_for_inference runs it: on oneDNN, with its
// weight reordered once into oneDNN's layout and a following relu fused as a post-op, on
// channels-last tensors (quant/onednn_convolution.h). LibTorch's default fp32 path reorders
// the weight on every call and runs 1x1 convolutions on one thread with its own im2col
// kernel, which on ResNet-50 costs 10x; this layer is what an honest fp32 baseline is timed
// with (quant/fp32_deploy.h builds the whole model).

#include <memory>

#include "quant/modules.h"
#include "quant/onednn_convolution.h"

namespace qb {

class OneDnnConv2d : public ModuleBase<OneDnnConv2d> {
 public:
  /// Zero tensors of `options`' shapes; set_tensor gives the weights (and bias, always present).
  OneDnnConv2d(const Conv2dOptions& options, bool relu);
  std::string kind() const override { return "OneDnnConv2d"; }
  /// Packs the weight at the first call (and again if the weight changed since).
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  /// The conv options, and relu as 0 or 1.
  ModuleConfig config() const override;
  const Conv2dOptions& options() const { return options_; }
  bool relu() const { return relu_; }

 private:
  Conv2dOptions options_;
  bool relu_;
  std::shared_ptr<OneDnnConvolution> kernel_;  // for the weight at weight_data_, weight_version_
  const void* weight_data_ = nullptr;
  uint32_t weight_version_ = 0;
};

}  // namespace qb
