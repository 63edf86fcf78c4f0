#include "experiments/sweep.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "data/batches.h"
#include "data/hash.h"
#include "data/subsets.h"
#include "eval/accuracy.h"
#include "eval/environment.h"
#include "eval/isolated_latency.h"
#include "eval/onednn_isa.h"
#include "eval/model_size.h"
#include "eval/progress.h"
#include "experiments/calibration_subset.h"
#include "experiments/latency_runner.h"
#include "experiments/paths.h"
#include "experiments/points.h"
#include "experiments/records.h"
#include "experiments/stats.h"
#include "experiments/table.h"
#include "models/checkpoint.h"
#include "models/torchscript_import.h"
#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/eager.h"
#include "quant/fp32_deploy.h"
#include "quant/fuse.h"
#include "quant/inspect.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/prepare.h"
#include "quant/serialize.h"

namespace qb {

namespace {

namespace fs = std::filesystem;

/// What a point's latency timed.
std::string timed_form(const Point& point) {
  if (point.variant == "fp32") {
    return "fp32 deployment form: BatchNorm folded, oneDNN convolutions on prepacked weights "
           "with fused relu, channels-last (quant/fp32_deploy.h)";
  }
  if (point.variant == "fp32_as_built") return "fp32 as built: LibTorch's default kernels, NCHW";
  return "int8 on " + point.engine + ", channels-last";
}

nlohmann::json summary_json(const Summary& s) {
  return {{"n", s.n}, {"mean", s.mean}, {"stddev", s.stddev}, {"ci95", {s.ci95_low, s.ci95_high}}};
}

/// Accuracy of one model on the evaluation set.
nlohmann::json counts_json(const AccuracyCounts& counts) {
  return {{"examples", counts.examples},
          {"top1_percent", counts.top1_percent()},
          {"top5_percent", counts.top5_percent()},
          {"mean_loss", counts.mean_loss()}};
}

/// A converted model with what was measured on it once for all its timing points.
struct Evaluated {
  GraphModule model;
  nlohmann::json accuracy;  // null without accuracy
  int64_t size_bytes = 0;
  nlohmann::json trust;     // int8 only
  nlohmann::json calibration;
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
    RecordLog log(run_dir_ + "/records.jsonl");
    // A TorchScript file holds the weights, so its hash stands where the checkpoint's would.
    const std::string& weights_file =
        e_.model.torchscript.empty() ? e_.model.checkpoint : e_.model.torchscript;
    checkpoint_sha256_ = weights_file.empty() ? "" : file_sha256(weights_file);

