#include "experiments/config.h"

#include <toml++/toml.h>

#include "base/read_file.h"
#include "quant/toml_value.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace qb {

namespace {

std::string location(const std::string& origin, const toml::source_region& source) {
  return origin + ":" + std::to_string(source.begin.line) + ":";
}

// Collects the dotted paths of every leaf value (arrays count as leaves).
void leaf_keys(const toml::table& table, const std::string& prefix,
               std::vector<std::pair<std::string, const toml::node*>>& out) {
  for (const auto& [key, value] : table) {
    std::string path = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const toml::table* sub = value.as_table()) {
      leaf_keys(*sub, path, out);
    } else {
      out.emplace_back(path, &value);
    }
  }
}

// An array reaches here also when its elements have the wrong type.
std::string kind_of(const toml::node& node) {
  std::string kind = describe_toml_value(node);
  return node.is_array() ? kind + " (or an array of the wrong element type)" : kind;
}

template <typename T>
std::optional<T> typed_value(const toml::node& node);

template <>
std::optional<std::string> typed_value(const toml::node& node) {
  return node.value<std::string>();
}
template <>
std::optional<int64_t> typed_value(const toml::node& node) {
  if (!node.is_integer()) return std::nullopt;
  return node.value<int64_t>();
}
template <>
std::optional<double> typed_value(const toml::node& node) {
  if (!node.is_number()) return std::nullopt;
  return node.value<double>();
}
template <>
std::optional<bool> typed_value(const toml::node& node) {
  return node.value<bool>();
}
template <>
std::optional<std::vector<int64_t>> typed_value(const toml::node& node) {
  const toml::array* array = node.as_array();
  if (!array) return std::nullopt;
  std::vector<int64_t> out;
  for (const auto& element : *array) {
    if (!element.is_integer()) return std::nullopt;
    out.push_back(*element.value<int64_t>());
  }
  return out;
}
template <>
std::optional<std::vector<double>> typed_value(const toml::node& node) {
  const toml::array* array = node.as_array();
  if (!array) return std::nullopt;
  std::vector<double> out;
  for (const auto& element : *array) {
    if (!element.is_number()) return std::nullopt;
    out.push_back(*element.value<double>());
  }
  return out;
}
template <>
std::optional<std::vector<std::string>> typed_value(const toml::node& node) {
  const toml::array* array = node.as_array();
  if (!array) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& element : *array) {
    if (!element.is_string()) return std::nullopt;
    out.push_back(*element.value<std::string>());
  }
  return out;
}

nlohmann::json node_to_json(const toml::node& node) {
  if (const toml::table* table = node.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : *table) out[std::string(key.str())] = node_to_json(value);
    return out;
  }
  if (const toml::array* array = node.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& element : *array) out.push_back(node_to_json(element));
    return out;
  }
  if (node.is_string()) return *node.value<std::string>();
  if (node.is_integer()) return *node.value<int64_t>();
  if (node.is_floating_point()) return *node.value<double>();
  if (node.is_boolean()) return *node.value<bool>();
  std::stringstream text;
  node.visit([&](const auto& value) { text << value; });
  return text.str();
}

}  // namespace

Config::Config(std::unique_ptr<toml::table> root, std::string origin)
    : root_(std::move(root)), origin_(std::move(origin)) {}
Config::~Config() = default;
Config::Config(Config&&) noexcept = default;

Config Config::from_file(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    throw ConfigError(path + ": is a directory; give the TOML file in it");
  }
  const std::optional<std::string> text = read_file(path);
  if (!text) throw ConfigError(path + ": cannot open the configuration file: " + std::strerror(errno));
  return from_string(*text, path);
}

Config Config::from_string(const std::string& text, const std::string& origin) {
  try {
    return Config(std::make_unique<toml::table>(toml::parse(text, origin)), origin);
  } catch (const toml::parse_error& e) {
    throw ConfigError(location(origin, e.source()) + std::to_string(e.source().begin.column) +
                      ": " + std::string(e.description()));
  }
}

bool Config::has(const std::string& key) const {
  return static_cast<bool>(root_->at_path(key).node());
}

