#include "experiments/variants.h"

#include <algorithm>

#include "quant/quantized_ops.h"

namespace qb {

namespace {

void require_known(Config& config, const std::string& key, const std::vector<std::string>& values,
                   const std::vector<std::string>& known) {
  for (const auto& value : values) {
    if (std::find(known.begin(), known.end(), value) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw config.error(key, "unknown value '" + value + "' (known: " + list + ")");
  }
}

}  // namespace

std::string QuantVariant::name() const {
  return mode + " int8 " + observer + "/" + weights + " calib=" +
         std::to_string(calibration_samples) + " " + engine;
}

std::string QuantVariant::calibration_key() const {
  return mode + "|" + observer + "|" + weights + "|" + std::to_string(calibration_samples) + "|" +
         engine;
}

QConfig variant_qconfig(const QuantVariant& variant) {
  QConfig qconfig = default_qconfig(variant.engine);
  qconfig.activation.kind = variant.observer;
  ObserverSpec weight;
  weight.dtype = QDtype::kQInt8;
  if (variant.weights == "per_tensor") {
    weight.kind = "minmax";
    weight.qscheme = QScheme::kPerTensorSymmetric;
  } else {
    weight.kind = "per_channel_minmax";
    weight.qscheme = QScheme::kPerChannelSymmetric;
  }
  qconfig.weight = weight;
  return qconfig;
}

std::vector<QuantVariant> read_variants(Config& config) {
  std::vector<std::string> modes = config.get_string_list("quantization.modes", {{"graph"}});
  std::vector<std::string> engines = config.get_string_list("quantization.engines", {{"onednn"}});
  std::vector<std::string> observers =
      config.get_string_list("quantization.observers", {{"histogram"}});
  std::vector<std::string> weights =
      config.get_string_list("quantization.weights", {{"per_channel"}});
  std::vector<int64_t> samples = config.get_int_list("calibration.samples", {{256}});

  require_known(config, "quantization.modes", modes, {"graph", "eager"});
  require_known(config, "quantization.engines", engines, available_engines());
  require_known(config, "quantization.observers", observers,
                {"minmax", "moving_average_minmax", "histogram", "percentile", "entropy"});
  require_known(config, "quantization.weights", weights, {"per_channel", "per_tensor"});
  for (int64_t n : samples) {
    if (n < 0) throw config.error("calibration.samples", "sample counts must be >= 0");
  }

  std::vector<QuantVariant> variants;
  for (const auto& mode : modes)
    for (const auto& engine : engines)
      for (const auto& observer : observers)
        for (const auto& weight : weights)
          for (int64_t n : samples) variants.push_back({mode, engine, observer, weight, n});
  return variants;
}

}  // namespace qb
