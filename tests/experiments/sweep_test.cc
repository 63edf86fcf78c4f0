// The sweep runner end to end on a small slice of Fashion-MNIST: records, resume after an
// interruption, --force, shards, accuracy and latency parts, the calibration/evaluation overlap
// check, sequential calibration and a model imported from a TorchScript file.

#include "experiments/sweep.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <set>

#include "data/fashion_mnist.h"
#include "data/hash.h"
#include "data/subsets.h"
#include "eval/onednn_isa.h"
#include "experiments/datasets.h"
#include "experiments/record_log.h"
#include "experiments/table.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

const char* kZooModel = R"(architecture = "fmnist_resnet8"
num_classes = 10
in_channels = 1
checkpoint = "models/checkpoints/fmnist_resnet8.pt"
)";

/// A quick experiment: 200 test images, 2 graph-mode points with 2 calibration seeds, fp32;
/// `model` is the [model] table's content.
std::string experiment_text(const std::string& output, const std::string& extra = "",
                            const std::string& model = kZooModel) {
  return R"(name = "sweep_test"
[model]
)" + model + R"([data]
kind = "fashion_mnist"
limit = 200
[calibration]
samples = [0, 64]
seeds = [0, 1]
batch_size = 32
[evaluation]
batch_size = 100
workers = 1
[sweep]
variants = ["fp32", "graph"]
[latency]
repetitions = 2
min_time_s = 0.01
warmup_s = 0.0
retries = 0
[trust]
sqnr_batches = 1
[output]
dir = ")" + output + "\"\n" + extra;
}

struct Loaded {
  Experiment experiment;
  std::unique_ptr<Dataset> evaluation;
  std::unique_ptr<Dataset> calibration;
};

Loaded load(const std::string& dir, const std::string& extra = "",
            const std::string& model = kZooModel) {
  std::string path = dir + "/experiment.toml";
  test::write_file(path, experiment_text(dir + "/results", extra, model));
  Config config = Config::from_file(path);
  Loaded l{read_experiment(config, path), nullptr, nullptr};
  l.evaluation = open_dataset(config, "data", l.experiment.evaluation.split);
  if (l.experiment.calibration.split != l.experiment.evaluation.split) {
    l.calibration = open_dataset(config, "data", l.experiment.calibration.split);
  }
  config.reject_unknown_keys();
  return l;
}

SweepSummary run(Loaded& l, SweepOptions options = {}) {
  return run_sweep(l.experiment, *l.evaluation, l.calibration ? *l.calibration : *l.evaluation,
                   options);
}

