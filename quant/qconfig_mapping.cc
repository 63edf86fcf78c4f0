#include "quant/qconfig_mapping.h"

#include "quant/toml_value.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <sstream>

namespace qb {

namespace {

const QConfigEntries::value_type* find(const QConfigEntries& entries, const std::string& key) {
  for (const auto& entry : entries) {
    if (entry.first == key) return &entry;
  }
  return nullptr;
}

// Replaces the qconfig of an existing key in place (OrderedDict semantics) or appends.
// Returns whether the key is new.
bool set_entry(QConfigEntries& entries, const std::string& key, std::optional<QConfig> qconfig) {
  for (auto& entry : entries) {
    if (entry.first == key) {
      entry.second = std::move(qconfig);
      return false;
    }
  }
  entries.emplace_back(key, std::move(qconfig));
  return true;
}

// _parent_name(path)[0]: "a.b.c" -> "a.b", "a" -> "".
std::string parent_name(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

std::string canonical_object_type(const std::string& spelling) {
  // Longest first, so "torch.nn.functional.relu" loses the whole prefix, not just "torch.".
  static const char* const kPrefixes[] = {
      "torch.nn.functional.", "torch.nn.intrinsic.", "torch.nn.", "nn.functional.",
      "nn.intrinsic.",        "nn.",                 "F.",        "operator.",
      "torch."};
  std::string name = spelling;
  for (const char* prefix : kPrefixes) {
    if (name.rfind(prefix, 0) == 0) {
      name.erase(0, std::strlen(prefix));
      break;
    }
  }
  if (name.empty() || name.find('.') != std::string::npos) {
    throw std::invalid_argument("unknown object type '" + spelling +
                                "': expected a module kind or function such as Conv2d, add, "
                                "torch.nn.Linear or operator.add");
  }
  return name;
}

QConfigMapping& QConfigMapping::set_global(std::optional<QConfig> qconfig) {
  global_ = std::move(qconfig);
  return *this;
}

QConfigMapping& QConfigMapping::set_object_type(const std::string& object_type,
                                                std::optional<QConfig> qconfig) {
  set_entry(object_types_, canonical_object_type(object_type), std::move(qconfig));
  return *this;
}

QConfigMapping& QConfigMapping::set_module_name_regex(const std::string& regex,
                                                      std::optional<QConfig> qconfig) {
  std::regex compiled;
  try {
    compiled = std::regex(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument("bad module_name_regex '" + regex + "': " + e.what());
  }
  if (set_entry(module_name_regexes_, regex, std::move(qconfig))) {
    compiled_regexes_.push_back(std::move(compiled));
  }
  return *this;
}

QConfigMapping& QConfigMapping::set_module_name(const std::string& name,
                                                std::optional<QConfig> qconfig) {
  if (name.empty()) {
    throw std::invalid_argument("module_name \"\" would never match: use set_global");
  }
  set_entry(module_names_, name, std::move(qconfig));
  return *this;
}

std::optional<QConfig> QConfigMapping::qconfig_for(const std::string& module_path,
                                                   const std::string& object_type) const {
  std::optional<QConfig> qconfig = global_;
  if (const auto* entry = find(object_types_, object_type)) qconfig = entry->second;
  for (size_t i = 0; i < compiled_regexes_.size(); ++i) {
    // match_continuous anchors at the start only, as Python's re.match.
    if (std::regex_search(module_path, compiled_regexes_[i],
                          std::regex_constants::match_continuous)) {
      qconfig = module_name_regexes_[i].second;
      break;
    }
  }
  // get_module_name_qconfig: the path itself, then each enclosing module's path.
  for (std::string path = module_path; !path.empty(); path = parent_name(path)) {
    if (const auto* entry = find(module_names_, path)) return entry->second;
  }
  return qconfig;
}

bool QConfigMapping::operator==(const QConfigMapping& other) const {
  return global_ == other.global_ && object_types_ == other.object_types_ &&
         module_name_regexes_ == other.module_name_regexes_ &&
         module_names_ == other.module_names_;
}

// ---- TOML -------------------------------------------------------------------------

namespace {

const std::vector<std::string>& observer_kinds() {
  static const std::vector<std::string> kinds = {
      "minmax",    "moving_average_minmax", "per_channel_minmax", "moving_average_per_channel_minmax",
      "histogram", "percentile",            "entropy"};
  return kinds;
}

std::string child_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// Typed reads from a parsed file; every failure names the origin, line and key path.
class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const toml::source_region& where, const std::string& path,
                         const std::string& problem) const {
    throw QConfigError(origin_ + ":" + std::to_string(where.begin.line) + ": " + path + ": " +
                       problem);
  }

  void check_keys(const toml::table& table, const std::string& path,
                  std::initializer_list<const char*> allowed) const {
    for (const auto& [key, value] : table) {
      auto is_key = [&key = key](const char* name) { return key.str() == name; };
      if (std::any_of(allowed.begin(), allowed.end(), is_key)) continue;
      fail(key.source(), child_path(path, std::string(key.str())),
           "unknown key (expected one of: " +
               joined(std::vector<std::string>(allowed.begin(), allowed.end())) + ")");
    }
  }

  const toml::node& require(const toml::table& table, const std::string& path,
                            const char* key) const {
    const toml::node* node = table.get(key);
    if (!node) fail(table.source(), child_path(path, key), "missing key");
    return *node;
  }

  const toml::table& table(const toml::node& node, const std::string& path) const {
    if (const toml::table* table = node.as_table()) return *table;
    fail(node.source(), path, "must be a table, got " + describe_toml_value(node));
  }

  std::string string(const toml::node& node, const std::string& path) const {
    if (const auto* value = node.as_string()) return value->get();
    fail(node.source(), path, "must be a string, got " + describe_toml_value(node));
  }

  int64_t integer(const toml::node& node, const std::string& path) const {
    if (const auto* value = node.as_integer()) return value->get();
    fail(node.source(), path, "must be an integer, got " + describe_toml_value(node));
  }

  // Integers are accepted where floats are expected ("percentile = 100").
  double number(const toml::node& node, const std::string& path) const {
    if (node.is_number()) return *node.value<double>();
    fail(node.source(), path, "must be a number, got " + describe_toml_value(node));
  }

  bool boolean(const toml::node& node, const std::string& path) const {
    if (const auto* value = node.as_boolean()) return value->get();
    fail(node.source(), path, "must be true or false, got " + describe_toml_value(node));
  }

  // The position in `known` of the string at `node` (what: "observer", "dtype", ...).
  size_t one_of(const toml::node& node, const std::string& path, const char* what,
                const std::vector<std::string>& known) const {
    std::string value = string(node, path);
    for (size_t i = 0; i < known.size(); ++i) {
      if (value == known[i]) return i;
    }
    fail(node.source(), path,
         "unknown " + std::string(what) + " '" + value + "' (known: " + joined(known) + ")");
  }

  // An enum spelled as observers.h's to_string spells it.
  template <typename Enum>
  Enum enum_value(const toml::node& node, const std::string& path, const char* what,
                  std::initializer_list<Enum> values) const {
    std::vector<std::string> names;
    for (Enum value : values) names.push_back(to_string(value));
    return values.begin()[one_of(node, path, what, names)];
  }

  ObserverSpec observer(const toml::node& node, const std::string& path) const {
    const toml::table& spec_table = table(node, path);
    check_keys(spec_table, path,
               {"observer", "dtype", "qscheme", "reduce_range", "quant_min", "quant_max", "eps",
                "averaging_constant", "ch_axis", "bins", "upsample_rate", "percentile",
                "quantized_bins"});
    ObserverSpec spec;
    // observer, dtype and qscheme are required: ObserverSpec's defaults (quint8,
    // per_tensor_affine) silently contradict e.g. a per-channel weight observer.
    spec.kind = observer_kinds()[one_of(require(spec_table, path, "observer"),
                                        child_path(path, "observer"), "observer", observer_kinds())];
    spec.dtype = enum_value(require(spec_table, path, "dtype"), child_path(path, "dtype"), "dtype",
                            {QDtype::kQUInt8, QDtype::kQInt8});
    spec.qscheme = enum_value(require(spec_table, path, "qscheme"), child_path(path, "qscheme"),
                              "qscheme",
                              {QScheme::kPerTensorAffine, QScheme::kPerTensorSymmetric,
                               QScheme::kPerChannelAffine, QScheme::kPerChannelSymmetric});
    auto optional = [&](const char* key, auto read, auto& field) {
      if (const toml::node* value = spec_table.get(key)) {
        field = (this->*read)(*value, child_path(path, key));
      }
    };
    optional("reduce_range", &Reader::boolean, spec.reduce_range);
    optional("quant_min", &Reader::integer, spec.quant_min);
    optional("quant_max", &Reader::integer, spec.quant_max);
    optional("eps", &Reader::number, spec.eps);
    optional("averaging_constant", &Reader::number, spec.averaging_constant);
    optional("ch_axis", &Reader::integer, spec.ch_axis);
    optional("bins", &Reader::integer, spec.bins);
    optional("upsample_rate", &Reader::integer, spec.upsample_rate);
    optional("percentile", &Reader::number, spec.percentile);
    optional("quantized_bins", &Reader::integer, spec.quantized_bins);
    return spec;
  }

  // "none", an engine name, or { activation = {...}, weight = {...} }.
  std::optional<QConfig> qconfig(const toml::node& node, const std::string& path) const {
    if (node.is_string()) {
      std::vector<std::string> names = {"none"};
      names.insert(names.end(), known_engines().begin(), known_engines().end());
      const std::string& name = names[one_of(node, path, "qconfig", names)];
      if (name == "none") return std::nullopt;
      return default_qconfig(name);
    }
    if (!node.is_table()) {
      fail(node.source(), path,
           "must be \"none\", an engine name or a table with activation and weight, got " +
               describe_toml_value(node));
    }
    const toml::table& qconfig_table = *node.as_table();
    check_keys(qconfig_table, path, {"activation", "weight"});
    return QConfig{observer(require(qconfig_table, path, "activation"), child_path(path, "activation")),
                   observer(require(qconfig_table, path, "weight"), child_path(path, "weight"))};
  }

  // Each [[section]] entry: `key_name = "..."` plus a qconfig, handed to `set`.
  void entries(const toml::table& root, const std::string& section, const char* key_name,
               const std::function<void(const std::string&, std::optional<QConfig>)>& set) const {
    const toml::node* node = root.get(section);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) {
      fail(node->source(), section,
           "must be an array of tables ([[" + section + "]]), got " +
               describe_toml_value(*node));
    }
    for (size_t i = 0; i < array->size(); ++i) {
      std::string path = section + "[" + std::to_string(i) + "]";
      const toml::table& entry = table(*array->get(i), path);
      check_keys(entry, path, {key_name, "qconfig"});
      const toml::node& key = require(entry, path, key_name);
      std::string key_path = child_path(path, key_name);
      std::string value = string(key, key_path);
      std::optional<QConfig> qconfig =
          this->qconfig(require(entry, path, "qconfig"), child_path(path, "qconfig"));
      try {
        set(value, std::move(qconfig));
      } catch (const std::invalid_argument& e) {
        fail(key.source(), key_path, e.what());
      }
    }
  }

 private:
  std::string origin_;
};

toml::table parse_toml(const std::string& text, const std::string& origin) {
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw QConfigError(origin + ":" + std::to_string(e.source().begin.line) + ":" +
                       std::to_string(e.source().begin.column) + ": " +
                       std::string(e.description()));
  }
}

// toml++ picks the quoting: literal '...' when possible, which keeps regexes readable.
std::string toml_string(const std::string& text) {
  std::ostringstream out;
  out << toml::value<std::string>(text);
  return out.str();
}

std::string qconfig_lines(const std::optional<QConfig>& qconfig) {
  if (!qconfig) return "qconfig = 'none'\n";
  return "qconfig.activation = " + to_toml(qconfig->activation) +
         "\nqconfig.weight = " + to_toml(qconfig->weight) + "\n";
}

}  // namespace