template <typename T>
T Config::get(const std::string& key, const std::optional<T>& fallback, const char* type_name) {
  read_keys_.insert(key);
  const toml::node* node = root_->at_path(key).node();
  if (!node) {
    if (fallback) return *fallback;
    throw ConfigError(origin_ + ": missing key '" + key + "' (" + type_name + ")");
  }
  std::optional<T> value = typed_value<T>(*node);
  if (!value) {
    throw ConfigError(location(origin_, node->source()) + " '" + key + "' must be " + type_name +
                      ", got " + kind_of(*node));
  }
  return *value;
}

std::string Config::get_string(const std::string& key, const std::optional<std::string>& fallback) {
  return get<std::string>(key, fallback, "a string");
}
int64_t Config::get_int(const std::string& key, const std::optional<int64_t>& fallback) {
  return get<int64_t>(key, fallback, "an integer");
}
double Config::get_double(const std::string& key, const std::optional<double>& fallback) {
  return get<double>(key, fallback, "a number");
}
bool Config::get_bool(const std::string& key, const std::optional<bool>& fallback) {
  return get<bool>(key, fallback, "true or false");
}
std::vector<int64_t> Config::get_int_list(const std::string& key,
                                          const std::optional<std::vector<int64_t>>& fallback) {
  return get<std::vector<int64_t>>(key, fallback, "a list of integers");
}
int64_t Config::get_int(const std::string& key, IntRange range, const std::optional<int64_t>& fallback) {
  const int64_t value = get_int(key, fallback);
  if (value < range.min || value > range.max) {
    throw error(key, std::to_string(value) + " is out of range [" + std::to_string(range.min) + ", " +
                         std::to_string(range.max) + "]");
  }
  return value;
}
std::vector<int64_t> Config::get_int_list(const std::string& key, IntRange range,
                                          const std::optional<std::vector<int64_t>>& fallback) {
  const std::vector<int64_t> values = get_int_list(key, fallback);
  if (values.empty()) throw error(key, "must not be empty");
  for (int64_t value : values) {
    if (value < range.min || value > range.max) {
      throw error(key, "value " + std::to_string(value) + " is out of range [" + std::to_string(range.min) +
                           ", " + std::to_string(range.max) + "]");
    }
  }
  return values;
}
std::vector<double> Config::get_double_list(const std::string& key,
                                            const std::optional<std::vector<double>>& fallback) {
  return get<std::vector<double>>(key, fallback, "a list of numbers");
}
std::vector<std::string> Config::get_string_list(
    const std::string& key, const std::optional<std::vector<std::string>>& fallback) {
  return get<std::vector<std::string>>(key, fallback, "a list of strings");
}

nlohmann::json Config::get_json(const std::string& key,
                                const std::optional<nlohmann::json>& fallback) {
  const toml::node* node = root_->at_path(key).node();
  if (!node) {
    if (fallback) return *fallback;
    throw ConfigError(origin_ + ": missing key '" + key + "'");
  }
  std::vector<std::pair<std::string, const toml::node*>> leaves;
  if (const toml::table* table = node->as_table()) {
    leaf_keys(*table, key, leaves);
    for (const auto& leaf : leaves) read_keys_.insert(leaf.first);
  } else {
    read_keys_.insert(key);
  }
  return node_to_json(*node);
}

nlohmann::json Config::to_json() const { return node_to_json(*root_); }

void Config::reject_unknown_keys() const {
  std::vector<std::pair<std::string, const toml::node*>> leaves;
  leaf_keys(*root_, "", leaves);
  std::string unknown;
  for (const auto& [key, node] : leaves) {
    if (read_keys_.count(key)) continue;
    unknown += "\n  " + location(origin_, node->source()) + " unknown key '" + key + "'";
  }
  if (!unknown.empty()) {
    throw ConfigError(origin_ + ": keys this program does not know (misspelled?):" + unknown);
  }
}

ConfigError Config::error(const std::string& key, const std::string& message) const {
  const toml::node* node = root_->at_path(key).node();
  std::string where = node ? location(origin_, node->source()) : origin_ + ":";
  return ConfigError(where + " '" + key + "': " + message);
}

}  // namespace qb