TEST_CASE("a sweep records every point once, and a rerun resumes where it stopped") {
  std::string dir = test::scratch_dir("sweep_resume").string();
  Loaded l = load(dir);
  SweepSummary first = run(l);
  CHECK(first.points == 3);
  CHECK(first.measured == 3);
  const std::string records_path = first.run_dir + "/records.jsonl";
  std::vector<nlohmann::json> records = read_records(records_path);
  REQUIRE(records.size() == 3);
  for (const char* file : {"table.md", "table.csv", "benchmark.json", "experiment.toml"}) {
    CHECK(std::filesystem::file_size(first.run_dir + "/" + file) > 0);
  }

  const nlohmann::json& fp32 = records[0];
  CHECK(fp32["label"] == "fp32");
  CHECK(fp32["accuracy"]["examples"] == 200);
  CHECK(fp32["latency"]["repetitions_ms"].size() == 2);
  for (const char* field : {"median_ms", "mean_ms", "p90_ms", "stddev_ms", "cv"}) {
    CHECK(fp32["latency"][field].get<double>() >= 0.0);
  }
  CHECK(fp32["google_benchmark"]["benchmarks"].size() >= 2);
  for (const char* field : {"experiment_sha256", "checkpoint_sha256", "data_fingerprint"}) {
    CHECK_FALSE(fp32["provenance"][field].get<std::string>().empty());
  }
  for (const char* field : {"git_revision", "libtorch_version", "opencv_version", "cpu_model",
                            "date_utc"}) {
    CHECK(fp32["provenance"]["environment"].contains(field));
  }
  CHECK(fp32["provenance"]["environment"]["intra_op_threads"] == 1);
  // Timed in a probe process, with what it had of the machine per repetition.
  CHECK(fp32["latency"]["isolated"] == true);
  CHECK(fp32["latency"]["noisy"].is_boolean());
  CHECK(fp32["latency"]["oversubscribed"] == false);
  REQUIRE(fp32["latency"]["contention"]["attempts"].size() == 1);  // retries = 0
  CHECK(fp32["latency"]["contention"]["attempts"][0]["repetitions"].size() == 2);
  CHECK_FALSE(fp32["provenance"]["environment"]["onednn_isa"].get<std::string>().empty());
  CHECK_FALSE(fp32["trust"].contains("output_sqnr_db"));

  const nlohmann::json& calibrated = records[2];
  CHECK(calibrated["label"] == "graph histogram/per_channel calib=64 onednn");
  CHECK(calibrated["accuracy"]["seeds"] == nlohmann::json::array({0, 1}));
  CHECK(calibrated["accuracy"]["top1_percent"].size() == 2);
  CHECK(calibrated["accuracy"]["top1"]["n"] == 2);
  CHECK(calibrated["calibration"]["overlapping_examples"] == 0);
  CHECK(calibrated["trust"]["round_trip_equal"] == true);
  CHECK(calibrated["trust"]["output_sqnr_db"].get<double>() > 15.0);
  CHECK(calibrated["trust"]["broken"] == false);
  CHECK(calibrated["trust"]["fp32_nodes"].empty());
  CHECK(calibrated["trust"]["int8_nodes"].get<int>() > 0);
  const nlohmann::json& sqnr = calibrated["trust"]["sqnr_db"];
  REQUIRE(sqnr.size() > 2);
  CHECK(sqnr.front()["node"] == "conv1");  // graph order
  CHECK(sqnr.back()["node"] == "fc");
  for (const nlohmann::json& layer : sqnr) CHECK(layer["db"].get<double>() > 10.0);
  // The uncalibrated point does not repeat over seeds: they would all give the same model.
  CHECK(records[1]["accuracy"]["seeds"] == nlohmann::json::array({0}));

  // Nothing left to do.
  Loaded again = load(dir);
  CHECK(run(again).measured == 0);

  // An interruption while the last record was being written: the torn line is dropped and only
  // that point is measured again.
  std::string text = test::read_file(records_path);
  size_t second_end = text.find('\n', text.find('\n') + 1);
  test::write_file(records_path, text.substr(0, second_end + 1) + text.substr(second_end + 1, 40));
  Loaded resumed = load(dir);
  SweepSummary after = run(resumed);
  CHECK(after.skipped == 2);
  CHECK(after.measured == 1);
  CHECK(read_records(records_path).size() == 3);

  SweepOptions force;
  force.force = true;
  Loaded forced = load(dir);
  CHECK(run(forced, force).measured == 3);
}

