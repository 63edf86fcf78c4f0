// The append-only records file: atomic lines, a torn last line dropped, bad lines reported.

#include "experiments/records.h"

#include <stdexcept>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

TEST_CASE("records are appended, reread and found by configuration hash") {
  std::string path = (test::scratch_dir("records_append") / "run" / "records.jsonl").string();
  {
    RecordLog log(path);
    CHECK(log.records().empty());
    log.append({{"config_hash", "aaaa"}, {"value", 1}});
    log.append({{"config_hash", "bbbb"}, {"value", 2}});
    CHECK(log.contains("aaaa"));
  }
  CHECK(test::read_file(path) ==
        "{\"config_hash\":\"aaaa\",\"value\":1}\n{\"config_hash\":\"bbbb\",\"value\":2}\n");
  RecordLog reopened(path);
  REQUIRE(reopened.records().size() == 2);
  CHECK(reopened.records()[1]["value"] == 2);
  CHECK(reopened.contains("bbbb"));
  CHECK_FALSE(reopened.contains("cccc"));
  CHECK(read_records(path).size() == 2);
  CHECK(read_records(path + ".missing").empty());
}

TEST_CASE("a record torn by an interruption is dropped, the complete ones kept") {
  std::string path = (test::scratch_dir("records_torn") / "records.jsonl").string();
  test::write_file(path, "{\"config_hash\":\"aaaa\"}\n{\"config_hash\":\"bb");
  CHECK(read_records(path).size() == 1);
  {
    RecordLog log(path);
    CHECK(log.records().size() == 1);
    CHECK_FALSE(log.contains("bbbb"));
    log.append({{"config_hash", "bbbb"}});
  }
  CHECK(test::read_file(path) == "{\"config_hash\":\"aaaa\"}\n{\"config_hash\":\"bbbb\"}\n");
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
  test::write_file(path, "{\"config_hash\":\"aaaa\"}\nnot json\n{}\n");
  CHECK_THROWS_WITH(RecordLog(path), Catch::StartsWith(path + ":2: not a JSON record: "));
  CHECK_THROWS_WITH(read_records(path), Catch::StartsWith(path + ":2: not a JSON record: "));
}

}  // namespace
}  // namespace qb
