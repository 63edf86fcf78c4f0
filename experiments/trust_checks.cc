#include "experiments/trust_checks.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "quant/inspect.h"
#include "quant/serialize.h"

namespace qb {

TrustRecord int8_trust_checks(const GraphModule& int8, const GraphModule& reference,
                              const std::vector<at::Tensor>& batches) {
  TrustRecord trust;
  const std::vector<NodePrecision> nodes = node_precisions(int8);
  trust.int8_nodes = count_precisions(nodes).int8;
  for (const NodePrecision& node : nodes) {
    if (node.precision == Precision::kFp32) trust.fp32_nodes.push_back(node.name + " (" + node.kind + ")");
  }
  if (batches.empty()) return trust;
  double worst = std::numeric_limits<double>::infinity();
  for (const LayerSqnr& layer : layer_sqnr(reference, int8, batches)) {
    trust.sqnr_db.push_back({layer.name, layer.sqnr_db});
    if (layer.sqnr_db < worst) {
      worst = layer.sqnr_db;
      trust.worst_layer = layer.name;
    }
  }
  trust.sqnr_batches = static_cast<int64_t>(batches.size());
  return trust;
}

void check_round_trip(TrustRecord& trust, const GraphModule& int8, const std::string& scratch_file,
                      double top1, const std::function<double(const GraphModule&)>& top1_of) {
  save_model(int8, scratch_file);
  const GraphModule reloaded = load_model(scratch_file);
  std::filesystem::remove(scratch_file);
  const double again = top1_of(reloaded);
  trust.round_trip_top1_percent = again;
  trust.round_trip_equal = again == top1;
  if (again != top1) {
    std::fprintf(stderr, "WARNING: top-1 after save/load is %.4f%%, in memory %.4f%%\n", again, top1);
  }
}

}  // namespace qb