TEST_CASE("a sweep split into its accuracy and latency parts joins into the whole sweep's table") {
  std::string dir = test::scratch_dir("sweep_parts").string();
  Loaded l = load(dir);
  SweepOptions whole;
  whole.run = "whole";
  run(l, whole);
  SweepOptions accuracy;
  accuracy.run = "split";
  accuracy.part = RecordPart::kAccuracy;
  CHECK(run(l, accuracy).measured == 3);
  SweepOptions latency = accuracy;
  latency.part = RecordPart::kLatency;
  CHECK(run(l, latency).measured == 3);
  // Each part is done once; the whole point is then done too.
  CHECK(run(l, accuracy).skipped == 3);
  CHECK(run(l, latency).skipped == 3);
  SweepOptions split_whole = accuracy;
  split_whole.part = RecordPart::kAll;
  CHECK(run(l, split_whole).skipped == 3);

  const std::vector<nlohmann::json> lines = read_records(dir + "/results/split/records.jsonl");
  REQUIRE(lines.size() == 6);
  CHECK(lines[0]["part"] == "accuracy");
  CHECK_FALSE(lines[0].contains("latency"));
  CHECK(lines[0]["accuracy"]["examples"] == 200);
  CHECK(lines[5]["part"] == "latency");
  CHECK(lines[5]["accuracy"].is_null());
  CHECK(lines[5]["trust"]["output_sqnr_db"].get<double>() > 15.0);

  const std::vector<TableRow> joined = table_rows(read_typed_records(dir + "/results/split/records.jsonl"));
  const std::vector<TableRow> reference = table_rows(read_typed_records(dir + "/results/whole/records.jsonl"));
  REQUIRE(joined.size() == 3);
  REQUIRE(reference.size() == 3);
  for (size_t i = 0; i < joined.size(); ++i) {
    const Record& j = joined[i].record;
    const Record& r = reference[i].record;
    INFO(j.label);
    CHECK(j.part == RecordPart::kAll);
    CHECK(j.config_hash == r.config_hash);
    REQUIRE(j.accuracy);
    CHECK(j.accuracy->top1.mean == r.accuracy->top1.mean);
    CHECK(j.size_bytes == r.size_bytes);
    REQUIRE(j.latency);
    CHECK(j.latency->repetitions_ms.size() == 2);
    CHECK(joined[i].speedup.has_value() == reference[i].speedup.has_value());
    if (r.trust && r.trust->output_sqnr_db) {
      // Same model, same images, same kernels: the same output.
      CHECK(*j.trust->output_sqnr_db == *r.trust->output_sqnr_db);
      CHECK(j.trust->sqnr_db.size() == r.trust->sqnr_db.size());
      CHECK(j.trust->round_trip_equal == r.trust->round_trip_equal);
    }
  }
}

// A latency-only sweep of the quickstart model on 64 images, calibrated on 32, with `sweep`
// as its [sweep] table's lines: quick probes, no accuracy, no trust checks.
SweepSummary run_latency_sweep(const std::string& name, const std::string& sweep) {
  std::string dir = test::scratch_dir(name).string();
  std::string path = dir + "/experiment.toml";
  test::write_file(path, "name = \"" + name + R"("
[model]
)" + kZooModel + R"([data]
kind = "fashion_mnist"
limit = 64
[calibration]
samples = [32]
[evaluation]
accuracy = false
[sweep]
)" + sweep + R"(
[latency]
repetitions = 2
min_time_s = 0.01
warmup_s = 0.0
retries = 0
[trust]
round_trip = false
sqnr_batches = 0
[output]
dir = ")" + dir + "/results\"\n");
  Config config = Config::from_file(path);
  Experiment experiment = read_experiment(config, path);
  std::unique_ptr<Dataset> test_split = open_dataset(config, "data", experiment.evaluation.split);
  std::unique_ptr<Dataset> train_split = open_dataset(config, "data", experiment.calibration.split);
  config.reject_unknown_keys();
  return run_sweep(experiment, *test_split, *train_split, {});
}

TEST_CASE("the ISA is a dimension: each probe is capped, an ISA the CPU lacks is skipped; "
          "fp32 is timed in its deployment form, as built on request") {
  if (!cpu_has_isa("avx2")) {
    WARN("this CPU lacks AVX2: no ISA to cap at");
    return;
  }
  std::vector<std::string> isas = {"avx2"};
  std::string lacking;
  for (const std::string& isa : onednn_isa_names()) {
    if (!cpu_has_isa(isa)) lacking = isa;
  }
  if (!lacking.empty()) isas.push_back(lacking);
  nlohmann::json isa_list = isas;
  SweepSummary summary = run_latency_sweep(
      "sweep_isa", "variants = [\"fp32\", \"fp32_as_built\", \"graph\"]\nisa = " + isa_list.dump());
  CHECK(summary.measured == 3);
  CHECK(summary.unsupported == (lacking.empty() ? 0 : 3));
  CHECK(summary.failed == 0);
  std::vector<nlohmann::json> records = read_records(summary.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 3);
  for (const nlohmann::json& record : records) {
    CHECK(record["point"]["isa"] == "avx2");
    CHECK(record["provenance"]["environment"]["onednn_isa"] == "avx2");
    CHECK(record["provenance"]["environment"]["onednn_max_cpu_isa"] == "avx2");
  }
  CHECK(records[0]["label"] == "fp32 avx2");
  CHECK_THAT(records[0]["latency"]["form"].get<std::string>(), Catch::StartsWith("fp32 deployment form"));
  CHECK(records[1]["label"] == "fp32_as_built avx2");
  CHECK_THAT(records[1]["latency"]["form"].get<std::string>(), Catch::StartsWith("fp32 as built"));
  CHECK(records[2]["label"] == "graph histogram/per_channel calib=32 onednn avx2");
  // No accuracy: the output SQNR is computed on calibration images.
  CHECK(records[2]["trust"]["output_sqnr_db"].get<double>() > 15);
  std::vector<TableRow> rows = table_rows(parse_records(records));
  CHECK(rows[2].speedup);  // against the fp32 row of the same ISA
}

