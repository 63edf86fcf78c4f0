#include "quant/serialize.h"

// The container is models/checkpoint's state-dict zip; caffe2's PyTorchStreamReader and
// PyTorchStreamWriter copy its records into a new archive with model.json added (a zip
// cannot be appended to in place). Layout: values as JSON, rebuilding modules, writing,
// reading, then the public functions.

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "base/atomic_file.h"
#include "base/read_file.h"
#include "models/checkpoint.h"
#include "quant/observers.h"
#include "quant/ops.h"
#include "quant/quantized_modules.h"
#include "quant/quantized_ops.h"

namespace qb {
namespace {

// ordered_json keeps keys in insertion order, so configs and attrs read back in theirs.
using Json = nlohmann::ordered_json;

const char* const kModelRecord = "model.json";
const char* const kFormatName = "quantbench.GraphModule";

/// A defect in the file's content; parse_model prefixes the file's name.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------
// Values as JSON

Json attr_to_json(const Attr& attr) {
  if (const auto* i = std::get_if<int64_t>(&attr)) return {{"int", *i}};
  if (const auto* ints = std::get_if<std::vector<int64_t>>(&attr)) return {{"ints", *ints}};
  if (const auto* text = std::get_if<std::string>(&attr)) return {{"string", *text}};
  const double real = std::get<double>(attr);
  // JSON has no inf or nan (nlohmann would write null); strtod reads these spellings back.
  if (!std::isfinite(real)) {
    return {{"float", std::isnan(real) ? "nan" : real > 0 ? "inf" : "-inf"}};
  }
  // nlohmann writes enough digits to read back the very same double: scales stay exact.
  return {{"float", real}};
}

Attr attr_from_json(const Json& json) {
  if (!json.is_object() || json.size() != 1) {
    throw FormatError("a value must look like {\"int\": 1}, found " + json.dump());
  }
  const std::string& type = json.begin().key();
  const Json& value = json.begin().value();
  if (type == "int" && value.is_number_integer()) return value.get<int64_t>();
  if (type == "float" && value.is_number()) return value.get<double>();
  if (type == "float" && value.is_string()) {
    const std::string text = value.get<std::string>();
    if (text == "inf" || text == "-inf" || text == "nan") return std::strtod(text.c_str(), nullptr);
  }
  if (type == "ints") return value.get<std::vector<int64_t>>();
  if (type == "string") return value.get<std::string>();
  throw FormatError("not a valid value: " + json.dump());
}

Json attrs_to_json(const std::vector<std::pair<std::string, Attr>>& attrs) {
  Json json = Json::object();
  for (const auto& [key, value] : attrs) json[key] = attr_to_json(value);
  return json;
}

std::vector<std::pair<std::string, Attr>> attrs_from_json(const Json& json) {
  std::vector<std::pair<std::string, Attr>> attrs;
  for (const auto& item : json.items()) {
    attrs.emplace_back(item.key(), attr_from_json(item.value()));
  }
  return attrs;
}

// ---------------------------------------------------------------------------
// Rebuilding modules

std::string shape_and_dtype(const at::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes() << " " << tensor.scalar_type();
  return out.str();
}

/// One stored module: what its kind's constructor is given, and where its tensors are.
class ModuleRecord {
 public:
  ModuleRecord(std::string path, std::string kind, ModuleConfig config,
               const std::map<std::string, at::Tensor>& tensors, std::set<std::string>& used)
      : path_(std::move(path)),
        kind_(std::move(kind)),
        config_(std::move(config)),
        tensors_(tensors),
        used_(used) {}

  const std::string& kind() const { return kind_; }

  /// What the kind's factory (quant/ops.h) builds the module from.
  ModuleArgs args() const {
    return ModuleArgs(kind_, config_, [this](const std::string& name) { return tensor(name); });
  }

