// The comparison table built from records: intervals, speedups and deduplication.

#include "experiments/table.h"

#include "tests/catch.h"

namespace qb {
namespace {

nlohmann::json record(const std::string& hash, const std::string& label, int64_t threads,
                      double latency_ms, const nlohmann::json& accuracy) {
  return {{"config_hash", hash},
          {"label", label},
          {"point", {{"model", "m"},
                     {"variant", label.substr(0, label.find(' '))},
                     {"threads", threads},
                     {"batch_size", 1}}},
          {"size_bytes", 310100},
          {"accuracy", accuracy},
          {"latency", {{"median_ms", latency_ms}}}};
}

nlohmann::json single(double top1, double top5) {
  return {{"top1", {{"mean", top1}, {"n", 1}, {"ci95", {top1, top1}}}},
          {"top5", {{"mean", top5}, {"n", 1}, {"ci95", {top5, top5}}}}};
}

TEST_CASE("rows show seeded intervals and the speedup against fp32 at the same threads") {
  nlohmann::json seeded = {{"top1", {{"mean", 91.5}, {"n", 3}, {"ci95", {91.25, 91.75}}}},
                           {"top5", {{"mean", 99.8}, {"n", 3}, {"ci95", {99.7, 99.9}}}}};
  std::vector<nlohmann::json> records = {
      record("h1", "fp32", 1, 2.0, single(92.0, 99.9)),
      record("h2", "graph histogram/per_channel calib=32 onednn", 1, 0.5, seeded),
      record("h3", "graph histogram/per_channel calib=32 onednn", 2, 0.4, seeded),
      record("h1", "fp32", 1, 4.0, single(92.0, 99.9)),  // h1 again (from a shard): replaces
  };
  std::vector<TableRow> rows = table_rows(records);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].latency_ms == 4.0);
  REQUIRE(rows[1].speedup);
  CHECK(*rows[1].speedup == 8.0);
  CHECK_FALSE(rows[2].speedup);  // no fp32 row at 2 threads
  CHECK(markdown_table(rows) ==
        "| model | variant | threads | batch | size MB | top-1 % | top-5 % | latency ms | speedup |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| m | fp32 | 1 | 1 | 0.310 | 92.00 | 99.90 | 4.000 | 1.00x |\n"
        "| m | graph histogram/per_channel calib=32 onednn | 1 | 1 | 0.310 | 91.50 [91.25, 91.75] | "
        "99.80 [99.70, 99.90] | 0.500 | 8.00x |\n"
        "| m | graph histogram/per_channel calib=32 onednn | 2 | 1 | 0.310 | 91.50 [91.25, 91.75] | "
        "99.80 [99.70, 99.90] | 0.400 | - |\n");
  CHECK(csv_table({rows[1]}) ==
        "model,variant,threads,batch_size,size_mb,top1_percent,top1_ci95_low,top1_ci95_high,"
        "top5_percent,top5_ci95_low,top5_ci95_high,seeds,latency_ms,speedup,isa,noisy,"
        "oversubscribed,output_sqnr_db,broken\n"
        "m,graph histogram/per_channel calib=32 onednn,1,1,0.310100,91.5000,91.2500,91.7500,"
        "99.8000,99.7000,99.9000,3,0.500000,8.0000,,false,false,,false\n");
}

TEST_CASE("latency-only records leave the accuracy columns empty") {
  std::vector<TableRow> rows = table_rows({record("h", "fp32", 1, 1.0, nullptr)});
  CHECK(markdown_table(rows).find("| m | fp32 | 1 | 1 | 0.310 | - | - | 1.000 | 1.00x |") !=
        std::string::npos);
  CHECK(csv_table(rows).find("m,fp32,1,1,0.310100,,,,,,,,1.000000,1.0000,,false,false,,false\n") !=
        std::string::npos);
}

TEST_CASE("noisy, oversubscribed and broken points are marked; a broken one has no speedup") {
  nlohmann::json fp32 = record("h1", "fp32 avx2", 2, 2.0, nullptr);
  fp32["point"]["isa"] = "avx2";
  fp32["latency"]["noisy"] = true;
  nlohmann::json int8 = record("h2", "graph minmax/per_channel calib=8 onednn avx2", 2, 1.0, nullptr);
  int8["point"]["isa"] = "avx2";
  int8["latency"]["oversubscribed"] = true;
  int8["trust"] = {{"output_sqnr_db", 1.04}, {"broken", true}};
  nlohmann::json other_isa = record("h3", "graph minmax/per_channel calib=8 onednn", 2, 0.5, nullptr);
  other_isa["trust"] = {{"output_sqnr_db", 35.5}, {"broken", false}};
  std::vector<TableRow> rows = table_rows({fp32, int8, other_isa});
  CHECK(rows[0].noisy);
  CHECK(rows[1].oversubscribed);
  CHECK(rows[1].broken);
  CHECK_FALSE(rows[1].speedup);
  CHECK_FALSE(rows[2].speedup);  // the fp32 row was timed under another ISA
  const std::string table = markdown_table(rows);
  CHECK(table.find("| m | fp32 avx2 | 2 | 1 | 0.310 | - | - | 2.000 noisy | 1.00x |") != std::string::npos);
  CHECK(table.find("| m | graph minmax/per_channel calib=8 onednn avx2 BROKEN (output SQNR 1.0 dB) | "
                   "2 | 1 | 0.310 | - | - | 1.000 oversubscribed | - |") != std::string::npos);
  CHECK(csv_table(rows).find(",avx2,false,true,1.0400,true\n") != std::string::npos);
}

}  // namespace
}  // namespace qb
