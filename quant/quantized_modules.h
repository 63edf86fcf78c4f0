#pragma once
// The int8 layers convert produces: LibTorch's quantized conv and linear
// kernels over weights prepacked, at construction, for the current quantized engine.

#include <ATen/core/ivalue.h>

#include <string>

#include "quant/module.h"
#include "quant/modules.h"

namespace qb {

/// torch.ao.nn.quantized.Conv2d / ConvReLU2d: quint8 in, quint8 out at (scale, zero_point).
class QuantizedConv2d : public ModuleBase<QuantizedConv2d> {
 public:
  /// `weight` is already quantized (qint8, per tensor or per channel); `bias` stays fp32.
  QuantizedConv2d(const Conv2dOptions& options, bool relu, at::Tensor weight, at::Tensor bias,
                  double scale, int64_t zero_point);
  std::string kind() const override { return relu_ ? "QuantizedConvReLU2d" : "QuantizedConv2d"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  /// The conv options plus scale and zero_point; relu shows in kind().
  ModuleConfig config() const override;
  double scale() const { return scale_; }
  int64_t zero_point() const { return zero_point_; }
  /// The quantized engine the weight was prepacked for (current at construction).
  const std::string& engine() const { return engine_; }

 private:
  Conv2dOptions options_;
  bool relu_;
  double scale_;
  int64_t zero_point_;
  std::string engine_;
  c10::IValue packed_;  // the engine's prepacked weight and bias
};

/// torch.ao.nn.quantized.Linear / LinearReLU.
class QuantizedLinear : public ModuleBase<QuantizedLinear> {
 public:
  QuantizedLinear(bool relu, at::Tensor weight, at::Tensor bias, double scale, int64_t zero_point);
  std::string kind() const override { return relu_ ? "QuantizedLinearReLU" : "QuantizedLinear"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  /// scale and zero_point; the sizes come from the weight, relu shows in kind().
  ModuleConfig config() const override;
  double scale() const { return scale_; }
  int64_t zero_point() const { return zero_point_; }
  /// The quantized engine the weight was prepacked for (current at construction).
  const std::string& engine() const { return engine_; }

 private:
  bool relu_;
  double scale_;
  int64_t zero_point_;
  std::string engine_;
  c10::IValue packed_;
};

}  // namespace qb
