#include "experiments/points.h"

#include <map>
#include <stdexcept>

#include "data/hash.h"
#include "quant/qconfig.h"

namespace qb {

std::string Point::label() const {
  std::string text = variant;
  if (int8()) {
    text += " " + observer + "/" + weights;
    if (mapping != "global") text += " " + mapping;
    text += " calib=" + std::to_string(samples) + " " + engine;
    if (correction != "none") text += " " + correction;
  }
  if (!isa.empty()) text += " " + isa;
  if (runtime != "interpreter") text += " " + runtime;
  return text;
}

nlohmann::json Point::to_json() const {
  nlohmann::json j = {{"model", model},
                      {"variant", variant},
                      {"threads", threads},
                      {"batch_size", batch_size}};
  if (int8()) {
    j["engine"] = engine;
    j["observer"] = observer;
    j["weights"] = weights;
    j["mapping"] = mapping;
    j["samples"] = samples;
    if (correction != "none") j["correction"] = correction;
  }
  // Only when set, so records of sweeps without an ISA, runtime or correction keep their hashes.
  if (!isa.empty()) j["isa"] = isa;
  if (runtime != "interpreter") j["runtime"] = runtime;
  return j;
}

Point Point::from_json(const nlohmann::json& json) {
  Point point;
  try {
    point.model = json.at("model").get<std::string>();
    point.variant = json.at("variant").get<std::string>();
    point.threads = json.at("threads").get<int64_t>();
    point.batch_size = json.at("batch_size").get<int64_t>();
    point.isa = json.value("isa", "");
    point.runtime = json.value("runtime", "interpreter");
    if (point.int8()) {
      point.engine = json.at("engine").get<std::string>();
      point.observer = json.at("observer").get<std::string>();
      point.weights = json.at("weights").get<std::string>();
      point.mapping = json.at("mapping").get<std::string>();
      point.samples = json.at("samples").get<int64_t>();
      point.correction = json.value("correction", "none");
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("point " + json.dump() + ": " + e.what());
  }
  return point;
}

std::string Point::model_key() const {
  nlohmann::json j = to_json();
  j.erase("threads");
  j.erase("batch_size");
  j.erase("isa");
  j.erase("runtime");
  return j.dump();
}

QConfigMapping point_mapping(const Experiment& experiment, const Point& point) {
  QConfigMapping mapping = experiment.mappings.at(point.mapping);
  mapping.set_global(configured_qconfig(point.engine, point.observer, point.weights));
  return mapping;
}

bool matches(const nlohmann::json& rule, const Point& point) {
  nlohmann::json fields = point.to_json();
  fields["runtime"] = point.runtime;  // to_json leaves the defaults out
  if (point.int8()) fields["correction"] = point.correction;
  for (const auto& [field, wanted] : rule.items()) {
    auto it = fields.find(field);
    // fp32 points have no quantization fields, so rules about them never match fp32.
    if (it == fields.end()) return false;
    if (wanted.is_array()) {
      bool any = false;
      for (const auto& value : wanted) any |= value == *it;
      if (!any) return false;
    } else if (wanted != *it) {
      return false;
    }
  }
  return true;
}

std::vector<Point> expand(const Experiment& e) {
  std::vector<Point> points;
  auto add = [&](Point point) {
    for (const auto& rule : e.sweep.exclude) {
      if (matches(rule, point)) return;
    }
    points.push_back(std::move(point));
  };
  auto timings = [&](Point point) {
    for (const std::string& runtime : e.sweep.runtimes) {
      for (const std::string& isa : e.sweep.isas) {
        for (int64_t threads : e.sweep.threads) {
          for (int64_t batch : e.sweep.batch_sizes) {
            point.runtime = runtime;
            point.isa = isa;
            point.threads = threads;
            point.batch_size = batch;
            add(point);
          }
        }
      }
    }
  };
  for (const std::string& model : e.model.architectures) {
    for (const std::string& variant : e.sweep.variants) {
      Point point;
      point.model = model;
      point.variant = variant;
      if (!point.int8()) {
        timings(point);
        continue;
      }
      for (const std::string& engine : e.sweep.engines)
        for (const std::string& mapping : e.sweep.mappings)
          for (const std::string& observer : e.sweep.observers)
            for (const std::string& weights : e.sweep.weights)
              for (int64_t samples : e.calibration.samples)
                for (const std::string& correction : e.sweep.corrections) {
                  // Eager mode has no corrections; bias correction needs calibration data.
                  if (correction != "none" && variant == "eager") continue;
                  if (correction == "bias_correction" && samples == 0) continue;
                  point.engine = engine;
                  point.mapping = mapping;
                  point.observer = observer;
                  point.weights = weights;
                  point.samples = samples;
                  point.correction = correction;
                  timings(point);
                }
    }
  }
  return points;
}

nlohmann::json point_config(const Experiment& e, const Point& point,
                            const std::string& checkpoint_sha256) {
  // A TorchScript file decides the whole model, so its SHA-256 is all there is to say about it.
  const nlohmann::json model =
      e.model.torchscript.empty()
          ? nlohmann::json{{"num_classes", e.model.num_classes},
                           {"in_channels",
                            e.model.in_channels ? nlohmann::json(*e.model.in_channels) : nullptr},
                           {"checkpoint_sha256", checkpoint_sha256},
                           {"init_seed", e.model.init_seed}}
          : nlohmann::json{{"torchscript", true}, {"checkpoint_sha256", checkpoint_sha256}};
  nlohmann::json config = {
      {"point", point.to_json()},
      {"model", model},
      {"data", e.data},
      {"evaluation",
       {{"split", e.evaluation.split},
        {"accuracy", e.evaluation.accuracy},
        {"limit", e.evaluation.limit},
        {"subset_seed",
         e.evaluation.subset_seed ? nlohmann::json(*e.evaluation.subset_seed) : nullptr}}},
      {"latency",
       {{"repetitions", e.latency.repetitions},
        {"min_time_s", e.latency.min_time_s},
        {"warmup_s", e.latency.warmup_s}}}};
  // Records from before fp32 was timed in its deployment form hold other numbers.
  if (point.variant == "fp32") config["fp32_form"] = "deploy";
  if (point.int8()) {
    config["calibration"] = {{"split", e.calibration.split},
                             {"subset", e.calibration.subset},
                             {"seeds", e.calibration.seeds},
                             {"batch_size", e.calibration.batch_size},
                             {"allow_overlap", e.calibration.allow_overlap}};
    // The mapping's content, not its file name, decides the numbers.
    config["mapping"] = point.mapping == "global" ? "" : to_toml(e.mappings.at(point.mapping));
    config["trust"] = {{"sqnr_batches", e.trust.sqnr_batches},
                       {"round_trip", e.trust.round_trip}};
  }
  return config;
}

std::string config_hash(const nlohmann::json& config) {
  // nlohmann::json keeps object keys sorted, so dump() is canonical.
  return hex64(fnv1a(config.dump()));
}

std::pair<int, int> parse_shard(const std::string& text) {
  size_t slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("");
    size_t used_k = 0;
    size_t used_n = 0;
    int k = std::stoi(text.substr(0, slash), &used_k);
    int n = std::stoi(text.substr(slash + 1), &used_n);
    if (used_k != slash || used_n != text.size() - slash - 1 || n < 1 || k < 1 || k > n) {
      throw std::invalid_argument("");
    }
    return {k, n};
  } catch (const std::exception&) {
    throw std::invalid_argument("--shard expects K/N with 1 <= K <= N, got '" + text + "'");
  }
}

std::vector<Point> shard(const std::vector<Point>& points, int k, int n) {
  if (n < 1 || k < 1 || k > n) throw std::invalid_argument("shard: need 1 <= k <= n");
  std::map<std::string, size_t> group_of;
  std::vector<Point> mine;
  for (const Point& point : points) {
    size_t group = group_of.emplace(point.model_key(), group_of.size()).first->second;
    if (static_cast<int>(group % static_cast<size_t>(n)) == k - 1) mine.push_back(point);
  }
  return mine;
}

}  // namespace qb
