#pragma once
// The sweep's latency part: the files a point's probe process reads (saved once, in a
// directory of this process's own, removed with the runner) and the rule for contended
// measurements: measure again after a wait, keep the attempt with the fewest contended
// repetitions, and say whether it stayed noisy (eval/isolated_latency.h, eval/contention.h).

#include <nlohmann/json.hpp>

#include <functional>
#include <set>
#include <string>

#include "eval/isolated_latency.h"
#include "experiments/experiment.h"
#include "quant/graph_module.h"

namespace qb {

/// One point's latency as recorded.
struct TimedPoint {
  ProbeResult result;  // the attempt that stands for the point
  bool noisy = false;  // that attempt had a contended repetition
  int attempt = 0;     // its number, from 1
  /// Every attempt: median, contended repetitions, and each repetition's usage and reason.
  nlohmann::json attempts = nlohmann::json::array();
};

class LatencyRunner {
 public:
  /// `probe` is the latency_probe binary; files go to `dir`/probe.<pid>.
  LatencyRunner(std::string probe, const std::string& dir, ContentionSpec contention);
  ~LatencyRunner();
  LatencyRunner(const LatencyRunner&) = delete;
  LatencyRunner& operator=(const LatencyRunner&) = delete;

  /// `model` saved for the probe's `runtime` (save_model for the interpreter,
  /// export_torchscript for torchscript) under a name derived from `key`, once.
  std::string model_file(const std::string& key, const GraphModule& model,
                         const std::string& runtime = "interpreter");
  /// `tensor()` saved for the probe as `name`, once.
  std::string input_file(const std::string& name, const std::function<at::Tensor()>& tensor);

  /// Runs the probe until a measurement is quiet or the retries are spent.
  TimedPoint time_until_quiet(const ProbeRequest& request) const;

 private:
  std::string path(const std::string& name) const;

  std::string probe_;
  std::string dir_;
  ContentionSpec contention_;
  std::set<std::string> written_;
};

}  // namespace qb
