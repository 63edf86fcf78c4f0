#include "experiments/sweep.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include "base/atomic_file.h"
#include "base/read_file.h"
#include "data/batches.h"
#include "data/hash.h"
#include "eval/accuracy.h"
#include "eval/environment.h"
#include "eval/isolated_latency.h"
#include "eval/onednn_isa.h"
#include "eval/model_size.h"
#include "eval/progress.h"
#include "experiments/error_message.h"
#include "experiments/latency_runner.h"
#include "experiments/paths.h"
#include "experiments/plot.h"
#include "experiments/points.h"
#include "experiments/record_log.h"
#include "experiments/run_tables.h"
#include "experiments/stats.h"
#include "experiments/sweep_data.h"
#include "experiments/table.h"
#include "experiments/trust_checks.h"
#include "experiments/tuning.h"
#include "experiments/tuning_record.h"
#include "models/checkpoint.h"
#include "models/torchscript_import.h"
#include "models/zoo.h"
#include "quant/bias_correction.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/eager.h"
#include "quant/equalization.h"
#include "quant/fp32_deploy.h"
#include "quant/fp32_fallback.h"
#include "quant/fuse.h"
#include "quant/inspect.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/prepare.h"

namespace qb {

namespace {

namespace fs = std::filesystem;

/// What a point's latency timed.
std::string timed_form(const Point& point) {
  std::string form;
  if (point.variant == "fp32") {
    form = "fp32 deployment form: BatchNorm folded, oneDNN convolutions on prepacked weights "
           "with fused relu, channels-last (quant/fp32_deploy.h)";
  } else if (point.variant == "fp32_as_built") {
    form = "fp32 as built: LibTorch's default kernels, NCHW";
  } else {
    form = "int8 on " + point.engine + ", channels-last";
  }
  if (point.runtime == "torchscript") {
    form += point.int8() ? "; exported to TorchScript, run frozen by LibTorch"
                         : "; exported to TorchScript, run by LibTorch after optimize_for_inference";
  }
  return form;
}

AccuracyRecord accuracy_record(const AccuracyCounts& counts) {
  AccuracyRecord a;
  a.examples = counts.examples;
  a.top1_percent = {counts.top1_percent()};
  a.top5_percent = {counts.top5_percent()};
  a.mean_loss = {counts.mean_loss()};
  a.top1 = summarize(a.top1_percent);
  a.top5 = summarize(a.top5_percent);
  return a;
}

/// A converted model with what was measured on it once for all its timing points.
struct Evaluated {
  GraphModule model;
  std::optional<AccuracyRecord> accuracy;
  int64_t size_bytes = 0;
  std::optional<TrustRecord> trust;  // int8 only
  std::optional<CalibrationRecord> calibration;
};

class Runner {
 public:
  Runner(const Experiment& e, const Dataset& evaluation, const Dataset& calibration,
         const SweepOptions& options)
      : e_(e),
        evaluation_source_(evaluation),
        calibration_source_(calibration),
        options_(options),
        run_dir_(e.output_dir + "/" + options.run),
        environment_(capture_environment(workspace_dir())) {}

  SweepSummary run() {
    std::vector<Point> points = shard(expand(e_), options_.shard_k, options_.shard_n);
    check(points);
    SweepSummary summary;
    summary.points = static_cast<int>(points.size());
    summary.run_dir = run_dir_;
    if (options_.check_only) {
      std::fprintf(stderr, "%s: the experiment checks out: %d points, models load and run on the data\n",
                   e_.name.c_str(), summary.points);
      return summary;
    }
    claim_run_dir();
    RecordLog log(run_dir_ + "/records.jsonl");

    std::vector<std::pair<Point, std::string>> todo;
    for (const Point& point : points) {
      std::string hash = config_hash(point_config(e_, point, checkpoint_sha256_));
      if (!options_.force && log.contains(hash, options_.part)) {
        ++summary.skipped;
      } else {
        todo.emplace_back(point, hash);
      }
    }
    const std::string part = options_.part == RecordPart::kAll ? "" : " (" + part_name(options_.part) + " part)";
    std::fprintf(stderr, "%s%s: %d points%s, %d already recorded in %s, %zu to measure\n",
                 e_.name.c_str(), part.c_str(), summary.points,
                 options_.shard_n > 1 ? (" in shard " + std::to_string(options_.shard_k) + "/" +
                                         std::to_string(options_.shard_n))
                                            .c_str()
                                      : "",
                 summary.skipped, run_dir_.c_str(), todo.size());
    if (!todo.empty()) {
      if (times()) {
        latency_.emplace(options_.latency_probe.empty() ? find_latency_probe("") : options_.latency_probe,
                         run_dir_, e_.contention);
      }
      int64_t most_samples = 0;
      for (const auto& [point, hash] : todo) most_samples = std::max(most_samples, point.samples);
      data_.emplace(e_, evaluation_source_, calibration_source_, most_samples, evaluates_accuracy());
      save_experiment_copy();
    }
    std::vector<std::string> failures;
    for (size_t i = 0; i < todo.size(); ++i) {
      const auto& [point, hash] = todo[i];
      const std::string name = point.model + " " + point.label() + ", " +
                               std::to_string(point.threads) + " thread(s), batch " +
                               std::to_string(point.batch_size);
      std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, todo.size(), name.c_str());
      // The ISA caps the measuring process only: accuracy is computed here, at the CPU's best.
      if (times() && !point.isa.empty() && !cpu_has_isa(point.isa)) {
        std::fprintf(stderr, "  skipped: this CPU lacks %s (see /proc/cpuinfo flags)\n", point.isa.c_str());
        ++summary.unsupported;
        continue;
      }
      try {
        log.append(measure(point, hash));
        ++summary.measured;
      } catch (const std::exception& e) {
        // One point's failure (a kernel the engine refuses, say) must not cost the others; it
        // is recorded, reported at the end, and tried again by the next run.
        const std::string message = error_message(e);
        std::fprintf(stderr, "  FAILED: %s\n", message.c_str());
        failures.push_back(name + ": " + message);
        current_.reset();
        Record failure;
        failure.config_hash = hash;
        failure.experiment = e_.name;
        failure.label = point.label();
        failure.point = point;
        failure.part = options_.part;
        failure.error = message;
        failure.provenance.environment.machine = environment_;
        log.append(failure);
      }
      write_run_tables(run_dir_, log.records());
    }
    summary.failed = static_cast<int>(failures.size());
    if (todo.empty()) write_run_tables(run_dir_, log.records());
    std::printf("\n%s\nwritten to %s\n", markdown_table(table_rows(log.records())).c_str(),
                run_dir_.c_str());
    for (const std::string& failure : failures) std::fprintf(stderr, "failed: %s\n", failure.c_str());
    return summary;
  }