TEST_CASE("the runtime is a dimension: the same model timed by the interpreter and by TorchScript") {
  SweepSummary summary = run_latency_sweep(
      "sweep_runtimes", "variants = [\"fp32\", \"graph\"]\nruntimes = [\"interpreter\", \"torchscript\"]");
  CHECK(summary.measured == 4);
  CHECK(summary.failed == 0);
  std::vector<nlohmann::json> records = read_records(summary.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 4);
  CHECK(records[0]["label"] == "fp32");
  CHECK(records[1]["label"] == "fp32 torchscript");
  CHECK_THAT(records[1]["latency"]["form"].get<std::string>(), Catch::EndsWith("optimize_for_inference"));
  CHECK(records[2]["label"] == "graph histogram/per_channel calib=32 onednn");
  CHECK(records[3]["label"] == "graph histogram/per_channel calib=32 onednn torchscript");
  CHECK(records[3]["point"]["runtime"] == "torchscript");
  CHECK_THAT(records[3]["latency"]["form"].get<std::string>(), Catch::EndsWith("run frozen by LibTorch"));
  // One converted model, and the export computes its bits: the same output SQNR.
  CHECK(records[3]["trust"]["output_sqnr_db"].get<double>() ==
        records[2]["trust"]["output_sqnr_db"].get<double>());
  std::vector<TableRow> rows = table_rows(parse_records(records));
  CHECK(rows[2].speedup);  // against fp32 by the interpreter
  CHECK(rows[3].speedup);  // against fp32 by TorchScript
}

TEST_CASE("shards of a sweep together measure every point once") {
  std::string dir = test::scratch_dir("sweep_shards").string();
  std::set<std::string> hashes;
  int measured = 0;
  for (int k = 1; k <= 2; ++k) {
    Loaded l = load(dir);
    SweepOptions options;
    options.shard_k = k;
    options.shard_n = 2;
    options.run = "shard" + std::to_string(k);
    SweepSummary summary = run(l, options);
    measured += summary.measured;
    for (const nlohmann::json& record : read_records(summary.run_dir + "/records.jsonl")) {
      hashes.insert(record["config_hash"].get<std::string>());
    }
  }
  CHECK(measured == 3);
  CHECK(hashes.size() == 3);
}

TEST_CASE("calibrating on evaluation examples is refused unless allowed, then recorded") {
  std::string dir = test::scratch_dir("sweep_overlap").string();
  Loaded refused = load(dir, "");
  refused.experiment.calibration.split = "test";
  CHECK_THROWS_WITH(run_sweep(refused.experiment, *refused.evaluation, *refused.evaluation, {}),
                    Catch::Contains("calibration examples are also evaluation examples (same "
                                    "split); calibrate on another split"));
  // Refused before measuring anything.
  CHECK(read_records(dir + "/results/default/records.jsonl").empty());

  Loaded allowed = load(dir, "");
  allowed.experiment.calibration.split = "test";
  allowed.experiment.calibration.allow_overlap = true;
  allowed.experiment.calibration.seeds = {0};
  allowed.experiment.sweep.variants = {"graph"};
  allowed.experiment.calibration.samples = {64};
  SweepSummary summary = run_sweep(allowed.experiment, *allowed.evaluation, *allowed.evaluation, {});
  std::vector<nlohmann::json> records = read_records(summary.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 1);
  CHECK(records[0]["calibration"]["allow_overlap"] == true);
  // 64 of the 200 evaluation images drawn from the same 200.
  CHECK(records[0]["calibration"]["overlapping_examples"] == 64);
}

