#pragma once
// The registry of call_function targets: name -> ATen implementation, fp32 and
// quantized (quantize_per_tensor, dequantize, quantized_add, ...).

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "quant/graph.h"

namespace qb {

/// A graph function: tensor inputs in order, and the node for its constant attrs.
using Function = std::function<at::Tensor(const std::vector<at::Tensor>&, const Node&)>;

/// Whether `name` is a registered function.
bool has_function(const std::string& name);
/// The implementation of `name`; throws GraphError when unknown.
const Function& lookup_function(const std::string& name);
/// How torch.fx prints the target ("operator.add", "torch.flatten").
std::string function_display_name(const std::string& name);

}  // namespace qb
