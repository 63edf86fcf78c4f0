#include "experiments/record.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#include "quant/inspect.h"

namespace qb {

namespace {

using nlohmann::json;

json summary_json(const Summary& s) {
  return {{"n", s.n}, {"mean", s.mean}, {"stddev", s.stddev}, {"ci95", {s.ci95_low, s.ci95_high}}};
}
Summary summary_from_json(const json& j) {
  Summary s;
  s.n = j.at("n").get<int>();
  s.mean = j.at("mean").get<double>();
  s.stddev = j.value("stddev", 0.0);
  s.ci95_low = j.at("ci95").at(0).get<double>();
  s.ci95_high = j.at("ci95").at(1).get<double>();
  return s;
}

/// A number or a list of numbers as a list (fp32 records before 2026-12 held single numbers).
std::vector<double> numbers(const json& j) {
  if (j.is_array()) return j.get<std::vector<double>>();
  return {j.get<double>()};
}

json to_json(const AccuracyRecord& a) {
  json j = {{"examples", a.examples},
            {"top1_percent", a.top1_percent},
            {"top5_percent", a.top5_percent},
            {"mean_loss", a.mean_loss},
            {"top1", summary_json(a.top1)},
            {"top5", summary_json(a.top5)}};
  if (!a.seeds.empty()) j["seeds"] = a.seeds;
  return j;
}
AccuracyRecord accuracy_from_json(const json& j) {
  AccuracyRecord a;
  a.examples = j.value("examples", int64_t{0});
  if (j.contains("seeds")) a.seeds = j.at("seeds").get<std::vector<uint64_t>>();
  if (j.contains("top1_percent")) a.top1_percent = numbers(j.at("top1_percent"));
  if (j.contains("top5_percent")) a.top5_percent = numbers(j.at("top5_percent"));
  if (j.contains("mean_loss")) a.mean_loss = numbers(j.at("mean_loss"));
  a.top1 = summary_from_json(j.at("top1"));
  a.top5 = summary_from_json(j.at("top5"));
  return a;
}

json to_json(const LatencyRecord& l) {
  return {{"threads", l.threads},
          {"batch_size", l.batch_size},
          {"median_ms", l.median_ms},
          {"mean_ms", l.mean_ms},
          {"stddev_ms", l.stddev_ms},
          {"p90_ms", l.p90_ms},
          {"cv", l.cv},
          {"per_image_median_ms", l.per_image_median_ms},
          {"repetitions_ms", l.repetitions_ms},
          {"form", l.form},
          {"isolated", l.isolated},
          {"noisy", l.noisy},
          {"oversubscribed", l.oversubscribed},
          {"contention",
           {{"attempts", l.attempts},
            {"recorded_attempt", l.recorded_attempt},
            {"min_cpu_per_thread", l.policy.min_cpu_per_thread},
            {"max_involuntary_switches_per_thread_s", l.policy.max_involuntary_switches_per_thread_s},
            {"max_steal_fraction", l.policy.max_steal_fraction}}}};
}
LatencyRecord latency_from_json(const json& j) {
  LatencyRecord l;
  l.median_ms = j.at("median_ms").get<double>();
  l.threads = j.value("threads", int64_t{1});
  l.batch_size = j.value("batch_size", int64_t{1});
  l.mean_ms = j.value("mean_ms", l.median_ms);
  l.stddev_ms = j.value("stddev_ms", 0.0);
  l.p90_ms = j.value("p90_ms", l.median_ms);
  l.cv = j.value("cv", 0.0);
  l.per_image_median_ms = j.value("per_image_median_ms", l.median_ms / static_cast<double>(l.batch_size));
  l.repetitions_ms = j.contains("repetitions_ms") ? j.at("repetitions_ms").get<std::vector<double>>()
                                                  : std::vector<double>{l.median_ms};
  l.form = j.value("form", "");
  l.isolated = j.value("isolated", false);
  l.noisy = j.value("noisy", false);
  l.oversubscribed = j.value("oversubscribed", false);
  if (j.contains("contention")) {
    const json& c = j.at("contention");
    l.attempts = c.value("attempts", json::array());
    l.recorded_attempt = c.value("recorded_attempt", 1);
    l.policy.min_cpu_per_thread = c.value("min_cpu_per_thread", l.policy.min_cpu_per_thread);
    l.policy.max_involuntary_switches_per_thread_s =
        c.value("max_involuntary_switches_per_thread_s", l.policy.max_involuntary_switches_per_thread_s);
    l.policy.max_steal_fraction = c.value("max_steal_fraction", l.policy.max_steal_fraction);
  }
  return l;
}

json to_json(const TrustRecord& t) {
  json j = {{"int8_nodes", t.int8_nodes}, {"fp32_nodes", t.fp32_nodes}};
  if (t.sqnr_batches > 0) {
    // A list, not an object, to keep graph order (JSON objects come back sorted by key).
    json layers = json::array();
    for (const LayerSqnrRecord& layer : t.sqnr_db) layers.push_back({{"node", layer.node}, {"db", sqnr_to_json(layer.db)}});
    j["sqnr_db"] = layers;
    j["sqnr_batches"] = t.sqnr_batches;
    j["worst_layer"] = t.worst_layer;
  }
  if (t.round_trip_top1_percent) j["round_trip_top1_percent"] = *t.round_trip_top1_percent;
  if (t.round_trip_equal) j["round_trip_equal"] = *t.round_trip_equal;
  if (t.output_sqnr_db) {
    j["output_sqnr_db"] = sqnr_to_json(*t.output_sqnr_db);
    j["broken_below_db"] = t.broken_below_db;
    j["broken"] = t.broken;
  }
  return j;
}
TrustRecord trust_from_json(const json& j) {
  TrustRecord t;
  t.int8_nodes = j.value("int8_nodes", int64_t{0});
  if (j.contains("fp32_nodes")) t.fp32_nodes = j.at("fp32_nodes").get<std::vector<std::string>>();
  if (j.contains("sqnr_db")) {
    for (const json& layer : j.at("sqnr_db")) {
      t.sqnr_db.push_back({layer.at("node").get<std::string>(), sqnr_from_json(layer.at("db"))});
    }
  }
  t.sqnr_batches = j.value("sqnr_batches", int64_t{0});
  t.worst_layer = j.value("worst_layer", "");
  if (j.contains("round_trip_top1_percent")) t.round_trip_top1_percent = j.at("round_trip_top1_percent").get<double>();
  if (j.contains("round_trip_equal")) t.round_trip_equal = j.at("round_trip_equal").get<bool>();
  if (j.contains("output_sqnr_db")) t.output_sqnr_db = sqnr_from_json(j.at("output_sqnr_db"));
  t.broken_below_db = j.value("broken_below_db", 0.0);
  t.broken = j.value("broken", false);
  return t;
}

json to_json(const CalibrationRecord& c) {
  return {{"split", c.split},
          {"subset", c.subset},
          {"samples", c.samples},
          {"seeds", c.seeds},
          {"data", c.data},
          {"subset_fingerprints", c.subset_fingerprints},
          {"allow_overlap", c.allow_overlap},
          {"overlapping_examples", c.overlapping_examples}};
}
CalibrationRecord calibration_from_json(const json& j) {
  CalibrationRecord c;
  c.split = j.value("split", "");
  c.subset = j.value("subset", "");
  c.samples = j.value("samples", int64_t{0});
  if (j.contains("seeds")) c.seeds = j.at("seeds").get<std::vector<uint64_t>>();
  c.data = j.value("data", "");
  if (j.contains("subset_fingerprints")) {
    c.subset_fingerprints = j.at("subset_fingerprints").get<std::map<std::string, std::string>>();
  }
  c.allow_overlap = j.value("allow_overlap", false);
  c.overlapping_examples = j.value("overlapping_examples", int64_t{0});
  return c;
}

json to_json(const RecordEnvironment& e) {
  json j = to_json(e.machine);
  j["inter_op_threads"] = e.inter_op_threads;
  j["quantized_engine"] = e.quantized_engine;
  j["onednn_isa"] = e.onednn_isa;
  j["onednn_max_cpu_isa"] = e.onednn_max_cpu_isa;
  return j;
}
RecordEnvironment record_environment_from_json(const json& j) {
  RecordEnvironment e;
  e.machine = environment_from_json(j);
  e.inter_op_threads = j.value("inter_op_threads", 1);
  e.quantized_engine = j.value("quantized_engine", "");
  e.onednn_isa = j.value("onednn_isa", "");
  e.onednn_max_cpu_isa = j.value("onednn_max_cpu_isa", "");
  return e;
}

json to_json(const Provenance& p) {
  json j = {{"experiment_file", p.experiment_file},
            {"experiment_sha256", p.experiment_sha256},
            {"experiment", p.experiment},
            {"checkpoint", p.checkpoint},
            {"checkpoint_sha256", p.checkpoint_sha256},
            {"data", p.data},
            {"data_fingerprint", p.data_fingerprint},
            {"evaluation_subset_fingerprint", p.evaluation_subset_fingerprint},
            {"evaluation_cached", p.evaluation_cached},
            {"environment", to_json(p.environment)},
            {"elapsed_s", p.elapsed_s}};
  if (!p.torchscript.empty()) j["torchscript"] = p.torchscript;
  if (p.skipped_files > 0) j["skipped_files"] = p.skipped_files;
  return j;
}
Provenance provenance_from_json(const json& j) {
  Provenance p;
  p.experiment_file = j.value("experiment_file", "");
  p.experiment_sha256 = j.value("experiment_sha256", "");
  p.experiment = j.value("experiment", json());
  p.checkpoint = j.value("checkpoint", "");
  p.torchscript = j.value("torchscript", "");
  p.checkpoint_sha256 = j.value("checkpoint_sha256", "");
  p.data = j.value("data", "");
  p.data_fingerprint = j.value("data_fingerprint", "");
  p.evaluation_subset_fingerprint = j.value("evaluation_subset_fingerprint", "");
  p.evaluation_cached = j.value("evaluation_cached", false);
  p.skipped_files = j.value("skipped_files", int64_t{0});
  p.environment = record_environment_from_json(j.value("environment", json::object()));
  p.elapsed_s = j.value("elapsed_s", 0.0);
  return p;
}

/// nlohmann's message without its "[json.exception.type_error.302] " tag.
std::string json_error(const std::exception& e) {
  std::string text = e.what();
  if (text.rfind("[json.exception.", 0) == 0) {
    const size_t end = text.find("] ");
    if (end != std::string::npos) text = text.substr(end + 2);
  }
  return text;
}

/// `parse(json.at(key))`, with `key` named in the error of a missing or mistyped field.
template <typename Parse>
auto field(const json& j, const std::string& key, Parse parse) {
  if (!j.contains(key)) throw std::invalid_argument(key + ": missing");
  try {
    return parse(j.at(key));
  } catch (const std::exception& e) {
    throw std::invalid_argument(key + ": " + json_error(e));
  }
}

}  // namespace

std::string part_name(RecordPart part) {
  switch (part) {
    case RecordPart::kAccuracy: return "accuracy";
    case RecordPart::kLatency: return "latency";
    case RecordPart::kAll: break;
  }
  return "all";
}

RecordPart parse_part(const std::string& name) {
  if (name == "all") return RecordPart::kAll;
  if (name == "accuracy") return RecordPart::kAccuracy;
  if (name == "latency") return RecordPart::kLatency;
  throw std::invalid_argument("part '" + name + "': expected all, accuracy or latency");
}

std::string Record::describe() const {
  return point.model + " " + label + ", " + std::to_string(point.threads) + " thread(s), batch " +
         std::to_string(point.batch_size);
}

json to_json(const Record& r) {
  if (r.failed()) {
    return {{"failed_config_hash", r.config_hash},
            {"experiment", r.experiment},
            {"label", r.label},
            {"point", r.point.to_json()},
            {"part", part_name(r.part)},
            {"error", r.error},
            {"provenance", {{"environment", to_json(r.provenance.environment)}}}};
  }
  json j = {{"config_hash", r.config_hash},
            {"experiment", r.experiment},
            {"notes", r.notes},
            {"label", r.label},
            {"point", r.point.to_json()},
            {"config", r.config},
            {"accuracy", r.accuracy ? to_json(*r.accuracy) : json()},
            {"google_benchmark", r.google_benchmark},
            {"calibration", r.calibration ? to_json(*r.calibration) : json()},
            {"trust", r.trust ? to_json(*r.trust) : json()},
            {"provenance", to_json(r.provenance)}};
  // Only in a split sweep's records, so a whole point's record reads as before.
  if (r.part != RecordPart::kAll) j["part"] = part_name(r.part);
  if (r.size_bytes) j["size_bytes"] = *r.size_bytes;
  if (r.latency) j["latency"] = to_json(*r.latency);
  return j;
}

namespace {

/// The fields of a record object; nlohmann exceptions for a wrong type deep inside.
Record record_fields(const json& j) {
  Record r;
  r.error = j.value("error", "");
  r.config_hash = r.failed() ? j.value("failed_config_hash", "")
                             : field(j, "config_hash", [](const json& v) { return v.get<std::string>(); });
  r.experiment = j.value("experiment", "");
  r.notes = j.value("notes", "");
  r.label = field(j, "label", [](const json& v) { return v.get<std::string>(); });
  r.point = field(j, "point", [](const json& v) { return Point::from_json(v); });
  r.config = j.value("config", json());
  r.part = parse_part(j.value("part", "all"));
  r.provenance = field(j.contains("provenance") ? j : json{{"provenance", json::object()}}, "provenance",
                       [](const json& v) { return provenance_from_json(v); });
  if (r.failed()) return r;
  const bool accuracy_part = r.part != RecordPart::kLatency;
  const bool latency_part = r.part != RecordPart::kAccuracy;
  if (accuracy_part) {
    r.size_bytes = field(j, "size_bytes", [](const json& v) { return v.get<int64_t>(); });
    if (!j.value("accuracy", json()).is_null()) {
      r.accuracy = field(j, "accuracy", accuracy_from_json);
    }
    if (!j.value("calibration", json()).is_null()) {
      r.calibration = field(j, "calibration", calibration_from_json);
    }
  }
  if (latency_part) r.latency = field(j, "latency", latency_from_json);
  if (!j.value("trust", json()).is_null()) r.trust = field(j, "trust", trust_from_json);
  r.google_benchmark = j.value("google_benchmark", json());
  return r;
}

}  // namespace

Record record_from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("a record is a JSON object, not " + std::string(j.type_name()));
  try {
    return record_fields(j);
  } catch (const json::exception& e) {
    throw std::invalid_argument(json_error(e));
  }
}

