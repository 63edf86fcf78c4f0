#include "quant/onednn_conv.h"

#include <ATen/ATen.h>


namespace qb {

OneDnnConv2d::OneDnnConv2d(const Conv2dOptions& options, bool relu) : options_(options), relu_(relu) {
  const auto& o = options_;
  register_parameter("weight", at::zeros({o.out_channels, o.in_channels / o.groups, o.kernel_size.h,
                                          o.kernel_size.w}));
  register_parameter("bias", at::zeros({o.out_channels}));
}

at::Tensor OneDnnConv2d::forward(const std::vector<at::Tensor>& inputs) {
  const at::Tensor& weight = tensor("weight");
  // Inference tensors (loaded under c10::InferenceMode) keep no version counter.
  const uint32_t version =
      weight.is_inference() ? 0 : weight.unsafeGetTensorImpl()->version_counter().current_version();
  if (!kernel_ || weight_data_ != weight.data_ptr() || weight_version_ != version) {
    kernel_ = OneDnnConvolution::fp32(options_, relu_, weight, tensor("bias"));
    weight_data_ = weight.data_ptr();
    weight_version_ = version;
  }
  return kernel_->run(only_input(inputs));
}

std::string OneDnnConv2d::extra_repr() const {
  return conv2d_repr(options_) + (relu_ ? ", relu=True" : "");
}

ModuleConfig OneDnnConv2d::config() const {
  ModuleConfig config = conv2d_config(options_);
  config.emplace_back("relu", int64_t{relu_});
  return config;
}

}  // namespace qb
