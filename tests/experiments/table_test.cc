// The comparison table built from records: intervals, speedups, deduplication and marks.

#include "experiments/table.h"

#include "tests/catch.h"

namespace qb {
namespace {

nlohmann::json record(const std::string& hash, const std::string& label, int64_t threads,
                      double latency_ms, const nlohmann::json& accuracy) {
  nlohmann::json point = {{"model", "m"},
                          {"variant", label.substr(0, label.find(' '))},
                          {"threads", threads},
                          {"batch_size", 1}};
  if (point["variant"] == "graph") {
    point.update({{"engine", "onednn"}, {"observer", "histogram"}, {"weights", "per_channel"},
                  {"mapping", "global"}, {"samples", 32}});
  }
  return {{"config_hash", hash},      {"label", label},        {"point", point},
          {"size_bytes", 310100},     {"accuracy", accuracy},  {"latency", {{"median_ms", latency_ms}}}};
}

nlohmann::json single(double top1, double top5) {
  return {{"top1", {{"mean", top1}, {"n", 1}, {"ci95", {top1, top1}}}},
          {"top5", {{"mean", top5}, {"n", 1}, {"ci95", {top5, top5}}}}};
}

const char* kHeader =
    "| model | variant | threads | batch | size MB | top-1 % | top-5 % | latency ms | output SQNR dB | speedup |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
const char* kCsvHeader =
    "model,variant,threads,batch_size,size_bytes,top1_percent,top1_percent_ci95_low,"
    "top1_percent_ci95_high,top5_percent,top5_percent_ci95_low,top5_percent_ci95_high,latency_ms,"
    "output_sqnr_db,seeds,speedup,isa,noisy,oversubscribed,broken\n";

TEST_CASE("rows show seeded intervals and the speedup against fp32 at the same threads") {
  nlohmann::json seeded = {{"top1", {{"mean", 91.5}, {"n", 3}, {"ci95", {91.25, 91.75}}}},
                           {"top5", {{"mean", 99.8}, {"n", 3}, {"ci95", {99.7, 99.9}}}}};
  std::vector<Record> records = parse_records({
      record("h1", "fp32", 1, 2.0, single(92.0, 99.9)),
      record("h2", "graph histogram/per_channel calib=32 onednn", 1, 0.5, seeded),
      record("h3", "graph histogram/per_channel calib=32 onednn", 2, 0.4, seeded),
      record("h1", "fp32", 1, 4.0, single(92.0, 99.9)),  // h1 again (from a shard): replaces
  });
  std::vector<TableRow> rows = table_rows(records);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].record.latency->median_ms == 4.0);
  REQUIRE(rows[1].speedup);
  CHECK(*rows[1].speedup == 8.0);
  CHECK_FALSE(rows[2].speedup);  // no fp32 row at 2 threads
  CHECK(markdown_table(rows) ==
        std::string(kHeader) +
            "| m | fp32 | 1 | 1 | 0.310 | 92.00 | 99.90 | 4.000 | - | 1.00x |\n"
            "| m | graph histogram/per_channel calib=32 onednn | 1 | 1 | 0.310 | 91.50 [91.25, 91.75] | "
            "99.80 [99.70, 99.90] | 0.500 | - | 8.00x |\n"
            "| m | graph histogram/per_channel calib=32 onednn | 2 | 1 | 0.310 | 91.50 [91.25, 91.75] | "
            "99.80 [99.70, 99.90] | 0.400 | - | - |\n");
  CHECK(csv_table({rows[1]}) ==
        std::string(kCsvHeader) +
            "m,graph histogram/per_channel calib=32 onednn,1,1,310100,91.5,91.25,91.75,"
            "99.8,99.7,99.9,0.5,,3,8.0000,,false,false,false\n");
}

TEST_CASE("a torchscript row's speedup is against fp32 by TorchScript, else by the interpreter") {
  auto timed_by = [](nlohmann::json r, const std::string& runtime) {
    r["point"]["runtime"] = runtime;
    return r;
  };
  const std::string int8 = "graph histogram/per_channel calib=32 onednn";
  std::vector<TableRow> rows = table_rows(parse_records({
      record("f1", "fp32", 1, 2.0, nullptr),
      record("q1", int8, 1, 0.5, nullptr),
      timed_by(record("q2", int8 + " torchscript", 1, 0.8, nullptr), "torchscript"),
      record("f2", "fp32", 2, 1.2, nullptr),
      timed_by(record("f3", "fp32 torchscript", 2, 3.0, nullptr), "torchscript"),
      timed_by(record("q3", int8 + " torchscript", 2, 0.6, nullptr), "torchscript"),
  }));
  REQUIRE(rows.size() == 6);
  CHECK(*rows[1].speedup == 4.0);  // interpreter against interpreter
  CHECK(*rows[2].speedup == 2.5);  // no fp32 by TorchScript at 1 thread: the interpreter's
  CHECK(*rows[5].speedup == 5.0);  // fp32 by TorchScript at 2 threads
}

TEST_CASE("latency-only records leave the accuracy columns empty") {
  std::vector<TableRow> rows = table_rows(parse_records({record("h", "fp32", 1, 1.0, nullptr)}));
  CHECK(markdown_table(rows).find("| m | fp32 | 1 | 1 | 0.310 | - | - | 1.000 | - | 1.00x |") !=
        std::string::npos);
  CHECK(csv_table(rows).find("m,fp32,1,1,310100,,,,,,,1,,,1.0000,,false,false,false\n") !=
        std::string::npos);
}

TEST_CASE("noisy, oversubscribed and broken points are marked; a broken one has no speedup") {
  nlohmann::json fp32 = record("h1", "fp32 avx2", 2, 2.0, nullptr);
  fp32["point"]["isa"] = "avx2";
  fp32["latency"]["noisy"] = true;
  nlohmann::json int8 = record("h2", "graph histogram/per_channel calib=32 onednn avx2", 2, 1.0, nullptr);
  int8["point"]["isa"] = "avx2";
  int8["latency"]["oversubscribed"] = true;
  int8["trust"] = {{"output_sqnr_db", 1.04}, {"broken", true}};
  nlohmann::json other_isa = record("h3", "graph histogram/per_channel calib=32 onednn", 2, 0.5, nullptr);
  other_isa["trust"] = {{"output_sqnr_db", 35.5}, {"broken", false}};
  std::vector<TableRow> rows = table_rows(parse_records({fp32, int8, other_isa}));
  CHECK(rows[0].record.latency->noisy);
  CHECK(rows[1].record.latency->oversubscribed);
  CHECK(rows[1].record.broken());
  CHECK_FALSE(rows[1].speedup);
  CHECK_FALSE(rows[2].speedup);  // the fp32 row was timed under another ISA
  const std::string table = markdown_table(rows);
  CHECK(table.find("| m | fp32 avx2 | 2 | 1 | 0.310 | - | - | 2.000 noisy | - | 1.00x |") != std::string::npos);
  CHECK(table.find("| m | graph histogram/per_channel calib=32 onednn avx2 | 2 | 1 | 0.310 | - | - | "
                   "1.000 oversubscribed | 1.0 BROKEN | - |") != std::string::npos);
  CHECK(table.find("| 0.500 | 35.5 | - |") != std::string::npos);
  CHECK(csv_table(rows).find(",1,1.04,,,avx2,false,true,true\n") != std::string::npos);
}

}  // namespace
}  // namespace qb
