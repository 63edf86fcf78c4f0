#include "quant/onednn_convolution.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dnnl.hpp>

#include <stdexcept>
#include <unordered_map>

namespace qb {

namespace {

using dnnl::memory;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// LibTorch's conventions, which the same bits depend on: oneDNN scales are reciprocal to
// PyTorch's, the per-tensor weight scale is inverted in double and the per-channel ones in
// float (qconv_prepack.cpp), and bias and output scales follow ideep's compute_scales.
std::vector<float> onednn_weight_scales(const at::Tensor& weight) {
  if (weight.qscheme() == at::kPerTensorAffine || weight.qscheme() == at::kPerTensorSymmetric) {
    if (weight.q_zero_point() != 0) {
      throw std::invalid_argument("oneDNN int8 convolution needs weight zero point 0, got " +
                                  std::to_string(weight.q_zero_point()));
    }
    return {static_cast<float>(1.0 / weight.q_scale())};
  }
  at::Tensor scales = weight.q_per_channel_scales().to(at::kFloat).contiguous();
  at::Tensor zero_points = weight.q_per_channel_zero_points();
  if (zero_points.ne(0).any().item<bool>()) {
    throw std::invalid_argument("oneDNN int8 convolution needs weight zero points 0");
  }
  std::vector<float> result(scales.numel());
  for (size_t i = 0; i < result.size(); ++i) result[i] = 1.0f / scales.data_ptr<float>()[i];
  return result;
}

}  // namespace

// One built primitive: for an input shape, the thread count, which oneDNN bakes into its
// blocking, and for int8 the input's qparams.
struct OneDnnConvolution::Plan {
  std::vector<int64_t> input_sizes;
  double input_scale;
  int64_t input_zero_point;
  int threads;
  std::vector<int64_t> output_sizes;
  dnnl::convolution_forward primitive;
  std::string implementation;
  memory src, weights, bias, dst, scratchpad;
  std::vector<float> bias_values;  // int8: pre-scaled as ideep does
  std::unordered_map<int, memory> args;
};

OneDnnConvolution::OneDnnConvolution(const Conv2dOptions& options, bool relu,
                                     const at::Tensor& weight, const at::Tensor& bias)
    : options_(options),
      relu_(relu),
      quantized_(weight.is_quantized()),
      weight_(weight.contiguous()),
      bias_(options.out_channels, 0.0f) {
  if (bias.defined()) {
    at::Tensor b = bias.detach().to(at::kFloat).contiguous();
    std::copy(b.data_ptr<float>(), b.data_ptr<float>() + b.numel(), bias_.begin());
  }
}

std::unique_ptr<OneDnnConvolution> OneDnnConvolution::fp32(const Conv2dOptions& options, bool relu,
                                                           const at::Tensor& weight,
                                                           const at::Tensor& bias) {
  if (weight.scalar_type() != at::kFloat) {
    throw std::invalid_argument("fp32 convolution takes an fp32 weight");
  }
  return std::unique_ptr<OneDnnConvolution>(
      new OneDnnConvolution(options, relu, weight.detach(), bias));
}

std::unique_ptr<OneDnnConvolution> OneDnnConvolution::int8(const Conv2dOptions& options, bool relu,
                                                           const at::Tensor& weight,
                                                           const at::Tensor& bias, double scale,
                                                           int64_t zero_point) {
  if (weight.scalar_type() != at::kQInt8) {
    throw std::invalid_argument("int8 convolution takes a qint8 weight");
  }
  std::unique_ptr<OneDnnConvolution> conv(new OneDnnConvolution(options, relu, weight, bias));
  conv->weight_scales_ = onednn_weight_scales(weight);
  conv->scale_ = scale;
  conv->zero_point_ = zero_point;
  return conv;
}

OneDnnConvolution::~OneDnnConvolution() = default;

OneDnnConvolution::Plan& OneDnnConvolution::plan_for(const at::Tensor& input) {
  const int threads = at::get_num_threads();
  const double input_scale = quantized_ ? input.q_scale() : 1.0;
  const int64_t input_zero_point = quantized_ ? input.q_zero_point() : 0;
  auto matches = [&](const Plan& plan) {
    return plan.threads == threads && plan.input_scale == input_scale &&
           plan.input_zero_point == input_zero_point && input.sizes().equals(plan.input_sizes);
  };
  for (auto& plan : plans_) {
    if (matches(*plan)) return *(last_ = plan.get());
  }

  const auto& o = options_;
  const int64_t n = input.size(0), h = input.size(2), w = input.size(3);
  auto out_extent = [](int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
  };
  const int64_t oh = out_extent(h, o.kernel_size.h, o.stride.h, o.padding.h, o.dilation.h);
  const int64_t ow = out_extent(w, o.kernel_size.w, o.stride.w, o.padding.w, o.dilation.w);

  auto plan = std::make_unique<Plan>();
  plan->input_sizes = input.sizes().vec();
  plan->input_scale = input_scale;
  plan->input_zero_point = input_zero_point;
  plan->threads = threads;
  plan->output_sizes = {n, o.out_channels, oh, ow};

  const auto activation = quantized_ ? memory::data_type::u8 : memory::data_type::f32;
  const auto weight_type = quantized_ ? memory::data_type::s8 : memory::data_type::f32;
  const memory::desc src_md({n, o.in_channels, h, w}, activation, memory::format_tag::nhwc);
  const memory::desc dst_md({n, o.out_channels, oh, ow}, activation, memory::format_tag::nhwc);
  const memory::desc bias_md({o.out_channels}, memory::data_type::f32, memory::format_tag::a);
  const bool grouped = o.groups > 1;
  const memory::dims weight_dims =
      grouped ? memory::dims{o.groups, o.out_channels / o.groups, o.in_channels / o.groups,
                             o.kernel_size.h, o.kernel_size.w}
              : memory::dims{o.out_channels, o.in_channels, o.kernel_size.h, o.kernel_size.w};
  const memory::desc any_weight_md(weight_dims, weight_type, memory::format_tag::any);
  const memory::desc plain_weight_md(weight_dims, weight_type,
                                     grouped ? memory::format_tag::goihw : memory::format_tag::oihw);

  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  plan->bias_values = bias_;
  if (quantized_) {
    // ideep's compute_scales: bias scale = src * weight, output scale = dst / bias scale.
    const float src_scale = static_cast<float>(1.0 / input_scale);
    const float dst_scale = static_cast<float>(1.0 / scale_);
    std::vector<float> output_scales(weight_scales_.size());
    std::vector<float> bias_scales(weight_scales_.size());
    for (size_t i = 0; i < weight_scales_.size(); ++i) {
      bias_scales[i] = src_scale * weight_scales_[i];
      output_scales[i] = dst_scale / bias_scales[i];
    }
    for (size_t i = 0; i < bias_.size(); ++i) {
      plan->bias_values[i] = bias_[i] * bias_scales[bias_scales.size() == 1 ? 0 : i];
    }
    attr.set_output_scales(output_scales.size() == 1 ? 0 : 2, output_scales);
    if (input_zero_point != 0) {
      attr.set_zero_points(DNNL_ARG_SRC, 0, {static_cast<int32_t>(input_zero_point)});
    }
    if (zero_point_ != 0) attr.set_zero_points(DNNL_ARG_DST, 0, {static_cast<int32_t>(zero_point_)});
  }
  if (relu_) {
    dnnl::post_ops post_ops;
    post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(post_ops);
  }

  const memory::dims strides{o.stride.h, o.stride.w};
  const memory::dims dilates{o.dilation.h - 1, o.dilation.w - 1};
  const memory::dims padding{o.padding.h, o.padding.w};
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
      any_weight_md, bias_md, dst_md, strides, dilates, padding, padding);
  const dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
  plan->primitive = dnnl::convolution_forward(pd);
  plan->implementation = pd.impl_info_str();

