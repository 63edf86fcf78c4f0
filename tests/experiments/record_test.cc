// The typed record: every field survives a JSON round trip, the published records read back to
// the same JSON, bad records name their field, and a point's two parts join into one record.

#include "experiments/record.h"

#include <cmath>

#include "experiments/record_log.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

/// A record with every field set to a value of its own.
Record full_record() {
  Record r;
  r.config_hash = "0123456789abcdef";
  r.experiment = "e";
  r.notes = "notes";
  r.label = "graph histogram/per_channel calib=8 onednn avx2";
  r.point = {"m", "graph", "onednn", "histogram", "per_channel", "global", 8, 2, 4, "avx2"};
  r.config = {{"any", "object"}};
  AccuracyRecord& a = r.accuracy.emplace();
  a.examples = 200;
  a.seeds = {0, 1};
  a.top1_percent = {90.5, 91.0};
  a.top5_percent = {99.0, 99.5};
  a.mean_loss = {0.25, 0.5};
  a.top1 = summarize(a.top1_percent);
  a.top5 = summarize(a.top5_percent);
  r.size_bytes = 123456;
  LatencyRecord& l = r.latency.emplace();
  l.threads = 2;
  l.batch_size = 4;
  l.median_ms = 1.5;
  l.mean_ms = 1.625;
  l.stddev_ms = 0.125;
  l.p90_ms = 1.75;
  l.cv = 0.0625;
  l.per_image_median_ms = 0.375;
  l.repetitions_ms = {1.5, 1.75, 1.25};
  l.form = "int8 on onednn, channels-last";
  l.isolated = true;
  l.noisy = true;
  l.oversubscribed = true;
  l.attempts = nlohmann::json::array({{{"attempt", 1}, {"median_ms", 1.5}}});
  l.recorded_attempt = 1;
  l.policy.min_cpu_per_thread = 0.75;
  l.policy.max_involuntary_switches_per_thread_s = 50;
  l.policy.max_steal_fraction = 0.125;
  r.google_benchmark = {{"context", {{"host_name", "h"}}}, {"benchmarks", nlohmann::json::array()}};
  CalibrationRecord& c = r.calibration.emplace();
  c.split = "train";
  c.subset = "random";
  c.samples = 8;
  c.seeds = {0, 1};
  c.data = "d";
  c.subset_fingerprints = {{"0", "00aa"}, {"1", "00bb"}};
  c.allow_overlap = true;
  c.overlapping_examples = 3;
  TrustRecord& t = r.trust.emplace();
  t.int8_nodes = 12;
  t.fp32_nodes = {"flatten (call_function)"};
  t.sqnr_db = {{"conv1", 31.5}, {"fc", INFINITY}};
  t.sqnr_batches = 1;
  t.worst_layer = "conv1";
  t.round_trip_top1_percent = 90.5;
  t.round_trip_equal = true;
  t.output_sqnr_db = 12.5;
  t.broken_below_db = 15;
  t.broken = true;
  Provenance& p = r.provenance;
  p.experiment_file = "/x/e.toml";
  p.experiment_sha256 = "ff";
  p.experiment = {{"name", "e"}};
  p.checkpoint = "/x/m.pt";
  p.torchscript = "/x/net.pt";
  p.checkpoint_sha256 = "ee";
  p.data = "data";
  p.data_fingerprint = "dd";
  p.evaluation_subset_fingerprint = "cc";
  p.evaluation_cached = true;
  p.environment.machine.git_revision = "abc";
  p.environment.machine.git_dirty = true;
  p.environment.machine.libtorch_version = "1.13.0";
  p.environment.machine.opencv_version = "4.6.0";
  p.environment.machine.quantized_engines = "onednn";
  p.environment.machine.cpu_model = "cpu";
  p.environment.machine.cpu_flags = "avx2";
  p.environment.machine.cores = 2;
  p.environment.machine.intra_op_threads = 2;
  p.environment.machine.hostname = "host";
  p.environment.machine.date_utc = "2026-12-02T00:00:00Z";
  p.environment.inter_op_threads = 1;
  p.environment.quantized_engine = "onednn";
  p.environment.onednn_isa = "avx2";
  p.environment.onednn_max_cpu_isa = "avx2";
  p.elapsed_s = 2.5;
  return r;
}

TEST_CASE("every field of a record survives a JSON round trip") {
  const Record r = full_record();
  const nlohmann::json j = to_json(r);
  const Record back = record_from_json(nlohmann::json::parse(j.dump()));
  CHECK(to_json(back) == j);
  CHECK(back.point.to_json() == r.point.to_json());
  CHECK(back.accuracy->top1.ci95_high == r.accuracy->top1.ci95_high);
  CHECK(back.latency->policy.max_steal_fraction == 0.125);
  CHECK(std::isinf(back.trust->sqnr_db[1].db));
  CHECK(j["trust"]["sqnr_db"][1]["db"] == "inf");
  CHECK(back.trust->broken);
  CHECK(back.calibration->subset_fingerprints.at("1") == "00bb");
  CHECK(back.provenance.environment.machine.hostname == "host");
  CHECK(back.provenance.torchscript == "/x/net.pt");
  CHECK_FALSE(j.contains("part"));  // a whole point's record reads as before parts existed

  Record failure;
  failure.config_hash = "aa";
  failure.label = "fp32";
  failure.point.model = "m";
  failure.point.variant = "fp32";
  failure.error = "image 3: corrupt";
  const nlohmann::json f = to_json(failure);
  CHECK(f["failed_config_hash"] == "aa");
  CHECK_FALSE(f.contains("config_hash"));
  CHECK(record_from_json(f).failed());
  CHECK(record_from_json(f).error == "image 3: corrupt");
}

