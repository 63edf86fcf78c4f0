#include "quant/onednn_conv.h"

#include <ATen/ATen.h>

#include "quant/quantized_ops.h"

namespace qb {

OneDnnConv2d::OneDnnConv2d(const Conv2dOptions& options, bool relu) : options_(options), relu_(relu) {
  const auto& o = options_;
  register_parameter("weight", at::zeros({o.out_channels, o.in_channels / o.groups, o.kernel_size.h,
                                          o.kernel_size.w}));
  register_parameter("bias", at::zeros({o.out_channels}));
}

at::Tensor OneDnnConv2d::forward(const std::vector<at::Tensor>& inputs) {
  const at::Tensor& input = only_input(inputs);
  const at::Tensor& weight = tensor("weight");
  // Inference tensors (loaded under c10::InferenceMode) keep no version counter.
  const uint32_t version =
      weight.is_inference() ? 0 : weight.unsafeGetTensorImpl()->version_counter().current_version();
  Packed& packed = packed_[input.sizes().vec()];
  if (packed.context.isNone() || packed.weight_data != weight.data_ptr() ||
      packed.weight_version != version) {
    const auto& o = options_;
    packed.context = call_quantized_op(
        "mkldnn_prepacked::conv2d_prepack", "",
        {weight.contiguous(), c10::optional<at::Tensor>(tensor("bias")), c10::List<int64_t>(o.stride.vec()),
         c10::List<int64_t>(o.padding.vec()), c10::List<int64_t>(o.dilation.vec()), o.groups,
         c10::List<int64_t>(input.sizes().vec()), std::string(relu_ ? "relu" : "none")});
    packed.weight_data = weight.data_ptr();
    packed.weight_version = version;
  }
  return call_quantized_op("mkldnn_prepacked::conv2d_run", "", {input, packed.context}).toTensor();
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
