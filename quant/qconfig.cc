#include "quant/qconfig.h"

#include <algorithm>

#include <toml++/toml.h>

#include <charconv>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace qb {

namespace {

// Every ObserverSpec field: one added to observers.h belongs here, in to_toml and in
// qconfig_mapping.cc's reader too.
auto fields(const ObserverSpec& spec) {
  return std::tie(spec.kind, spec.dtype, spec.qscheme, spec.reduce_range, spec.quant_min,
                  spec.quant_max, spec.eps, spec.averaging_constant, spec.ch_axis, spec.bins,
                  spec.upsample_rate, spec.percentile, spec.quantized_bins);
}

// toml++ picks the quoting: literal '...' when possible, which keeps regexes readable.
std::string toml_string(const std::string& text) {
  std::ostringstream out;
  out << toml::value<std::string>(text);
  return out.str();
}

// Shortest text that parses back to the same double, so files round-trip exactly.
std::string toml_float(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, result.ptr);
  // "2" would read back as a TOML integer; keep it visibly a float.
  if (text.find_first_not_of("-0123456789") == std::string::npos) text += ".0";
  return text;
}

// The observers get_default_qconfig combines (observer.py). quant_min/quant_max stay
// unset, as with_args leaves them: observers derive them from dtype and reduce_range.
ObserverSpec histogram_activation(bool reduce_range) {
  ObserverSpec spec;
  spec.kind = "histogram";
  spec.dtype = QDtype::kQUInt8;
  spec.qscheme = QScheme::kPerTensorAffine;
  spec.reduce_range = reduce_range;
  return spec;
}

// default_per_channel_weight_observer.
ObserverSpec per_channel_weight() {
  ObserverSpec spec;
  spec.kind = "per_channel_minmax";
  spec.dtype = QDtype::kQInt8;
  spec.qscheme = QScheme::kPerChannelSymmetric;
  return spec;
}

// default_weight_observer.
ObserverSpec per_tensor_weight() {
  ObserverSpec spec;
  spec.kind = "minmax";
  spec.dtype = QDtype::kQInt8;
  spec.qscheme = QScheme::kPerTensorSymmetric;
  return spec;
}

}  // namespace

bool operator==(const QConfig& a, const QConfig& b) {
  return fields(a.activation) == fields(b.activation) && fields(a.weight) == fields(b.weight);
}

bool operator!=(const QConfig& a, const QConfig& b) { return !(a == b); }

std::string to_toml(const ObserverSpec& spec) {
  const ObserverSpec defaults;
  std::string out = "{ observer = " + toml_string(spec.kind) +
                    ", dtype = " + toml_string(to_string(spec.dtype)) +
                    ", qscheme = " + toml_string(to_string(spec.qscheme)) +
                    ", reduce_range = " + (spec.reduce_range ? "true" : "false");
  if (spec.quant_min) out += ", quant_min = " + std::to_string(*spec.quant_min);
  if (spec.quant_max) out += ", quant_max = " + std::to_string(*spec.quant_max);
  if (spec.eps != defaults.eps) out += ", eps = " + toml_float(spec.eps);
  if (spec.averaging_constant != defaults.averaging_constant) {
    out += ", averaging_constant = " + toml_float(spec.averaging_constant);
  }
  if (spec.ch_axis != defaults.ch_axis) out += ", ch_axis = " + std::to_string(spec.ch_axis);
  if (spec.bins != defaults.bins) out += ", bins = " + std::to_string(spec.bins);
  if (spec.upsample_rate != defaults.upsample_rate) {
    out += ", upsample_rate = " + std::to_string(spec.upsample_rate);
  }
  if (spec.percentile != defaults.percentile) {
    out += ", percentile = " + toml_float(spec.percentile);
  }
  if (spec.quantized_bins != defaults.quantized_bins) {
    out += ", quantized_bins = " + std::to_string(spec.quantized_bins);
  }
  return out + " }";
}

std::string to_string(const QConfig& qconfig) {
  return "QConfig(activation=" + to_toml(qconfig.activation) +
         ", weight=" + to_toml(qconfig.weight) + ")";
}

std::ostream& operator<<(std::ostream& out, const QConfig& qconfig) {
  return out << to_string(qconfig);
}

const std::vector<std::string>& known_engines() {
  static const std::vector<std::string> engines = {"fbgemm", "x86", "qnnpack", "onednn"};
  return engines;
}

QConfig default_qconfig(const std::string& engine) {
  // get_default_qconfig(backend, version=0) in qconfig.py: fbgemm and x86 observe
  // activations over 7 bits (reduce_range), which keeps their 16-bit intermediate sums
  // from saturating; qnnpack's default weight observer is per-tensor.
  if (engine == "fbgemm" || engine == "x86") return {histogram_activation(true), per_channel_weight()};
  if (engine == "qnnpack") return {histogram_activation(false), per_tensor_weight()};
  if (engine == "onednn") return {histogram_activation(false), per_channel_weight()};
  std::string known;
  for (const auto& name : known_engines()) known += (known.empty() ? "" : ", ") + name;
  throw std::invalid_argument("unknown quantization engine '" + engine + "' (known: " + known + ")");
}

const std::vector<std::string>& activation_observers() {
  static const std::vector<std::string> observers = {"minmax", "moving_average_minmax",
                                                     "histogram", "percentile", "entropy"};
  return observers;
}

QConfig configured_qconfig(const std::string& engine, const std::string& observer,
                           const std::string& weights) {
  QConfig qconfig = default_qconfig(engine);
  const auto& observers = activation_observers();
  if (std::find(observers.begin(), observers.end(), observer) == observers.end()) {
    std::string known;
    for (const auto& name : observers) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument("unknown activation observer '" + observer + "' (known: " + known +
                                ")");
  }
  qconfig.activation.kind = observer;
  ObserverSpec weight;
  weight.dtype = QDtype::kQInt8;
  if (weights == "per_tensor") {
    weight.kind = "minmax";
    weight.qscheme = QScheme::kPerTensorSymmetric;
  } else if (weights == "per_channel") {
    weight.kind = "per_channel_minmax";
    weight.qscheme = QScheme::kPerChannelSymmetric;
  } else {
    throw std::invalid_argument("unknown weight scheme '" + weights +
                                "' (known: per_channel, per_tensor)");
  }
  qconfig.weight = weight;
  return qconfig;
}

}  // namespace qb
