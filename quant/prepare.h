#pragma once
// prepare: the C++ counterpart of torch.ao.quantization.quantize_fx.prepare_fx.
// Fuses, then inserts observer nodes (`activation_post_process_N`) where
// prepare_fx places them, each built from the qconfig that applies there.

#include "quant/graph_module.h"
#include "quant/qconfig_mapping.h"

namespace qb {

/// A fused, observed copy of `model` (which is left untouched), ready for calibration.
GraphModule prepare(const GraphModule& model, const QConfigMapping& mapping);

/// Whether `node` is an observer inserted by prepare.
bool is_observer_node(const GraphModule& gm, const Node& node);

}  // namespace qb
