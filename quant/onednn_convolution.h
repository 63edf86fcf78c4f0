#pragma once
// A 2-D convolution run on oneDNN directly, on channels-last tensors: the kernel under
// both QuantizedConv2d on the onednn engine and the fp32 deployment form's OneDnnConv2d.
//
// int8: the primitive LibTorch's onednn engine builds for quantized::conv2d(_relu), with the
// same scales, zero points, pre-scaled bias and post-op, so its outputs are the same bits
// (tests/quant/onednn_convolution_test.cc). It is faster for two reasons:
// - LibTorch asks oneDNN for a runtime source zero point on every convolution, which
//   restricts oneDNN to its older jit_int8 kernels. Here the zero point is fixed when the
//   primitive is built (the input's qparams are known after conversion) and left out when it
//   is 0, as after every relu, so oneDNN can pick its brgemm kernels: up to 38% faster on
//   ResNet-18's deep 3x3 convolutions.
// - Per call, LibTorch boxes the arguments through the dispatcher, looks up its primitive
//   cache and wraps every buffer in new oneDNN memory objects; this keeps the primitive, the
//   memory objects and the scratchpad, and only swaps data pointers.
//
// fp32: what torch.jit.optimize_for_inference's prepacked convolution runs, but always in
// channels-last: LibTorch's falls back to oneDNN's blocked layout, with a reorder before and
// after every convolution, when the input's layout is ambiguous (one channel, as in
// Fashion-MNIST's 1x28x28).

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "quant/modules.h"

namespace qb {

class OneDnnConvolution {
 public:
  /// fp32 weight (OIHW) and bias (one value per output channel, or undefined for none).
  static std::unique_ptr<OneDnnConvolution> fp32(const Conv2dOptions& options, bool relu,
                                                 const at::Tensor& weight, const at::Tensor& bias);
  /// `weight` is qint8 (per tensor or per output channel, zero points 0, as oneDNN requires),
  /// `bias` fp32 or undefined. The output is quint8 at (`scale`, `zero_point`).
  static std::unique_ptr<OneDnnConvolution> int8(const Conv2dOptions& options, bool relu,
                                                 const at::Tensor& weight, const at::Tensor& bias,
                                                 double scale, int64_t zero_point);
  ~OneDnnConvolution();
  OneDnnConvolution(const OneDnnConvolution&) = delete;
  OneDnnConvolution& operator=(const OneDnnConvolution&) = delete;

  /// An NCHW input of the kernel's type (fp32, or quint8; any layout, channels-last avoids a
  /// copy) to a channels-last output, relu applied when asked. The primitive is built at the
  /// first call for each input shape, thread count and, for int8, input qparams. Not safe to
  /// call from two threads at once.
  at::Tensor run(const at::Tensor& input);

  /// The oneDNN implementation the last call ran ("brgconv:avx512_core_vnni", ...).
  std::string implementation() const;

 private:
  struct Plan;
  OneDnnConvolution(const Conv2dOptions& options, bool relu, const at::Tensor& weight,
                    const at::Tensor& bias);
  Plan& plan_for(const at::Tensor& input);

  Conv2dOptions options_;
  bool relu_;
  bool quantized_;
  at::Tensor weight_;                 // OIHW, contiguous: fp32, or qint8
  std::vector<float> bias_;           // fp32, unscaled
  std::vector<float> weight_scales_;  // int8: oneDNN's reciprocal convention, as LibTorch's
  double scale_ = 1.0;                // int8: output qparams
  int64_t zero_point_ = 0;
  std::vector<std::unique_ptr<Plan>> plans_;
  Plan* last_ = nullptr;
};

}  // namespace qb
