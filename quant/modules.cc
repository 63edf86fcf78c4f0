#include "quant/modules.h"

#include <ATen/ATen.h>

#include <sstream>

namespace qb {

namespace {

// Python's repr of a float: shortest form that reads back ("1e-05", "0.1").
std::string py_float(double v) {
  std::ostringstream out;
  out << v;
  std::string s = out.str();
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}
}  // namespace

std::string Size2::repr() const {
  return "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
}

Attr Size2::attr() const {
  if (h == w) return h;
  return vec();
}

std::optional<Size2> Size2::from_attr(const Attr& value) {
  if (const auto* both = std::get_if<int64_t>(&value)) return Size2(*both);
  const auto* list = std::get_if<std::vector<int64_t>>(&value);
  if (list && list->size() == 2) return Size2((*list)[0], (*list)[1]);
  return std::nullopt;
}

ModuleConfig conv2d_config(const Conv2dOptions& options) {
  const auto& o = options;
  return {{"in_channels", o.in_channels}, {"out_channels", o.out_channels},
          {"kernel_size", o.kernel_size.attr()}, {"stride", o.stride.attr()},
          {"padding", o.padding.attr()},         {"dilation", o.dilation.attr()},
          {"groups", o.groups},           {"bias", int64_t{o.bias}}};
}

Conv2d::Conv2d(const Conv2dOptions& options) : options_(options) {
  const auto& o = options_;
  register_parameter("weight", at::zeros({o.out_channels, o.in_channels / o.groups, o.kernel_size.h,
                                          o.kernel_size.w}));
  if (o.bias) register_parameter("bias", at::zeros({o.out_channels}));
}

at::Tensor Conv2d::forward(const std::vector<at::Tensor>& inputs) {
  const auto& o = options_;
  at::Tensor bias = o.bias ? tensor("bias") : at::Tensor();
  at::Tensor out = at::conv2d(only_input(inputs), tensor("weight"), bias, o.stride.vec(),
                              o.padding.vec(), o.dilation.vec(), o.groups);
  return fused_relu_ ? out.relu_() : out;  // out is fresh: relu in place is safe
}

std::string conv2d_repr(const Conv2dOptions& o) {
  std::string s = std::to_string(o.in_channels) + ", " + std::to_string(o.out_channels) +
                  ", kernel_size=" + o.kernel_size.repr() + ", stride=" + o.stride.repr();
  if (o.padding != 0) s += ", padding=" + o.padding.repr();
  if (o.dilation != 1) s += ", dilation=" + o.dilation.repr();
  if (o.groups != 1) s += ", groups=" + std::to_string(o.groups);
  return s;
}

std::string Conv2d::extra_repr() const {
  return conv2d_repr(options_) + (options_.bias ? "" : ", bias=False");
}

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum)
    : num_features_(num_features), eps_(eps), momentum_(momentum) {
  register_parameter("weight", at::ones({num_features}));
  register_parameter("bias", at::zeros({num_features}));
  register_buffer("running_mean", at::zeros({num_features}));
  register_buffer("running_var", at::ones({num_features}));
  register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor BatchNorm2d::forward(const std::vector<at::Tensor>& inputs) {
  if (training()) {
    // nn.BatchNorm2d counts batches even when momentum is fixed.
    at::Tensor tracked = tensor("num_batches_tracked");
    tracked.add_(1);
  }
  at::Tensor out = at::batch_norm(only_input(inputs), tensor("weight"), tensor("bias"),
                                  tensor("running_mean"), tensor("running_var"), training(),
                                  momentum_, eps_, /*cudnn_enabled=*/false);
  return fused_relu_ ? out.relu_() : out;  // out is fresh: relu in place is safe
}

std::string BatchNorm2d::extra_repr() const {
  return std::to_string(num_features_) + ", eps=" + py_float(eps_) +
         ", momentum=" + py_float(momentum_) + ", affine=True, track_running_stats=True";
}

ModuleConfig BatchNorm2d::config() const {
  return {{"num_features", num_features_}, {"eps", eps_}, {"momentum", momentum_}};
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  register_parameter("weight", at::zeros({out_features, in_features}));
  if (bias) register_parameter("bias", at::zeros({out_features}));
}

at::Tensor Linear::forward(const std::vector<at::Tensor>& inputs) {
  bool has_bias = tensors().size() > 1;
  at::Tensor out =
      at::linear(only_input(inputs), tensor("weight"), has_bias ? tensor("bias") : at::Tensor());
  return fused_relu_ ? out.relu_() : out;  // out is fresh: relu in place is safe
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features_) +
         ", out_features=" + std::to_string(out_features_) +
         ", bias=" + (tensors().size() > 1 ? "True" : "False");
}

