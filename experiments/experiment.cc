#include "experiments/experiment.h"

#include <openssl/evp.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "base/read_file.h"
#include "eval/isolated_latency.h"
#include "eval/onednn_isa.h"
#include "experiments/paths.h"
#include "models/zoo.h"
#include "quant/quantized_ops.h"

namespace qb {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

void require_known(Config& config, const std::string& key, const std::vector<std::string>& values,
                   const std::vector<std::string>& known) {
  if (values.empty()) throw config.error(key, "must not be empty");
  for (const std::string& value : values) {
    if (std::find(known.begin(), known.end(), value) == known.end()) {
      throw config.error(key, "unknown value '" + value + "' (known: " + joined(known) + ")");
    }
  }
  std::vector<std::string> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw config.error(key, "lists a value twice");
  }
}

/// [model] torchscript = "..." (and name): one model, its layers and weights in the file, so
/// none of the zoo's keys applies.
ModelSpec read_torchscript_model(Config& config) {
  for (const char* key :
       {"architecture", "architectures", "checkpoint", "num_classes", "in_channels", "init_seed"}) {
    const std::string full = std::string("model.") + key;
    if (config.has(full)) {
      throw config.error(full, "not with model.torchscript: the TorchScript file holds the whole "
                               "model, its layers and weights");
    }
  }
  ModelSpec model;
  model.torchscript = resolve_config_path(config.get_string("model.torchscript"));
  if (!is_file(model.torchscript)) {
    throw config.error("model.torchscript",
                       "no file at " + model.torchscript +
                           ": put the model there (torch.jit.save of torch.jit.script or "
                           "torch.jit.trace), or point model.torchscript at it");
  }
  const std::string name = config.get_string(
      "model.name", std::filesystem::path(model.torchscript).stem().string());
  if (name.empty()) throw config.error("model.name", "must not be empty");
  model.architectures = {name};
  return model;
}

ModelSpec read_model(Config& config) {
  if (config.has("model.torchscript")) return read_torchscript_model(config);
  if (config.has("model.name")) {
    throw config.error("model.name", "names a model.torchscript model; a zoo model is named by "
                                     "its architecture");
  }
  ModelSpec model;
  std::vector<std::string> known = zoo_architectures();
  if (config.has("model.architecture") == config.has("model.architectures")) {
    throw config.error("model", "give either architecture (one model) or architectures (a list)");
  }
  if (config.has("model.architecture")) {
    model.architectures = {config.get_string("model.architecture")};
    require_known(config, "model.architecture", model.architectures, known);
  } else {
    model.architectures = config.get_string_list("model.architectures");
    require_known(config, "model.architectures", model.architectures, known);
  }
  model.num_classes = config.get_int("model.num_classes", kClassRange, model.num_classes);
  if (config.has("model.in_channels")) model.in_channels = config.get_int("model.in_channels", kChannelRange);
  model.init_seed = static_cast<uint64_t>(config.get_int("model.init_seed", kSeedRange, 0));
  if (config.has("model.checkpoint")) {
    if (model.architectures.size() != 1) {
      throw config.error("model.checkpoint", "one checkpoint needs one architecture");
    }
    model.checkpoint = resolve_config_path(config.get_string("model.checkpoint"));
    if (!is_file(model.checkpoint)) {
      throw config.error("model.checkpoint",
                         "no file at " + model.checkpoint +
                             ": put the state dict (torch.save format, e.g. torchvision's "
                             "downloaded weights) there, or point model.checkpoint at it");
    }
  }
  return model;
}

CalibrationSpec read_calibration(Config& config) {
  CalibrationSpec c;
  c.split = config.get_string("calibration.split", c.split);
  c.subset = config.get_string("calibration.subset", c.subset);
  require_known(config, "calibration.subset", {c.subset}, {"random", "stratified", "sequential"});
  c.samples = config.get_int_list("calibration.samples", kCountRange, c.samples);
  std::vector<int64_t> seeds = config.get_int_list("calibration.seeds", kSeedRange, {{0}});
  if (c.subset == "sequential" && seeds.size() > 1) {
    throw config.error("calibration.seeds",
                       "subset = \"sequential\" takes the first examples whatever the seed, so "
                       "every seed would calibrate alike: give one seed");
  }
  c.seeds.assign(seeds.begin(), seeds.end());
  c.batch_size = config.get_int("calibration.batch_size", kBatchSizeRange, c.batch_size);
  c.allow_overlap = config.get_bool("calibration.allow_overlap", c.allow_overlap);
  return c;
}

