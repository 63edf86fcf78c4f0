#pragma once
// The int8 layers convert (graph mode) and convert_eager produce, on LibTorch's
// quantized kernels: conv and linear over weights prepacked, at construction, for the
// current quantized engine; and eager mode's boundary modules (Quantize, DeQuantize),
// QFunctional and QuantizedBatchNorm2d. Each one's config() and tensors are what
// save_model stores to rebuild it (quant/serialize.h).

#include <ATen/core/ivalue.h>

#include <cstdint>
#include <memory>
#include <string>

#include "quant/module.h"
#include "quant/modules.h"
#include "quant/observers.h"

namespace qb {

class OneDnnConvolution;

/// torch.ao.nn.quantized.Conv2d / ConvReLU2d: quint8 in, quint8 out at (scale, zero_point).
/// On the onednn engine it runs on oneDNN directly (quant/onednn_convolution.h), giving the same
/// bits as LibTorch's quantized::conv2d faster; on other engines it calls LibTorch's kernel.
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
  const Conv2dOptions& options() const { return options_; }
  bool relu() const { return relu_; }
  double scale() const { return scale_; }
  int64_t zero_point() const { return zero_point_; }
  /// The quantized engine the weight was prepacked for (current at construction).
  const std::string& engine() const { return engine_; }
  /// The Conv2dPackedParamsBase object the kernel runs with (quant/export: a TorchScript attribute).
  const c10::IValue& packed() const { return packed_; }
  /// LibTorch's own kernel on packed(), whatever the engine: the reference forward() matches.
  at::Tensor forward_libtorch(const at::Tensor& input) const;

 private:
  Conv2dOptions options_;
  bool relu_;
  double scale_;
  int64_t zero_point_;
  std::string engine_;
  c10::IValue packed_;  // the engine's prepacked weight and bias
  std::shared_ptr<OneDnnConvolution> onednn_;  // set on the onednn engine
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
  /// The LinearPackedParamsBase object the kernel runs with.
  const c10::IValue& packed() const { return packed_; }

 private:
  bool relu_;
  double scale_;
  int64_t zero_point_;
  std::string engine_;
  c10::IValue packed_;
};

/// torch.ao.nn.quantized.Quantize, the converted QuantStub: fp32 in, quantized per
/// tensor at (scale, zero_point) out. Its state_dict holds both, as PyTorch's does.
class Quantize : public ModuleBase<Quantize> {
 public:
  Quantize(double scale, int64_t zero_point, QDtype dtype);
  std::string kind() const override { return "Quantize"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  /// scale, zero_point and dtype ("quint8" or "qint8").
  ModuleConfig config() const override;

 private:
  double scale_;
  int64_t zero_point_;
  QDtype dtype_;
};

/// torch.ao.nn.quantized.DeQuantize, the converted DeQuantStub. An fp32 input passes
/// through, as Tensor.dequantize() leaves it.
class DeQuantize : public ModuleBase<DeQuantize> {
 public:
  std::string kind() const override { return "DeQuantize"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
};

/// torch.ao.nn.quantized.QFunctional, the converted FloatFunctional: its one method
/// (add, add_relu, mul or cat along `dim`) on LibTorch's quantized kernels, giving
/// (scale, zero_point). Like PyTorch's, its state_dict holds them.
class QFunctional : public ModuleBase<QFunctional> {
 public:
  /// std::invalid_argument for a method FloatFunctional does not have.
  QFunctional(std::string method, int64_t dim, double scale, int64_t zero_point);
  std::string kind() const override { return "QFunctional"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  /// method, dim, scale and zero_point.
  ModuleConfig config() const override;

 private:
  std::string method_;
  int64_t dim_;
  double scale_;
  int64_t zero_point_;
};

/// torch.ao.nn.quantized.Hardswish: quint8 in, quint8 out at (scale, zero_point).
class QuantizedHardswish : public ModuleBase<QuantizedHardswish> {
 public:
  QuantizedHardswish(double scale, int64_t zero_point);
  std::string kind() const override { return "QuantizedHardswish"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  /// scale and zero_point.
  ModuleConfig config() const override { return {{"scale", scale_}, {"zero_point", zero_point_}}; }

 private:
  double scale_;
  int64_t zero_point_;
};

/// torch.ao.nn.quantized.BatchNorm2d (and intrinsic.quantized.BNReLU2d): a BatchNorm
/// not folded into a conv, on int8 tensors, giving (scale, zero_point).
class QuantizedBatchNorm2d : public ModuleBase<QuantizedBatchNorm2d> {
 public:
  /// Copies `bn`'s parameters and running statistics; a BNReLU2d gives a QuantizedBNReLU2d.
  QuantizedBatchNorm2d(const BatchNorm2d& bn, double scale, int64_t zero_point);
  std::string kind() const override { return relu_ ? "QuantizedBNReLU2d" : "QuantizedBatchNorm2d"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  std::string extra_repr() const override;
  /// BatchNorm2d's (num_features, eps, momentum) plus scale and zero_point.
  ModuleConfig config() const override;

 private:
  int64_t num_features_;
  double eps_;
  double momentum_;
  double scale_;
  int64_t zero_point_;
  bool relu_;
  std::string repr_;  // BatchNorm2d's, as PyTorch prints it
};

}  // namespace qb