std::vector<Record> parse_records(const std::vector<json>& records) {
  std::vector<Record> out;
  out.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    try {
      out.push_back(record_from_json(records[i]));
    } catch (const std::exception& e) {
      throw std::invalid_argument("record " + std::to_string(i + 1) + ": " + e.what());
    }
  }
  return out;
}

Record join_parts(const Record& accuracy, const Record& latency) {
  if (accuracy.config_hash != latency.config_hash) {
    throw std::invalid_argument("joining parts of different points: " + accuracy.describe() +
                                " and " + latency.describe());
  }
  Record joined = accuracy;
  joined.part = RecordPart::kAll;
  joined.latency = latency.latency;
  joined.google_benchmark = latency.google_benchmark;
  // The latency part measured the output SQNR; the accuracy part did the other checks.
  if (latency.trust && latency.trust->output_sqnr_db) {
    if (!joined.trust) joined.trust.emplace();
    joined.trust->output_sqnr_db = latency.trust->output_sqnr_db;
    joined.trust->broken_below_db = latency.trust->broken_below_db;
    joined.trust->broken = latency.trust->broken;
  }
  // Where and with what the latency was measured: the machine that decides it.
  joined.provenance.environment = latency.provenance.environment;
  joined.provenance.elapsed_s = accuracy.provenance.elapsed_s + latency.provenance.elapsed_s;
  return joined;
}

