#pragma once
// The fp32 model in the form it is fastest deployed in, the baseline int8 is measured
// against: what torch.jit.optimize_for_inference gives PyTorch users on CPU. BatchNorm is
// folded into the conv before it, each conv (with a following relu) runs on oneDNN with its
// weight prepacked (quant/onednn_conv.h), and the input is made channels-last.

#include "quant/graph_module.h"

namespace qb {

/// The deployment form of the fp32 model `gm`, which stays untouched. Outputs agree with
/// `gm`'s up to float rounding.
GraphModule to_fp32_deploy(const GraphModule& gm);

}  // namespace qb