 private:
  /// Whether this run times points (the whole point or its latency part), and whether it
  /// measures accuracy (the experiment asks for it, and this is not the latency part).
  bool times() const { return options_.part != RecordPart::kAccuracy; }
  bool evaluates_accuracy() const { return e_.evaluation.accuracy && options_.part != RecordPart::kLatency; }

  /// Everything about the experiment that can be known before work, checked cheaply and once
  /// (the reader checked the file's syntax, keys, types and ranges): each model builds and
  /// takes its weights, runs on one image of the data giving a logit per class, and the
  /// calibration split holds the largest calibration size.
  void check(const std::vector<Point>& points) {
    check_run_name(options_.run);
    // A TorchScript file holds the weights, so its hash stands where the checkpoint's would.
    const std::string& weights_file =
        e_.model.torchscript.empty() ? e_.model.checkpoint : e_.model.torchscript;
    checkpoint_sha256_ = weights_file.empty() ? "" : file_sha256(weights_file);
    if (!e_.model.torchscript.empty()) import_model();
    if (evaluation_source_.size() == 0) throw std::invalid_argument(evaluation_source_.describe() + ": no examples");
    const at::Tensor image = evaluation_source_.image(0).unsqueeze(0);
    at::NoGradGuard no_grad;
    for (const std::string& architecture : e_.model.architectures) {
      const std::string where = e_.model.torchscript.empty() ? "model " + architecture : "model.torchscript";
      const GraphModule& model = fp32_model(architecture);  // builds it and loads its weights, once
      at::Tensor logits;
      try {
        logits = Interpreter(model).run(image);
      } catch (const std::exception& error) {
        throw std::invalid_argument(where + " cannot run on " + evaluation_source_.describe() +
                                    " images of shape " + c10::str(image.sizes()) + ": " + error_message(error));
      }
      for (const Dataset* data : {&evaluation_source_, &calibration_source_}) {
        if (logits.dim() != 2 || logits.size(1) < data->num_classes()) {
          throw std::invalid_argument(
              (e_.model.torchscript.empty() ? "model.num_classes: model " + architecture : where) + " gives " +
              std::to_string(logits.dim() == 2 ? logits.size(1) : logits.numel()) + " logits, but " +
              data->describe() + " has " + std::to_string(data->num_classes()) + " classes");
        }
      }
    }
    int64_t most_samples = 0;
    for (const Point& point : points) most_samples = std::max(most_samples, point.samples);
    check_calibration_size(calibration_source_, most_samples);
  }

  /// A run directory holds one experiment's records: run.json names the experiment (and its
  /// file's hash) that writes it, or the records do in a directory older than run.json; another
  /// experiment is refused unless --force.
  void claim_run_dir() const {
    const std::string path = run_dir_ + "/run.json";
    std::string name;
    std::string sha256;
    if (fs::exists(path)) {
      std::ifstream in(path);
      const nlohmann::json owner = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (owner.is_object()) {
        name = owner.value("experiment", "");
        sha256 = owner.value("experiment_sha256", "");
      }
    } else if (fs::exists(run_dir_ + "/records.jsonl")) {
      const std::vector<Record> records = read_typed_records(run_dir_ + "/records.jsonl");
      if (!records.empty()) {
        name = records.front().experiment;
        sha256 = records.front().provenance.experiment_sha256;
      }
    }
    if (!name.empty() && name != e_.name && !options_.force) {
      throw std::invalid_argument(run_dir_ + " holds the records of experiment '" + name + "', not '" + e_.name +
                                  "': give this sweep another --run or [output] dir (or --force to mix them)");
    }
    if (name == e_.name && !sha256.empty() && sha256 != e_.file_sha256) {
      std::fprintf(stderr, "note: %s changed since %s was last written; its points resume by configuration\n",
                   e_.file.c_str(), run_dir_.c_str());
    }
    if (name == e_.name && sha256 == e_.file_sha256) return;
    fs::create_directories(run_dir_);
    write_file_atomically(path, nlohmann::json{{"experiment", e_.name}, {"experiment_sha256", e_.file_sha256}}.dump(2) + "\n");
  }

  void save_experiment_copy() const {
    fs::create_directories(run_dir_);
    const std::vector<std::string> skipped = evaluation_source_.skipped_files();
    if (!skipped.empty()) {
      std::string list;
      for (const std::string& file : skipped) list += file + "\n";
      write_file_atomically(run_dir_ + "/skipped_files.txt", list);
      std::fprintf(stderr, "note: the data reader skipped %zu undecodable file(s) (skip_corrupt), listed in %s\n",
                   skipped.size(), (run_dir_ + "/skipped_files.txt").c_str());
    }
    write_file_atomically(run_dir_ + "/experiment.toml", read_file(e_.file).value_or(""));
  }

