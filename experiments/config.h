#pragma once
// Typed access to a TOML experiment file by dotted key path, with errors that
// name the file, the line and the key, and a check for keys nobody read.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace qb {

/// A problem in a configuration file; the message starts with "file:line:".
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The values an integer key may take: what the code reading it can use, so that no value is
/// cut or wraps on its way (a thread count is an int, a seed is unsigned).
struct IntRange {
  int64_t min;
  int64_t max;
};

/// The ranges keys share.
inline constexpr IntRange kThreadRange{1, 1024};               // at::set_num_threads takes an int
inline constexpr IntRange kBatchSizeRange{1, int64_t{1} << 20};
inline constexpr IntRange kSeedRange{0, INT64_MAX};            // seeds are unsigned
inline constexpr IntRange kCountRange{0, int64_t{1} << 40};    // examples, samples
inline constexpr IntRange kClassRange{1, 1 << 20};
inline constexpr IntRange kChannelRange{1, 1 << 16};

class Config {
 public:
  /// Parses `path`; a syntax error becomes a ConfigError with its line and column.
  static Config from_file(const std::string& path);
  /// Parses TOML text; `origin` names it in errors.
  static Config from_string(const std::string& text, const std::string& origin);
  ~Config();
  Config(Config&&) noexcept;

  /// Whether `key` ("train.epochs") is present.
  bool has(const std::string& key) const;
  /// The value at `key`, or `fallback` when absent; a wrong type is a ConfigError.
  std::string get_string(const std::string& key, const std::optional<std::string>& fallback = {});
  int64_t get_int(const std::string& key, const std::optional<int64_t>& fallback = {});
  /// Accepts integers too ("lr = 1" means 1.0).
  double get_double(const std::string& key, const std::optional<double>& fallback = {});
  bool get_bool(const std::string& key, const std::optional<bool>& fallback = {});
  /// Accepts integers among the numbers, as get_double does.
  std::vector<double> get_double_list(const std::string& key,
                                      const std::optional<std::vector<double>>& fallback = {});
  std::vector<int64_t> get_int_list(const std::string& key,
                                    const std::optional<std::vector<int64_t>>& fallback = {});
  /// get_int and get_int_list, each value in `range`: otherwise a ConfigError naming the key,
  /// the value and the range. A list must not be empty.
  int64_t get_int(const std::string& key, IntRange range, const std::optional<int64_t>& fallback = {});
  std::vector<int64_t> get_int_list(const std::string& key, IntRange range,
                                    const std::optional<std::vector<int64_t>>& fallback = {});
  std::vector<std::string> get_string_list(
      const std::string& key, const std::optional<std::vector<std::string>>& fallback = {});

  /// The value at `key` (a table, array or scalar) as JSON, every key below it counted as read;
  /// `fallback` when absent. Dates and times become strings.
  nlohmann::json get_json(const std::string& key, const std::optional<nlohmann::json>& fallback = {});
  /// The whole file as JSON (for provenance records); reads nothing.
  nlohmann::json to_json() const;

  /// Throws a ConfigError naming every key present in the file that no getter asked for.
  void reject_unknown_keys() const;
  /// A ConfigError for `key` ("file:line: key: message") for checks the caller makes.
  ConfigError error(const std::string& key, const std::string& message) const;
  const std::string& origin() const { return origin_; }

 private:
  Config(std::unique_ptr<toml::table> root, std::string origin);
  template <typename T>
  T get(const std::string& key, const std::optional<T>& fallback, const char* type_name);

  std::unique_ptr<toml::table> root_;
  std::string origin_;
  std::set<std::string> read_keys_;
};

}  // namespace qb
