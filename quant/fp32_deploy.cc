#include "quant/fp32_deploy.h"

#include <ATen/ATen.h>

#include "quant/fuse.h"
#include "quant/layout.h"
#include "quant/modules.h"
#include "quant/onednn_conv.h"
#include "quant/qconfig.h"
#include "quant/qconfig_mapping.h"

namespace qb {

GraphModule to_fp32_deploy(const GraphModule& gm) {
  // Fusion folds conv-bn(-relu) whatever the qconfig, as long as there is one.
  GraphModule out = fuse(gm, QConfigMapping().set_global(default_qconfig("onednn")));
  for (const auto& [path, module] : out.modules()) {
    const auto* conv = dynamic_cast<const Conv2d*>(module.get());
    if (!conv) continue;
    auto fast = std::make_shared<OneDnnConv2d>(conv->options(), conv->fused_relu());
    fast->set_tensor("weight", conv->tensor("weight").detach().clone());
    if (conv->options().bias) fast->set_tensor("bias", conv->tensor("bias").detach().clone());
    out.replace_module(path, fast);
  }
  return to_channels_last(out);
}

}  // namespace qb
