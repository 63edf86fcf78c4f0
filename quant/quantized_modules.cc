#include "quant/quantized_modules.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "quant/onednn_convolution.h"
#include "quant/quantize_kernel.h"
#include "quant/quantized_ops.h"
#include "quant/stubs.h"

namespace qb {

namespace {

// Python's repr of a float: the shortest text that reads back the same ("0.5", "1.0").
std::string py_float(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, result.ptr);
  if (text.find_first_of(".en") == std::string::npos) text += ".0";
  return text;
}

// PyTorch prints a one-element float tensor as tensor([0.0079]), tensor([1.]) or, for
// values below 1e-4 or from 1e8 on, tensor([1.2000e-05]).
std::string float_tensor_repr(double value) {
  char buffer[64];
  double magnitude = std::fabs(value);
  if (value == std::nearbyint(value) && magnitude < 1e8) {
    std::snprintf(buffer, sizeof buffer, "%.0f.", value);
  } else if (magnitude < 1e-4 || magnitude >= 1e8) {
    std::snprintf(buffer, sizeof buffer, "%.4e", value);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.4f", value);
  }
  return std::string("tensor([") + buffer + "])";
}

std::string weight_qscheme(const at::Tensor& weight) {
  switch (weight.qscheme()) {
    case at::kPerChannelAffine:
      return "torch.per_channel_affine";
    case at::kPerChannelSymmetric:
      return "torch.per_channel_symmetric";
    case at::kPerTensorSymmetric:
      return "torch.per_tensor_symmetric";
    default:
      return "torch.per_tensor_affine";
  }
}

}  // namespace

QuantizedConv2d::QuantizedConv2d(const Conv2dOptions& options, bool relu, at::Tensor weight,
                                 at::Tensor bias, double scale, int64_t zero_point)
    : options_(options),
      relu_(relu),
      scale_(scale),
      zero_point_(zero_point),
      engine_(current_engine()) {
  // The kernels accept a missing bias, but a zero bias keeps the state dict uniform.
  if (!bias.defined()) bias = at::zeros({options.out_channels});
  packed_ = call_quantized_op("quantized::conv2d_prepack", "",
                              {weight, c10::optional<at::Tensor>(bias), c10::List<int64_t>(options.stride.vec()),
                               c10::List<int64_t>(options.padding.vec()),
                               c10::List<int64_t>(options.dilation.vec()), options.groups});
  if (engine_ == "onednn") {
    onednn_ = OneDnnConvolution::int8(options, relu, weight, bias, scale, zero_point);
  }
  register_buffer("weight", weight);
  register_buffer("bias", bias);
  register_buffer("scale", at::scalar_tensor(scale, at::kDouble));
  register_buffer("zero_point", at::scalar_tensor(zero_point, at::kLong));
}

at::Tensor QuantizedConv2d::forward(const std::vector<at::Tensor>& inputs) {
  if (onednn_) return onednn_->run(only_input(inputs));
  return forward_libtorch(only_input(inputs));
}

at::Tensor QuantizedConv2d::forward_libtorch(const at::Tensor& input) const {
  return call_quantized_op(relu_ ? "quantized::conv2d_relu" : "quantized::conv2d", "new",
                           {input, packed_, scale_, zero_point_})
      .toTensor();
}

std::string QuantizedConv2d::extra_repr() const {
  const auto& o = options_;
  std::string s = std::to_string(o.in_channels) + ", " + std::to_string(o.out_channels) +
                  ", kernel_size=" + o.kernel_size.repr() + ", stride=" + o.stride.repr() +
                  ", scale=" + py_float(scale_) + ", zero_point=" + std::to_string(zero_point_);
  if (o.padding != 0) s += ", padding=" + o.padding.repr();
  if (o.dilation != 1) s += ", dilation=" + o.dilation.repr();
  if (o.groups != 1) s += ", groups=" + std::to_string(o.groups);
  return s;
}

ModuleConfig QuantizedConv2d::config() const {
  ModuleConfig config = conv2d_config(options_);
  config.emplace_back("scale", scale_);
  config.emplace_back("zero_point", zero_point_);
  return config;
}

QuantizedLinear::QuantizedLinear(bool relu, at::Tensor weight, at::Tensor bias, double scale,
                                 int64_t zero_point)
    : relu_(relu), scale_(scale), zero_point_(zero_point), engine_(current_engine()) {
  if (!bias.defined()) bias = at::zeros({weight.size(0)});
  packed_ = call_quantized_op("quantized::linear_prepack", "",
                              {weight, c10::optional<at::Tensor>(bias)});
  register_buffer("weight", weight);
  register_buffer("bias", bias);
  register_buffer("scale", at::scalar_tensor(scale, at::kDouble));
  register_buffer("zero_point", at::scalar_tensor(zero_point, at::kLong));
}

at::Tensor QuantizedLinear::forward(const std::vector<at::Tensor>& inputs) {
  return call_quantized_op(relu_ ? "quantized::linear_relu" : "quantized::linear", "",
                           {only_input(inputs), packed_, scale_, zero_point_})
      .toTensor();
}

std::string QuantizedLinear::extra_repr() const {
  const at::Tensor& weight = tensor("weight");
  return "in_features=" + std::to_string(weight.size(1)) +
         ", out_features=" + std::to_string(weight.size(0)) + ", scale=" + py_float(scale_) +
         ", zero_point=" + std::to_string(zero_point_) + ", qscheme=" + weight_qscheme(weight);
}