  const dnnl::engine& engine = cpu_engine();
  dnnl::stream stream(engine);
  memory plain_weights(plain_weight_md, engine, weight_.data_ptr());
  plan->weights = memory(pd.weights_desc(), engine);
  dnnl::reorder(plain_weights, plan->weights).execute(stream, plain_weights, plan->weights);
  stream.wait();
  plan->src = memory(src_md, engine, DNNL_MEMORY_NONE);
  plan->dst = memory(dst_md, engine, DNNL_MEMORY_NONE);
  plan->bias = memory(bias_md, engine, plan->bias_values.data());
  plan->scratchpad = memory(pd.scratchpad_desc(), engine);
  plan->args = {{DNNL_ARG_SRC, plan->src},       {DNNL_ARG_WEIGHTS, plan->weights},
                {DNNL_ARG_BIAS, plan->bias},     {DNNL_ARG_DST, plan->dst},
                {DNNL_ARG_SCRATCHPAD, plan->scratchpad}};
  plans_.push_back(std::move(plan));
  return *(last_ = plans_.back().get());
}

at::Tensor OneDnnConvolution::run(const at::Tensor& input) {
  const at::ScalarType type = quantized_ ? at::kQUInt8 : at::kFloat;
  const char* kind = quantized_ ? "int8" : "fp32";
  if (input.scalar_type() != type || input.dim() != 4) {
    throw std::invalid_argument(std::string(kind) + " convolution takes a 4-D " +
                                c10::toString(type) + " input, got " + std::to_string(input.dim()) +
                                "-D " + c10::toString(input.scalar_type()));
  }
  if (input.size(1) != options_.in_channels) {
    throw std::invalid_argument(std::string(kind) + " convolution expects " +
                                std::to_string(options_.in_channels) + " input channels, got " +
                                std::to_string(input.size(1)));
  }
  const at::Tensor src = input.contiguous(at::MemoryFormat::ChannelsLast);
  Plan& plan = plan_for(src);
  at::Tensor output =
      quantized_ ? at::_empty_affine_quantized(plan.output_sizes, src.options(), scale_, zero_point_,
                                               at::MemoryFormat::ChannelsLast)
                 : at::empty(plan.output_sizes, src.options().memory_format(at::MemoryFormat::ChannelsLast));
  plan.src.set_data_handle(src.data_ptr());
  plan.dst.set_data_handle(output.data_ptr());
  static thread_local dnnl::stream stream(cpu_engine());
  plan.primitive.execute(stream, plan.args);
  return output;
}

std::string OneDnnConvolution::implementation() const { return last_ ? last_->implementation : ""; }

}  // namespace qb
