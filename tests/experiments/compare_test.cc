// compare's verdicts on constructed runs: a clear regression, noise, an improvement, accuracy
// and size changes, points on one side only, and runs from different environments.

#include "experiments/compare.h"

#include <stdexcept>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

nlohmann::json record(const std::string& hash, const std::vector<double>& repetitions_ms,
                      double top1 = 92.0, int64_t size = 1000, const std::string& cpu = "EPYC") {
  std::vector<double> sorted = repetitions_ms;
  std::sort(sorted.begin(), sorted.end());
  return {{"config_hash", hash},
          {"label", "graph " + hash},
          {"point", {{"model", "m"}, {"variant", "fp32"}, {"threads", 1}, {"batch_size", 1}}},
          {"size_bytes", size},
          {"accuracy",
           {{"top1", {{"mean", top1}, {"n", 1}, {"ci95", {top1, top1}}}},
            {"top5", {{"mean", 99.0}, {"n", 1}, {"ci95", {99.0, 99.0}}}}}},
          {"latency", {{"median_ms", sorted[sorted.size() / 2]}, {"repetitions_ms", repetitions_ms}}},
          {"provenance", {{"environment", {{"cpu_model", cpu}, {"cores", 2}}}}}};
}

Comparison compare(const std::vector<nlohmann::json>& baseline, const std::vector<nlohmann::json>& current,
                   const CompareOptions& options) {
  return compare_records(parse_records(baseline), parse_records(current), options);
}

const std::vector<double> kBase = {1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00, 1.01};
const std::vector<double> kSlower = {1.20, 1.21, 1.19, 1.22, 1.18, 1.20, 1.21, 1.19, 1.20, 1.21};
const std::vector<double> kFaster = {0.80, 0.81, 0.79, 0.82, 0.78, 0.80, 0.81, 0.79, 0.80, 0.81};
// Median 9% higher (1.1 -> 1.2 ms), but wild repetitions on both sides make the samples overlap.
const std::vector<double> kNoisyBase = {1.0, 3.0, 1.1, 0.9, 3.2};
const std::vector<double> kNoisyCurrent = {1.2, 0.9, 3.1, 1.3, 1.0};

const MetricChange& metric(const PointComparison& p, const std::string& name) {
  for (const MetricChange& m : p.metrics) {
    if (m.metric == name) return m;
  }
  throw std::out_of_range(name);
}

TEST_CASE("a clear slowdown is a regression, a clear speedup an improvement") {
  Comparison c = compare({record("a", kBase), record("b", kBase)},
                                 {record("a", kSlower), record("b", kFaster)}, {});
  REQUIRE(c.points.size() == 2);
  const MetricChange& slower = metric(c.points[0], "latency_ms");
  CHECK(slower.verdict == "regression");
  CHECK(slower.change == Approx(0.2));
  CHECK(slower.p_value < 0.001);
  CHECK(metric(c.points[1], "latency_ms").verdict == "improvement");
  CHECK(c.regression());
  nlohmann::json verdict = verdict_json(c, {});
  CHECK(verdict["verdict"] == "regression");
  REQUIRE(verdict["regressions"].size() == 1);
  CHECK(verdict["regressions"][0]["config_hash"] == "a");
  CHECK(verdict["regressions"][0]["metric"] == "latency_ms");
  std::string report = markdown_report(c, {}, "base", "cur");
  CHECK(report.find("**Verdict: regression** (2 points compared, 1 with a regression)") !=
        std::string::npos);
  // Regressions are listed first.
  CHECK(report.find("| m | graph a |") < report.find("| m | graph b |"));
}

TEST_CASE("noise and small changes are not regressions") {
  Comparison noisy = compare({record("a", kNoisyBase)}, {record("a", kNoisyCurrent)}, {});
  const MetricChange& m = metric(noisy.points[0], "latency_ms");
  CHECK(m.change == Approx(1.2 / 1.1 - 1));
  CHECK(m.p_value >= 0.05);
  CHECK(m.verdict == "noise");
  CHECK_FALSE(noisy.regression());

  std::vector<double> a_bit_slower;
  for (double t : kBase) a_bit_slower.push_back(t * 1.03);
  Comparison small = compare({record("a", kBase)}, {record("a", a_bit_slower)}, {});
  CHECK(metric(small.points[0], "latency_ms").verdict == "unchanged");
  // With a 2% threshold the same 3% slowdown counts.
  CompareOptions strict;
  strict.tolerance["latency_ms"] = 0.02;
  CHECK(metric(compare({record("a", kBase)}, {record("a", a_bit_slower)}, strict)
                   .points[0],
               "latency_ms")
            .verdict == "regression");
  CHECK(verdict_json(small, {})["verdict"] == "clean");
}

