#include "experiments/tuning_record.h"

#include <fstream>
#include <map>
#include <stdexcept>

namespace qb {

namespace {

nlohmann::json optional_number(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json();
}

std::optional<double> optional_number(const nlohmann::json& json) {
  if (json.is_null()) return std::nullopt;
  return json.get<double>();
}

nlohmann::json accuracies_json(const TunedAccuracies& a) {
  return {{"examples", a.examples},
          {"fp32_top1_percent", a.fp32_top1_percent},
          {"int8_top1_percent", a.int8_top1_percent},
          {"tuned_top1_percent", a.tuned_top1_percent}};
}

TunedAccuracies accuracies_from_json(const nlohmann::json& json) {
  return {json.at("examples").get<int64_t>(), json.at("fp32_top1_percent").get<double>(),
          json.at("int8_top1_percent").get<double>(), json.at("tuned_top1_percent").get<double>()};
}

// The JSON lines of `file`; a line that is not an object with a config_hash is an error.
std::vector<nlohmann::json> record_lines(const std::string& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object() || !json.contains("config_hash")) {
      throw std::invalid_argument(file + ":" + std::to_string(number) + ": not a tuning record");
    }
    out.push_back(std::move(json));
  }
  return out;
}

}  // namespace

nlohmann::json FallbackRecord::to_json() const {
  nlohmann::json steps_json = nlohmann::json::array();
  for (const FallbackStep& step : steps) {
    steps_json.push_back(
        {{"added_layer", step.added_layer}, {"fp32_layers", step.fp32_layers}, {"top1_percent", step.top1_percent}});
  }
  nlohmann::json tuning_json = accuracies_json(tuning);
  tuning_json["floor_percent"] = floor_percent;
  tuning_json["steps"] = steps_json;
  return {{"config_hash", config_hash},
          {"sensitivity_config_hash", sensitivity_config_hash},
          {"experiment", experiment},
          {"model", model},
          {"label", label},
          {"point", point.to_json()},
          {"budget",
           {{"max_drop", optional_number(max_drop)},
            {"max_relative_drop", optional_number(max_relative_drop)},
            {"samples", tuning_samples},
            {"seed", tuning_seed},
            {"max_layers", max_layers}}},
          {"layers", layers},
          {"fp32_layers", fp32_layers},
          {"met", met},
          {"tuning", tuning_json},
          {"evaluation", accuracies_json(evaluation)},
          {"sensitivity",
           {{"examples", sensitivity_examples},
            {"int8", sensitivity_int8.to_json()},
            {"fp32", sensitivity_fp32.to_json()},
            {"table", sensitivity_table}}},
          {"latency",
           {{"threads", threads},
            {"batch_size", batch_size},
            {"isa", isa},
            {"onednn_isa", onednn_isa},
            {"runtime", runtime},
            {"int8_median_ms", int8_median_ms},
            {"tuned_median_ms", tuned_median_ms},
            {"tuned_over_int8", tuned_over_int8()},
            {"noisy", latency_noisy}}},
          {"mapping_file", mapping_file},
          {"provenance",
           {{"experiment_file", experiment_file},
            {"experiment_sha256", experiment_sha256},
            {"checkpoint_sha256", checkpoint_sha256},
            {"git_revision", git_revision},
            {"date_utc", date_utc},
            {"elapsed_s", elapsed_s}}}};
}

