#pragma once
// QConfigMapping: which qconfig each module and function of a graph gets, resolved
// exactly as PyTorch 1.13's FX prepare does (torch/ao/quantization/qconfig_mapping_utils.py),
// and its TOML form:
//
//   [global]                        # optional; without it the global qconfig is none
//   qconfig = "fbgemm"              # an engine name (default_qconfig) or "none"
//
//   [[object_type]]                 # a module kind or function: "Linear", "add", "torch.cat"
//   type = "Linear"
//   qconfig = "none"                # none: leave it in float (and do not fuse it)
//
//   [[module_name_regex]]           # tried in file order; the first match wins
//   regex = 'layer1\..*'
//   qconfig.activation = { observer = "histogram", dtype = "quint8", qscheme = "per_tensor_affine" }
//   qconfig.weight = { observer = "minmax", dtype = "qint8", qscheme = "per_tensor_symmetric" }
//
//   [[module_name]]                 # a module path; applies to its submodules too
//   name = "fc"
//   qconfig = "qnnpack"
//
// An observer table needs observer, dtype and qscheme; the other ObserverSpec fields
// (reduce_range, quant_min, quant_max, eps, averaging_constant, ch_axis, bins,
// upsample_rate, percentile, quantized_bins) are optional, defaulting as ObserverSpec does.
// Observers: minmax, moving_average_minmax, per_channel_minmax,
// moving_average_per_channel_minmax, histogram, percentile, entropy.

#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "quant/qconfig.h"

namespace qb {

/// A bad qconfig mapping file; the message reads "origin:line: key.path: problem".
struct QConfigError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// (key, qconfig) pairs in the order they were first set; std::nullopt is PyTorch's None.
using QConfigEntries = std::vector<std::pair<std::string, std::optional<QConfig>>>;

/// Our spelling of a PyTorch object type: "torch.nn.Conv2d" -> "Conv2d", "operator.add"
/// and "torch.add" -> "add", "torch.nn.functional.relu" / "F.relu" -> "relu". Undotted
/// names pass unchanged; other dotted names throw std::invalid_argument.
std::string canonical_object_type(const std::string& spelling);

/// Mirrors torch.ao.quantization.QConfigMapping (without set_module_name_object_type_order).
/// Setting an existing key again replaces its qconfig but keeps its place, as PyTorch's
/// OrderedDicts do; the order only matters for regexes.
class QConfigMapping {
 public:
  /// The qconfig of whatever nothing more specific matches (none by default, as in PyTorch).
  QConfigMapping& set_global(std::optional<QConfig> qconfig);
  /// For a module kind (Module::kind()) or graph function; see canonical_object_type.
  QConfigMapping& set_object_type(const std::string& object_type, std::optional<QConfig> qconfig);
  /// For module paths the ECMAScript `regex` matches at their start (Python's re.match:
  /// anchored at the start only); std::invalid_argument for a malformed regex.
  QConfigMapping& set_module_name_regex(const std::string& regex, std::optional<QConfig> qconfig);
  /// For the module at `name` and every module below it; std::invalid_argument for ""
  /// (PyTorch accepts it but never matches it: use set_global).
  QConfigMapping& set_module_name(const std::string& name, std::optional<QConfig> qconfig);

  /// The qconfig of a node, std::nullopt meaning "leave in float". Later kinds win:
  /// global < object_type < module_name_regex < module_name, as
  /// maybe_adjust_qconfig_for_module_type_or_name. `object_type` is Module::kind() or the
  /// graph's function name. `module_path` is a call_module node's target; call_function
  /// nodes pass "": our graph does not record which module's forward called a function,
  /// and "" is PyTorch's path for functions called from the top-level forward (regexes
  /// are still tried on "", as re.match does; no module_name entry matches it).
  std::optional<QConfig> qconfig_for(const std::string& module_path,
                                     const std::string& object_type) const;

  const std::optional<QConfig>& global() const { return global_; }
  const QConfigEntries& object_types() const { return object_types_; }
  const QConfigEntries& module_name_regexes() const { return module_name_regexes_; }
  const QConfigEntries& module_names() const { return module_names_; }

  /// Same entries in the same order.
  bool operator==(const QConfigMapping& other) const;
  bool operator!=(const QConfigMapping& other) const { return !(*this == other); }

 private:
  std::optional<QConfig> global_;
  QConfigEntries object_types_;
  QConfigEntries module_name_regexes_;
  std::vector<std::regex> compiled_regexes_;  // parallel to module_name_regexes_
  QConfigEntries module_names_;
};

/// Reads the TOML form above; any problem throws QConfigError naming `origin`, the line
/// and the key path ("object_type[1].qconfig.weight.dtype").
QConfigMapping parse_qconfig_mapping(const std::string& toml_text, const std::string& origin);
/// The TOML form of `mapping`; parse_qconfig_mapping reads it back to an equal mapping.
std::string to_toml(const QConfigMapping& mapping);
/// The same without [global]: the per-type and per-name entries, as a sweep's [mappings] file
/// holds them (each sweep point sets the global qconfig itself).
std::string overrides_to_toml(const QConfigMapping& mapping);

}  // namespace qb