TEST_CASE("accuracy beyond the tolerance and any size change are flagged") {
  Comparison c = compare(
      {record("a", kBase, 92.0), record("b", kBase, 92.0), record("c", kBase, 92.0, 1000)},
      {record("a", kBase, 91.85), record("b", kBase, 92.05), record("c", kBase, 92.0, 1001)}, {});
  CHECK(metric(c.points[0], "top1_percent").verdict == "regression");
  CHECK(metric(c.points[0], "top1_percent").change == Approx(-0.15));
  CHECK(metric(c.points[1], "top1_percent").verdict == "unchanged");
  CHECK(metric(c.points[2], "size_bytes").verdict == "regression");
  CHECK(metric(c.points[2], "top1_percent").verdict == "unchanged");
}

TEST_CASE("points on one side only are listed; different machines are warned about") {
  Comparison c = compare({record("a", kBase), record("gone", kBase)},
                                 {record("a", kBase, 92.0, 1000, "Xeon"), record("new", kBase)}, {});
  CHECK(c.points.size() == 1);
  CHECK(c.only_in_baseline == std::vector<std::string>{"m graph gone, 1 thread(s), batch 1"});
  CHECK(c.only_in_current == std::vector<std::string>{"m graph new, 1 thread(s), batch 1"});
  CHECK(c.environment_differences == std::vector<std::string>{"cpu_model: EPYC -> Xeon"});
  CHECK_FALSE(c.regression());
  CHECK_FALSE(c.latency_comparable);
  CHECK(c.verdict() == "not comparable");
  CHECK(metric(c.points[0], "latency_ms").verdict == "not comparable");
  std::string report = markdown_report(c, {}, "base", "cur");
  CHECK(report.find("**Verdict: not comparable**") != std::string::npos);
  CHECK(report.find("> - cpu_model: EPYC -> Xeon") != std::string::npos);
  CHECK(report.find("## Only in the baseline\n\n- m graph gone, 1 thread(s), batch 1") !=
        std::string::npos);
}

TEST_CASE("another machine's run: latency is not judged, accuracy and size still are") {
  Comparison c = compare({record("a", kBase, 92.0)},
                                 {record("a", kSlower, 91.0, 1000, "Xeon")}, {});
  CHECK(metric(c.points[0], "latency_ms").verdict == "not comparable");
  CHECK(metric(c.points[0], "top1_percent").verdict == "regression");
  CHECK(c.verdict() == "regression");
  CHECK(verdict_json(c, {})["latency_comparable"] == false);
  // Only the host name differs: the same kind of machine, latency judged.
  nlohmann::json other_host = record("a", kSlower);
  other_host["provenance"]["environment"]["hostname"] = "runner-2";
  Comparison hosts = compare({record("a", kBase)}, {other_host}, {});
  CHECK(hosts.latency_comparable);
  CHECK(metric(hosts.points[0], "latency_ms").verdict == "regression");
}

TEST_CASE("a latency measured under contention makes its change inconclusive") {
  nlohmann::json noisy = record("a", kSlower);
  noisy["latency"]["noisy"] = true;
  Comparison c = compare({record("a", kBase), record("b", kBase)},
                                 {noisy, record("b", kFaster)}, {});
  CHECK(metric(c.points[0], "latency_ms").verdict == "inconclusive");
  CHECK(metric(c.points[1], "latency_ms").verdict == "improvement");
  CHECK_FALSE(c.regression());
  CHECK(c.verdict() == "clean");
  // So is a point whose oneDNN dispatched to another ISA than the baseline's.
  nlohmann::json amx = record("a", kSlower);
  amx["provenance"]["environment"]["onednn_isa"] = "avx512_core_amx";
  nlohmann::json vnni = record("a", kBase);
  vnni["provenance"]["environment"]["onednn_isa"] = "avx512_core_vnni";
  CHECK(metric(compare({vnni}, {amx}, {}).points[0], "latency_ms").verdict == "not comparable");
}

