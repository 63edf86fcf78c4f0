#include "quant/quantized_modules.h"

#include <ATen/ATen.h>

#include <sstream>

#include "quant/quantized_ops.h"

namespace qb {

namespace {

std::string pair(int64_t v) { return "(" + std::to_string(v) + ", " + std::to_string(v) + ")"; }

// Python prints floats with repr(): enough digits to read the same value back.
std::string py_float(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
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

c10::List<int64_t> square(int64_t v) { return c10::List<int64_t>({v, v}); }

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
                              {weight, c10::optional<at::Tensor>(bias), square(options.stride),
                               square(options.padding), square(options.dilation), options.groups});
  register_buffer("weight", weight);
  register_buffer("bias", bias);
  register_buffer("scale", at::scalar_tensor(scale, at::kDouble));
  register_buffer("zero_point", at::scalar_tensor(zero_point, at::kLong));
}

at::Tensor QuantizedConv2d::forward(const std::vector<at::Tensor>& inputs) {
  return call_quantized_op(relu_ ? "quantized::conv2d_relu" : "quantized::conv2d", "new",
                           {only_input(inputs), packed_, scale_, zero_point_})
      .toTensor();
}

std::string QuantizedConv2d::extra_repr() const {
  const auto& o = options_;
  std::string s = std::to_string(o.in_channels) + ", " + std::to_string(o.out_channels) +
                  ", kernel_size=" + pair(o.kernel_size) + ", stride=" + pair(o.stride) +
                  ", scale=" + py_float(scale_) + ", zero_point=" + std::to_string(zero_point_);
  if (o.padding != 0) s += ", padding=" + pair(o.padding);
  if (o.dilation != 1) s += ", dilation=" + pair(o.dilation);
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

}  // namespace qb
