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

/// What a function is to the int8 domain. Most compute on whatever they are given,
/// fp32 or quantized tensors; the int8 kernels take and return quantized tensors;
/// the rest only move a value into or out of int8, or into another memory layout.
enum class FunctionKind { kCompute, kInt8Kernel, kQuantize, kDequantize, kLayout };
/// The kind of `name`; throws GraphError when unknown.
FunctionKind function_kind(const std::string& name);

}  // namespace qb