TEST_CASE("the published records read back to the same JSON, older ones with defaults added") {
  for (const char* file : {"results/published/quickstart.jsonl", "results/published/latency_resnet18.jsonl"}) {
    INFO(file);
    const std::vector<nlohmann::json> lines = read_records(test::source_path(file));
    REQUIRE_FALSE(lines.empty());
    for (const nlohmann::json& line : lines) {
      const nlohmann::json back = to_json(record_from_json(line));
      CHECK(to_json(record_from_json(back)) == back);
      // Nothing is lost or changed: fields newer than the record are added with their
      // defaults, and an fp32 accuracy's single numbers become one-element lists.
      for (const nlohmann::json& op : nlohmann::json::diff(line, back)) {
        INFO(op.dump());
        const std::string path = op["path"].get<std::string>();
        const bool listed = op["op"] == "replace" && op["value"].is_array() && op["value"].size() == 1 &&
                            line.at(nlohmann::json::json_pointer(path)) == op["value"][0];
        CHECK((op["op"] == "add" || listed));
      }
    }
  }
}

TEST_CASE("a record without a needed field, or with a mistyped one, names it") {
  nlohmann::json j = to_json(full_record());
  j.erase("size_bytes");
  CHECK_THROWS_WITH(record_from_json(j), Catch::StartsWith("size_bytes: "));
  j = to_json(full_record());
  j["latency"]["median_ms"] = "fast";
  CHECK_THROWS_WITH(record_from_json(j), Catch::StartsWith("latency: "));
  j = to_json(full_record());
  j["point"].erase("engine");
  CHECK_THROWS_WITH(record_from_json(j), Catch::StartsWith("point: point {"));
  j = to_json(full_record());
  j["part"] = "both";
  CHECK_THROWS_WITH(record_from_json(j), "part 'both': expected all, accuracy or latency");
  CHECK_THROWS_WITH(parse_records({to_json(full_record()), nlohmann::json{{"label", "x"}}}),
                    Catch::StartsWith("record 2: config_hash: "));
}

TEST_CASE("an accuracy part and a latency part join; the latest record of a point wins") {
  Record accuracy = full_record();
  accuracy.part = RecordPart::kAccuracy;
  accuracy.latency.reset();
  accuracy.trust->output_sqnr_db.reset();
  accuracy.trust->broken = false;
  accuracy.provenance.environment.machine.hostname = "cluster-node";
  Record latency = full_record();
  latency.part = RecordPart::kLatency;
  latency.accuracy.reset();
  latency.size_bytes.reset();
  latency.calibration.reset();
  latency.trust = TrustRecord();
  latency.trust->output_sqnr_db = 33.0;
  latency.trust->broken_below_db = 15;
  latency.provenance.environment.machine.hostname = "reference";

  // Each part alone reads back as that part.
  CHECK_FALSE(record_from_json(to_json(accuracy)).latency);
  CHECK_FALSE(record_from_json(to_json(latency)).size_bytes);

  const std::vector<Record> joined = latest_measured(std::vector<Record>{accuracy, latency});
  REQUIRE(joined.size() == 1);
  const Record& j = joined[0];
  CHECK(j.part == RecordPart::kAll);
  CHECK(j.accuracy->top1_percent == accuracy.accuracy->top1_percent);
  CHECK(*j.size_bytes == 123456);
  CHECK(j.latency->median_ms == 1.5);
  CHECK(*j.trust->output_sqnr_db == 33.0);
  CHECK_FALSE(j.broken());
  CHECK(j.trust->sqnr_db.size() == 2);  // the accuracy part's checks
  CHECK(j.provenance.environment.machine.hostname == "reference");  // where latency was measured

  // A whole record after the parts replaces them; a part after a whole record replaces that
  // part of it (a latency measured again to confirm a nightly regression, say).
  Record whole = full_record();
  whole.latency->median_ms = 9.0;
  CHECK(latest_measured(std::vector<Record>{accuracy, latency, whole})[0].latency->median_ms == 9.0);
  Record faster = latency;
  faster.latency->median_ms = 0.5;
  const Record remeasured = latest_measured(std::vector<Record>{whole, faster})[0];
  CHECK(remeasured.latency->median_ms == 0.5);
  CHECK(*remeasured.trust->output_sqnr_db == 33.0);
  CHECK(remeasured.accuracy->top1_percent == whole.accuracy->top1_percent);
  CHECK(latest_measured(std::vector<Record>{faster, whole})[0].latency->median_ms == 9.0);

  Record other = latency;
  other.config_hash = "ffff";
  CHECK_THROWS_WITH(join_parts(accuracy, other), Catch::StartsWith("joining parts of different points: "));
}

}  // namespace
}  // namespace qb
