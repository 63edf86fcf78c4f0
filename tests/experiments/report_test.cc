// Rendering a small run: plot contents, the files report writes, the HTML table, the history
// file, and the published README.

#include "experiments/report.h"

#include <filesystem>

#include "experiments/record_log.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

nlohmann::json record(const std::string& hash, const std::string& variant, int64_t samples,
                      int64_t threads, double latency_ms, double top1,
                      const std::string& date = "2026-11-23T10:00:00Z") {
  nlohmann::json point = {{"model", "m"}, {"variant", variant}, {"threads", threads},
                          {"batch_size", 1}};
  std::string label = variant;
  if (variant != "fp32") {
    point.update({{"engine", "onednn"}, {"observer", "minmax"}, {"weights", "per_channel"},
                  {"mapping", "global"}, {"samples", samples}});
    label += " minmax/per_channel calib=" + std::to_string(samples) + " onednn";
  }
  return {{"config_hash", hash},
          {"experiment", "tiny"},
          {"label", label},
          {"point", point},
          {"size_bytes", variant == "fp32" ? 400000 : 100000},
          {"accuracy",
           {{"top1", {{"mean", top1}, {"n", 1}, {"ci95", {top1, top1}}}},
            {"top5", {{"mean", 99.0}, {"n", 1}, {"ci95", {99.0, 99.0}}}}}},
          {"latency", {{"median_ms", latency_ms}, {"repetitions_ms", {latency_ms}}}},
          {"provenance",
           {{"experiment_file", "/x/tiny.toml"},
            {"experiment_sha256", "0123456789abcdef"},
            {"checkpoint", "/x/m.pt"},
            {"checkpoint_sha256", "fedcba9876543210"},
            {"data", "toy data"},
            {"data_fingerprint", "00ff"},
            {"environment",
             {{"date_utc", date},
              {"git_revision", "abc123"},
              {"git_dirty", false},
              {"libtorch_version", "1.13.0"},
              {"opencv_version", "4.6.0"},
              {"cpu_model", "AMD EPYC"},
              {"cores", 2}}}}}};
}

std::vector<nlohmann::json> run_json() {
  std::vector<nlohmann::json> records = {
      record("f1", "fp32", -1, 1, 4.0, 92.0), record("f2", "fp32", -1, 2, 2.5, 92.0),
      record("g0", "graph", 0, 1, 0.5, 10.0), record("g1", "graph", 32, 1, 0.5, 91.5),
      record("g2", "graph", 256, 1, 0.4, 91.8), record("g3", "graph", 256, 2, 0.3, 91.8)};
  records[4]["trust"] = {{"sqnr_db", {{{"node", "conv1"}, {"db", 31.5}},
                                      {{"node", "layer1_0_conv1"}, {"db", "inf"}},
                                      {{"node", "fc"}, {"db", 24.25}}}},
                         {"output_sqnr_db", 25.0},
                         {"broken", false}};
  return records;
}

std::vector<Record> run() { return parse_records(run_json()); }

const PlotSpec& plot(const std::vector<std::pair<std::string, PlotSpec>>& plots,
                     const std::string& stem) {
  for (const auto& [name, spec] : plots) {
    if (name == stem) return spec;
  }
  throw std::out_of_range(stem);
}