  // --- models -----------------------------------------------------------------------------

  /// Imports the model.torchscript file once, as the fp32 model every point starts from.
  void import_model() {
    try {
      fp32_.emplace(e_.model.architectures.at(0), import_torchscript(e_.model.torchscript));
    } catch (const ImportError& error) {
      throw std::invalid_argument("model.torchscript: cannot import " + std::string(error.what()));
    }
  }

  GraphModule build(const std::string& architecture, bool quantizable) {
    ZooOptions zoo;
    zoo.num_classes = e_.model.num_classes;
    zoo.in_channels = e_.model.in_channels;
    zoo.seed = e_.model.init_seed;
    zoo.quantizable = quantizable;
    GraphModule gm = build_model(architecture, zoo);
    if (!e_.model.checkpoint.empty()) {
      if (!weights_) weights_ = read_state_dict(e_.model.checkpoint);
      load_state_dict_strict(gm.state_dict(), *weights_, e_.model.checkpoint);
    }
    return gm;
  }

  const GraphModule& fp32_model(const std::string& architecture) {
    auto it = fp32_.find(architecture);
    if (it == fp32_.end()) it = fp32_.emplace(architecture, build(architecture, false)).first;
    return it->second;
  }

  /// `gm`'s accuracy on `data`, decoded by `workers` loader threads; `label` heads the progress
  /// line ("" for none).
  AccuracyCounts accuracy_on(const GraphModule& gm, const Dataset& data, const std::string& label, int workers) {
    Interpreter interpreter(gm);
    AccuracyOptions options;
    options.batch_size = e_.evaluation.batch_size;
    options.workers = workers;
    options.progress_label = label;
    return evaluate_accuracy([&](const at::Tensor& images) { return interpreter.run(images); }, data, options);
  }

  AccuracyCounts accuracy_of(const GraphModule& gm, const std::string& label) {
    return accuracy_on(gm, data_->evaluation(), label + " accuracy",
                       data_->evaluation_cached() ? 1 : e_.evaluation.workers);
  }

  /// The float graph a graph point is prepared from: the fp32 model, or for equalization its
  /// fused form with cross-layer equalization applied (ReLU6 between equalized convolutions
  /// made ReLU, as DFQ does; quant/equalization.h).
  GraphModule float_graph(const Point& point, const QConfigMapping& mapping) {
    if (point.correction != "equalization") return fp32_model(point.model);
    EqualizationOptions options;
    options.replace_relu6 = true;
    return fuse(equalize(fuse(fp32_model(point.model), mapping), options), mapping);
  }

  /// Prepares with `mapping` and calibrates on seed's subset, then corrects biases when the
  /// point asks.
  GraphModule calibrated(const Point& point, uint64_t seed, const QConfigMapping& mapping) {
    if (point.variant == "eager") {
      GraphModule prepared =
          prepare_eager(fuse_modules(build(point.model, true), fuse_model_groups(point.model)), mapping);
      if (point.samples > 0) calibrate_on(prepared, point, seed);
      return prepared;
    }
    const GraphModule float_model = float_graph(point, mapping);
    GraphModule prepared = prepare(float_model, mapping);
    if (point.samples == 0) return prepared;
    const std::vector<at::Tensor> batches = calibrate_on(prepared, point, seed);
    if (point.correction != "bias_correction") return prepared;
    BiasCorrectionOptions correction;
    correction.convert = convert_options(point);
    std::optional<Progress> progress_layers;  // its total is known at the first layer
    correction.on_layer = [&](size_t done, size_t total) {
      if (!progress_layers) progress_layers.emplace("bias correction, layers", static_cast<int64_t>(total));
      progress_layers->update(static_cast<int64_t>(done));
    };
    GraphModule result = correct_bias(prepared, fuse(float_model, mapping), batches, correction);
    if (progress_layers) progress_layers->finish();
    return result;
  }

  /// Feeds seed's calibration subset through `prepared`; returns the batches.
  std::vector<at::Tensor> calibrate_on(const GraphModule& prepared, const Point& point, uint64_t seed) {
    std::vector<at::Tensor> batches = data_->calibration_batches(seed, point.samples);
    Progress progress("calibrating (seed " + std::to_string(seed) + ")", point.samples);
    CalibrateOptions options;
    options.on_batch = [&](int64_t seen) { progress.update(seen); };
    calibrate(prepared, batches_of(batches), options);
    progress.finish();
    return batches;
  }

  ConvertOptions convert_options(const Point& point) const {
    ConvertOptions options;
    options.engine = point.engine;
    options.allow_uncalibrated = point.samples == 0;
    return options;
  }

  /// Prepares, calibrates on seed's subset, corrects, and converts.
  GraphModule quantize(const Point& point, uint64_t seed, const QConfigMapping& mapping) {
    GraphModule prepared = calibrated(point, seed, mapping);
    GraphModule int8 = point.variant == "eager" ? convert_eager(prepared, convert_options(point))
                                                : convert(prepared, convert_options(point));
    // int8 runs channels-last, the layout oneDNN's int8 convolutions use (bit-identical results).
    return to_channels_last(int8);
  }
  GraphModule quantize(const Point& point, uint64_t seed) { return quantize(point, seed, point_mapping(e_, point)); }

  /// The float model whose node names line up with the converted one's (quant/inspect.h): what
  /// prepare or prepare_eager was given, after fusion.
  GraphModule sqnr_reference(const Point& point) {
    if (point.variant == "eager") {
      return fuse_modules(build(point.model, true), fuse_model_groups(point.model));
    }
    const QConfigMapping mapping = point_mapping(e_, point);
    return fuse(float_graph(point, mapping), mapping);
  }

