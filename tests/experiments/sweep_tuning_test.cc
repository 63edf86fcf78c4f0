// Accuracy-aware quantization through the sweep, on a small slice of Fashion-MNIST: the
// corrections dimension, and `--tune` (sensitivity records, the fallback's mapping file, which
// reproduces its accuracy when swept as an ordinary point, and resuming).

#include <filesystem>
#include <fstream>

#include "experiments/config.h"
#include "experiments/datasets.h"
#include "experiments/paths.h"
#include "experiments/points.h"
#include "experiments/record_log.h"
#include "experiments/report.h"
#include "experiments/sweep.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

std::string experiment_text(const std::string& output, const std::string& sweep, const std::string& extra) {
  return R"(name = "tuning_test"
[model]
architecture = "fmnist_resnet8"
num_classes = 10
in_channels = 1
checkpoint = "models/checkpoints/fmnist_resnet8.pt"
[data]
kind = "fashion_mnist"
limit = 200
[calibration]
samples = [64]
seeds = [0]
batch_size = 32
[evaluation]
batch_size = 100
workers = 1
[sweep]
)" + sweep + R"(
[latency]
repetitions = 2
min_time_s = 0.01
warmup_s = 0.0
retries = 0
[trust]
sqnr_batches = 1
round_trip = false
[output]
dir = ")" + output + "\"\n" + extra;
}

struct Loaded {
  Experiment experiment;
  std::unique_ptr<Dataset> evaluation;
  std::unique_ptr<Dataset> calibration;
};

/// `calibration` goes at the top of [calibration].
Loaded load(const std::string& dir, const std::string& sweep, const std::string& extra = "",
            const std::string& calibration = "") {
  std::filesystem::create_directories(dir);
  std::string path = dir + "/experiment.toml";
  std::string text = experiment_text(dir + "/results", sweep, extra);
  text.replace(text.find("[calibration]\n"), 14, "[calibration]\n" + calibration);
  test::write_file(path, text);
  Config config = Config::from_file(path);
  Loaded l{read_experiment(config, path), nullptr, nullptr};
  l.evaluation = open_dataset(config, "data", l.experiment.evaluation.split);
  l.calibration = open_dataset(config, "data", l.experiment.calibration.split);
  config.reject_unknown_keys();
  return l;
}

SweepSummary run(Loaded& l, SweepOptions options = {}) {
  return run_sweep(l.experiment, *l.evaluation, *l.calibration, options);
}

std::vector<nlohmann::json> json_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST_CASE("corrections are a dimension of graph points that leaves other points' hashes alone") {
  const std::string dir = test::scratch_dir("sweep_corrections").string();
  Loaded l = load(dir, R"(variants = ["fp32", "eager", "graph"]
weights = ["per_tensor"]
corrections = ["none", "bias_correction", "equalization"])");
  const std::vector<Point> points = expand(l.experiment);
  std::vector<std::string> labels;
  for (const Point& point : points) labels.push_back(point.label());
  // Eager mode has no corrections.
  CHECK(labels == std::vector<std::string>{"fp32", "eager histogram/per_tensor calib=64 onednn",
                                           "graph histogram/per_tensor calib=64 onednn",
                                           "graph histogram/per_tensor calib=64 onednn bias_correction",
                                           "graph histogram/per_tensor calib=64 onednn equalization"});
  CHECK_FALSE(points[2].to_json().contains("correction"));
  CHECK(points[3].to_json()["correction"] == "bias_correction");
  CHECK(Point::from_json(points[4].to_json()).correction == "equalization");
  CHECK(matches({{"correction", "none"}}, points[2]));
  CHECK_FALSE(matches({{"correction", "none"}}, points[3]));

  SweepOptions options;
  options.part = RecordPart::kAccuracy;
  SweepSummary summary = run(l, options);
  CHECK(summary.measured == 5);
  CHECK(summary.failed == 0);
  const std::vector<Record> records = read_typed_records(summary.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 5);
  for (const Record& record : records) {
    INFO(record.label);
    REQUIRE(record.accuracy);
    CHECK(record.accuracy->top1.mean > 80.0);
  }
  // Equalization keeps fp32 outputs, and its per-layer SQNR compares against the equalized model.
  REQUIRE(records[4].trust);
  for (const LayerSqnrRecord& layer : records[4].trust->sqnr_db) CHECK(layer.db > 10.0);

  SECTION("corrections need graph points, and only known corrections are accepted") {
    CHECK_THROWS_WITH(load(dir, R"(variants = ["fp32", "eager"]
corrections = ["none", "equalization"])"),
                      Catch::Contains("sweep.corrections") && Catch::Contains("graph"));
    CHECK_THROWS_WITH(load(dir, R"(corrections = ["adaround"])"),
                      Catch::Contains("sweep.corrections") && Catch::Contains("adaround"));
  }
}

TEST_CASE("--tune ranks the layers, finds a fallback within budget, and its mapping sweeps to the same accuracy") {
  const std::string dir = test::scratch_dir("sweep_tune").string();
  const std::string sweep = R"(variants = ["graph"]
weights = ["per_tensor"]
observers = ["minmax"])";
  const std::string tuning = R"([tuning]
