#pragma once
// Model size as PyTorch's print_size_of_model measures it: the bytes of the
// saved state dict.

#include <cstdint>

#include "quant/graph_module.h"

namespace qb {

/// Bytes of `gm`'s state dict in torch.save's format.
int64_t serialized_size_bytes(const GraphModule& gm);

/// Bytes to MB as print_size_of_model reports them (1 MB = 1e6 bytes).
inline double to_megabytes(int64_t bytes) { return static_cast<double>(bytes) / 1e6; }

}  // namespace qb