ModuleConfig QuantizedLinear::config() const {
  return {{"scale", scale_}, {"zero_point", zero_point_}};
}

Quantize::Quantize(double scale, int64_t zero_point, QDtype dtype)
    : scale_(scale), zero_point_(zero_point), dtype_(dtype) {
  register_buffer("scale", at::full({1}, scale, at::kFloat));
  register_buffer("zero_point", at::full({1}, zero_point, at::kLong));
}

at::Tensor Quantize::forward(const std::vector<at::Tensor>& inputs) {
  return fast_quantize_per_tensor(only_input(inputs), scale_, zero_point_,
                                  dtype_ == QDtype::kQInt8 ? at::kQInt8 : at::kQUInt8);
}

std::string Quantize::extra_repr() const {
  return "scale=" + float_tensor_repr(scale_) + ", zero_point=tensor([" +
         std::to_string(zero_point_) + "]), dtype=torch." + to_string(dtype_);
}

ModuleConfig Quantize::config() const {
  return {{"scale", scale_}, {"zero_point", zero_point_}, {"dtype", to_string(dtype_)}};
}

at::Tensor DeQuantize::forward(const std::vector<at::Tensor>& inputs) {
  return only_input(inputs).dequantize();
}

QFunctional::QFunctional(std::string method, int64_t dim, double scale, int64_t zero_point)
    : method_(std::move(method)), dim_(dim), scale_(scale), zero_point_(zero_point) {
  const auto& known = float_functional_methods();
  if (std::find(known.begin(), known.end(), method_) == known.end()) {
    throw std::invalid_argument("QFunctional has no method '" + method_ + "'");
  }
  register_buffer("scale", at::scalar_tensor(scale, at::kFloat));
  register_buffer("zero_point", at::scalar_tensor(zero_point, at::kLong));
}

at::Tensor QFunctional::forward(const std::vector<at::Tensor>& inputs) {
  if (method_ == "cat") {
    return call_quantized_op("quantized::cat", "",
                             {c10::List<at::Tensor>(inputs), dim_, c10::optional<double>(scale_),
                              c10::optional<int64_t>(zero_point_)})
        .toTensor();
  }
  if (inputs.size() != 2) {
    throw std::invalid_argument("QFunctional." + method_ + " takes 2 inputs, got " +
                                std::to_string(inputs.size()));
  }
  return call_quantized_op("quantized::" + method_, "", {inputs[0], inputs[1], scale_, zero_point_})
      .toTensor();
}

std::string QFunctional::extra_repr() const {
  return "scale=" + py_float(scale_) + ", zero_point=" + std::to_string(zero_point_);
}

ModuleConfig QFunctional::config() const {
  return {{"method", method_}, {"dim", dim_}, {"scale", scale_}, {"zero_point", zero_point_}};
}

QuantizedBatchNorm2d::QuantizedBatchNorm2d(const BatchNorm2d& bn, double scale,
                                           int64_t zero_point)
    : num_features_(bn.num_features()),
      eps_(bn.eps()),
      momentum_(bn.momentum()),
      scale_(scale),
      zero_point_(zero_point),
      relu_(bn.fused_relu()),
      repr_(bn.extra_repr()) {
  for (const auto& slot : bn.tensors()) {
    if (slot.is_parameter) {
      register_parameter(slot.name, slot.tensor.detach().clone());
    } else {
      register_buffer(slot.name, slot.tensor.detach().clone());
    }
  }
  register_buffer("scale", at::scalar_tensor(scale, at::kFloat));
  register_buffer("zero_point", at::scalar_tensor(zero_point, at::kLong));
}

QuantizedHardswish::QuantizedHardswish(double scale, int64_t zero_point)
    : scale_(scale), zero_point_(zero_point) {
  register_buffer("scale", at::scalar_tensor(scale, at::kFloat));
  register_buffer("zero_point", at::scalar_tensor(zero_point, at::kLong));
}

at::Tensor QuantizedHardswish::forward(const std::vector<at::Tensor>& inputs) {
  return call_quantized_op("quantized::hardswish", "", {only_input(inputs), scale_, zero_point_})
      .toTensor();
}

std::string QuantizedHardswish::extra_repr() const {
  return "scale=" + py_float(scale_) + ", zero_point=" + std::to_string(zero_point_);
}

at::Tensor QuantizedBatchNorm2d::forward(const std::vector<at::Tensor>& inputs) {
  return call_quantized_op(relu_ ? "quantized::batch_norm2d_relu" : "quantized::batch_norm2d", "",
                           {only_input(inputs), c10::optional<at::Tensor>(tensor("weight")),
                            c10::optional<at::Tensor>(tensor("bias")), tensor("running_mean"),
                            tensor("running_var"), eps_, scale_, zero_point_})
      .toTensor();
}

std::string QuantizedBatchNorm2d::extra_repr() const { return repr_; }

ModuleConfig QuantizedBatchNorm2d::config() const {
  return {{"num_features", num_features_},
          {"eps", eps_},
          {"momentum", momentum_},
          {"scale", scale_},
          {"zero_point", zero_point_}};
}

}  // namespace qb
