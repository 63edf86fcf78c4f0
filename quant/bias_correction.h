#pragma once
// Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization Through Weight
// Equalization and Bias Correction", section 4.2, in the empirical form AIMET and NNCF
// implement): quantizing weights shifts the mean of a layer's output, most visibly with
// per-tensor weights over channels of very different ranges (MobileNetV2's depthwise convs).
// Measuring that shift per output channel on calibration data and moving it into the bias
// removes the systematic part of the error, which later layers would otherwise amplify.
//
// Cost: one convert() and one pass of the int8 model over the batches per corrected layer
// (plus one for the last layer's after-figure when `corrected` is given), and one fp32 pass.
// Fine for the zoo's models and calibration sets of a few hundred images; the layers cannot
// share a pass because each is measured with the corrections before it in place.

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "quant/convert.h"
#include "quant/graph_module.h"

namespace qb {

struct BiasCorrectionOptions {
  /// How the intermediate int8 models are converted (engine onednn by default, as convert's).
  ConvertOptions convert;
  /// Called after each corrected layer with (layers done, layers to correct); unset by default.
  std::function<void(size_t, size_t)> on_layer;
};

/// One corrected layer. The figures are the mean over output channels of |E[y_fp32 - y_int8]|
/// on the batches, with y the node's output (after the relu for fused forms).
struct CorrectedLayer {
  /// The node's name (its module is at the node's target).
  std::string node;
  /// Measured with the earlier layers already corrected: the mean |shift| added to the bias.
  double mean_abs_shift_before = 0.0;
  /// Measured with this layer corrected too; later layers cannot change it, so it is also the
  /// figure of the returned model. Not zero for fused relu forms, whose negative outputs
  /// the relu hides from the measurement, nor where the int8 output rounds the shift away.
  double mean_abs_shift_after = 0.0;
};

/// A copy of the calibrated `prepared` (prepare()'s output after calibrate()) in which the bias
/// of every quantized Conv2d and Linear node (fused ConvReLU2d / LinearReLU included) is
/// shifted by E[y_fp32 - y_int8] per output channel, measured on `batches` (each batch is the
/// graph's single input). Nodes whose module has no bias are left alone: a bias-free layer
/// has nowhere to put the shift (fusion gives every conv followed by a BatchNorm a bias).
///
/// `reference` is the fp32 model prepare was given, after fusion (fuse(model, mapping) with
/// prepare's mapping, quant/fuse.h): its node names line up with `prepared`'s and its nodes
/// compute the same fused layers in fp32. A corrected node missing from it is a GraphError
/// naming the node; empty `batches` is std::invalid_argument.
///
/// Layers are corrected one at a time in graph order, each measured on the int8 model with
/// the earlier corrections applied, so a layer's shift does not count error its predecessors
/// already removed. For fused relu forms the int8 model only exposes the output after the
/// relu, so both sides are measured there; this differs from the paper's pre-activation
/// expectation (AIMET's empirical variant also works on layer outputs) and under-corrects
/// channels the relu often clips.
///
/// `prepared` is left untouched: the corrected layers are new modules, every other module
/// (the observers included) is shared with `prepared`, as a GraphModule copy shares them.
/// The observers keep their calibrated state, so convert() of the result computes the same
/// activation qparams as convert() of `prepared`. `corrected`, when given, receives one
/// entry per corrected layer in graph order.
GraphModule correct_bias(const GraphModule& prepared, const GraphModule& reference,
                         const std::vector<at::Tensor>& batches,
                         const BiasCorrectionOptions& options,
                         std::vector<CorrectedLayer>* corrected = nullptr);

}  // namespace qb
