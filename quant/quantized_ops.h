#pragma once
// LibTorch's quantized kernels, reached through the c10 dispatcher by schema
// name, and the quantized engines this LibTorch build offers.

#include <ATen/core/ivalue.h>

#include <string>
#include <vector>

namespace qb {

/// Calls the operator `name` (e.g. "quantized::add") with boxed arguments; returns its result.
c10::IValue call_quantized_op(const std::string& name, const std::string& overload,
                              std::vector<c10::IValue> arguments);

/// Engines this LibTorch supports for quantized kernels ("onednn", "qnnpack", ...).
std::vector<std::string> available_engines();

/// Makes `engine` LibTorch's current quantized engine; an unknown or missing
/// engine throws std::invalid_argument listing the available ones.
void select_engine(const std::string& engine);

/// The current quantized engine's name.
std::string current_engine();

}  // namespace qb