EvaluationSpec read_evaluation(Config& config, const std::string& data_kind) {
  EvaluationSpec e;
  e.split = config.get_string("data.split", data_kind == "imagenet" ? "val" : e.split);
  e.accuracy = config.get_bool("evaluation.accuracy", data_kind != "synthetic");
  if (e.accuracy && data_kind == "synthetic") {
    throw config.error("evaluation.accuracy", "synthetic images have no meaningful labels");
  }
  e.batch_size = config.get_int("evaluation.batch_size", kBatchSizeRange, e.batch_size);
  e.limit = config.get_int("evaluation.limit", kCountRange, 0);  // 0: every example
  if (config.has("evaluation.subset_seed")) {
    e.subset_seed = static_cast<uint64_t>(config.get_int("evaluation.subset_seed", kSeedRange));
    if (e.limit == 0) {
      throw config.error("evaluation.subset_seed", "needs evaluation.limit (the subset's size)");
    }
  }
  e.cache = config.get_bool("evaluation.cache", e.cache);
  e.workers = static_cast<int>(config.get_int("evaluation.workers", kThreadRange, e.workers));
  return e;
}

const std::vector<std::string>& point_fields() {
  static const std::vector<std::string> fields = {"model",   "variant", "engine",  "observer",
                                                  "weights", "mapping", "samples", "threads",
                                                  "batch_size", "isa", "runtime", "correction"};
  return fields;
}

/// A list of rules matching points ({ variant = "eager", observer = ["entropy"] }), as
/// sweep.exclude and tuning.points hold them.
std::vector<nlohmann::json> read_point_rules(Config& config, const std::string& key) {
  nlohmann::json rules = config.get_json(key, nlohmann::json::array());
  if (!rules.is_array()) throw config.error(key, "must be a list of tables");
  for (size_t i = 0; i < rules.size(); ++i) {
    const nlohmann::json& rule = rules[i];
    std::string where = "rule " + std::to_string(i + 1) + ": ";
    if (!rule.is_object() || rule.empty()) {
      throw config.error(key, where + "must be a non-empty table such as "
                                      "{ variant = \"eager\", observer = \"entropy\" }");
    }
    for (const auto& [field, value] : rule.items()) {
      const auto& fields = point_fields();
      if (std::find(fields.begin(), fields.end(), field) == fields.end()) {
        throw config.error(key, where + "unknown field '" + field + "' (known: " + joined(fields) + ")");
      }
      if (!value.is_primitive() && !value.is_array()) {
        throw config.error(key, where + "'" + field + "' must be a value or a list");
      }
    }
  }
  return rules.get<std::vector<nlohmann::json>>();
}

SweepSpec read_sweep(Config& config, const std::vector<std::string>& mapping_names) {
  SweepSpec s;
  s.variants = config.get_string_list("sweep.variants", s.variants);
  require_known(config, "sweep.variants", s.variants, {"fp32", "fp32_as_built", "eager", "graph"});
  s.engines = config.get_string_list("sweep.engines", s.engines);
  require_known(config, "sweep.engines", s.engines, available_engines());
  s.observers = config.get_string_list("sweep.observers", s.observers);
  require_known(config, "sweep.observers", s.observers, activation_observers());
  s.weights = config.get_string_list("sweep.weights", s.weights);
  require_known(config, "sweep.weights", s.weights, {"per_channel", "per_tensor"});
  s.mappings = config.get_string_list("sweep.mappings", s.mappings);
  require_known(config, "sweep.mappings", s.mappings, mapping_names);
  s.threads = config.get_int_list("sweep.threads", kThreadRange, s.threads);
  s.batch_sizes = config.get_int_list("sweep.batch_sizes", kBatchSizeRange, s.batch_sizes);
  if (config.has("sweep.isa")) {
    s.isas = config.get_string_list("sweep.isa");
    require_known(config, "sweep.isa", s.isas, onednn_isa_names());
  }
  s.runtimes = config.get_string_list("sweep.runtimes", s.runtimes);
  require_known(config, "sweep.runtimes", s.runtimes, latency_runtimes());
  s.corrections = config.get_string_list("sweep.corrections", s.corrections);
  require_known(config, "sweep.corrections", s.corrections, sweep_corrections());
  const bool corrects = std::any_of(s.corrections.begin(), s.corrections.end(),
                                    [](const std::string& c) { return c != "none"; });
  if (corrects && std::count(s.variants.begin(), s.variants.end(), "graph") == 0) {
    throw config.error("sweep.corrections", "corrections apply to graph points: add \"graph\" to sweep.variants");
  }

  s.exclude = read_point_rules(config, "sweep.exclude");
  return s;
}

