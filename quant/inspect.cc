#include "quant/inspect.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "quant/interpreter.h"
#include "quant/ops.h"

namespace qb {

namespace {

// Placeholders, the output, the domain's borders, layout changes and eager mode's stubs
// are bookkeeping; every other call is a compute node.
bool is_compute(Domain domain) {
  return domain == Domain::kFloat || domain == Domain::kAny || domain == Domain::kInt8;
}

// A call of a registered op that computes (observers are not registered).
bool is_compute_node(const GraphModule& gm, const Node& node) {
  const OpSpec* spec = find_op_of(gm, node);
  return spec && is_compute(spec->domain);
}

std::string printed_target(const OpSpec& spec, const Node& node) {
  return node.op == NodeOp::kCallFunction ? spec.display_name : node.target;
}

at::Tensor as_double(const at::Tensor& value) {
  return (value.is_quantized() ? value.dequantize() : value).to(at::kDouble);
}

std::string shape(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

}  // namespace

const char* to_string(Precision precision) {
  return precision == Precision::kInt8 ? "int8" : "fp32";
}

std::vector<NodePrecision> node_precisions(const GraphModule& converted) {
  // Which values are quantized tensors: int8 kernels and quantize (function or
  // module) produce them, dequantize ends them, every other op computes in the
  // domain of its inputs.
  std::unordered_map<std::string, bool> is_int8;
  std::vector<NodePrecision> result;
  for (const Node& node : converted.graph.nodes()) {
    if (node.op == NodeOp::kPlaceholder) is_int8[node.name] = false;
    if (node.op != NodeOp::kCallModule && node.op != NodeOp::kCallFunction) continue;

    bool reads_int8 = std::any_of(node.inputs.begin(), node.inputs.end(),
                                  [&](const std::string& input) { return is_int8.at(input); });
    const OpSpec& spec = op_of(converted, node);
    bool int8 = reads_int8;
    if (spec.domain == Domain::kInt8 || spec.domain == Domain::kQuantize) int8 = true;
    if (spec.domain == Domain::kDequantize) int8 = false;
    is_int8[node.name] = int8;

    if (!is_compute(spec.domain)) continue;
    result.push_back({node.name, to_string(node.op), printed_target(spec, node), spec.name,
                      int8 ? Precision::kInt8 : Precision::kFp32});
  }
  return result;
}

PrecisionCounts count_precisions(const std::vector<NodePrecision>& nodes) {
  PrecisionCounts counts;
  for (const NodePrecision& node : nodes) {
    ++(node.precision == Precision::kInt8 ? counts.int8 : counts.fp32);
  }
  return counts;
}

std::vector<LayerSqnr> layer_sqnr(const GraphModule& reference, const GraphModule& converted,
                                  const std::vector<at::Tensor>& inputs) {
  // The matched nodes in converted's order, with their sums over all batches.
  struct Sums {
    std::string name;
    double signal = 0.0;
    double noise = 0.0;
  };
  std::vector<Sums> sums;
  std::unordered_map<std::string, size_t> index;
  for (const Node& node : converted.graph.nodes()) {
    if (!is_compute_node(converted, node) || !reference.graph.contains(node.name) ||
        !is_compute_node(reference, reference.graph.node(node.name))) {
      continue;
    }
    index.emplace(node.name, sums.size());
    sums.push_back({node.name});
  }

  at::NoGradGuard no_grad;
  Interpreter reference_run(reference);
  Interpreter converted_run(converted);
  // One batch's reference values of the matched nodes. Holding them also keeps
  // later ops of the reference run from overwriting them in place.
  std::unordered_map<std::string, at::Tensor> expected;
  for (const at::Tensor& batch : inputs) {
    reference_run.run({batch}, [&](const Node& node, const at::Tensor& value) {
      if (index.count(node.name)) expected[node.name] = value;
    });
    converted_run.run({batch}, [&](const Node& node, const at::Tensor& value) {
      auto it = expected.find(node.name);
      if (it == expected.end()) return;
      if (it->second.sizes() != value.sizes()) {
        throw GraphError("node '" + node.name + "': the reference computes shape " +
                         shape(it->second) + ", the converted model " + shape(value));
      }
      at::Tensor ref = as_double(it->second);
      Sums& node_sums = sums[index.at(node.name)];
      node_sums.signal += ref.square().sum().item<double>();
      node_sums.noise += (ref - as_double(value)).square().sum().item<double>();
      expected.erase(it);
    });
  }

  std::vector<LayerSqnr> result;
  for (const Sums& node_sums : sums) result.push_back({node_sums.name, sqnr_db(node_sums.signal, node_sums.noise)});
  return result;
}

double sqnr_db(double signal, double noise) {
  return noise == 0.0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(signal / noise);
}

double sqnr_db(const at::Tensor& reference, const at::Tensor& actual) {
  at::Tensor ref = as_double(reference);
  return sqnr_db(ref.square().sum().item<double>(), (ref - as_double(actual)).square().sum().item<double>());
}

nlohmann::json sqnr_to_json(double db) {
  return std::isfinite(db) ? nlohmann::json(db) : nlohmann::json(db > 0 ? "inf" : "-inf");
}

double sqnr_from_json(const nlohmann::json& json) {
  if (json.is_number()) return json.get<double>();
  if (json == "inf") return INFINITY;
  if (json == "-inf") return -INFINITY;
  throw std::invalid_argument("expected a number of dB, \"inf\" or \"-inf\", got " + json.dump());
}

}  // namespace qb
