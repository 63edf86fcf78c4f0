#pragma once
// The fp32 layers the model zoo is built from, mirroring torch.nn. Tensors are
// created zero-filled; the zoo initialises them, or a checkpoint replaces them.

#include "quant/module.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qb {

/// A (height, width) size; one int means both, as PyTorch's `_pair` reads `kernel_size=3`.
struct Size2 {
  int64_t h = 0;
  int64_t w = 0;
  Size2(int64_t both = 0) : h(both), w(both) {}  // NOLINT: implicit, as in PyTorch's API
  Size2(int64_t height, int64_t width) : h(height), w(width) {}
  bool operator==(const Size2& other) const { return h == other.h && w == other.w; }
  bool operator!=(const Size2& other) const { return !(*this == other); }
  std::vector<int64_t> vec() const { return {h, w}; }
  /// PyTorch's repr: "(3, 3)", "(1, 7)".
  std::string repr() const;
  /// A config entry: one int when square (what older model files hold), else [h, w].
  Attr attr() const;
  /// Reads attr()'s forms back; nullopt for any other value.
  static std::optional<Size2> from_attr(const Attr& value);
};

/// 2-D convolution: torch.nn.Conv2d (zero padding).
struct Conv2dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  Size2 kernel_size = 1;
  Size2 stride = 1;
  Size2 padding = 0;
  Size2 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

/// The options as config() entries (bias as 0 or 1); QuantizedConv2d shares them.
ModuleConfig conv2d_config(const Conv2dOptions& options);

/// PyTorch's repr of a conv's options: "3, 8, kernel_size=(3, 3), stride=(1, 1)" and then
/// padding, dilation and groups when not their defaults.
std::string conv2d_repr(const Conv2dOptions& options);

/// Fusion turns it into PyTorch's ConvReLU2d (conv then relu in one module).
class Conv2d : public ModuleBase<Conv2d> {
 public:
  explicit Conv2d(const Conv2dOptions& options);
  std::string kind() const override { return fused_relu_ ? "ConvReLU2d" : "Conv2d"; }
  /// Applies relu to the output from now on (nn.intrinsic.ConvReLU2d).
  void fuse_relu() { fused_relu_ = true; }
  bool fused_relu() const { return fused_relu_; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override { return conv2d_config(options_); }
  const Conv2dOptions& options() const { return options_; }

 private:
  Conv2dOptions options_;
  bool fused_relu_ = false;
};

/// torch.nn.BatchNorm2d with affine parameters and running statistics. Fusion with a
/// following relu (when no conv takes it in) turns it into PyTorch's BNReLU2d.
class BatchNorm2d : public ModuleBase<BatchNorm2d> {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  std::string kind() const override { return fused_relu_ ? "BNReLU2d" : "BatchNorm2d"; }
  /// Applies relu to the output from now on (nn.intrinsic.BNReLU2d).
  void fuse_relu() { fused_relu_ = true; }
  bool fused_relu() const { return fused_relu_; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override;
  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }

 private:
  int64_t num_features_;
  double eps_;
  double momentum_;
  bool fused_relu_ = false;
};

/// torch.nn.Linear: y = x W^T + b. Fusion turns it into LinearReLU.
class Linear : public ModuleBase<Linear> {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  std::string kind() const override { return fused_relu_ ? "LinearReLU" : "Linear"; }
  /// Applies relu to the output from now on (nn.intrinsic.LinearReLU).
  void fuse_relu() { fused_relu_ = true; }
  bool fused_relu() const { return fused_relu_; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override;
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

 private:
  int64_t in_features_;
  int64_t out_features_;
  bool fused_relu_ = false;
};

/// torch.nn.ReLU.
class ReLU : public ModuleBase<ReLU> {
 public:
  std::string kind() const override { return "ReLU"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
};

/// torch.nn.ReLU6 (MobileNetV2's activation).
class ReLU6 : public ModuleBase<ReLU6> {
 public:
  std::string kind() const override { return "ReLU6"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
};

/// A layer without parameters that applies one ATen function elementwise:
/// torch.nn.Hardswish, Hardsigmoid, Sigmoid, Tanh, SiLU, GELU.
class Elementwise : public ModuleBase<Elementwise> {
 public:
  using Kernel = at::Tensor (*)(const at::Tensor&);
  Elementwise(std::string kind, Kernel kernel) : kind_(std::move(kind)), kernel_(kernel) {}
  std::string kind() const override { return kind_; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;

 private:
  std::string kind_;
  Kernel kernel_;
};

/// torch.nn.MaxPool2d with square windows.
class MaxPool2d : public ModuleBase<MaxPool2d> {
 public:
  MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding = 0, bool ceil_mode = false);
  std::string kind() const override { return "MaxPool2d"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override;
  int64_t kernel_size() const { return kernel_size_; }
  int64_t stride() const { return stride_; }
  int64_t padding() const { return padding_; }
  bool ceil_mode() const { return ceil_mode_; }

 private:
  int64_t kernel_size_;
  int64_t stride_;
  int64_t padding_;
  bool ceil_mode_;
};

/// torch.nn.AvgPool2d with square windows.
class AvgPool2d : public ModuleBase<AvgPool2d> {
 public:
  AvgPool2d(int64_t kernel_size, int64_t stride, int64_t padding = 0, bool ceil_mode = false,
            bool count_include_pad = true);
  std::string kind() const override { return "AvgPool2d"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override;

 private:
  int64_t kernel_size_;
  int64_t stride_;
  int64_t padding_;
  bool ceil_mode_;
  bool count_include_pad_;
};

/// torch.nn.AdaptiveAvgPool2d to a fixed output size.
class AdaptiveAvgPool2d : public ModuleBase<AdaptiveAvgPool2d> {
 public:
  AdaptiveAvgPool2d(int64_t output_height, int64_t output_width);
  std::string kind() const override { return "AdaptiveAvgPool2d"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override;
  int64_t output_height() const { return output_height_; }
  int64_t output_width() const { return output_width_; }

 private:
  int64_t output_height_;
  int64_t output_width_;
};

/// torch.nn.Dropout: identity in eval mode.
class Dropout : public ModuleBase<Dropout> {
 public:
  explicit Dropout(double p) : p_(p) {}
  std::string kind() const override { return "Dropout"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override { return {{"p", p_}}; }
  double p() const { return p_; }

 private:
  double p_;
};

/// torch.nn.Flatten.
class Flatten : public ModuleBase<Flatten> {
 public:
  Flatten(int64_t start_dim, int64_t end_dim) : start_dim_(start_dim), end_dim_(end_dim) {}
  std::string kind() const override { return "Flatten"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  ModuleConfig config() const override { return {{"start_dim", start_dim_}, {"end_dim", end_dim_}}; }

 private:
  int64_t start_dim_;
  int64_t end_dim_;
};

/// torch.nn.Identity.
class Identity : public ModuleBase<Identity> {
 public:
  std::string kind() const override { return "Identity"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
};

}  // namespace qb
