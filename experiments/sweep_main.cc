// bazel run //experiments:sweep -- experiments/quickstart.toml
// Evaluates the variants an experiment file names on its data set and writes
// the comparison table (Markdown, CSV) and one JSON record per variant.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "eval/accuracy.h"
#include "eval/environment.h"
#include "eval/latency.h"
#include "eval/model_size.h"
#include "experiments/config.h"
#include "experiments/datasets.h"
#include "experiments/paths.h"
#include "experiments/table.h"
#include "models/checkpoint.h"
#include "models/zoo.h"
#include "quant/interpreter.h"

namespace qb {
namespace {

std::string run_id() {
  std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%d-%H%M%S", std::gmtime(&now));
  return buffer;
}

int sweep_main(const std::string& config_path) {
  Config config = Config::from_file(config_path);
  std::string name = config.get_string("name");
  std::string architecture = config.get_string("model.architecture");
  ZooOptions zoo;
  zoo.num_classes = config.get_int("model.num_classes", zoo.num_classes);
  if (config.has("model.in_channels")) zoo.in_channels = config.get_int("model.in_channels");
  std::string checkpoint = resolve_config_path(config.get_string("model.checkpoint"));
  AccuracyOptions accuracy;
  accuracy.batch_size = config.get_int("evaluation.batch_size", accuracy.batch_size);
  accuracy.limit = config.get_int("evaluation.limit", 0);
  LatencyOptions latency;
  latency.repetitions = static_cast<int>(config.get_int("latency.repetitions", latency.repetitions));
  latency.min_time_s = config.get_double("latency.min_time_s", latency.min_time_s);
  std::vector<int64_t> thread_counts = config.get_int_list("latency.threads", {{1}});
  std::string output_dir = resolve_config_path(config.get_string("output.dir"));
  std::unique_ptr<Dataset> test = open_dataset(config, "data", "test");
  config.reject_unknown_keys();
  for (int64_t threads : thread_counts) {
    if (threads < 1) throw config.error("latency.threads", "thread counts must be >= 1");
  }

  GraphModule fp32 = build_model(architecture, zoo);
  load_state_dict_strict(fp32.state_dict(), read_state_dict(checkpoint), checkpoint);
  Interpreter interpreter(fp32);
  std::cerr << "evaluating " << architecture << " (" << checkpoint << ") on " << test->describe()
            << "\n";
  accuracy.progress_label = "fp32 accuracy";
  AccuracyCounts counts = evaluate_accuracy(
      [&](const at::Tensor& images) { return interpreter.run(images); }, *test, accuracy);

  std::vector<TableRow> rows;
  at::Tensor one_image = test->image(0).unsqueeze(0);
  Environment environment = capture_environment(workspace_dir());
  std::string run_dir = output_dir + "/runs/" + run_id();
  std::filesystem::create_directories(run_dir);
  std::ofstream records(run_dir + "/records.jsonl");
  for (int64_t threads : thread_counts) {
    latency.threads = static_cast<int>(threads);
    std::cerr << "fp32 latency, " << threads << " thread(s)...\n";
    LatencyResult timing = measure_latency(
        "fp32",
        [&] {
          c10::InferenceMode no_autograd;
          interpreter.run(one_image);
        },
        latency);
    TableRow row{"fp32", to_megabytes(serialized_size_bytes(fp32)), counts.top1_percent(),
                 counts.top5_percent(), timing.median_ms, static_cast<int>(threads)};
    rows.push_back(row);
    nlohmann::json record = {
        {"experiment", name},
        {"variant", row.variant},
        {"architecture", architecture},
        {"checkpoint", checkpoint},
        {"dataset", test->describe()},
        {"examples", counts.examples},
        {"top1_percent", counts.top1_percent()},
        {"top5_percent", counts.top5_percent()},
        {"mean_loss", counts.mean_loss()},
        {"size_bytes", serialized_size_bytes(fp32)},
        {"latency",
         {{"threads", threads},
          {"batch_size", 1},
          {"median_ms", timing.median_ms},
          {"mean_ms", timing.mean_ms},
          {"stddev_ms", timing.stddev_ms},
          {"p90_ms", timing.p90_ms},
          {"cv", timing.cv},
          {"repetitions_ms", timing.repetitions_ms}}},
        {"environment", to_json(environment)}};
    records << record.dump() << "\n";
  }

  std::string markdown = markdown_table(rows);
  std::ofstream(run_dir + "/table.md") << markdown;
  std::ofstream(run_dir + "/table.csv") << csv_table(rows);
  std::printf("\n%s\nwritten to %s\n", markdown.c_str(), run_dir.c_str());
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
