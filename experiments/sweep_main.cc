// bazel run //experiments:sweep -- experiments/quickstart.toml
// Evaluates fp32 and every int8 variant an experiment file names on its data set
// and writes the comparison table (Markdown, CSV) and one JSON record per row.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "data/batches.h"
#include "eval/accuracy.h"
#include "eval/environment.h"
#include "eval/latency.h"
#include "eval/model_size.h"
#include "eval/progress.h"
#include "experiments/config.h"
#include "experiments/datasets.h"
#include "experiments/paths.h"
#include "experiments/table.h"
#include "experiments/variants.h"
#include "models/checkpoint.h"
#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/eager.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/prepare.h"
#include "quant/quantized_ops.h"

namespace qb {
namespace {

std::string run_id() {
  std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%d-%H%M%S", std::gmtime(&now));
  return buffer;
}

struct SweepSettings {
  std::string name;
  std::string architecture;
  ZooOptions zoo;
  std::string checkpoint;
  AccuracyOptions accuracy;
  LatencyOptions latency;
  std::vector<int64_t> thread_counts;
  int64_t calibration_batch_size = 32;
  uint64_t calibration_seed = 0;
  std::vector<QuantVariant> variants;
  std::string output_dir;
};

SweepSettings read_settings(Config& config) {
  SweepSettings s;
  s.name = config.get_string("name");
  s.architecture = config.get_string("model.architecture");
  s.zoo.num_classes = config.get_int("model.num_classes", s.zoo.num_classes);
  if (config.has("model.in_channels")) s.zoo.in_channels = config.get_int("model.in_channels");
  s.checkpoint = resolve_config_path(config.get_string("model.checkpoint"));
  s.accuracy.batch_size = config.get_int("evaluation.batch_size", s.accuracy.batch_size);
  s.accuracy.limit = config.get_int("evaluation.limit", 0);
  s.latency.repetitions =
      static_cast<int>(config.get_int("latency.repetitions", s.latency.repetitions));
  s.latency.min_time_s = config.get_double("latency.min_time_s", s.latency.min_time_s);
  s.thread_counts = config.get_int_list("latency.threads", {{1}});
  for (int64_t threads : s.thread_counts) {
    if (threads < 1) throw config.error("latency.threads", "thread counts must be >= 1");
  }
  s.calibration_batch_size = config.get_int("calibration.batch_size", s.calibration_batch_size);
  s.calibration_seed = static_cast<uint64_t>(config.get_int("calibration.seed", 0));
  s.variants = read_variants(config);
  s.output_dir = resolve_config_path(config.get_string("output.dir"));
  return s;
}

class Sweep {
 public:
  Sweep(SweepSettings settings, const Dataset& test, const Dataset& calibration)
      : s_(std::move(settings)),
        test_(test),
        calibration_(calibration),
        environment_(capture_environment(workspace_dir())),
        run_dir_(s_.output_dir + "/runs/" + run_id()) {
    std::filesystem::create_directories(run_dir_);
    records_.open(run_dir_ + "/records.jsonl");
  }

  void run() {
    weights_ = read_state_dict(s_.checkpoint);
    GraphModule fp32 = load_model(/*quantizable=*/false);
    std::cerr << "model " << s_.architecture << " (" << s_.checkpoint << "), evaluated on "
              << test_.describe() << "\n";
    evaluate("fp32", fp32, nlohmann::json::object());

    std::map<std::string, GraphModule> calibrated;
    for (const QuantVariant& variant : s_.variants) {
      auto it = calibrated.find(variant.calibration_key());
      if (it == calibrated.end()) {
        it = calibrated.emplace(variant.calibration_key(), prepare_and_calibrate(fp32, variant))
                 .first;
      }
      ConvertOptions options;
      options.engine = variant.engine;
      options.allow_uncalibrated = variant.calibration_samples == 0;
      GraphModule int8 = variant.mode == "eager" ? convert_eager(it->second, options)
                                                 : convert(it->second, options);
      // int8 runs channels-last, the layout oneDNN's int8 convs use (bit-identical
      // results); fp32 stays NCHW, where small convs are faster.
      evaluate(variant.name(), to_channels_last(int8),
               {{"mode", variant.mode},
                {"engine", variant.engine},
                {"observer", variant.observer},
                {"weights", variant.weights},
                {"calibration_samples", variant.calibration_samples},
                {"calibration_seed", s_.calibration_seed}});
    }
    std::string markdown = markdown_table(rows_);
    std::ofstream(run_dir_ + "/table.md") << markdown;
    std::ofstream(run_dir_ + "/table.csv") << csv_table(rows_);
    std::printf("\n%s\nwritten to %s\n", markdown.c_str(), run_dir_.c_str());
  }

