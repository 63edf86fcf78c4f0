#include "eval/latency.h"

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace qb {

namespace {

// Collects each repetition's mean time per iteration and Google Benchmark's JSON report of the
// run; prints nothing.
class RepetitionCollector : public benchmark::BenchmarkReporter {
 public:
  RepetitionCollector() {
    json_.SetOutputStream(&json_text_);
    json_.SetErrorStream(&json_errors_);
  }
  bool ReportContext(const Context& context) override { return json_.ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) throw std::runtime_error("benchmark failed: " + run.error_message);
      if (run.run_type == Run::RT_Iteration) times_ms.push_back(run.GetAdjustedRealTime());
    }
    json_.ReportRuns(runs);
  }
  void Finalize() override { json_.Finalize(); }
  nlohmann::json report() const { return nlohmann::json::parse(json_text_.str()); }

  std::vector<double> times_ms;

 private:
  benchmark::JSONReporter json_;
  std::stringstream json_text_;
  std::stringstream json_errors_;
};

}  // namespace

LatencyResult summarize_latency(std::vector<double> repetitions_ms) {
  LatencyResult result;
  result.repetitions_ms = repetitions_ms;
  if (repetitions_ms.empty()) return result;
  std::vector<double> sorted = std::move(repetitions_ms);
  std::sort(sorted.begin(), sorted.end());
  size_t n = sorted.size();
  result.median_ms = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  result.mean_ms = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(n);
  double squares = 0.0;
  for (double t : sorted) squares += (t - result.mean_ms) * (t - result.mean_ms);
  result.stddev_ms = n > 1 ? std::sqrt(squares / static_cast<double>(n - 1)) : 0.0;
  // Linear interpolation between closest ranks, as numpy.percentile does by default.
  double rank = 0.9 * static_cast<double>(n - 1);
  size_t low = static_cast<size_t>(std::floor(rank));
  size_t high = std::min(low + 1, n - 1);
  result.p90_ms = sorted[low] + (rank - static_cast<double>(low)) * (sorted[high] - sorted[low]);
  result.cv = result.mean_ms > 0 ? result.stddev_ms / result.mean_ms : 0.0;
  return result;
}

LatencyResult measure_latency(const std::string& name, const std::function<void()>& run_once,
                              const LatencyOptions& options) {
  if (options.threads < 1) throw std::invalid_argument("latency threads must be >= 1");
  if (options.repetitions < 1) throw std::invalid_argument("latency repetitions must be >= 1");
  int previous_threads = at::get_num_threads();
  at::set_num_threads(options.threads);

  // One entry per call of the benchmark function: the estimation runs first, then the
  // repetitions, which are the last `repetitions` entries.
  std::vector<RepetitionUsage> usage;
  benchmark::ClearRegisteredBenchmarks();
  benchmark::RegisterBenchmark(name.c_str(),
                               [&](benchmark::State& state) {
                                 const UsageSnapshot before = take_usage_snapshot();
                                 for (auto _ : state) run_once();
                                 usage.push_back(usage_between(before, take_usage_snapshot(),
                                                               options.threads));
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(options.min_time_s)
      ->MinWarmUpTime(options.warmup_s)
      ->Repetitions(options.repetitions);
  RepetitionCollector collector;
  try {
    benchmark::RunSpecifiedBenchmarks(&collector);
  } catch (...) {
    benchmark::ClearRegisteredBenchmarks();
    at::set_num_threads(previous_threads);
    throw;
  }
  benchmark::ClearRegisteredBenchmarks();
  at::set_num_threads(previous_threads);
  LatencyResult result = summarize_latency(collector.times_ms);
  result.google_benchmark = collector.report();
  const size_t repetitions = std::min(usage.size(), result.repetitions_ms.size());
  result.usage.assign(usage.end() - static_cast<std::ptrdiff_t>(repetitions), usage.end());
  return result;
}

}  // namespace qb
