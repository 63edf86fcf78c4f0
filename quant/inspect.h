#pragma once
// Inspecting a converted model against its float original: which nodes really
// run in int8, and how far each layer's output drifts from the float one. These
// are the trust checks a sweep records next to every int8 accuracy figure.
//
// Both work on converted models of either mode, convert()'s output (quant/convert.h)
// or convert_eager()'s (quant/eager.h), possibly made channels-last afterwards
// (quant/layout.h).

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "quant/graph_module.h"

namespace qb {

enum class Precision { kInt8, kFp32 };

/// "int8" or "fp32".
const char* to_string(Precision precision);

/// One compute node of a converted graph.
struct NodePrecision {
  std::string name;
  /// "call_module" or "call_function", as the graph prints it.
  std::string op;
  /// As the graph prints it: the module path, or the function's display name
  /// ("torch.ops.quantized.add_relu").
  std::string target;
  /// The module's kind ("QuantizedConvReLU2d", "MaxPool2d") or the function's
  /// registry name ("quantized_add_relu", "flatten").
  std::string kind;
  Precision precision;
};

/// Every compute node of `converted`, in graph order, with the precision it runs in.
/// Compute nodes are the call_module and call_function nodes whose op (quant/ops.h) has
/// domain kFloat, kAny or kInt8; the others only move values between domains or layouts
/// (quantize_per_tensor, dequantize, contiguous, Quantize, DeQuantize, QuantStub,
/// DeQuantStub). A node runs in int8 when its op is an int8 kernel (kInt8) or when it
/// computes on an int8 value (max-pool, flatten, relu fed a quantized tensor).
std::vector<NodePrecision> node_precisions(const GraphModule& converted);

struct PrecisionCounts {
  size_t int8 = 0;
  size_t fp32 = 0;
};
PrecisionCounts count_precisions(const std::vector<NodePrecision>& nodes);

/// How close one node's value in the converted model is to the reference's.
struct LayerSqnr {
  std::string name;
  /// 10 log10(sum ref^2 / sum (ref - converted)^2) over all elements of all batches,
  /// with quantized values dequantized. +infinity when the two agree exactly (also
  /// when both are all zero); -infinity when the reference is all zero and the
  /// converted value is not.
  double sqnr_db;
};

/// Runs `reference` and `converted` on each batch of `inputs` (each batch is the
/// graphs' single input) and returns the SQNR of every compute node of `converted`
/// (as node_precisions lists them) whose name names a compute node of `reference`,
/// in `converted`'s graph order. Nodes convert created or renamed (add_relu, which
/// stands for an add and its relu) have no counterpart and are skipped.
///
/// Names line up when `reference` is the float model the prepare step was given,
/// after fusion: in graph mode fuse(model, mapping) with prepare's mapping
/// (quant/fuse.h); in eager mode fuse_modules(model, groups), the model passed to
/// prepare_eager. Both converts keep the names of the prepared graph's nodes, and
/// fusion changes what a node computes (conv1 of the unfused model is the conv before
/// its BatchNorm and ReLU), so the unfused model would match names but not values. In
/// eager mode every compute node matches, the QFunctional ones (add_relu) included;
/// only the dequantize nodes convert_eager puts in front of fp32 ops are new. The
/// prepared model itself also lines up, but running it feeds its observers. Values are
/// compared element by element, so memory layouts (channels-last or not) do not
/// matter; a matched node whose shapes differ is a GraphError naming it.
std::vector<LayerSqnr> layer_sqnr(const GraphModule& reference, const GraphModule& converted,
                                  const std::vector<at::Tensor>& inputs);

/// 10 log10(signal / noise), with LayerSqnr::sqnr_db's conventions when noise is zero.
double sqnr_db(double signal, double noise);

/// The SQNR of `actual` against `reference`, element by element (quantized values
/// dequantized, any layout).
double sqnr_db(const at::Tensor& reference, const at::Tensor& actual);

/// An SQNR in JSON, which has no infinity: an exact match (+inf) and an all-zero reference
/// (-inf) are the strings "inf" and "-inf".
nlohmann::json sqnr_to_json(double db);
/// The inverse; std::invalid_argument for anything else.
double sqnr_from_json(const nlohmann::json& json);

}  // namespace qb