max_drop = 0.0
samples = 100
seed = 3
sensitivity_samples = 100
)";
  Loaded l = load(dir, sweep, tuning);
  SweepOptions tune;
  tune.tune = true;
  SweepSummary summary = run(l, tune);
  CHECK(summary.measured == 1);
  CHECK(summary.failed == 0);
  const std::string tuning_dir = summary.run_dir + "/tuning";

  const std::vector<nlohmann::json> sensitivity = json_lines(tuning_dir + "/sensitivity.jsonl");
  REQUIRE(sensitivity.size() > 10);
  CHECK(sensitivity.front()["sensitivity"]["layer"] == "conv1");
  CHECK(sensitivity.back()["sensitivity"]["layer"] == "fc");
  const std::vector<nlohmann::json> fallback = json_lines(tuning_dir + "/fallback.jsonl");
  REQUIRE(fallback.size() == 1);
  const nlohmann::json& record = fallback[0];
  CHECK(record["layers"] == sensitivity.size());
  CHECK(record["tuning"]["examples"] == 100);
  CHECK(record["evaluation"]["examples"] == 200);
  // Within budget on the tuning subset, or said not to be.
  const double floor = record["tuning"]["floor_percent"].get<double>();
  CHECK(floor == record["tuning"]["fp32_top1_percent"].get<double>());
  CHECK(record["met"] == (record["tuning"]["tuned_top1_percent"].get<double>() >= floor));
  CHECK(record["tuning"]["steps"].size() == record["fp32_layers"].size() + 1);
  const std::string mapping_file = resolve_config_path(record["mapping_file"].get<std::string>());
  REQUIRE(std::filesystem::exists(mapping_file));
  CHECK(record["sensitivity"]["examples"] == 100);
  CHECK(record["latency"]["int8_median_ms"].get<double>() > 0);
  CHECK(record["latency"]["tuned_over_int8"].get<double>() ==
        Approx(record["latency"]["tuned_median_ms"].get<double>() / record["latency"]["int8_median_ms"].get<double>()));
  CHECK(std::filesystem::file_size(resolve_config_path(record["sensitivity"]["table"].get<std::string>())) > 0);

  // What reports show of it: the fallback, the most sensitive layers and a bar per layer.
  const std::vector<TunedPoint> tuned = load_tuning(summary.run_dir);
  REQUIRE(tuned.size() == 1);
  CHECK(tuned[0].layers.size() == sensitivity.size());
  const auto plots = tuning_plots(tuned);
  REQUIRE(plots.size() == 1);
  CHECK(plots[0].first == "sensitivity-1");
  CHECK(plots[0].second.bars);
  CHECK(plots[0].second.x_tics.size() == sensitivity.size());
  const std::string markdown = tuning_markdown(tuned[0], 5, "plots/x.svg");
  CHECK(markdown.find("### Tuning: fmnist_resnet8 graph minmax/per_tensor calib=64 onednn\n") != std::string::npos);
  CHECK(tuned[0].fallback.to_json() == record);  // the typed record reads and writes every field
  CHECK(markdown.find("The 5 most sensitive layers (on 100 test images)") != std::string::npos);
  CHECK(markdown.find("](plots/x.svg)") != std::string::npos);

  // Nothing left to do on a rerun; an analysis cut short resumes at the layer it stopped at.
  CHECK(run(l, tune).skipped == 1);
  std::filesystem::remove(tuning_dir + "/fallback.jsonl");
  const std::string text = test::read_file(tuning_dir + "/sensitivity.jsonl");
  const size_t cut = text.rfind('\n', text.size() - 2);  // the last line, torn
  test::write_file(tuning_dir + "/sensitivity.jsonl", text.substr(0, cut + 1) + "{\"config_ha");
  CHECK(run(l, tune).measured == 1);
  const std::vector<nlohmann::json> again = json_lines(tuning_dir + "/fallback.jsonl");
  REQUIRE(again.size() == 1);
  CHECK(again[0]["evaluation"]["tuned_top1_percent"] == record["evaluation"]["tuned_top1_percent"]);
  CHECK(again[0]["fp32_layers"] == record["fp32_layers"]);

  // The mapping file is an ordinary [mappings] entry: swept, it gives the tuned accuracy.
  Loaded swept = load(dir + "/swept", sweep + "\nmappings = [\"tuned\"]",
                      "[mappings]\ntuned = \"" + mapping_file + "\"\n");
  SweepOptions accuracy;
  accuracy.part = RecordPart::kAccuracy;
  SweepSummary swept_summary = run(swept, accuracy);
  REQUIRE(swept_summary.measured == 1);
  const std::vector<Record> records = read_typed_records(swept_summary.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 1);
  CHECK(records[0].accuracy->top1.mean == record["evaluation"]["tuned_top1_percent"].get<double>());
  CHECK(records[0].trust->fp32_nodes.size() >= record["fp32_layers"].size());

  SECTION("the tuning subset may not share an example with the evaluation set") {
    Loaded same_split = load(dir + "/overlap", sweep, tuning, "split = \"test\"\nallow_overlap = true\n");
    CHECK_THROWS_WITH(run(same_split, tune), Catch::Contains("tuning.samples") && Catch::Contains("evaluation examples"));
  }

  SECTION("--tune without [tuning], and a budget of both kinds, are errors naming the key") {
    Loaded plain = load(dir + "/plain", sweep);
    CHECK_THROWS_WITH(run(plain, tune), Catch::Contains("[tuning]"));
    CHECK_THROWS_WITH(load(dir + "/both", sweep, "[tuning]\nmax_drop = 1.0\nmax_relative_drop = 0.01\n"),
                      Catch::Contains("tuning") && Catch::Contains("exactly one"));
    CHECK_THROWS_WITH(load(dir + "/rule", sweep, "[tuning]\nmax_drop = 1.0\npoints = [{ colour = \"red\" }]\n"),
                      Catch::Contains("tuning.points") && Catch::Contains("colour"));
  }
}

}  // namespace
}  // namespace qb