 public:
  /// --tune: per-layer sensitivity and the fp32 fallback of every [tuning] point
  /// (experiments/tuning.h), into the run directory's tuning/ folder; points whose results are
  /// there already are skipped, and a sensitivity analysis cut short resumes at its next layer.
  SweepSummary tune() {
    if (!e_.tuning.enabled) {
      throw std::invalid_argument(e_.file + ": --tune needs a [tuning] table (docs/experiments.md, \"Accuracy-aware "
                                  "quantization\")");
    }
    std::vector<Point> points;
    std::set<std::string> keys;
    for (const Point& point : expand(e_)) {
      if (point.variant != "graph" || point.samples <= 0) continue;
      const auto& rules = e_.tuning.points;
      if (!rules.empty() && std::none_of(rules.begin(), rules.end(), [&](const nlohmann::json& rule) {
            return matches(rule, point);
          })) {
        continue;
      }
      if (keys.insert(point.model_key()).second) points.push_back(point);
    }
    if (points.empty()) throw std::invalid_argument("tuning.points: no calibrated graph point of the sweep matches");
    check(points);
    SweepSummary summary;
    summary.points = static_cast<int>(points.size());
    summary.run_dir = run_dir_;
    if (options_.check_only) return summary;
    claim_run_dir();
    int64_t most_samples = 0;
    for (const Point& point : points) most_samples = std::max(most_samples, point.samples);
    data_.emplace(e_, evaluation_source_, calibration_source_, most_samples, /*evaluates_accuracy=*/true);
    save_experiment_copy();
    latency_.emplace(options_.latency_probe.empty() ? find_latency_probe("") : options_.latency_probe, run_dir_,
                     e_.contention);
    fs::create_directories(tuning_dir());
    tuning_set_ = data_->tuning_set(e_.tuning.samples, e_.tuning.seed);
    const Dataset& evaluation = data_->evaluation();
    const int64_t n = e_.tuning.sensitivity_samples;
    sensitivity_set_ = std::make_unique<Subset>(
        evaluation, n == 0 || n >= evaluation.size()
                        ? first_n(evaluation.size(), evaluation.size(), e_.tuning.sensitivity_seed)
                        : first_n(evaluation.size(), n, e_.tuning.sensitivity_seed));
    for (size_t i = 0; i < points.size(); ++i) {
      std::fprintf(stderr, "[%zu/%zu] tuning %s %s\n", i + 1, points.size(), points[i].model.c_str(),
                   points[i].label().c_str());
      try {
        if (tune_point(points[i])) {
          ++summary.measured;
        } else {
          ++summary.skipped;
        }
      } catch (const std::exception& error) {
        std::fprintf(stderr, "  FAILED: %s\n", error_message(error).c_str());
        ++summary.failed;
      }
    }
    return summary;
  }

 private:
  std::string tuning_dir() const { return run_dir_ + "/tuning"; }