 private:
  // The zoo model with the checkpoint's weights; `quantizable` gives the eager-ready
  // form (QuantStub, FloatFunctional adds) torchvision's quantization models use.
  GraphModule load_model(bool quantizable) const {
    ZooOptions zoo = s_.zoo;
    zoo.quantizable = quantizable;
    GraphModule gm = build_model(s_.architecture, zoo);
    load_state_dict_strict(gm.state_dict(), weights_, s_.checkpoint);
    return gm;
  }

  GraphModule prepare_and_calibrate(const GraphModule& fp32, const QuantVariant& variant) {
    QConfigMapping mapping;
    mapping.set_global(variant_qconfig(variant));
    GraphModule prepared =
        variant.mode == "eager"
            ? prepare_eager(fuse_modules(load_model(true), fuse_model_groups(s_.architecture)),
                            mapping)
            : prepare(fp32, mapping);
    if (variant.calibration_samples == 0) return prepared;

    // The first N of a seeded shuffle of the calibration split: every variant
    // asking for N samples with this seed sees the same images.
    std::vector<int64_t> order =
        epoch_order(calibration_.size(), /*shuffle=*/true, s_.calibration_seed, 0);
    order.resize(std::min<size_t>(order.size(), variant.calibration_samples));
    Batches batches(calibration_, order, s_.calibration_batch_size, /*drop_last=*/false);
    int64_t next = 0;
    Progress progress("calibrating " + variant.observer + "/" + variant.weights,
                      static_cast<int64_t>(order.size()));
    CalibrateOptions options;
    options.on_batch = [&](int64_t seen) { progress.update(seen); };
    calibrate(
        prepared,
        [&]() -> std::optional<at::Tensor> {
          if (next == batches.size()) return std::nullopt;
          return batches.batch(next++).images;
        },
        options);
    progress.finish();
    return prepared;
  }

  void evaluate(const std::string& variant, const GraphModule& gm, const nlohmann::json& details) {
    Interpreter interpreter(gm);
    AccuracyOptions accuracy = s_.accuracy;
    accuracy.progress_label = variant + " accuracy";
    AccuracyCounts counts = evaluate_accuracy(
        [&](const at::Tensor& images) { return interpreter.run(images); }, test_, accuracy);
    int64_t size_bytes = serialized_size_bytes(gm);
    at::Tensor one_image = test_.image(0).unsqueeze(0);
    for (int64_t threads : s_.thread_counts) {
      LatencyOptions latency = s_.latency;
      latency.threads = static_cast<int>(threads);
      LatencyResult timing = measure_latency(
          variant,
          [&] {
            c10::InferenceMode no_autograd;
            interpreter.run(one_image);
          },
          latency);
      rows_.push_back({variant, to_megabytes(size_bytes), counts.top1_percent(),
                       counts.top5_percent(), timing.median_ms, static_cast<int>(threads)});
      std::fprintf(stderr, "%s: top-1 %.2f%%, %.3f MB, %.3f ms/image at %lld thread(s)\n",
                   variant.c_str(), counts.top1_percent(), to_megabytes(size_bytes),
                   timing.median_ms, static_cast<long long>(threads));
      nlohmann::json record = {
          {"experiment", s_.name},
          {"variant", variant},
          {"quantization", details},
          {"architecture", s_.architecture},
          {"checkpoint", s_.checkpoint},
          {"dataset", test_.describe()},
          {"examples", counts.examples},
          {"top1_percent", counts.top1_percent()},
          {"top5_percent", counts.top5_percent()},
          {"mean_loss", counts.mean_loss()},
          {"size_bytes", size_bytes},
          {"latency",
           {{"threads", threads},
            {"batch_size", 1},
            {"median_ms", timing.median_ms},
            {"mean_ms", timing.mean_ms},
            {"stddev_ms", timing.stddev_ms},
            {"p90_ms", timing.p90_ms},
            {"cv", timing.cv},
            {"repetitions_ms", timing.repetitions_ms}}},
          {"environment", to_json(environment_)}};
      records_ << record.dump() << "\n" << std::flush;
    }
  }

  SweepSettings s_;
  StateDict weights_;
  const Dataset& test_;
  const Dataset& calibration_;
  Environment environment_;
  std::string run_dir_;
  std::ofstream records_;
  std::vector<TableRow> rows_;
};

int sweep_main(const std::string& config_path) {
  Config config = Config::from_file(config_path);
  SweepSettings settings = read_settings(config);
  std::unique_ptr<Dataset> test = open_dataset(config, "data", "test");
  std::unique_ptr<Dataset> calibration =
      open_dataset(config, "data", config.get_string("calibration.split", "train"));
  config.reject_unknown_keys();
  Sweep(std::move(settings), *test, *calibration).run();
  return 0;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: bazel run //experiments:sweep -- EXPERIMENT.toml\n");
    return 2;
  }
  try {
    return qb::sweep_main(qb::resolve_user_path(argv[1]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
