#pragma once
// Latency measured in a fresh process, as pyperf and asv measure: the probe binary
// (eval/latency_probe_main.cc) loads a saved model and times it, so nothing the caller did
// before (other models' allocations, a thread pool of another size, oneDNN's primitive
// cache, an ISA cap already fixed) can change the number. The probe also computes the
// model's output SQNR against an fp32 reference on the same inputs, under the same ISA,
// and says which ISA oneDNN dispatched to.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "eval/latency.h"

namespace qb {

/// What the probe is asked to measure. Files are written by the caller: models with
/// quant/serialize.h's save_model, inputs as state dicts (models/checkpoint.h) holding
/// one tensor named "input".
struct ProbeRequest {
  std::string name;   // the benchmark's name in Google Benchmark's report
  std::string model;
  std::string input;  // the timed batch
  LatencyOptions latency;
  std::string engine;  // the quantized engine; empty for fp32 models
  /// Caps oneDNN at this ISA (eval/onednn_isa.h) through ONEDNN_MAX_CPU_ISA; empty keeps
  /// the environment's setting.
  std::string isa;
  /// What runs the model (latency_runtimes()): "interpreter", quantbench's own, on a file
  /// save_model wrote; "torchscript", LibTorch's TorchScript executor on a file
  /// export_torchscript wrote, frozen (int8) or through torch.jit.optimize_for_inference
  /// (fp32, no engine), as PyTorch users deploy.
  std::string runtime = "interpreter";
  /// An fp32 model and the inputs on which the model's output SQNR is computed; both
  /// empty for no SQNR.
  std::string reference_model;
  std::string sqnr_input;
};

struct ProbeResult {
  LatencyResult timing;
  std::string onednn_isa;  // effective_onednn_isa() in the probe
  std::optional<double> output_sqnr_db;
};

/// The runtimes a probe can time a model under, "interpreter" first (the default).
const std::vector<std::string>& latency_runtimes();

nlohmann::json to_json(const ProbeRequest& request);
ProbeRequest probe_request_from_json(const nlohmann::json& json);
nlohmann::json to_json(const ProbeResult& result);
ProbeResult probe_result_from_json(const nlohmann::json& json);

/// Runs `probe` (the latency_probe binary) on `request` and waits for it. The probe's own
/// error message (a missing file, a kernel the engine refuses) becomes a std::runtime_error.
ProbeResult run_probe(const std::string& probe, const ProbeRequest& request);

/// Where the latency_probe binary is: $QB_LATENCY_PROBE if set, else in the Bazel runfiles
/// of the running binary (`argv0`; tests pass "") or beside it in bazel-bin. Throws
/// std::runtime_error saying how to build it when it is nowhere.
std::string find_latency_probe(const std::string& argv0);

}  // namespace qb
