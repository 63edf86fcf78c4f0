#pragma once
// Fusion, the first step of prepare: fold eval-mode BatchNorm into the conv
// before it and merge conv/linear with a following relu, as PyTorch's FX
// fusion does (conv-bn, conv-bn-relu, conv-relu, linear-relu, and bn-relu for a
// BatchNorm no conv takes in, as DenseNet has them). add-relu is
// matched later, by prepare and convert, exactly as prepare_fx leaves it.

#include "quant/graph_module.h"
#include "quant/qconfig_mapping.h"

namespace qb {

/// A fused copy of `gm`; nothing in `gm` changes. Patterns touching a module
/// whose qconfig is None in `mapping` stay unfused.
GraphModule fuse(const GraphModule& gm, const QConfigMapping& mapping);

/// BatchNorm folded into conv weights: w * gamma / sqrt(var + eps), and the bias
/// (b - mean) * gamma / sqrt(var + eps) + beta, as torch.nn.utils.fuse_conv_bn_weights.
std::pair<at::Tensor, at::Tensor> fold_batch_norm(const at::Tensor& conv_weight,
                                                  const at::Tensor& conv_bias,
                                                  const at::Tensor& running_mean,
                                                  const at::Tensor& running_var, double eps,
                                                  const at::Tensor& bn_weight,
                                                  const at::Tensor& bn_bias);

}  // namespace qb