TEST_CASE("every metric of the table is judged: a drop of output SQNR is a regression") {
  nlohmann::json base = record("a", kBase);
  base["trust"] = {{"output_sqnr_db", 30.0}, {"broken", false}};
  nlohmann::json worse = record("a", kBase);
  worse["trust"] = {{"output_sqnr_db", 29.0}, {"broken", false}};
  nlohmann::json same = record("a", kBase);
  same["trust"] = {{"output_sqnr_db", 29.8}, {"broken", false}};
  const Comparison c = compare({base}, {worse}, {});
  CHECK(metric(c.points[0], "output_sqnr_db").verdict == "regression");
  CHECK(metric(c.points[0], "output_sqnr_db").change == Approx(-1.0));
  CHECK(metric(compare({base}, {same}, {}).points[0], "output_sqnr_db").verdict == "unchanged");
  CompareOptions tolerant;
  tolerant.tolerance["output_sqnr_db"] = 2.0;
  CHECK(metric(compare({base}, {worse}, tolerant).points[0], "output_sqnr_db").verdict == "unchanged");
  CHECK(verdict_json(c, tolerant)["options"]["tolerance"]["output_sqnr_db"] == 2.0);
  CHECK(markdown_report(c, {}, "b", "c").find("latency_ms 5% (and Mann-Whitney U, alpha 0.05), output_sqnr_db 0.5.") != std::string::npos);
}

TEST_CASE("a baseline of several runs: a latency change within their spread is noise") {
  auto scaled = [](double factor) {
    std::vector<double> out;
    for (double t : kBase) out.push_back(t * factor);
    return out;
  };
  // Five baseline runs of point a, one of them 15% slower than the others: runs move by up to
  // 15% from their median on this machine, although each run's repetitions agree within 2%.
  const std::vector<nlohmann::json> baseline = {record("a", kBase), record("a", kBase), record("a", kBase),
                                                record("a", kBase), record("a", scaled(1.15))};
  const MetricChange within = metric(compare(baseline, {record("a", scaled(1.10))}, {}).points[0], "latency_ms");
  CHECK(within.baseline == 1.0);  // the median run
  CHECK(within.baseline_runs == 5);
  CHECK(within.run_to_run == Approx(0.15));
  CHECK(within.p_value < 0.01);  // the repetitions alone would call it a regression
  CHECK(within.verdict == "noise");
  const Comparison beyond = compare(baseline, {record("a", scaled(1.30))}, {});
  CHECK(metric(beyond.points[0], "latency_ms").verdict == "regression");
  CHECK(markdown_report(beyond, {}, "b", "c").find("| 15.0% (5 runs) | **regression** |") != std::string::npos);
  CHECK(verdict_json(beyond, {})["points"][0]["metrics"][3]["run_to_run"] == Approx(0.15));
  // One run: no spread known, the 12% change counts.
  CHECK(metric(compare({record("a", kBase)}, {record("a", scaled(1.12))}, {}).points[0], "latency_ms").verdict ==
        "regression");
}

TEST_CASE("a current run with failed points, or with no point in the baseline, is not clean") {
  // Once "Verdict: clean (0 points compared)", exit 0: a nightly gate would pass.
  nlohmann::json failed = {{"failed_config_hash", "a"},
                           {"label", "graph a"},
                           {"point", {{"model", "m"}, {"variant", "fp32"}, {"threads", 1}, {"batch_size", 1}}},
                           {"error", "image 3: corrupt"}};
  const Comparison c = compare({record("a", kBase)}, {failed}, {});
  CHECK(c.failed_in_current == std::vector<std::string>{"m graph a, 1 thread(s), batch 1: image 3: corrupt"});
  CHECK(c.regression());
  CHECK(c.verdict() == "failed points");
  CHECK(verdict_json(c, {})["verdict"] == "failed points");
  CHECK(markdown_report(c, {}, "b", "c").find("## Failed in the current run\n\n- m graph a") != std::string::npos);
  // Measured again after the failure: the point counts.
  CHECK(compare({record("a", kBase)}, {failed, record("a", kBase)}, {}).verdict() == "clean");
  const Comparison none = compare({record("a", kBase)}, {record("b", kBase)}, {});
  CHECK(none.points.empty());
  CHECK(none.verdict() == "nothing compared");
  CHECK(none.regression());
}

TEST_CASE("bad input names the file") {
  std::string dir = test::scratch_dir("compare_input").string();
  test::write_file(dir + "/bad.jsonl", "{\"label\": \"x\"}\n");
  CHECK_THROWS_WITH(load_run_records(dir + "/bad.jsonl"),
                    Catch::StartsWith(dir + "/bad.jsonl:1: not a sweep record: config_hash: "));
  CHECK_THROWS_WITH(load_run_records(dir), dir + "/records.jsonl: no such records file");
  test::write_file(dir + "/records.jsonl", "");
  CHECK_THROWS_WITH(load_run_records(dir), dir + "/records.jsonl: holds no records");
  test::write_file(dir + "/records.jsonl", record("a", kBase).dump() + "\n");
  CHECK(load_run_records(dir).size() == 1);
  CHECK(load_run_records(dir + "/records.jsonl").size() == 1);
}

}  // namespace
}  // namespace qb