TuningSpec read_tuning(Config& config) {
  TuningSpec t;
  t.enabled = config.has("tuning");
  if (!t.enabled) return t;
  if (config.has("tuning.max_drop")) t.max_drop = config.get_double("tuning.max_drop");
  if (config.has("tuning.max_relative_drop")) t.max_relative_drop = config.get_double("tuning.max_relative_drop");
  if (t.max_drop.has_value() == t.max_relative_drop.has_value()) {
    throw config.error("tuning", "set exactly one budget: max_drop (points of top-1) or max_relative_drop "
                                 "(a fraction of fp32's top-1)");
  }
  if (t.max_drop && !(*t.max_drop >= 0 && *t.max_drop <= 100)) {
    throw config.error("tuning.max_drop", "must be between 0 and 100 points");
  }
  if (t.max_relative_drop && !(*t.max_relative_drop >= 0 && *t.max_relative_drop <= 1)) {
    throw config.error("tuning.max_relative_drop", "must be a fraction between 0 and 1");
  }
  t.points = read_point_rules(config, "tuning.points");
  t.samples = config.get_int("tuning.samples", IntRange{1, kCountRange.max}, t.samples);
  t.seed = static_cast<uint64_t>(config.get_int("tuning.seed", kSeedRange, static_cast<int64_t>(t.seed)));
  t.sensitivity_samples = config.get_int("tuning.sensitivity_samples", kCountRange, t.sensitivity_samples);
  t.sensitivity_seed = static_cast<uint64_t>(
      config.get_int("tuning.sensitivity_seed", kSeedRange, static_cast<int64_t>(t.sensitivity_seed)));
  t.max_layers = config.get_int("tuning.max_layers", kCountRange, t.max_layers);
  return t;
}

/// The named qconfig mapping files under [mappings]; a file may not set [global], which each
/// point's engine, observer and weights decide.
void read_mappings(Config& config, Experiment& experiment) {
  nlohmann::json files = config.get_json("mappings", nlohmann::json::object());
  for (const auto& [name, path_value] : files.items()) {
    const std::string key = "mappings." + name;
    if (!path_value.is_string()) throw config.error(key, "must be a file path");
    if (name == "global") throw config.error(key, "'global' is the built-in mapping's name");
    const std::string path = resolve_config_path(path_value.get<std::string>());
    if (!is_file(path)) {
      throw config.error(key, "no qconfig mapping file at " + path);
    }
    const std::string text = read_file(path).value_or("");
    try {
      if (toml::parse(text, path).contains("global")) {
        throw config.error(key, path + " sets [global]; in a sweep the global qconfig comes "
                                       "from sweep.engines, observers and weights");
      }
      experiment.mappings.emplace(name, parse_qconfig_mapping(text, path));
    } catch (const toml::parse_error& e) {
      throw config.error(key, path + ": " + std::string(e.description()));
    } catch (const QConfigError& e) {
      throw config.error(key, e.what());
    }
    experiment.mapping_files.emplace(name, path);
  }
  experiment.mappings.emplace("global", QConfigMapping());
}

}  // namespace

const std::vector<std::string>& sweep_corrections() {
  static const std::vector<std::string> corrections = {"none", "bias_correction", "equalization"};
  return corrections;
}

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open");
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  EVP_DigestInit_ex(context, EVP_sha256(), nullptr);
  std::vector<char> chunk(1 << 20);
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    EVP_DigestUpdate(context, chunk.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context, digest, &length);
  EVP_MD_CTX_free(context);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += digits[digest[i] >> 4];
    out += digits[digest[i] & 15];
  }
  return out;
}

