#pragma once
// QConfig: which observers watch a layer's output activation and its weight, and
// each engine's default choice (torch.ao.quantization.get_default_qconfig, PyTorch 1.13).

#include <ostream>
#include <string>
#include <vector>

#include "quant/observers.h"

namespace qb {

/// How to observe one layer, as torch.ao.quantization.QConfig.
struct QConfig {
  ObserverSpec activation;
  ObserverSpec weight;
};

/// Field-by-field equality of both observer specs.
bool operator==(const QConfig& a, const QConfig& b);
bool operator!=(const QConfig& a, const QConfig& b);

/// `{ observer = "histogram", dtype = "quint8", ... }`: the inline table qconfig mapping
/// files use. Fields still at their ObserverSpec defaults are left out, except the four
/// that say what the observer is (observer, dtype, qscheme, reduce_range).
std::string to_toml(const ObserverSpec& spec);
/// `QConfig(activation={ ... }, weight={ ... })`, each observer as to_toml prints it.
std::string to_string(const QConfig& qconfig);
/// Streams to_string(qconfig), so test frameworks can show qconfigs.
std::ostream& operator<<(std::ostream& out, const QConfig& qconfig);

/// The engines default_qconfig knows: fbgemm, x86, qnnpack, onednn.
const std::vector<std::string>& known_engines();
/// get_default_qconfig(engine) of PyTorch 1.13; std::invalid_argument for other engines
/// (PyTorch silently falls back to default_qconfig, which hides typos).
QConfig default_qconfig(const std::string& engine);

/// The activation observers a sweep or `quantize` may name, as ObserverSpec kinds.
const std::vector<std::string>& activation_observers();
/// `engine`'s default qconfig with the activation observer `observer` (one of
/// activation_observers()) and symmetric int8 weights by `weights`: "per_channel"
/// (per_channel_minmax) or "per_tensor" (minmax). std::invalid_argument names a bad value.
QConfig configured_qconfig(const std::string& engine, const std::string& observer,
                           const std::string& weights);

}  // namespace qb