QConfigMapping parse_qconfig_mapping(const std::string& toml_text, const std::string& origin) {
  const toml::table root = parse_toml(toml_text, origin);
  const Reader reader(origin);
  reader.check_keys(root, "", {"global", "object_type", "module_name_regex", "module_name"});
  QConfigMapping mapping;
  if (const toml::node* global = root.get("global")) {
    const toml::table& global_table = reader.table(*global, "global");
    reader.check_keys(global_table, "global", {"qconfig"});
    mapping.set_global(
        reader.qconfig(reader.require(global_table, "global", "qconfig"), "global.qconfig"));
  }
  reader.entries(root, "object_type", "type", [&](const std::string& type, std::optional<QConfig> qconfig) {
    mapping.set_object_type(type, std::move(qconfig));
  });
  reader.entries(root, "module_name_regex", "regex", [&](const std::string& regex, std::optional<QConfig> qconfig) {
    mapping.set_module_name_regex(regex, std::move(qconfig));
  });
  reader.entries(root, "module_name", "name", [&](const std::string& name, std::optional<QConfig> qconfig) {
    mapping.set_module_name(name, std::move(qconfig));
  });
  return mapping;
}

std::string overrides_to_toml(const QConfigMapping& mapping) {
  std::string out;
  auto section = [&](const std::string& name, const std::string& key, const QConfigEntries& entries) {
    for (const auto& [value, qconfig] : entries) {
      out += "\n[[" + name + "]]\n" + key + " = " + toml_string(value) + "\n" + qconfig_lines(qconfig);
    }
  };
  section("object_type", "type", mapping.object_types());
  section("module_name_regex", "regex", mapping.module_name_regexes());
  section("module_name", "name", mapping.module_names());
  return out;
}

std::string to_toml(const QConfigMapping& mapping) {
  return "[global]\n" + qconfig_lines(mapping.global()) + overrides_to_toml(mapping);
}

}  // namespace qb