  /// A file name for a point: its model and label with anything but letters, digits and ._=-
  /// made '_'.
  static std::string slug(const Point& point) {
    std::string text = point.model + "." + point.label();
    for (char& c : text) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '=' && c != '-') c = '_';
    }
    return text;
  }

  /// `path` relative to the workspace when it is inside it, as a config file would write it
  /// (resolve_config_path reads it back): records then do not name this machine's checkout.
  static std::string as_config_path(const std::string& path) {
    const fs::path relative = fs::path(path).lexically_relative(workspace_dir());
    return relative.empty() || *relative.begin() == ".." ? path : relative.string();
  }

  /// Top-1 on one of the tuning's in-memory subsets.
  double top1_on(const GraphModule& gm, const Dataset& data, const std::string& label) {
    return accuracy_on(gm, data, label, /*workers=*/1).top1_percent();
  }

  /// The JSON lines of a tuning file whose config_hash is `hash`.
  std::vector<nlohmann::json> tuning_lines(const std::string& file, const std::string& hash) const {
    std::vector<nlohmann::json> lines;
    std::ifstream in(tuning_dir() + "/" + file);
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      // A line cut short by an interrupted run is left out: that layer is measured again.
      if (json.is_object() && json.value("config_hash", "") == hash) lines.push_back(json);
    }
    return lines;
  }

  void append_tuning_line(const std::string& file, const nlohmann::json& json) const {
    append_durably(tuning_dir() + "/" + file, json.dump() + "\n");
  }

  /// How the probe times `model` (saved under `key`) as `point` says: its runtime, a batch of
  /// evaluation images, the latency settings, threads, engine and ISA.
  ProbeRequest probe_request(const Point& point, const std::string& name, const std::string& key,
                             const GraphModule& model) {
    ProbeRequest request;
    request.name = name;
    request.model = latency_->model_file(key, model, point.runtime);
    request.runtime = point.runtime;
    request.input = latency_->input_file("batch" + std::to_string(point.batch_size),
                                         [&] { return data_->evaluation_batch(point.batch_size); });
    request.latency = e_.latency;
    request.latency.threads = static_cast<int>(point.threads);
    request.engine = point.int8() ? point.engine : "";
    request.isa = point.isa;
    return request;
  }

  /// A tuned point's sensitivity: its layers most sensitive first, and the all-int8 and fp32
  /// models' scores on the same examples.
  struct Sensitivity {
    std::vector<LayerSensitivity> ranked;
    ModelScore int8;
    ModelScore fp32;
  };

  /// Measures every layer of the calibrated `prepared` (resuming from the layers sensitivity.jsonl
  /// holds under `hash`), writes the ranked table and the plot beside the mapping, prints the
  /// top 10.
  Sensitivity measure_sensitivity(const Point& point, const GraphModule& prepared,
                                  const std::vector<QuantizedLayer>& layers, const std::string& hash,
                                  const std::string& base) {
    const GraphModule& fp32 = fp32_model(point.model);
    // Output SQNR against fp32 on the first images of the sensitivity subset.
    std::vector<int64_t> first;
    for (int64_t i = 0; i < std::min<int64_t>(16, sensitivity_set_->size()); ++i) first.push_back(i);
    const at::Tensor sqnr_input = make_batch(*sensitivity_set_, first).images;
    at::Tensor fp32_output;
    {
      at::NoGradGuard no_grad;
      fp32_output = Interpreter(fp32).run(sqnr_input);
    }
    const ScoreFn score = [&](const GraphModule& converted) {
      at::NoGradGuard no_grad;
      const GraphModule model = to_channels_last(converted);
      ModelScore s;
      s.top1_percent = top1_on(model, *sensitivity_set_, "");  // the layer progress line suffices
      s.sqnr_db = sqnr_db(fp32_output, Interpreter(model).run(sqnr_input));
      return s;
    };
    Sensitivity result;
    result.fp32.top1_percent = top1_on(fp32, *sensitivity_set_, "fp32");
    result.fp32.sqnr_db = std::numeric_limits<double>::infinity();
    result.int8 = score(convert(prepared, convert_options(point)));

    SensitivityOptions options;
    options.convert = convert_options(point);
    for (const nlohmann::json& line : options_.force ? std::vector<nlohmann::json>{}
                                                     : tuning_lines("sensitivity.jsonl", hash)) {
      LayerSensitivity s = LayerSensitivity::from_json(line.at("sensitivity"));
      options.done[s.layer] = s;
    }
    if (!options.done.empty()) std::fprintf(stderr, "  %zu layers measured before\n", options.done.size());
    Progress progress("sensitivity, layers", static_cast<int64_t>(layers.size()));
    options.on_layer = [&](const LayerSensitivity& s, size_t done, size_t total) {
      append_tuning_line("sensitivity.jsonl", {{"config_hash", hash},
                                               {"experiment", e_.name},
                                               {"model", point.model},
                                               {"label", point.label()},
                                               {"sensitivity", s.to_json()}});
      char detail[160];
      std::snprintf(detail, sizeof detail, "%s: top-1 %.2f%% with it in fp32", s.layer.c_str(), s.fp32_only.top1_percent);
      progress.update(static_cast<int64_t>(done), detail);
    };
    result.ranked = ranked(layer_sensitivity(prepared, layers, score, options), result.int8, sensitivity_set_->size());
    progress.finish();

    write_file_atomically(base + ".sensitivity.md",
                          "# Layer sensitivity: " + point.model + " " + point.label() + "\n\nOn " +
                              sensitivity_set_->describe() + ". Most sensitive first.\n\n" +
                              sensitivity_table(result.ranked, result.int8, result.fp32));
    try {
      render_svg(sensitivity_plot(point.model + " " + point.label(), result.ranked, result.int8),
                 base + ".sensitivity.svg");
    } catch (const std::runtime_error& error) {
      std::fprintf(stderr, "  note: no sensitivity plot: %s\n", error.what());
    }
    std::printf("\nlayer sensitivity, %s %s (most sensitive first; int8 top-1 %.2f%%, fp32 %.2f%%):\n",
                point.model.c_str(), point.label().c_str(), result.int8.top1_percent, result.fp32.top1_percent);
    for (size_t i = 0; i < std::min<size_t>(10, result.ranked.size()); ++i) {
      const LayerSensitivity& s = result.ranked[i];
      std::printf("  %2zu. %-28s %-10s with it in fp32: top-1 %.2f%%, output SQNR %.2f dB; alone in int8: "
                  "output SQNR %.2f dB\n",
                  i + 1, s.layer.c_str(), s.kind.c_str(), s.fp32_only.top1_percent, s.fp32_only.sqnr_db,
                  s.int8_only.sqnr_db);
    }
    return result;
  }

  /// Tunes one point; false when its results were recorded before.
  bool tune_point(const Point& point) {
    nlohmann::json config = point_config(e_, point, checkpoint_sha256_);
    config["sensitivity"] = {{"samples", e_.tuning.sensitivity_samples}, {"seed", e_.tuning.sensitivity_seed},
                             {"data_fingerprint", hex64(sensitivity_set_->fingerprint())}};
    const std::string sensitivity_hash = config_hash(config);
    config["tuning"] = {{"max_drop", e_.tuning.max_drop ? nlohmann::json(*e_.tuning.max_drop) : nlohmann::json()},
                        {"max_relative_drop", e_.tuning.max_relative_drop ? nlohmann::json(*e_.tuning.max_relative_drop)
                                                                          : nlohmann::json()},
                        {"samples", e_.tuning.samples},
                        {"seed", e_.tuning.seed},
                        {"max_layers", e_.tuning.max_layers}};
    const std::string fallback_hash = config_hash(config);
    if (!options_.force && !tuning_lines("fallback.jsonl", fallback_hash).empty()) {
      std::fprintf(stderr, "  recorded before in %s/fallback.jsonl\n", tuning_dir().c_str());
      return false;
    }
    const auto start = std::chrono::steady_clock::now();
    const QConfigMapping mapping = point_mapping(e_, point);
    const uint64_t seed = e_.calibration.seeds.at(0);
    const GraphModule& fp32 = fp32_model(point.model);
    const GraphModule prepared = calibrated(point, seed, mapping);
    const std::string base = tuning_dir() + "/" + slug(point);
    const std::vector<QuantizedLayer> layers = quantized_layers(fp32, prepared);
    const Sensitivity sensitivity = measure_sensitivity(point, prepared, layers, sensitivity_hash, base);
    const std::vector<LayerSensitivity>& order = sensitivity.ranked;

    // The greedy fallback, each step prepared from scratch with its mapping as a sweep would;
    // the step without fallback is the model already calibrated, and the last step's model is
    // the tuned one.
    std::map<std::string, QuantizedLayer> by_name;
    for (const QuantizedLayer& layer : layers) by_name.emplace(layer.name(), layer);
    std::vector<QuantizedLayer> candidates;
    for (const LayerSensitivity& s : order) candidates.push_back(by_name.at(s.layer));
    const GraphModule int8 = to_channels_last(convert(prepared, convert_options(point)));
    GraphModule tuned = int8;
    const double fp32_tuning = top1_on(fp32, *tuning_set_, "fp32 tuning");
    const double floor = accuracy_floor(fp32_tuning, e_.tuning.max_drop, e_.tuning.max_relative_drop);
    std::fprintf(stderr, "  fallback: fp32 top-1 on the tuning subset %.2f%%, floor %.2f%%\n", fp32_tuning, floor);
    const FallbackResult fallback = search_fallback(
        candidates, floor,
        [&](const std::vector<QuantizedLayer>& fp32_layers) {
          tuned = fp32_layers.empty() ? int8 : quantize(point, seed, with_fp32_layers(mapping, fp32_layers));
          const double top1 = top1_on(tuned, *tuning_set_, "tuning");
          std::fprintf(stderr, "  %zu layer(s) in fp32%s: top-1 %.2f%% on the tuning subset\n", fp32_layers.size(),
                       fp32_layers.empty() ? "" : (" (+" + fp32_layers.back().name() + ")").c_str(), top1);
          return top1;
        },
        e_.tuning.max_layers);
    const double tuned_top1 = accuracy_of(tuned, point.label() + " tuned").top1_percent();
    const double int8_top1 = accuracy_of(int8, point.label()).top1_percent();
    const double fp32_top1 = accuracy_of(fp32, point.model + " fp32").top1_percent();
    // What the fallback costs in latency: both models timed like the point, one after the other.
    const TimedPoint int8_time =
        latency_->time_until_quiet(probe_request(point, point.model + " " + point.model_key(), point.model_key(), int8));
    const std::string tuned_key = point.model_key() + " tuned";
    const TimedPoint tuned_time =
        latency_->time_until_quiet(probe_request(point, point.model + " " + tuned_key, tuned_key, tuned));

    const std::string mapping_file = base + ".fallback.toml";
    std::string names;
    for (const QuantizedLayer& layer : fallback.fp32_layers) names += (names.empty() ? "" : ", ") + layer.name();
    char figures[256];
    std::snprintf(figures, sizeof figures,
                  "# Tuning subset top-1 %.2f%% (floor %.2f%%, fp32 %.2f%%); evaluation set top-1 %.2f%% "
                  "(untuned int8 %.2f%%, fp32 %.2f%%).\n",
                  fallback.steps.back().top1_percent, floor, fp32_tuning, tuned_top1, int8_top1, fp32_top1);
    write_file_atomically(mapping_file,
                          "# Written by `sweep --tune` for " + point.model + " " + point.label() + " of " +
                              as_config_path(e_.file) + "\n# ([tuning] config hash " + fallback_hash +
                              "). Name it under [mappings] to sweep the tuned model.\n# Keeps " +
                              std::to_string(fallback.fp32_layers.size()) + " layer(s) in fp32: " +
                              (names.empty() ? "none" : names) + ".\n" + figures +
                              overrides_to_toml(with_fp32_layers(e_.mappings.at(point.mapping), fallback.fp32_layers)));

    FallbackRecord record;
    record.config_hash = fallback_hash;
    record.sensitivity_config_hash = sensitivity_hash;
    record.experiment = e_.name;
    record.model = point.model;
    record.label = point.label();
    record.point = point;
    record.max_drop = e_.tuning.max_drop;
    record.max_relative_drop = e_.tuning.max_relative_drop;
    record.tuning_samples = e_.tuning.samples;
    record.tuning_seed = e_.tuning.seed;
    record.max_layers = e_.tuning.max_layers;
    record.layers = static_cast<int64_t>(order.size());
    for (const QuantizedLayer& layer : fallback.fp32_layers) record.fp32_layers.push_back(layer.name());
    record.met = fallback.met;
    record.tuning = {tuning_set_->size(), fp32_tuning, fallback.steps.front().top1_percent,
                     fallback.steps.back().top1_percent};
    record.floor_percent = floor;
    record.steps = fallback.steps;
    record.evaluation = {data_->evaluation().size(), fp32_top1, int8_top1, tuned_top1};
    record.sensitivity_examples = sensitivity_set_->size();
    record.sensitivity_int8 = sensitivity.int8;
    record.sensitivity_fp32 = sensitivity.fp32;
    record.sensitivity_table = as_config_path(base + ".sensitivity.md");
    record.threads = point.threads;
    record.batch_size = point.batch_size;
    record.isa = point.isa;
    record.onednn_isa = tuned_time.result.onednn_isa;
    record.runtime = point.runtime;
    record.int8_median_ms = int8_time.result.timing.median_ms;
    record.tuned_median_ms = tuned_time.result.timing.median_ms;
    record.latency_noisy = int8_time.noisy || tuned_time.noisy;
    record.mapping_file = as_config_path(mapping_file);
    record.experiment_file = e_.file;
    record.experiment_sha256 = e_.file_sha256;
    record.checkpoint_sha256 = checkpoint_sha256_;
    record.git_revision = environment_.git_revision;
    record.date_utc = utc_now();
    record.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    append_tuning_line("fallback.jsonl", record.to_json());
    std::printf("fallback: %zu of %zu layers in fp32 (%s); top-1 %.2f%% on the tuning subset (floor %.2f%%), "
                "%.2f%% on the evaluation set (int8 %.2f%%, fp32 %.2f%%); latency %.3f ms against int8's %.3f "
                "(%.2fx)\nmapping: %s\n",
                fallback.fp32_layers.size(), order.size(), fallback.met ? "budget met" : "BUDGET NOT MET",
                fallback.steps.back().top1_percent, floor, tuned_top1, int8_top1, fp32_top1, record.tuned_median_ms,
                record.int8_median_ms, record.tuned_over_int8(), mapping_file.c_str());
    return true;
  }

  /// The trust checks of the accuracy part: precision counts, per-layer SQNR on a few
  /// calibration batches, and a save/load round trip's accuracy.
  TrustRecord trust_checks(const Point& point, const GraphModule& int8, uint64_t seed,
                           const std::optional<AccuracyRecord>& accuracy) {
    std::vector<at::Tensor> batches;
    if (options_.part != RecordPart::kLatency && e_.trust.sqnr_batches > 0 && point.samples > 0) {
      batches = data_->calibration_batches(seed, point.samples);
      batches.resize(std::min<size_t>(batches.size(), static_cast<size_t>(e_.trust.sqnr_batches)));
    }
    TrustRecord trust = int8_trust_checks(int8, batches.empty() ? int8 : sqnr_reference(point), batches);
    if (e_.trust.round_trip && accuracy) {
      check_round_trip(trust, int8, run_dir_ + "/round_trip." + std::to_string(::getpid()) + ".qbm",
                       accuracy->top1_percent.at(0), [&](const GraphModule& reloaded) {
                         return accuracy_of(reloaded, point.label() + " reloaded").top1_percent();
                       });
    }
    return trust;
  }

  /// The model of a point, measured once for all its thread counts and batch sizes.
  const Evaluated& evaluated(const Point& point) {
    const std::string key = point.model_key();
    if (current_ && current_key_ == key) return *current_;
    current_.reset();  // the previous model is not needed again: points are in sweep order
    auto result = std::make_unique<Evaluated>();
    if (!point.int8()) {
      result->model = point.variant == "fp32" ? to_fp32_deploy(fp32_model(point.model))
                                              : fp32_model(point.model);
      if (evaluates_accuracy()) {
        result->accuracy = accuracy_record(accuracy_of(result->model, point.model + " " + point.variant));
      }
    } else {
      // Without calibration the seed changes nothing: one model stands for all seeds.
      std::vector<uint64_t> seeds = point.samples > 0 ? e_.calibration.seeds
                                                      : std::vector<uint64_t>{e_.calibration.seeds[0]};
      AccuracyRecord accuracy;
      accuracy.seeds = seeds;
      for (size_t i = 0; i < seeds.size(); ++i) {
        // The latency part times the first seed's model only.
        if (i > 0 && !evaluates_accuracy()) break;
        GraphModule int8 = quantize(point, seeds[i]);
        if (evaluates_accuracy()) {
          AccuracyCounts counts = accuracy_of(int8, point.label() + " seed " + std::to_string(seeds[i]));
          accuracy.top1_percent.push_back(counts.top1_percent());
          accuracy.top5_percent.push_back(counts.top5_percent());
          accuracy.mean_loss.push_back(counts.mean_loss());
          accuracy.examples = counts.examples;
        }
        // The first seed's model is the one timed, sized and checked.
        if (i == 0) result->model = std::move(int8);
      }
      if (evaluates_accuracy()) {
        accuracy.top1 = summarize(accuracy.top1_percent);
        accuracy.top5 = summarize(accuracy.top5_percent);
        result->accuracy = accuracy;
      }
      CalibrationRecord calibration;
      calibration.split = e_.calibration.split;
      calibration.subset = e_.calibration.subset;
      calibration.samples = point.samples;
      calibration.seeds = seeds;
      calibration.data = calibration_source_.describe();
      if (point.samples > 0) {
        for (uint64_t seed : seeds) calibration.subset_fingerprints[std::to_string(seed)] = data_->calibration_fingerprint(seed);
        calibration.overlapping_examples = data_->overlap(seeds[0]);
      }
      calibration.allow_overlap = e_.calibration.allow_overlap;
      result->calibration = calibration;
      result->trust = trust_checks(point, result->model, seeds[0], result->accuracy);
    }
    result->size_bytes = serialized_size_bytes(result->model);
    current_ = std::move(result);
    current_key_ = key;
    return *current_;
  }

  /// The images an int8 point's output SQNR is computed on: evaluation images, or calibration
  /// images when the sweep measures no accuracy and the point was calibrated.
  at::Tensor sqnr_images(const Point& point) {
    constexpr int64_t kImages = 16;
    if (!e_.evaluation.accuracy && point.samples > 0) {
      return at::cat(data_->calibration_batches(e_.calibration.seeds[0], std::min(kImages, point.samples)));
    }
    return data_->evaluation_batch(std::min(kImages, data_->evaluation().size()));
  }

  /// Times the point in a fresh process, into `record`: its latency, Google Benchmark's report,
  /// the ISA oneDNN dispatched to, and for int8 the output SQNR.
  void time_point(const Point& point, const Evaluated& model, Record& record) {
    ProbeRequest request = probe_request(point,
                                         point.model + " " + point.label() + "/threads:" +
                                             std::to_string(point.threads) + "/batch:" + std::to_string(point.batch_size),
                                         point.model_key(), model.model);
    if (point.int8()) {
      request.reference_model = latency_->model_file("fp32 " + point.model, fp32_model(point.model));
      const bool calibration_images = !e_.evaluation.accuracy && point.samples > 0;
      request.sqnr_input = latency_->input_file(calibration_images ? "sqnr_calibration" : "sqnr_evaluation",
                                                [&] { return sqnr_images(point); });
    }
    const TimedPoint timed = latency_->time_until_quiet(request);
    const LatencyResult& timing = timed.result.timing;
    if (timed.result.output_sqnr_db) {
      TrustRecord& trust = record.trust ? *record.trust : record.trust.emplace();
      trust.output_sqnr_db = *timed.result.output_sqnr_db;
      trust.broken_below_db = e_.trust.broken_below_db;
      trust.broken = *trust.output_sqnr_db < e_.trust.broken_below_db;
    }
    record.google_benchmark = timing.google_benchmark;
    record.provenance.environment.onednn_isa = timed.result.onednn_isa;

    LatencyRecord& latency = record.latency.emplace();
    latency.threads = point.threads;
    latency.batch_size = point.batch_size;
    latency.median_ms = timing.median_ms;
    latency.mean_ms = timing.mean_ms;
    latency.stddev_ms = timing.stddev_ms;
    latency.p90_ms = timing.p90_ms;
    latency.cv = timing.cv;
    latency.per_image_median_ms = timing.median_ms / static_cast<double>(point.batch_size);
    latency.repetitions_ms = timing.repetitions_ms;
    latency.form = timed_form(point);
    latency.isolated = true;
    latency.noisy = timed.noisy;
    latency.oversubscribed = point.threads > environment_.cores;
    latency.attempts = timed.attempts;
    latency.recorded_attempt = timed.attempt;
    latency.policy = e_.contention.policy;
  }

  Record measure(const Point& point, const std::string& hash) {
    const auto start = std::chrono::steady_clock::now();
    const Evaluated& model = evaluated(point);
    Record record;
    record.config_hash = hash;
    record.experiment = e_.name;
    record.notes = e_.notes;
    record.label = point.label();
    record.point = point;
    record.config = point_config(e_, point, checkpoint_sha256_);
    record.part = options_.part;
    if (options_.part != RecordPart::kLatency) {
      record.accuracy = model.accuracy;
      record.size_bytes = model.size_bytes;
      record.calibration = model.calibration;
    }
    record.trust = model.trust;
    if (times()) time_point(point, model, record);

    std::fprintf(stderr, "  size %.3f MB", to_megabytes(model.size_bytes));
    if (record.latency) {
      std::fprintf(stderr, ", latency %.3f ms (cv %.3f%s)", record.latency->median_ms, record.latency->cv,
                   record.latency->noisy ? ", NOISY" : "");
    }
    if (record.accuracy) std::fprintf(stderr, ", top-1 %.2f%%", record.accuracy->top1.mean);
    if (record.trust && record.trust->output_sqnr_db) {
      std::fprintf(stderr, ", output SQNR %.2f dB", *record.trust->output_sqnr_db);
    }
    if (times()) std::fprintf(stderr, ", oneDNN ISA %s", record.provenance.environment.onednn_isa.c_str());
    std::fprintf(stderr, "\n");
    if (record.broken()) {
      std::fprintf(stderr, "  BROKEN: output SQNR against fp32 below %g dB (trust.broken_below_db)\n",
                   e_.trust.broken_below_db);
    }
    if (record.latency && record.latency->oversubscribed) {
      std::fprintf(stderr, "  WARNING: %lld threads on %d cores: the threads share cores\n",
                   static_cast<long long>(point.threads), environment_.cores);
    }

    Provenance& p = record.provenance;
    p.experiment_file = e_.file;
    p.experiment_sha256 = e_.file_sha256;
    p.experiment = e_.file_json;
    p.checkpoint = e_.model.checkpoint;
    p.torchscript = e_.model.torchscript;
    p.checkpoint_sha256 = checkpoint_sha256_;
    p.data = data_->describe_evaluation();
    p.data_fingerprint = hex64(data_->data_fingerprint());
    p.evaluation_subset_fingerprint = hex64(data_->evaluation_fingerprint());
    p.evaluation_cached = data_->evaluation_cached();
    p.skipped_files = static_cast<int64_t>(evaluation_source_.skipped_files().size());
    p.environment.machine = environment_;
    p.environment.machine.date_utc = utc_now();  // when this point was measured
    p.environment.machine.intra_op_threads = static_cast<int>(point.threads);
    p.environment.inter_op_threads = 1;  // the probe's setting
    p.environment.quantized_engine = point.int8() ? point.engine : "";
    p.environment.onednn_max_cpu_isa = point.isa.empty() ? onednn_isa_cap_from_environment() : point.isa;
    p.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return record;
  }

  const Experiment& e_;
  const Dataset& evaluation_source_;
  const Dataset& calibration_source_;
  SweepOptions options_;
  std::string run_dir_;
  Environment environment_;
  std::string checkpoint_sha256_;
  std::optional<SweepData> data_;  // from the first point to measure on

  std::optional<StateDict> weights_;
  std::map<std::string, GraphModule> fp32_;
  std::unique_ptr<Evaluated> current_;
  std::string current_key_;
  std::optional<LatencyRunner> latency_;  // from the first point to time on
  std::unique_ptr<CachedDataset> tuning_set_;  // --tune: the [tuning] subset
  std::unique_ptr<Subset> sensitivity_set_;    // --tune: the evaluation examples sensitivity uses
};

}  // namespace

SweepSummary run_sweep(const Experiment& experiment, const Dataset& evaluation,
                       const Dataset& calibration, const SweepOptions& options) {
  Runner runner(experiment, evaluation, calibration, options);
  return options.tune ? runner.tune() : runner.run();
}

}  // namespace qb