TEST_CASE("a run's plots carry its points") {
  auto plots = run_plots(run());
  REQUIRE(plots.size() == 4);
  const PlotSpec& accuracy = plot(plots, "accuracy_vs_samples");
  CHECK(accuracy.x_tics == std::vector<std::string>{"0", "32", "256"});  // uncalibrated too
  REQUIRE(accuracy.series.size() == 2);
  CHECK(accuracy.series[0].title == "fp32");
  CHECK(accuracy.series[1].title == "graph minmax/per_channel onednn");
  CHECK(accuracy.series[1].y == std::vector<double>{10.0, 91.5, 91.8});

  const PlotSpec& sqnr = plot(plots, "layer_sqnr");
  CHECK(sqnr.x_tics == std::vector<std::string>{"conv1", "layer1_0_conv1", "fc"});
  REQUIRE(sqnr.series.size() == 1);
  CHECK(sqnr.series[0].x == std::vector<double>{0, 2});  // the exact layer has no finite dB
  CHECK(sqnr.series[0].y == std::vector<double>{31.5, 24.25});

  const PlotSpec& latency = plot(plots, "latency_vs_threads");
  REQUIRE(latency.series.size() == 2);
  CHECK(latency.series[0].x == std::vector<double>{1, 2});
  CHECK(latency.series[0].y == std::vector<double>{4.0, 2.5});
  CHECK(latency.series[1].y == std::vector<double>{0.4, 0.3});  // the 256-sample model

  const PlotSpec& tradeoff = plot(plots, "tradeoff");
  CHECK_FALSE(tradeoff.lines);
  REQUIRE(tradeoff.series.size() == 2);
  CHECK(tradeoff.series[1].x == std::vector<double>{0.5, 0.4});
  // Point area follows model size: fp32's 400 kB at 3, int8's 100 kB at half the diameter.
  CHECK(tradeoff.series[0].point_size == std::vector<double>{3.0});
  CHECK(tradeoff.series[1].point_size == std::vector<double>{1.5, 1.5});
  CHECK(gnuplot_script(tradeoff, "/tmp/t.svg").find("using 1:2:3 with points pointtype 7 "
                                                    "pointsize variable") != std::string::npos);

  std::string script = gnuplot_script(accuracy, "/tmp/a_b.svg");
  CHECK(script.find("set output \"/tmp/a_b.svg\"") != std::string::npos);
  CHECK(script.find("title \"graph minmax/per\\\\_channel onednn\"") != std::string::npos);
  CHECK(script.find("set xtics (\"0\" 0, \"32\" 1, \"256\" 2)\n") != std::string::npos);
}

TEST_CASE("the headline is the best int8 point against fp32; a broken point is left out") {
  std::vector<Record> records = run();
  CHECK(headline(records) ==
        "Best int8 point: m graph minmax/per_channel calib=256 onednn (1 thread(s), batch 1): "
        "top-1 91.80% against fp32's 92.00% (-0.20 points), 10.00x faster, 4.00x smaller than "
        "fp32.");
  nlohmann::json broken = record("g4", "graph", 512, 1, 0.1, 95.0);
  broken["trust"] = {{"output_sqnr_db", 1.0}, {"broken", true}};
  records.push_back(record_from_json(broken));
  CHECK(headline(records).find("calib=256") != std::string::npos);
  const auto plots = run_plots(records);
  const PlotSpec& tradeoff = plot(plots, "tradeoff");
  CHECK(tradeoff.series[1].x == std::vector<double>{0.5, 0.4});  // no 0.1 ms point
  // Its accuracy is still a measurement.
  CHECK(plot(plots, "accuracy_vs_samples").x_tics == std::vector<std::string>{"0", "32", "256", "512"});
  CHECK(published_markdown({{"tiny", records}}).find(
            "Left out as broken (int8 output too far from fp32's, trust.broken_below_db):\n\n"
            "- m graph minmax/per_channel calib=512 onednn, 1 thread(s), batch 1: output SQNR "
            "1.0 dB against fp32, top-1 95.00%\n") != std::string::npos);
  CHECK(headline(parse_records({record("f1", "fp32", -1, 1, 4.0, 92.0)})).empty());
}

TEST_CASE("write_report writes the tables, the page and non-empty plots") {
  std::string dir = test::scratch_dir("report_files").string();
  std::vector<std::string> written = write_report(dir, "tiny results", run(), {});
  CHECK(written.size() == 8);  // 3 tables, 4 plots, the page
  for (const std::string& file : written) {
    INFO(file);
    CHECK(std::filesystem::file_size(file) > 0);
  }
  for (const char* stem : {"accuracy_vs_samples", "latency_vs_threads", "tradeoff", "layer_sqnr"}) {
    std::string svg = test::read_file(dir + "/plots/" + stem + ".svg");
    CHECK(svg.find("<svg") != std::string::npos);
    CHECK(svg.size() > 5000);  // axes, ticks, legend and curves, not an empty frame
  }
  std::string html = test::read_file(dir + "/report.html");
  CHECK(html.find("<title>tiny results</title>") != std::string::npos);
  CHECK(html.find("<dt>checkpoint</dt><dd>m.pt (sha256 fedcba987654)</dd>") != std::string::npos);
  CHECK(html.find("<tr><td>m</td><td>graph minmax/per_channel calib=256 onednn</td><td "
                  "class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0.100</td><td "
                  "class=\"n\">91.80</td><td class=\"n\">99.00</td><td class=\"n\">0.400</td><td "
                  "class=\"n\">25.0</td><td class=\"n\">10.00x</td></tr>") != std::string::npos);
  CHECK(html.find("<img src=\"plots/tradeoff.svg\"") != std::string::npos);
}