    std::vector<std::pair<Point, std::string>> todo;
    SweepSummary summary;
    summary.points = static_cast<int>(points.size());
    summary.run_dir = run_dir_;
    for (const Point& point : points) {
      std::string hash = config_hash(point_config(e_, point, checkpoint_sha256_));
      if (!options_.force && log.contains(hash)) {
        ++summary.skipped;
      } else {
        todo.emplace_back(point, hash);
      }
    }
    std::fprintf(stderr, "%s: %d points%s, %d already recorded in %s, %zu to measure\n",
                 e_.name.c_str(), summary.points,
                 options_.shard_n > 1 ? (" in shard " + std::to_string(options_.shard_k) + "/" +
                                         std::to_string(options_.shard_n))
                                            .c_str()
                                      : "",
                 summary.skipped, run_dir_.c_str(), todo.size());
    if (!todo.empty()) {
      latency_.emplace(options_.latency_probe.empty() ? find_latency_probe("") : options_.latency_probe,
                       run_dir_, e_.contention);
      if (!e_.model.torchscript.empty()) import_model();
      prepare_data(todo);
      save_experiment_copy();
    }
    std::vector<std::string> failures;
    for (size_t i = 0; i < todo.size(); ++i) {
      const auto& [point, hash] = todo[i];
      const std::string name = point.model + " " + point.label() + ", " +
                               std::to_string(point.threads) + " thread(s), batch " +
                               std::to_string(point.batch_size);
      std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, todo.size(), name.c_str());
      if (!point.isa.empty() && !cpu_has_isa(point.isa)) {
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
        std::fprintf(stderr, "  FAILED: %s\n", e.what());
        failures.push_back(name + ": " + e.what());
        current_.reset();
        log.append({{"failed_config_hash", hash},
                    {"experiment", e_.name},
                    {"label", point.label()},
                    {"point", point.to_json()},
                    {"error", e.what()},
                    {"provenance", {{"environment", to_json(environment_)}}}});
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
  // --- data -------------------------------------------------------------------------------

  /// Chooses the evaluation examples and the calibration subsets, checks they do not overlap,
  /// and decodes what will be used more than once; all before the first point is measured.
  void prepare_data(const std::vector<std::pair<Point, std::string>>& todo) {
    std::vector<int64_t> eval_indices;
    const int64_t n = e_.evaluation.limit > 0
                          ? std::min(e_.evaluation.limit, evaluation_source_.size())
                          : evaluation_source_.size();
    if (e_.evaluation.subset_seed) {
      eval_indices = first_n(evaluation_source_.size(), n, *e_.evaluation.subset_seed);
    } else {
      for (int64_t i = 0; i < n; ++i) eval_indices.push_back(i);
    }
    evaluation_view_ = std::make_unique<Subset>(evaluation_source_, eval_indices);
    if (e_.evaluation.accuracy && e_.evaluation.cache) {
      Progress progress("decoding evaluation set", evaluation_view_->size());
      cached_evaluation_ = std::make_unique<CachedDataset>(
          *evaluation_view_, e_.evaluation.workers, [&](int64_t done) { progress.update(done); });
      progress.finish();
    }

    int64_t most_samples = 0;
    for (const auto& [point, hash] : todo) most_samples = std::max(most_samples, point.samples);
    if (most_samples > calibration_source_.size()) {
      throw std::invalid_argument("calibration.samples: " + std::to_string(most_samples) +
                                  " samples asked for, but " + calibration_source_.describe() +
                                  " has only " + std::to_string(calibration_source_.size()));
    }
    if (most_samples == 0) return;
    const bool same_split = &calibration_source_ == &evaluation_source_;
    for (uint64_t seed : e_.calibration.seeds) {
      std::vector<int64_t> indices =
          calibration_indices(e_.calibration.subset, calibration_source_, most_samples, seed);
      int64_t overlap = count_overlap(indices, eval_indices, same_split);
      if (overlap > 0 && !e_.calibration.allow_overlap) {
        throw std::invalid_argument(
            "calibration seed " + std::to_string(seed) + ": " + std::to_string(overlap) +
            " calibration examples are also evaluation examples (" +
            (same_split ? "same split" : "same content") +
            "); calibrate on another split (calibration.split) or set "
            "calibration.allow_overlap = true to accept it, which the records then show");
      }
      overlaps_[seed] = overlap;
      Progress progress("decoding calibration set (seed " + std::to_string(seed) + ")",
                        most_samples);
      Subset subset(calibration_source_, indices);
      calibration_sets_[seed] = std::make_unique<CachedDataset>(
          subset, e_.evaluation.workers, [&](int64_t done) { progress.update(done); });
      calibration_fingerprints_[seed] = hex64(subset.fingerprint());
      progress.finish();
    }
  }

  /// Calibration examples that are also evaluation examples: by index within one split, by
  /// content across splits.
  int64_t count_overlap(const std::vector<int64_t>& calibration,
                        const std::vector<int64_t>& evaluation, bool same_split) {
    if (same_split) {
      std::set<int64_t> in_eval(evaluation.begin(), evaluation.end());
      int64_t overlap = 0;
      for (int64_t index : calibration) overlap += in_eval.count(index);
      return overlap;
    }
    if (evaluation_hashes_.empty()) {
      for (int64_t index : evaluation) {
        evaluation_hashes_.insert(evaluation_source_.content_hash(index));
      }
    }
    int64_t overlap = 0;
    for (int64_t index : calibration) {
      overlap += evaluation_hashes_.count(calibration_source_.content_hash(index));
    }
    return overlap;
  }

  const Dataset& evaluation_set() const {
    return cached_evaluation_ ? static_cast<const Dataset&>(*cached_evaluation_)
                              : *evaluation_view_;
  }

  void save_experiment_copy() const {
    fs::create_directories(run_dir_);
    fs::copy_file(e_.file, run_dir_ + "/experiment.toml", fs::copy_options::overwrite_existing);
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

  AccuracyCounts accuracy_of(const GraphModule& gm, const std::string& label) {
    Interpreter interpreter(gm);
    AccuracyOptions options;
    options.batch_size = e_.evaluation.batch_size;
    options.workers = cached_evaluation_ ? 1 : e_.evaluation.workers;
    options.progress_label = label + " accuracy";
    return evaluate_accuracy([&](const at::Tensor& images) { return interpreter.run(images); },
                             evaluation_set(), options);
  }

  /// The calibration batches of `seed`: the first `samples` examples of its cached subset.
  std::vector<at::Tensor> calibration_batches(uint64_t seed, int64_t samples) const {
    const CachedDataset& set = *calibration_sets_.at(seed);
    std::vector<at::Tensor> batches;
    for (int64_t start = 0; start < samples; start += e_.calibration.batch_size) {
      std::vector<int64_t> indices;
      for (int64_t i = start; i < std::min(samples, start + e_.calibration.batch_size); ++i) {
        indices.push_back(i);
      }
      batches.push_back(make_batch(set, indices).images);
    }
    return batches;
  }

  /// Prepares, calibrates on seed's subset, and converts.
  GraphModule quantize(const Point& point, uint64_t seed) {
    QConfigMapping mapping = point_mapping(e_, point);
    GraphModule prepared =
        point.variant == "eager"
            ? prepare_eager(fuse_modules(build(point.model, true), fuse_model_groups(point.model)),
                            mapping)
            : prepare(fp32_model(point.model), mapping);
    if (point.samples > 0) {
      std::vector<at::Tensor> batches = calibration_batches(seed, point.samples);
      size_t next = 0;
      Progress progress("calibrating (seed " + std::to_string(seed) + ")", point.samples);
      CalibrateOptions options;
      options.on_batch = [&](int64_t seen) { progress.update(seen); };
      calibrate(
          prepared,
          [&]() -> std::optional<at::Tensor> {
            if (next == batches.size()) return std::nullopt;
            return batches[next++];
          },
          options);
      progress.finish();
    }
    ConvertOptions options;
    options.engine = point.engine;
    options.allow_uncalibrated = point.samples == 0;
    GraphModule int8 =
        point.variant == "eager" ? convert_eager(prepared, options) : convert(prepared, options);
    // int8 runs channels-last, the layout oneDNN's int8 convolutions use (bit-identical results).
    return to_channels_last(int8);
  }

  /// The float model whose node names line up with the converted one's (quant/inspect.h): what
  /// prepare or prepare_eager was given, after fusion.
  GraphModule sqnr_reference(const Point& point) {
    if (point.variant == "eager") {
      return fuse_modules(build(point.model, true), fuse_model_groups(point.model));
    }
    return fuse(fp32_model(point.model), point_mapping(e_, point));
  }

  /// The trust checks of an int8 model: which nodes run int8, per-layer SQNR against the fused
  /// float model on a few calibration batches, and a save/load round trip's accuracy.
  nlohmann::json trust_checks(const Point& point, const GraphModule& int8, uint64_t seed,
                              const nlohmann::json& accuracy) {
    nlohmann::json trust = nlohmann::json::object();
    std::vector<NodePrecision> nodes = node_precisions(int8);
    PrecisionCounts counts = count_precisions(nodes);
    nlohmann::json fp32_nodes = nlohmann::json::array();
    for (const NodePrecision& node : nodes) {
      if (node.precision == Precision::kFp32) fp32_nodes.push_back(node.name + " (" + node.kind + ")");
    }
    trust["int8_nodes"] = counts.int8;
    trust["fp32_nodes"] = fp32_nodes;

    if (e_.trust.sqnr_batches > 0 && point.samples > 0) {
      std::vector<at::Tensor> batches = calibration_batches(seed, point.samples);
      batches.resize(std::min<size_t>(batches.size(), static_cast<size_t>(e_.trust.sqnr_batches)));
      GraphModule reference = sqnr_reference(point);
      // A list, not an object, to keep graph order (JSON objects come back sorted by key).
      nlohmann::json layers = nlohmann::json::array();
      double worst = std::numeric_limits<double>::infinity();
      std::string worst_layer;
      for (const LayerSqnr& layer : layer_sqnr(reference, int8, batches)) {
        layers.push_back({{"node", layer.name},
                          {"db", std::isfinite(layer.sqnr_db)
                                     ? nlohmann::json(layer.sqnr_db)
                                     : nlohmann::json(layer.sqnr_db > 0 ? "inf" : "-inf")}});
        if (layer.sqnr_db < worst) {
          worst = layer.sqnr_db;
          worst_layer = layer.name;
        }
      }
      trust["sqnr_db"] = layers;
      trust["sqnr_batches"] = batches.size();
      trust["worst_layer"] = worst_layer;
    }

    if (e_.trust.round_trip && !accuracy.is_null()) {
      const std::string path = run_dir_ + "/round_trip." + std::to_string(::getpid()) + ".qbm";
      save_model(int8, path);
      GraphModule reloaded = load_model(path);
      fs::remove(path);
      AccuracyCounts again = accuracy_of(reloaded, point.label() + " reloaded");
      const double first = accuracy.at("top1_percent").at(0).get<double>();
      trust["round_trip_top1_percent"] = again.top1_percent();
      trust["round_trip_equal"] = again.top1_percent() == first;
      if (again.top1_percent() != first) {
        std::fprintf(stderr, "WARNING: %s: top-1 after save/load is %.4f%%, in memory %.4f%%\n",
                     point.label().c_str(), again.top1_percent(), first);
      }
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
      if (e_.evaluation.accuracy) {
        AccuracyCounts counts = accuracy_of(result->model, point.model + " " + point.variant);
        result->accuracy = counts_json(counts);
        for (const char* figure : {"top1", "top5"}) {
          result->accuracy[figure] = summary_json(
              summarize({result->accuracy[std::string(figure) + "_percent"].get<double>()}));
        }
      }
    } else {
      // Without calibration the seed changes nothing: one model stands for all seeds.
      std::vector<uint64_t> seeds = point.samples > 0 ? e_.calibration.seeds
                                                      : std::vector<uint64_t>{e_.calibration.seeds[0]};
      std::vector<double> top1, top5, loss;
      int64_t examples = 0;
      for (size_t i = 0; i < seeds.size(); ++i) {
        GraphModule int8 = quantize(point, seeds[i]);
        if (e_.evaluation.accuracy) {
          AccuracyCounts counts = accuracy_of(int8, point.label() + " seed " + std::to_string(seeds[i]));
          top1.push_back(counts.top1_percent());
          top5.push_back(counts.top5_percent());
          loss.push_back(counts.mean_loss());
          examples = counts.examples;
        }
        // The first seed's model is the one timed, sized and checked.
        if (i == 0) result->model = std::move(int8);
      }
      if (e_.evaluation.accuracy) {
        result->accuracy = {{"examples", examples},
                            {"seeds", seeds},
                            {"top1_percent", top1},
                            {"top5_percent", top5},
                            {"mean_loss", loss},
                            {"top1", summary_json(summarize(top1))},
                            {"top5", summary_json(summarize(top5))}};
      }
      nlohmann::json fingerprints = nlohmann::json::object();
      for (uint64_t seed : seeds) {
        if (calibration_fingerprints_.count(seed)) {
          fingerprints[std::to_string(seed)] = calibration_fingerprints_.at(seed);
        }
      }
      result->calibration = {{"split", e_.calibration.split},
                             {"subset", e_.calibration.subset},
                             {"samples", point.samples},
                             {"seeds", seeds},
                             {"data", calibration_source_.describe()},
                             {"subset_fingerprints", fingerprints},
                             {"allow_overlap", e_.calibration.allow_overlap},
                             {"overlapping_examples",
                              point.samples > 0 ? overlaps_.at(seeds[0]) : 0}};
      result->trust = trust_checks(point, result->model, seeds[0], result->accuracy.is_null()
                                                                       ? nlohmann::json()
                                                                       : result->accuracy);
    }
    result->size_bytes = serialized_size_bytes(result->model);
    current_ = std::move(result);
    current_key_ = key;
    return *current_;
  }

  /// A batch of `size` evaluation images (repeating them if the set is smaller).
  at::Tensor latency_input(int64_t size) const {
    const Dataset& data = evaluation_set();
    std::vector<int64_t> indices;
    for (int64_t i = 0; i < size; ++i) indices.push_back(i % data.size());
    return make_batch(data, indices).images;
  }

  /// The images an int8 point's output SQNR is computed on: evaluation images, or calibration
  /// images when the sweep measures no accuracy and the point was calibrated.
  at::Tensor sqnr_images(const Point& point) {
    constexpr int64_t kImages = 16;
    if (!e_.evaluation.accuracy && point.samples > 0) {
      return at::cat(calibration_batches(e_.calibration.seeds[0], std::min(kImages, point.samples)));
    }
    return latency_input(std::min(kImages, evaluation_set().size()));
  }

  nlohmann::json measure(const Point& point, const std::string& hash) {
    const auto start = std::chrono::steady_clock::now();
    const Evaluated& model = evaluated(point);
    ProbeRequest request;
    request.name = point.model + " " + point.label() + "/threads:" + std::to_string(point.threads) +
                   "/batch:" + std::to_string(point.batch_size);
    request.model = latency_->model_file(point.model_key(), model.model);
    request.input = latency_->input_file("batch" + std::to_string(point.batch_size),
                                         [&] { return latency_input(point.batch_size); });
    request.latency = e_.latency;
    request.latency.threads = static_cast<int>(point.threads);
    request.engine = point.int8() ? point.engine : "";
    request.isa = point.isa;
    if (point.int8()) {
      request.reference_model = latency_->model_file("fp32 " + point.model, fp32_model(point.model));
      const bool calibration_images = !e_.evaluation.accuracy && point.samples > 0;
      request.sqnr_input = latency_->input_file(calibration_images ? "sqnr_calibration" : "sqnr_evaluation",
                                                [&] { return sqnr_images(point); });
    }
    const TimedPoint timed = latency_->time_until_quiet(request);
    const LatencyResult& timing = timed.result.timing;

    nlohmann::json trust = model.trust;
    if (timed.result.output_sqnr_db) {
      const double db = *timed.result.output_sqnr_db;
      trust["output_sqnr_db"] = std::isfinite(db) ? nlohmann::json(db) : nlohmann::json(db > 0 ? "inf" : "-inf");
      trust["broken_below_db"] = e_.trust.broken_below_db;
      trust["broken"] = db < e_.trust.broken_below_db;
    }
    const bool oversubscribed = point.threads > environment_.cores;
    std::fprintf(stderr, "  size %.3f MB, latency %.3f ms (cv %.3f%s)", to_megabytes(model.size_bytes),
                 timing.median_ms, timing.cv, timed.noisy ? ", NOISY" : "");
    if (!model.accuracy.is_null()) {
      std::fprintf(stderr, ", top-1 %.2f%%", model.accuracy["top1"]["mean"].get<double>());
    }
    if (timed.result.output_sqnr_db) std::fprintf(stderr, ", output SQNR %.2f dB", *timed.result.output_sqnr_db);
    std::fprintf(stderr, ", oneDNN ISA %s\n", timed.result.onednn_isa.c_str());
    if (trust.is_object() && trust.value("broken", false)) {
      std::fprintf(stderr, "  BROKEN: output SQNR against fp32 below %g dB (trust.broken_below_db)\n",
                   e_.trust.broken_below_db);
    }
    if (oversubscribed) {
      std::fprintf(stderr, "  WARNING: %lld threads on %d cores: the threads share cores\n",
                   static_cast<long long>(point.threads), environment_.cores);
    }

    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json environment = to_json(environment_);
    environment["date_utc"] = utc_now();  // when this point was measured, not the sweep started
    environment["intra_op_threads"] = point.threads;
    environment["inter_op_threads"] = 1;  // the probe's setting
    environment["quantized_engine"] = point.int8() ? point.engine : "";
    environment["onednn_isa"] = timed.result.onednn_isa;
    environment["onednn_max_cpu_isa"] = point.isa.empty() ? onednn_isa_cap_from_environment() : point.isa;
    nlohmann::json record = {
        {"config_hash", hash},
        {"experiment", e_.name},
        {"notes", e_.notes},
        {"label", point.label()},
        {"point", point.to_json()},
        {"config", point_config(e_, point, checkpoint_sha256_)},
        {"accuracy", model.accuracy},
        {"size_bytes", model.size_bytes},
        {"latency",
         {{"threads", point.threads},
          {"batch_size", point.batch_size},
          {"median_ms", timing.median_ms},
          {"mean_ms", timing.mean_ms},
          {"stddev_ms", timing.stddev_ms},
          {"p90_ms", timing.p90_ms},
          {"cv", timing.cv},
          {"per_image_median_ms", timing.median_ms / static_cast<double>(point.batch_size)},
          {"repetitions_ms", timing.repetitions_ms},
          {"form", timed_form(point)},
          {"isolated", true},
          {"noisy", timed.noisy},
          {"oversubscribed", oversubscribed},
          {"contention",
           {{"attempts", timed.attempts},
            {"recorded_attempt", timed.attempt},
            {"min_cpu_per_thread", e_.contention.policy.min_cpu_per_thread},
            {"max_involuntary_switches_per_thread_s", e_.contention.policy.max_involuntary_switches_per_thread_s},
            {"max_steal_fraction", e_.contention.policy.max_steal_fraction}}}}},
        {"google_benchmark", timing.google_benchmark},
        {"calibration", model.calibration},
        {"trust", trust},
        {"provenance",
         {{"experiment_file", e_.file},
          {"experiment_sha256", e_.file_sha256},
          {"experiment", e_.file_json},
          {"checkpoint", e_.model.checkpoint},
          {"checkpoint_sha256", checkpoint_sha256_},
          {"data", evaluation_view_->describe()},
          {"data_fingerprint", hex64(evaluation_source_.fingerprint())},
          {"evaluation_subset_fingerprint", hex64(evaluation_view_->fingerprint())},
          {"evaluation_cached", cached_evaluation_ != nullptr},
          {"environment", environment},
          {"elapsed_s", elapsed}}}};
    // Where the model came from; its SHA-256 is checkpoint_sha256.
    if (!e_.model.torchscript.empty()) record["provenance"]["torchscript"] = e_.model.torchscript;
    return record;
  }

  const Experiment& e_;
  const Dataset& evaluation_source_;
  const Dataset& calibration_source_;
  SweepOptions options_;
  std::string run_dir_;
  Environment environment_;
  std::string checkpoint_sha256_;

  std::unique_ptr<Subset> evaluation_view_;
  std::unique_ptr<CachedDataset> cached_evaluation_;
  std::set<uint64_t> evaluation_hashes_;
  std::map<uint64_t, std::unique_ptr<CachedDataset>> calibration_sets_;
  std::map<uint64_t, std::string> calibration_fingerprints_;
  std::map<uint64_t, int64_t> overlaps_;

  std::optional<StateDict> weights_;
  std::map<std::string, GraphModule> fp32_;
  std::unique_ptr<Evaluated> current_;
  std::string current_key_;
  std::optional<LatencyRunner> latency_;  // from the first point to measure on
};

}  // namespace

SweepSummary run_sweep(const Experiment& experiment, const Dataset& evaluation,
                       const Dataset& calibration, const SweepOptions& options) {
  return Runner(experiment, evaluation, calibration, options).run();
}

void write_run_tables(const std::string& run_dir, const std::vector<nlohmann::json>& records) {
  fs::create_directories(run_dir);
  std::vector<TableRow> rows = table_rows(records);  // failures are listed by the runner
  // Written beside and renamed over, so a reader never sees half a table.
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = run_dir + "/" + name;
    std::ofstream(path + ".tmp", std::ios::binary) << text;
    fs::rename(path + ".tmp", path);
  };
  write("table.md", markdown_table(rows));
  write("table.csv", csv_table(rows));
  nlohmann::json benchmark = {{"context", nullptr}, {"benchmarks", nlohmann::json::array()}};
  for (const nlohmann::json& record : records) {
    const nlohmann::json& report = record.value("google_benchmark", nlohmann::json());
    if (report.is_null()) continue;
    if (benchmark["context"].is_null()) benchmark["context"] = report.at("context");
    for (const nlohmann::json& run : report.at("benchmarks")) benchmark["benchmarks"].push_back(run);
  }
  write("benchmark.json", benchmark.dump(2));
}

}  // namespace qb
