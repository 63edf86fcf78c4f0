// The append-only records file: atomic lines, a torn last line dropped, bad lines reported,
// each part of a point found.

#include "experiments/record_log.h"

#include <stdexcept>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

Record measured(const std::string& hash, RecordPart part = RecordPart::kAll) {
  Record r;
  r.config_hash = hash;
  r.label = "fp32";
  r.point.model = "m";
  r.point.variant = "fp32";
  r.part = part;
  if (part != RecordPart::kLatency) r.size_bytes = 1000;
  if (part != RecordPart::kAccuracy) r.latency.emplace().median_ms = 1.5;
  return r;
}

TEST_CASE("records are appended, reread and found by configuration hash") {
  std::string path = (test::scratch_dir("records_append") / "run" / "records.jsonl").string();
  {
    RecordLog log(path);
    CHECK(log.records().empty());
    log.append(measured("aaaa"));
    log.append(measured("bbbb"));
    CHECK(log.contains("aaaa"));
  }
  const std::vector<nlohmann::json> lines = read_records(path);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == to_json(measured("aaaa")));
  CHECK(test::read_file(path) == lines[0].dump() + "\n" + lines[1].dump() + "\n");
  RecordLog reopened(path);
  REQUIRE(reopened.records().size() == 2);
  CHECK(reopened.records()[1].config_hash == "bbbb");
  CHECK(reopened.records()[1].latency->median_ms == 1.5);
  CHECK(reopened.contains("bbbb"));
  CHECK_FALSE(reopened.contains("cccc"));
  CHECK(read_records(path + ".missing").empty());
}

TEST_CASE("a point's parts count as done one by one, and together as the whole point") {
  std::string path = (test::scratch_dir("records_parts") / "records.jsonl").string();
  RecordLog log(path);
  log.append(measured("aaaa", RecordPart::kAccuracy));
  CHECK(log.contains("aaaa", RecordPart::kAccuracy));
  CHECK_FALSE(log.contains("aaaa", RecordPart::kLatency));
  CHECK_FALSE(log.contains("aaaa"));
  log.append(measured("aaaa", RecordPart::kLatency));
  CHECK(log.contains("aaaa"));
  log.append(measured("bbbb"));
  CHECK(log.contains("bbbb", RecordPart::kLatency));  // the whole point holds each part
  Record failure = measured("cccc");
  failure.error = "boom";
  log.append(failure);
  CHECK_FALSE(log.contains("cccc"));
  CHECK(read_records(path)[3]["failed_config_hash"] == "cccc");
}

TEST_CASE("a record torn by an interruption is dropped, the complete ones kept") {
  std::string path = (test::scratch_dir("records_torn") / "records.jsonl").string();
  const std::string first = to_json(measured("aaaa")).dump() + "\n";
  test::write_file(path, first + "{\"config_hash\":\"bb");
  CHECK(read_records(path).size() == 1);
  {
    RecordLog log(path);
    CHECK(log.records().size() == 1);
    CHECK_FALSE(log.contains("bbbb"));
    log.append(measured("bbbb"));
  }
  CHECK(test::read_file(path) == first + to_json(measured("bbbb")).dump() + "\n");
}

TEST_CASE("a run's records can be open in one RecordLog at a time") {
  std::string path = (test::scratch_dir("records_lock") / "records.jsonl").string();
  {
    RecordLog first(path);
    CHECK_THROWS_WITH(RecordLog(path), path + ": another sweep is writing this run; wait for "
                                              "it, or use another --run");
  }
  CHECK_NOTHROW(RecordLog(path));  // released with the first
}

TEST_CASE("a malformed complete line is an error naming the file and line") {
  std::string path = (test::scratch_dir("records_bad") / "records.jsonl").string();
  test::write_file(path, to_json(measured("aaaa")).dump() + "\nnot json\n{}\n");
  CHECK_THROWS_WITH(RecordLog(path), Catch::StartsWith(path + ":2: not a JSON record: "));
  CHECK_THROWS_WITH(read_records(path), Catch::StartsWith(path + ":2: not a JSON record: "));
  test::write_file(path, to_json(measured("aaaa")).dump() + "\n{\"label\": \"fp32\"}\n");
  CHECK_THROWS_WITH(RecordLog(path), path + ":2: not a sweep record: config_hash: missing");
  // Once "[json.exception.type_error.304] cannot use at() with array", no file or line.
  test::write_file(path, to_json(measured("aaaa")).dump() + "\n[1, 2]\n");
  CHECK_THROWS_WITH(RecordLog(path), path + ":2: not a sweep record: a record is a JSON object, not array");
  nlohmann::json mistyped = to_json(measured("aaaa"));
  mistyped["latency"]["median_ms"] = "fast";
  test::write_file(path, mistyped.dump() + "\n");
  CHECK_THROWS_WITH(RecordLog(path), path + ":1: not a sweep record: latency: type must be number, but is string");
}

}  // namespace
}  // namespace qb
