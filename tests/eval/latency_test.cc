#include "eval/latency.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <thread>

#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("latency statistics follow their definitions") {
  LatencyResult r = summarize_latency({4.0, 1.0, 3.0, 2.0, 10.0});
  CHECK(r.repetitions_ms == std::vector<double>{4.0, 1.0, 3.0, 2.0, 10.0});
  CHECK(r.median_ms == 3.0);
  CHECK(r.mean_ms == 4.0);
  CHECK(r.stddev_ms == Approx(std::sqrt(12.5)));  // sample standard deviation
  CHECK(r.p90_ms == Approx(4.0 + 0.6 * 6.0));      // numpy.percentile(..., 90)
  CHECK(r.cv == Approx(std::sqrt(12.5) / 4.0));
  CHECK(summarize_latency({1.0, 2.0}).median_ms == 1.5);
}

TEST_CASE("a latency record has one value per repetition and restores threads") {
  int before = at::get_num_threads();
  LatencyOptions options;
  options.threads = 1;
  options.min_time_s = 0.01;
  options.warmup_s = 0.0;
  options.repetitions = 3;
  int calls = 0;
  LatencyResult r = measure_latency(
      "sleep", [&] {
        ++calls;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      },
      options);
  REQUIRE(r.repetitions_ms.size() == 3);
  CHECK(calls > 3);
  for (double t : r.repetitions_ms) CHECK(t >= 0.2);  // at least the sleep, in ms
  CHECK(r.median_ms >= 0.2);
  CHECK(at::get_num_threads() == before);

  // Google Benchmark's own report: one iteration run per repetition, in its time unit.
  const nlohmann::json& report = r.google_benchmark;
  CHECK(report["context"].contains("num_cpus"));
  std::vector<double> reported;
  for (const nlohmann::json& run : report["benchmarks"]) {
    if (run["run_type"] == "iteration") {
      CHECK(run["time_unit"] == "ms");
      CHECK(run["name"].get<std::string>().rfind("sleep", 0) == 0);
      reported.push_back(run["real_time"].get<double>());
    }
  }
  CHECK(reported == r.repetitions_ms);
}

TEST_CASE("bad latency options are refused") {
  LatencyOptions options;
  options.threads = 0;
  CHECK_THROWS_WITH(measure_latency("x", [] {}, options), "latency threads must be >= 1");
}

}  // namespace
}  // namespace qb