/// The evaluation set with one unreadable image, as a corrupt file would be.
class OneBadImage : public Dataset {
 public:
  explicit OneBadImage(const Dataset& source) : source_(source) {}
  int64_t size() const override { return source_.size(); }
  int64_t num_classes() const override { return source_.num_classes(); }
  at::Tensor image(int64_t index) const override {
    if (index == 150) throw DataError("image 150: corrupt");
    return source_.image(index);
  }
  int64_t label(int64_t index) const override { return source_.label(index); }
  std::string describe() const override { return "one bad image"; }
  uint64_t fingerprint() const override { return source_.fingerprint(); }
  uint64_t content_hash(int64_t index) const override { return source_.content_hash(index); }

 private:
  const Dataset& source_;
};

TEST_CASE("a failing point is recorded with its error, the others go on, a rerun retries it") {
  std::string dir = test::scratch_dir("sweep_failures").string();
  Loaded l = load(dir, "");
  l.experiment.evaluation.cache = false;  // decoded per point, so each point meets the bad image
  OneBadImage bad(*l.evaluation);
  SweepSummary first = run_sweep(l.experiment, bad, *l.calibration, {});
  CHECK(first.failed == 3);
  CHECK(first.measured == 0);
  std::vector<nlohmann::json> records = read_records(first.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 3);
  CHECK(records[0]["error"] == "image 150: corrupt");
  CHECK(records[0]["label"] == "fp32");
  CHECK(latest_measured(parse_records(records)).empty());
  // Failures do not count as done: the next run (with the data fixed) measures them.
  SweepSummary second = run_sweep(l.experiment, *l.evaluation, *l.calibration, {});
  CHECK(second.skipped == 0);
  CHECK(second.measured == 3);
  CHECK(second.failed == 0);
}

TEST_CASE("with the evaluation set cached, a corrupt image fails the points that read it, not the sweep") {
  // Once the whole sweep stopped while decoding the cache.
  std::string dir = test::scratch_dir("sweep_cached_failure").string();
  Loaded l = load(dir, "");
  REQUIRE(l.experiment.evaluation.cache);
  OneBadImage bad(*l.evaluation);
  SweepSummary summary = run_sweep(l.experiment, bad, *l.calibration, {});
  CHECK(summary.failed == 3);
  const std::vector<nlohmann::json> records = read_records(summary.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 3);
  CHECK(records[0]["error"] == "image 150: corrupt");
}

/// A data set that counts the images read from it and says its reader skipped two files.
class Watched : public Dataset {
 public:
  explicit Watched(const Dataset& source) : source_(source) {}
  int64_t size() const override { return source_.size(); }
  int64_t num_classes() const override { return source_.num_classes(); }
  at::Tensor image(int64_t index) const override {
    ++images_read;
    return source_.image(index);
  }
  int64_t label(int64_t index) const override { return source_.label(index); }
  std::string describe() const override { return source_.describe(); }
  uint64_t fingerprint() const override { return source_.fingerprint(); }
  uint64_t content_hash(int64_t index) const override { return source_.content_hash(index); }
  std::vector<std::string> skipped_files() const override { return {"n01/a.JPEG", "n02/b.JPEG"}; }

  mutable std::atomic<int64_t> images_read{0};

 private:
  const Dataset& source_;
};

