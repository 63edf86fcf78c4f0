#pragma once
// The checks that say whether an int8 figure can be trusted, as a record keeps them: which
// nodes run int8, per-layer SQNR against the float model, and whether the model file gives the
// same accuracy after a save/load round trip (quant/inspect.h, quant/serialize.h).

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "experiments/record.h"
#include "quant/graph_module.h"

namespace qb {

/// The int8 and fp32 nodes of `int8`, and, when `batches` is not empty, its per-layer SQNR
/// against `reference` (the fused float model whose node names line up) on them.
TrustRecord int8_trust_checks(const GraphModule& int8, const GraphModule& reference,
                              const std::vector<at::Tensor>& batches);

/// Saves `int8` to `scratch_file`, loads it back, removes the file and records the reloaded
/// model's top-1 (`top1_of`) beside `top1`, the in-memory model's; a difference is also
/// warned about on stderr.
void check_round_trip(TrustRecord& trust, const GraphModule& int8, const std::string& scratch_file,
                      double top1, const std::function<double(const GraphModule&)>& top1_of);

}  // namespace qb