  /// The stored tensor `<path>.<name>`.
  const at::Tensor& tensor(const std::string& name) const {
    const std::string key = path_ + "." + name;
    const auto found = tensors_.find(key);
    if (found == tensors_.end()) throw FormatError(where() + ": tensor '" + key + "' is missing");
    used_.insert(key);
    return found->second;
  }

  /// Replaces every tensor `module` was built with by the stored one, which must match it
  /// (the constructor shaped it from the config, or it is the stored one already).
  void load_tensors(Module& module) const {
    for (const TensorSlot& slot : module.tensors()) {
      const at::Tensor& stored = tensor(slot.name);
      if (stored.sizes() != slot.tensor.sizes() ||
          stored.scalar_type() != slot.tensor.scalar_type()) {
        throw FormatError(where() + ": tensor '" + path_ + "." + slot.name + "' is " +
                          shape_and_dtype(stored) + ", but the module's config makes it " +
                          shape_and_dtype(slot.tensor));
      }
      module.set_tensor(slot.name, stored);
    }
  }

  /// "module 'layer1.0.conv1' (Conv2d)", to start error messages.
  std::string where() const { return "module '" + path_ + "' (" + kind_ + ")"; }

 private:
  std::string path_;
  std::string kind_;
  ModuleConfig config_;
  const std::map<std::string, at::Tensor>& tensors_;
  std::set<std::string>& used_;
};

/// Builds the module `record` describes, with its stored tensors.
std::shared_ptr<Module> rebuild_module(const ModuleRecord& record) {
  const OpSpec* spec = find_op(record.kind());
  if (!spec || !spec->make) throw FormatError(record.where() + ": unknown module kind");
  std::shared_ptr<Module> module;
  try {
    module = spec->make(record.args());
  } catch (const FormatError&) {
    throw;
  } catch (const ModuleArgsError& e) {
    throw FormatError(record.where() + ": " + e.what());
  } catch (const c10::Error& e) {  // prepacking rejected the weight
    throw FormatError(record.where() + ": cannot be rebuilt: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw FormatError(record.where() + ": cannot be rebuilt: " + e.what());
  }
  record.load_tensors(*module);
  return module;
}

// ---------------------------------------------------------------------------
// Writing

/// The engine the int8 modules were prepacked for; empty when there are none.
std::string prepacked_engine(const GraphModule& model) {
  std::string engine;
  std::string engine_path;
  for (const auto& [path, module] : model.modules()) {
    std::string packed_for;
    if (const auto* conv = dynamic_cast<const QuantizedConv2d*>(module.get())) {
      packed_for = conv->engine();
    } else if (const auto* linear = dynamic_cast<const QuantizedLinear*>(module.get())) {
      packed_for = linear->engine();
    }
    if (packed_for.empty()) continue;
    if (engine.empty()) {
      engine = packed_for;
      engine_path = path;
    } else if (packed_for != engine) {
      // No single engine can run such a model, so no file could say which to select.
      throw SerializationError("modules '" + engine_path + "' and '" + path +
                               "' were prepacked for different quantized engines (" + engine +
                               ", " + packed_for + ")");
    }
  }
  return engine;
}

Json model_record(const GraphModule& model) {
  Json modules = Json::array();
  for (const auto& [path, module] : model.modules()) {
    // Refuse now what load could not rebuild, rather than write a file that cannot be read.
    const OpSpec* spec = find_op(module->kind());
    if (!spec || !spec->make) {
      throw SerializationError("cannot save module '" + path + "': modules of kind '" +
                               module->kind() + "' cannot be saved");
    }
    modules.push_back({{"path", path},
                       {"kind", module->kind()},
                       {"training", module->training()},
                       {"config", attrs_to_json(module->config())}});
  }
  Json graph = Json::array();
  for (const Node& node : model.graph.nodes()) {
    graph.push_back({{"name", node.name},
                     {"op", to_string(node.op)},
                     {"target", node.target},
                     {"inputs", node.inputs},
                     {"attrs", attrs_to_json(node.attrs)}});
  }
  const std::string engine = prepacked_engine(model);
  return {{"format", kFormatName},
          {"format_version", kModelFormatVersion},
          {"engine", engine.empty() ? Json(nullptr) : Json(engine)},
          {"modules", modules},
          {"graph", graph}};
}

/// `archive`, a zip PyTorchStreamWriter wrote, with the record `name` added.
std::string with_record(const std::string& archive, const std::string& name,
                        const std::string& data) {
  std::istringstream in(archive);
  caffe2::serialize::PyTorchStreamReader reader(&in);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* bytes, size_t n) {
    out.append(static_cast<const char*>(bytes), n);
    return n;
  });
  for (const std::string& record : reader.getAllRecords()) {
    if (record == "version") continue;  // writeEndOfFile writes it
    auto [bytes, size] = reader.getRecord(record);
    writer.writeRecord(record, bytes.get(), size);
  }
  writer.writeRecord(name, data.data(), data.size());
  writer.writeEndOfFile();
  return out;
}

// ---------------------------------------------------------------------------
// Reading

Json read_model_record(const std::string& bytes) {
  if (bytes.empty()) throw FormatError("the file is empty");
  if (bytes.rfind("PK", 0) != 0) throw FormatError("not a saved model (not a zip archive)");
  std::string text;
  try {
    std::istringstream in(bytes);
    caffe2::serialize::PyTorchStreamReader reader(&in);
    if (!reader.hasRecord(kModelRecord)) {
      throw FormatError(std::string("not a saved model: the archive has no record '") +
                        kModelRecord + "' (a plain state dict? read it with read_state_dict)");
    }
    auto [data, size] = reader.getRecord(kModelRecord);
    text.assign(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& e) {
    // The zip reader reports a cut-off end (no central directory) or a bad CRC this way.
    throw FormatError(std::string("truncated or damaged file: ") + e.what_without_backtrace());
  }
  return Json::parse(text);
}

void check_format(const Json& record) {
  if (!record.is_object() || record.value("format", "") != kFormatName) {
    throw FormatError(std::string("not a saved model: ") + kModelRecord +
                      " does not say \"format\": \"" + kFormatName + "\"");
  }
  const int64_t version = record.at("format_version").get<int64_t>();
  if (version > kModelFormatVersion) {
    throw FormatError("the file has model format version " + std::to_string(version) +
                      ", but this build reads versions up to " +
                      std::to_string(kModelFormatVersion) + "; load it with a newer quantbench");
  }
  if (version < 1) throw FormatError("invalid model format version " + std::to_string(version));
}

/// Makes the stored engine current, so that constructing the int8 modules prepacks for it.
void select_stored_engine(const Json& record) {
  const Json& engine = record.at("engine");
  if (engine.is_null()) return;  // nothing was prepacked: any engine will do
  const std::string name = engine.get<std::string>();
  const std::vector<std::string> available = available_engines();
  if (std::find(available.begin(), available.end(), name) == available.end()) {
    std::string list;
    for (const std::string& e : available) list += (list.empty() ? "" : ", ") + e;
    throw FormatError("the model was converted for quantized engine '" + name +
                      "', which this LibTorch build does not offer (available: " + list +
                      "); convert it again for one of those");
  }
  select_engine(name);
}

NodeOp op_from_string(const std::string& text) {
  for (NodeOp op :
       {NodeOp::kPlaceholder, NodeOp::kCallModule, NodeOp::kCallFunction, NodeOp::kOutput}) {
    if (text == to_string(op)) return op;
  }
  throw FormatError("unknown node op '" + text + "'");
}

/// Appends the stored node exactly as it was (name, target, inputs, attrs).
void append_node(Graph& graph, const Json& json) {
  Node node;
  node.name = json.at("name").get<std::string>();
  node.op = op_from_string(json.at("op").get<std::string>());
  node.target = json.at("target").get<std::string>();
  node.inputs = json.at("inputs").get<std::vector<std::string>>();
  node.attrs = attrs_from_json(json.at("attrs"));
  const OpSpec* function = find_op(node.target);
  if (node.op == NodeOp::kCallFunction && (!function || function->form != OpForm::kFunction)) {
    throw FormatError("node '" + node.name + "' calls the unknown function '" + node.target + "'");
  }
  // A builder appends a node of the right op under the stored name; the stored fields then
  // replace the builder's.
  switch (node.op) {
    case NodeOp::kPlaceholder:
      graph.placeholder(node.name);
      break;
    case NodeOp::kCallModule:
      graph.call_module(node.target, {}, node.name);
      break;
    case NodeOp::kCallFunction:
      graph.call_function(node.target, {}, {}, node.name);
      break;
    case NodeOp::kOutput:
      graph.output({});
      break;
  }
  const std::string appended = graph.nodes().back().name;
  if (appended != node.name) {
    throw FormatError("node '" + node.name +
                      "' cannot be rebuilt under its name (a duplicate, or an output node not "
                      "called 'output')");
  }
  graph.node(appended) = std::move(node);
}

GraphModule assemble_model(const Json& record, const StateDict& state) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [key, tensor] : state) {
    if (!tensors.emplace(key, tensor).second) {
      throw FormatError("tensor '" + key + "' is stored twice");
    }
  }
  std::set<std::string> used;
  GraphModule model;
  for (const Json& entry : record.at("modules")) {
    const std::string path = entry.at("path").get<std::string>();
    std::shared_ptr<Module> module =
        rebuild_module(ModuleRecord(path, entry.at("kind").get<std::string>(),
                                    attrs_from_json(entry.at("config")), tensors, used));
    module->set_training(entry.at("training").get<bool>());
    model.add_module(path, std::move(module));
  }
  for (const auto& [key, tensor] : tensors) {
    if (used.count(key) == 0) throw FormatError("tensor '" + key + "' belongs to no module");
  }
  for (const Json& node : record.at("graph")) append_node(model.graph, node);
  lint(model);
  return model;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public functions

std::string serialize_model(const GraphModule& model) {
  std::string json;
  std::string state;
  try {
    json = model_record(model).dump(1);
    state = serialize_state_dict(model.state_dict());
  } catch (const nlohmann::json::exception& e) {  // a string that is not UTF-8
    throw SerializationError(std::string("cannot save: ") + e.what());
  } catch (const CheckpointError& e) {
    throw SerializationError(e.what());
  }
  return with_record(state, kModelRecord, json);
}

void save_model(const GraphModule& model, const std::string& path) {
  std::string bytes;
  try {
    bytes = serialize_model(model);
  } catch (const SerializationError& e) {
    throw SerializationError(path + ": " + e.what());
  }
  try {
    write_file_atomically(path, bytes);
  } catch (const WriteError& e) {
    throw SerializationError(e.what());
  }
}

GraphModule parse_model(const std::string& bytes, const std::string& origin_for_errors) {
  const std::string& origin = origin_for_errors;
  try {
    const Json record = read_model_record(bytes);
    check_format(record);
    select_stored_engine(record);
    return assemble_model(record, parse_state_dict(bytes, origin));
  } catch (const FormatError& e) {
    throw SerializationError(origin + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw SerializationError(origin + ": corrupt " + kModelRecord + ": " + e.what());
  } catch (const CheckpointError& e) {
    throw SerializationError(e.what());  // already names the origin
  } catch (const GraphError& e) {
    throw SerializationError(origin + ": invalid model: " + e.what());
  }
}

GraphModule load_model(const std::string& path) {
  const std::optional<std::string> bytes = read_file(path);
  if (!bytes) throw SerializationError(path + ": cannot open: " + std::strerror(errno));
  return parse_model(*bytes, path);
}

}  // namespace qb
