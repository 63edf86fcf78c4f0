#pragma once
// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
// Equalization and Bias Correction"), run on a fused fp32 model before prepare.
//
// Per-tensor int8 weights lose the channels whose range is small next to the tensor's
// largest. For two layers with only a positively homogeneous activation between them,
// dividing output channel i of the first by s_i and multiplying what the second reads of
// channel i by s_i leaves the fp32 function unchanged, since relu(x / s) = relu(x) / s for
// s > 0. Choosing s_i = sqrt(r1_i / r2_i), r1_i the range of the first layer's output
// channel i and r2_i the range of the second's weights reading channel i, makes the two
// ranges equal, which maximises the sum of the channels' ranges relative to their tensors'.
//
// A pair is conv1 -> [activation] -> conv2 (or linear -> [activation] -> linear) where:
// - conv1 and conv2 are call_module nodes of Conv2d (fused ConvReLU2d included; any groups,
//   depthwise too) or both of Linear (LinearReLU included), each module run by that node only;
// - the activation is a ReLU module or the "relu" function, or, with replace_relu6, a ReLU6
//   module whose every call sits in such a pair (the op registry has no relu6 function);
// - conv1's value, and the activation's, have exactly one user each: a value that also
//   feeds a residual add or the graph's output is left alone.
// A layer may belong to two pairs (MobileNetV2's expand -> depthwise -> project); the
// pairs are then revisited, in graph order, until the scales settle, as DFQ does.

#include <string>
#include <vector>

#include "quant/graph_module.h"

namespace qb {

/// How equalize() iterates and which activations it may change.
struct EqualizationOptions {
  /// Passes over all pairs; stops earlier once a pass moves no channel by a factor s with
  /// |s - 1| > tolerance. 0 passes finds the pairs (and replaces ReLU6) without rescaling.
  int max_iterations = 100;
  /// The convergence threshold on |s - 1| (pairs that share no layer settle in one pass).
  double tolerance = 1e-8;
  /// Replace every ReLU6 between two equalized layers by ReLU first, as DFQ and AIMET do
  /// (ReLU6 is not positively homogeneous); this changes the fp32 model where activations
  /// exceed 6.
  bool replace_relu6 = false;
};

/// One equalized pair, for reports and tests.
struct EqualizedPair {
  /// Node names of the two layers.
  std::string first;
  std::string second;
  /// The activation node between them; "" when the second reads the first directly
  /// (including a relu fused into the first).
  std::string activation;
  /// Whether `activation` was a ReLU6 that equalize() replaced by ReLU.
  bool replaced_relu6 = false;
  /// The largest factor by which a channel's weights moved, max_i max(S_i, 1 / S_i) over the
  /// total scales S_i of all passes (1 when the ranges were already balanced).
  double max_scale = 1.0;
};

/// A copy of `fused` (fuse()'s output: BatchNorm already folded) whose pairs (see above) have
/// their per-channel weight ranges equalized; the fp32 outputs agree up to float rounding
/// (unless replace_relu6 replaced a ReLU6 that clipped). `fused` is left untouched: changed
/// modules are clones. Every pair found is appended to `*pairs` in graph order when given.
/// Throws GraphError naming the nodes of a pair whose channel counts disagree, and
/// std::invalid_argument for negative max_iterations or tolerance.
GraphModule equalize(const GraphModule& fused, const EqualizationOptions& options = {},
                     std::vector<EqualizedPair>* pairs = nullptr);

}  // namespace qb