FallbackRecord FallbackRecord::from_json(const nlohmann::json& json) {
  FallbackRecord r;
  try {
    r.config_hash = json.at("config_hash").get<std::string>();
    r.sensitivity_config_hash = json.at("sensitivity_config_hash").get<std::string>();
    r.experiment = json.at("experiment").get<std::string>();
    r.model = json.at("model").get<std::string>();
    r.label = json.at("label").get<std::string>();
    r.point = Point::from_json(json.at("point"));
    const nlohmann::json& budget = json.at("budget");
    r.max_drop = optional_number(budget.at("max_drop"));
    r.max_relative_drop = optional_number(budget.at("max_relative_drop"));
    r.tuning_samples = budget.at("samples").get<int64_t>();
    r.tuning_seed = budget.at("seed").get<uint64_t>();
    r.max_layers = budget.at("max_layers").get<int64_t>();
    r.layers = json.at("layers").get<int64_t>();
    r.fp32_layers = json.at("fp32_layers").get<std::vector<std::string>>();
    r.met = json.at("met").get<bool>();
    const nlohmann::json& tuning = json.at("tuning");
    r.tuning = accuracies_from_json(tuning);
    r.floor_percent = tuning.at("floor_percent").get<double>();
    for (const nlohmann::json& step : tuning.at("steps")) {
      r.steps.push_back({step.at("added_layer").get<std::string>(), step.at("fp32_layers").get<int64_t>(),
                         step.at("top1_percent").get<double>()});
    }
    r.evaluation = accuracies_from_json(json.at("evaluation"));
    const nlohmann::json& sensitivity = json.at("sensitivity");
    r.sensitivity_examples = sensitivity.at("examples").get<int64_t>();
    r.sensitivity_int8 = ModelScore::from_json(sensitivity.at("int8"));
    r.sensitivity_fp32 = ModelScore::from_json(sensitivity.at("fp32"));
    r.sensitivity_table = sensitivity.at("table").get<std::string>();
    const nlohmann::json& latency = json.at("latency");
    r.threads = latency.at("threads").get<int64_t>();
    r.batch_size = latency.at("batch_size").get<int64_t>();
    r.isa = latency.at("isa").get<std::string>();
    r.onednn_isa = latency.at("onednn_isa").get<std::string>();
    r.runtime = latency.at("runtime").get<std::string>();
    r.int8_median_ms = latency.at("int8_median_ms").get<double>();
    r.tuned_median_ms = latency.at("tuned_median_ms").get<double>();
    r.latency_noisy = latency.at("noisy").get<bool>();
    r.mapping_file = json.at("mapping_file").get<std::string>();
    const nlohmann::json& provenance = json.at("provenance");
    r.experiment_file = provenance.at("experiment_file").get<std::string>();
    r.experiment_sha256 = provenance.at("experiment_sha256").get<std::string>();
    r.checkpoint_sha256 = provenance.at("checkpoint_sha256").get<std::string>();
    r.git_revision = provenance.at("git_revision").get<std::string>();
    r.date_utc = provenance.at("date_utc").get<std::string>();
    r.elapsed_s = provenance.at("elapsed_s").get<double>();
  } catch (const std::exception& e) {
    throw std::invalid_argument("fallback record: " + std::string(e.what()));
  }
  return r;
}

std::vector<TunedPoint> read_tuned_points(const std::string& fallback_file, const std::string& sensitivity_file) {
  std::map<std::string, std::map<std::string, LayerSensitivity>> layers;  // hash -> layer -> it
  for (const nlohmann::json& line : record_lines(sensitivity_file)) {
    LayerSensitivity s = LayerSensitivity::from_json(line.at("sensitivity"));
    layers[line.at("config_hash").get<std::string>()][s.layer] = s;
  }
  std::vector<TunedPoint> points;
  std::map<std::string, size_t> index;  // config hash -> position in points
  for (const nlohmann::json& line : record_lines(fallback_file)) {
    TunedPoint point;
    point.fallback = FallbackRecord::from_json(line);
    const auto found = layers.find(point.fallback.sensitivity_config_hash);
    if (found != layers.end()) {
      for (const auto& [name, layer] : found->second) point.layers.push_back(layer);
    }
    const std::string& hash = point.fallback.config_hash;
    if (index.count(hash)) {
      points[index[hash]] = std::move(point);
    } else {
      index[hash] = points.size();
      points.push_back(std::move(point));
    }
  }
  return points;
}

}  // namespace qb