std::vector<Record> latest_measured(const std::vector<Record>& records) {
  // Per point, the position of the latest record of each part.
  std::vector<std::string> order;
  std::map<std::string, std::map<RecordPart, size_t>> latest;
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].failed()) continue;
    auto& parts = latest[records[i].config_hash];
    if (parts.empty()) order.push_back(records[i].config_hash);
    parts[records[i].part] = i;
  }
  std::vector<Record> out;
  for (const std::string& hash : order) {
    const auto& parts = latest.at(hash);
    auto position = [&](RecordPart part) {
      auto it = parts.find(part);
      return it == parts.end() ? -1 : static_cast<long>(it->second);
    };
    const long whole = position(RecordPart::kAll);
    const long accuracy = position(RecordPart::kAccuracy);
    const long latency = position(RecordPart::kLatency);
    // The latest whole record, with a part measured after it replacing that part of it.
    if (whole >= 0) {
      Record r = records[whole];
      if (accuracy > whole) r = join_parts(records[accuracy], r);
      if (latency > whole) r = join_parts(r, records[latency]);
      out.push_back(std::move(r));
    } else if (accuracy >= 0 && latency >= 0) {
      out.push_back(join_parts(records[accuracy], records[latency]));
    } else {
      out.push_back(records[std::max(accuracy, latency)]);
    }
  }
  return out;
}

}  // namespace qb