TEST_CASE("the whole experiment is checked before work: models, weights, classes, sizes") {
  std::string dir = test::scratch_dir("sweep_checks").string();
  Loaded l = load(dir);
  Watched evaluation(*l.evaluation);
  Watched calibration(*l.calibration);
  auto error_of = [&](const Experiment& e, SweepOptions options = {}) {
    try {
      run_sweep(e, evaluation, calibration, options);
    } catch (const std::exception& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };

  // Once found after decoding both data sets (and the checkpoint read once per point).
  Experiment too_many = l.experiment;
  too_many.calibration.samples = {0, 1000000};
  CHECK(error_of(too_many).find("calibration.samples: 1000000 samples asked for, but ") == 0);
  CHECK(evaluation.images_read <= 1);  // the one image each model is tried on
  CHECK(calibration.images_read == 0);

  Experiment bad_checkpoint = l.experiment;
  bad_checkpoint.model.checkpoint = dir + "/experiment.toml";
  CHECK(error_of(bad_checkpoint).find(dir + "/experiment.toml: ") == 0);

  // Once every point failed with "Target 10 is out of bounds." and a LibTorch backtrace.
  Experiment five_classes = l.experiment;
  five_classes.model.checkpoint.clear();
  five_classes.model.num_classes = 5;
  CHECK(error_of(five_classes) == "model.num_classes: model fmnist_resnet8 gives 5 logits, but " +
                                      l.evaluation->describe() + " has 10 classes");

  // Once written into the output folder itself, or outside it.
  for (const char* run : {"", "..", "../x", "a/b"}) {
    SweepOptions options;
    options.run = run;
    CHECK(error_of(l.experiment, options) ==
          "--run '" + std::string(run) + "': a run's name must be a plain name (letters, digits, '.', '_', '-'), "
          "such as 2026-12-02 or shard1");
  }
  CHECK_FALSE(std::filesystem::exists(dir + "/results"));  // nothing written by any of these

  SweepOptions check_only;
  check_only.check_only = true;
  CHECK(error_of(l.experiment, check_only) == "no error");
  CHECK_FALSE(std::filesystem::exists(dir + "/results"));
}

TEST_CASE("a run directory keeps one experiment's records; skipped data files are listed") {
  std::string dir = test::scratch_dir("sweep_owner").string();
  Loaded l = load(dir);
  l.experiment.sweep.variants = {"fp32"};
  Watched evaluation(*l.evaluation);
  SweepSummary summary = run_sweep(l.experiment, evaluation, *l.calibration, {});
  REQUIRE(summary.measured == 1);
  CHECK(test::read_file(summary.run_dir + "/skipped_files.txt") == "n01/a.JPEG\nn02/b.JPEG\n");
  CHECK(read_records(summary.run_dir + "/records.jsonl")[0]["provenance"]["skipped_files"] == 2);
  const nlohmann::json owner = nlohmann::json::parse(test::read_file(summary.run_dir + "/run.json"));
  CHECK(owner["experiment"] == "sweep_test");

  // Once one table of 116 mixed rows, with fp32 speedups of 1.16x.
  Experiment other = l.experiment;
  other.name = "other";
  const std::string refused = summary.run_dir + " holds the records of experiment 'sweep_test', not 'other': give "
                              "this sweep another --run or [output] dir (or --force to mix them)";
  CHECK_THROWS_WITH(run_sweep(other, evaluation, *l.calibration, {}), refused);
  // A run directory from before run.json: its records say whose it is.
  std::filesystem::remove(summary.run_dir + "/run.json");
  CHECK_THROWS_WITH(run_sweep(other, evaluation, *l.calibration, {}), refused);
}

TEST_CASE("eager-mode points get the same trust checks") {
  std::string dir = test::scratch_dir("sweep_eager").string();
  Loaded l = load(dir);
  l.experiment.sweep.variants = {"eager"};
  l.experiment.calibration.samples = {64};
  l.experiment.calibration.seeds = {0};
  SweepSummary summary = run(l);
  REQUIRE(summary.measured == 1);
  const nlohmann::json trust = read_records(summary.run_dir + "/records.jsonl")[0]["trust"];
  CHECK(trust["round_trip_equal"] == true);
  CHECK(trust["int8_nodes"].get<int>() > 0);
  CHECK(trust["fp32_nodes"].empty());
  REQUIRE(trust["sqnr_db"].size() > 2);
  CHECK(trust["sqnr_db"].front()["node"] == "conv1");
  for (const nlohmann::json& layer : trust["sqnr_db"]) CHECK(layer["db"].get<double>() > 10.0);
}

TEST_CASE("sequential calibration takes the split's first examples in file order") {
  std::string dir = test::scratch_dir("sweep_sequential").string();
  Loaded l = load(dir);
  l.experiment.sweep.variants = {"graph"};
  l.experiment.calibration.subset = "sequential";
  l.experiment.calibration.samples = {64};
  l.experiment.calibration.seeds = {3};
  SweepSummary summary = run(l);
  REQUIRE(summary.measured == 1);
  const nlohmann::json calibration =
      read_records(summary.run_dir + "/records.jsonl")[0]["calibration"];
  CHECK(calibration["subset"] == "sequential");
  std::vector<int64_t> first(64);
  std::iota(first.begin(), first.end(), 0);
  CHECK(calibration["subset_fingerprints"]["3"] ==
        hex64(Subset(*l.calibration, first).fingerprint()));
}

/// Writes tests/experiments/tiny_torchscript_net.py's model, its weights drawn with `seed`.
void write_tiny_net(const std::string& path, int seed) {
  const std::string command = "/usr/bin/python3 " +
                              test::source_path("tests/experiments/tiny_torchscript_net.py").string() +
                              " " + path + " " + std::to_string(seed);
  REQUIRE(std::system(command.c_str()) == 0);
}

TEST_CASE("a TorchScript model sweeps in fp32 and graph mode, hashed by the file's content") {
  std::string dir = test::scratch_dir("sweep_torchscript").string();
  const std::string net = dir + "/tiny_net.pt";
  write_tiny_net(net, 0);
  const std::string model = "torchscript = \"" + net + "\"\n";
  Loaded l = load(dir, "", model);
  l.experiment.calibration.seeds = {0};
  l.experiment.calibration.samples = {64};
  SweepSummary first = run(l);
  CHECK(first.measured == 2);
  CHECK(first.failed == 0);
  std::vector<nlohmann::json> records = read_records(first.run_dir + "/records.jsonl");
  REQUIRE(records.size() == 2);
  for (const nlohmann::json& record : records) {
    CHECK(record["point"]["model"] == "tiny_net");
    CHECK(record["provenance"]["torchscript"] == net);
    CHECK(record["provenance"]["checkpoint_sha256"] == file_sha256(net));
    CHECK(record["config"]["model"] ==
          nlohmann::json({{"torchscript", true}, {"checkpoint_sha256", file_sha256(net)}}));
    CHECK(record["accuracy"]["examples"] == 200);
  }
  const nlohmann::json& int8 = records[1];
  CHECK(int8["label"] == "graph histogram/per_channel calib=64 onednn");
  CHECK(int8["trust"]["fp32_nodes"].empty());
  CHECK(int8["trust"]["int8_nodes"].get<int>() > 0);
  CHECK(int8["trust"]["round_trip_equal"] == true);
  REQUIRE(int8["trust"]["sqnr_db"].size() > 2);
  CHECK(int8["trust"]["sqnr_db"].front()["node"] == "conv");
  CHECK(int8["trust"]["sqnr_db"].back()["node"] == "fc");
  CHECK(test::read_file(first.run_dir + "/table.md").find("tiny_net") != std::string::npos);

  // The same file again: nothing to do. Other weights in the file: every point is new.
  Loaded again = load(dir, "", model);
  again.experiment.calibration = l.experiment.calibration;
  CHECK(run(again).skipped == 2);
  write_tiny_net(net, 1);
  Loaded changed = load(dir, "", model);
  changed.experiment.calibration = l.experiment.calibration;
  CHECK(run(changed).measured == 2);
}

TEST_CASE("a file that does not import stops the sweep before any work, naming the file") {
  std::string dir = test::scratch_dir("sweep_torchscript_bad").string();
  const std::string bad = dir + "/not_a_model.pt";
  test::write_file(bad, "not a zip archive");
  Loaded l = load(dir, "", "torchscript = \"" + bad + "\"\n");
  CHECK_THROWS_WITH(run(l), Catch::StartsWith("model.torchscript: cannot import " + bad + ": "));
  CHECK(read_records(dir + "/results/default/records.jsonl").empty());
}

}  // namespace
}  // namespace qb