ModuleConfig Linear::config() const {
  return {{"in_features", in_features_},
          {"out_features", out_features_},
          {"bias", int64_t{tensors().size() > 1}}};
}

at::Tensor ReLU::forward(const std::vector<at::Tensor>& inputs) {
  const at::Tensor& x = only_input(inputs);
  return can_overwrite(x) ? x.relu_() : at::relu(x);
}

at::Tensor ReLU6::forward(const std::vector<at::Tensor>& inputs) {
  return at::hardtanh(only_input(inputs), 0.0, 6.0);
}

at::Tensor Elementwise::forward(const std::vector<at::Tensor>& inputs) {
  return kernel_(only_input(inputs));
}

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding, bool ceil_mode)
    : kernel_size_(kernel_size), stride_(stride), padding_(padding), ceil_mode_(ceil_mode) {}

at::Tensor MaxPool2d::forward(const std::vector<at::Tensor>& inputs) {
  return at::max_pool2d(only_input(inputs), {kernel_size_, kernel_size_}, {stride_, stride_},
                        {padding_, padding_}, {1, 1}, ceil_mode_);
}

std::string MaxPool2d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_size_) + ", stride=" + std::to_string(stride_) +
         ", padding=" + std::to_string(padding_) +
         ", dilation=1, ceil_mode=" + (ceil_mode_ ? "True" : "False");
}

ModuleConfig MaxPool2d::config() const {
  return {{"kernel_size", kernel_size_},
          {"stride", stride_},
          {"padding", padding_},
          {"ceil_mode", int64_t{ceil_mode_}}};
}

AvgPool2d::AvgPool2d(int64_t kernel_size, int64_t stride, int64_t padding, bool ceil_mode,
                     bool count_include_pad)
    : kernel_size_(kernel_size),
      stride_(stride),
      padding_(padding),
      ceil_mode_(ceil_mode),
      count_include_pad_(count_include_pad) {}

at::Tensor AvgPool2d::forward(const std::vector<at::Tensor>& inputs) {
  return at::avg_pool2d(only_input(inputs), {kernel_size_, kernel_size_}, {stride_, stride_},
                        {padding_, padding_}, ceil_mode_, count_include_pad_);
}

std::string AvgPool2d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_size_) + ", stride=" + std::to_string(stride_) +
         ", padding=" + std::to_string(padding_);
}

ModuleConfig AvgPool2d::config() const {
  return {{"kernel_size", kernel_size_},
          {"stride", stride_},
          {"padding", padding_},
          {"ceil_mode", int64_t{ceil_mode_}},
          {"count_include_pad", int64_t{count_include_pad_}}};
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t output_height, int64_t output_width)
    : output_height_(output_height), output_width_(output_width) {}

at::Tensor AdaptiveAvgPool2d::forward(const std::vector<at::Tensor>& inputs) {
  return at::adaptive_avg_pool2d(only_input(inputs), {output_height_, output_width_});
}

std::string AdaptiveAvgPool2d::extra_repr() const {
  return "output_size=(" + std::to_string(output_height_) + ", " + std::to_string(output_width_) +
         ")";
}

ModuleConfig AdaptiveAvgPool2d::config() const {
  return {{"output_height", output_height_}, {"output_width", output_width_}};
}

at::Tensor Dropout::forward(const std::vector<at::Tensor>& inputs) {
  return at::dropout(only_input(inputs), p_, training());
}

std::string Dropout::extra_repr() const { return "p=" + py_float(p_) + ", inplace=False"; }

at::Tensor Flatten::forward(const std::vector<at::Tensor>& inputs) {
  return at::flatten(only_input(inputs), start_dim_, end_dim_);
}

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim_) + ", end_dim=" + std::to_string(end_dim_);
}

at::Tensor Identity::forward(const std::vector<at::Tensor>& inputs) { return only_input(inputs); }

}  // namespace qb
