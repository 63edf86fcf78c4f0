#pragma once
// convert: the C++ counterpart of convert_fx. Computes qparams from calibrated
// observers, quantizes and prepacks weights for the chosen engine, and lowers
// the graph onto LibTorch's quantized kernels. Values cross into int8 at the
// first quantized op and back to fp32 only where an fp32 op or the output needs them.

#include <string>

#include "quant/graph_module.h"
#include "quant/observers.h"

namespace qb {

struct ConvertOptions {
  /// The quantized engine to prepack for and run with: onednn, qnnpack (fbgemm, x86 when built).
  std::string engine = "onednn";
  /// An observer that saw no data is an error naming its node, unless this is set:
  /// then, as PyTorch does, it converts with default qparams (scale 1, zero point 0).
  bool allow_uncalibrated = false;
};

/// The int8 model for a prepared (and calibrated) `prepared`, which is left untouched.
/// Selects `options.engine` as LibTorch's quantized engine.
GraphModule convert(const GraphModule& prepared, const ConvertOptions& options);

}  // namespace qb