Experiment read_experiment(Config& config, const std::string& file) {
  Experiment e;
  e.file = std::filesystem::absolute(file).string();
  e.file_sha256 = file_sha256(file);
  e.file_json = config.to_json();
  e.name = config.get_string("name");
  if (!std::regex_match(e.name, std::regex("[A-Za-z0-9_.-]+"))) {
    throw config.error("name", "use letters, digits, '_', '.' and '-' only (it names a folder)");
  }
  e.notes = config.get_string("notes", "");
  e.model = read_model(config);
  e.data = config.to_json().value("data", nlohmann::json::object());
  const std::string data_kind = config.get_string("data.kind", "");
  e.calibration = read_calibration(config);
  e.evaluation = read_evaluation(config, data_kind);
  if (e.evaluation.accuracy && e.model.checkpoint.empty() && e.model.torchscript.empty()) {
    throw config.error("model", "accuracy needs trained weights: set model.checkpoint, or set "
                                "evaluation.accuracy = false for a latency-only sweep");
  }
  read_mappings(config, e);
  std::vector<std::string> mapping_names;
  for (const auto& entry : e.mappings) mapping_names.push_back(entry.first);
  e.sweep = read_sweep(config, mapping_names);
  if (!e.model.torchscript.empty() &&
      std::count(e.sweep.variants.begin(), e.sweep.variants.end(), "eager") > 0) {
    throw config.error("sweep.variants",
                       "eager mode fuses the module groups a zoo model declares "
                       "(fuse_model_groups in models/zoo.h), which a model.torchscript model "
                       "does not have: use fp32 and graph");
  }

  e.latency.repetitions = static_cast<int>(config.get_int("latency.repetitions", {1, 100000}, 5));
  e.latency.min_time_s = config.get_double("latency.min_time_s", e.latency.min_time_s);
  if (!(e.latency.min_time_s > 0)) throw config.error("latency.min_time_s", "must be > 0");
  e.latency.warmup_s = config.get_double("latency.warmup_s", e.latency.warmup_s);
  if (e.latency.warmup_s < 0) throw config.error("latency.warmup_s", "must be >= 0");
  ContentionSpec& c = e.contention;
  c.retries = static_cast<int>(config.get_int("latency.retries", {0, 1000}, c.retries));
  c.retry_wait_s = config.get_double("latency.retry_wait_s", c.retry_wait_s);
  if (c.retry_wait_s < 0) throw config.error("latency.retry_wait_s", "must be >= 0");
  c.policy.min_cpu_per_thread =
      config.get_double("latency.min_cpu_per_thread", c.policy.min_cpu_per_thread);
  if (!(c.policy.min_cpu_per_thread >= 0 && c.policy.min_cpu_per_thread <= 1)) {
    throw config.error("latency.min_cpu_per_thread", "must be between 0 and 1");
  }
  c.policy.max_involuntary_switches_per_thread_s = config.get_double(
      "latency.max_involuntary_switches_per_thread_s", c.policy.max_involuntary_switches_per_thread_s);
  if (c.policy.max_involuntary_switches_per_thread_s < 0) {
    throw config.error("latency.max_involuntary_switches_per_thread_s", "must be >= 0");
  }
  c.policy.max_steal_fraction = config.get_double("latency.max_steal_fraction", c.policy.max_steal_fraction);
  if (!(c.policy.max_steal_fraction >= 0 && c.policy.max_steal_fraction <= 1)) {
    throw config.error("latency.max_steal_fraction", "must be between 0 and 1");
  }

  e.trust.sqnr_batches = config.get_int("trust.sqnr_batches", {0, 1 << 20}, e.trust.sqnr_batches);
  e.trust.round_trip = config.get_bool("trust.round_trip", e.trust.round_trip);
  e.trust.broken_below_db = config.get_double("trust.broken_below_db", e.trust.broken_below_db);
  e.tuning = read_tuning(config);

  const std::string output_dir = config.get_string("output.dir", "results/" + e.name);
  if (output_dir.empty()) throw config.error("output.dir", "must name a directory (default: results/<name>)");
  e.output_dir = resolve_config_path(output_dir);
  return e;
}

}  // namespace qb
