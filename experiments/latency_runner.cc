#include "experiments/latency_runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <thread>

#include "experiments/points.h"
#include "models/checkpoint.h"
#include "models/torchscript_export.h"
#include "quant/serialize.h"

namespace qb {

namespace fs = std::filesystem;

LatencyRunner::LatencyRunner(std::string probe, const std::string& dir, ContentionSpec contention)
    : probe_(std::move(probe)),
      dir_(dir + "/probe." + std::to_string(::getpid())),
      contention_(contention) {}

LatencyRunner::~LatencyRunner() {
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

std::string LatencyRunner::path(const std::string& name) const {
  fs::create_directories(dir_);
  return dir_ + "/" + name;
}

std::string LatencyRunner::model_file(const std::string& key, const GraphModule& model,
                                      const std::string& runtime) {
  const bool torchscript = runtime == "torchscript";
  const std::string file = path(config_hash(nlohmann::json(key)) + (torchscript ? ".pt" : ".qbm"));
  if (written_.insert(file).second) {
    if (torchscript) {
      export_torchscript(model, file);
    } else {
      save_model(model, file);
    }
  }
  return file;
}

std::string LatencyRunner::input_file(const std::string& name,
                                      const std::function<at::Tensor()>& tensor) {
  const std::string file = path(name + ".pt");
  if (written_.insert(file).second) write_state_dict(file, {{"input", tensor()}});
  return file;
}

TimedPoint LatencyRunner::time_until_quiet(const ProbeRequest& request) const {
  TimedPoint timed;
  int fewest_contended = std::numeric_limits<int>::max();
  for (int attempt = 1;; ++attempt) {
    ProbeResult result = run_probe(probe_, request);
    nlohmann::json repetitions = nlohmann::json::array();
    std::string first_reason;
    int contended = 0;
    for (const RepetitionUsage& usage : result.timing.usage) {
      nlohmann::json repetition = to_json(usage);
      const std::string reason = contention_reason(usage, contention_.policy);
      if (!reason.empty()) {
        repetition["contended"] = reason;
        if (contended++ == 0) first_reason = reason;
      }
      repetitions.push_back(repetition);
    }
    timed.attempts.push_back({{"attempt", attempt},
                              {"median_ms", result.timing.median_ms},
                              {"contended_repetitions", contended},
                              {"repetitions", repetitions}});
    // The attempt with the fewest contended repetitions stands, the faster of equals.
    if (contended < fewest_contended ||
        (contended == fewest_contended && result.timing.median_ms < timed.result.timing.median_ms)) {
      fewest_contended = contended;
      timed.attempt = attempt;
      timed.result = std::move(result);
    }
    timed.noisy = fewest_contended > 0;
    if (!timed.noisy || attempt > contention_.retries) return timed;
    std::fprintf(stderr, "  contended (%s, in %d of %zu repetitions): measuring again in %g s\n",
                 first_reason.c_str(), contended, repetitions.size(), contention_.retry_wait_s);
    std::this_thread::sleep_for(std::chrono::duration<double>(contention_.retry_wait_s));
  }
}

}  // namespace qb
