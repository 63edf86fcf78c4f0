#pragma once
// Memory layout for inference: channels-last (NHWC) is the layout oneDNN's conv
// kernels work in, so feeding it directly saves a reorder per conv, fp32 and int8.

#include "quant/graph_module.h"

namespace qb {

/// A copy of `gm` that makes every 4-D graph input channels-last on entry (an input
/// used only by quantize nodes, as in an int8 model, right after them) and
/// stores fp32 conv weights channels-last. Same results up to float rounding; int8
/// results are the same bits.
GraphModule to_channels_last(const GraphModule& gm);

}  // namespace qb