TEST_CASE("a report that cannot be written is an error naming the path, not \"written to\"") {
  // Once exit 0 and "written to ..." with the files empty or absent.
  const std::string dir = test::scratch_dir("report_unwritable").string();
  test::write_file(dir + "/a_file", "x");
  CHECK_THROWS_WITH(write_report(dir + "/a_file/out", "tiny", run(), {}), Catch::Contains(dir + "/a_file/out"));
}

TEST_CASE("a TorchScript model's provenance names its file, not a checkpoint") {
  std::vector<Record> records = run();
  for (Record& r : records) {
    r.provenance.checkpoint = "";
    r.provenance.torchscript = "/x/my_net.pt";
  }
  const auto summary = provenance_summary(records);
  REQUIRE(summary.size() > 1);
  CHECK(summary[1] == std::pair<std::string, std::string>("torchscript",
                                                          "my_net.pt (sha256 fedcba987654)"));
}

TEST_CASE("history entries are appended, replaced by run name, and plotted over time") {
  std::string path = (test::scratch_dir("report_history") / "history" / "tiny.jsonl").string();
  append_history(path, "2026-11-22", run());
  std::vector<Record> slower = run();
  slower[0].latency->median_ms = 5.0;
  append_history(path, "2026-11-23", slower);
  append_history(path, "2026-11-23", slower);  // the same night again: replaces, not adds
  std::vector<nlohmann::json> history = read_records(path);
  REQUIRE(history.size() == 2);
  CHECK(history[0]["run"] == "2026-11-22");
  CHECK(history[1]["git_revision"] == "abc123");
  CHECK(history[1]["points"]["f1"]["latency_ms"] == 5.0);
  CHECK(history[1]["points"]["f1"]["label"] == "fp32, 1t, batch 1");

  auto plots = history_plots(history);
  REQUIRE(plots.size() == 5);  // every metric some point has
  const PlotSpec& latency = plot(plots, "history_latency_ms");
  CHECK(latency.x_tics == std::vector<std::string>{"2026-11-22", "2026-11-23"});
  REQUIRE(latency.series.size() == 6);
  CHECK(latency.series[0].y == std::vector<double>{4.0, 5.0});
}

TEST_CASE("the published README shows each run's provenance, table and plots") {
  std::string markdown = published_markdown({{"tiny", run()}});
  CHECK(markdown.find("## tiny\n\n**Best int8 point: m graph minmax/per_channel calib=256") !=
        std::string::npos);
  CHECK(markdown.find("smaller than fp32.**\n\n- experiment: tiny (tiny.toml, sha256 0123456789ab)\n"
                      "- checkpoint: m.pt (sha256 fedcba987654)\n") != std::string::npos);
  CHECK(markdown.find("| m | fp32 | 2 | 1 | 0.400 | 92.00 | 99.00 | 2.500 | - | 1.00x |") !=
        std::string::npos);
  CHECK(markdown.find("](plots/tiny-tradeoff.svg)") != std::string::npos);
  std::string dir = test::scratch_dir("report_publish").string();
  std::vector<std::string> written = write_published(dir, {{"tiny", run()}});
  CHECK(written.size() == 5);
  CHECK(test::read_file(dir + "/README.md") == markdown);
  CHECK(std::filesystem::file_size(dir + "/plots/tiny-accuracy_vs_samples.svg") > 100);
}

TEST_CASE("results/README.md is what report renders from results/published/") {
  std::vector<PublishedRun> runs;
  for (const char* name : {"quickstart", "latency_resnet18", "mobilenet_v2_fmnist"}) {
    std::string path = test::source_path(std::string("results/published/") + name + ".jsonl");
    runs.push_back(load_published_run(name, path));
    REQUIRE_FALSE(runs.back().records.empty());
  }
  REQUIRE(runs.back().tuning.size() == 1);
  CHECK(test::read_file(test::source_path("results/README.md")) == published_markdown(runs));
}

}  // namespace
}  // namespace qb
