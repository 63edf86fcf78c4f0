#pragma once
// The int8 variants a sweep compares with fp32: one per combination of the
// lists under [quantization] and [calibration].

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/config.h"
#include "quant/qconfig.h"

namespace qb {

struct QuantVariant {
  std::string mode = "graph";       // "graph" (FX-style) or "eager"
  std::string engine = "onednn";    // quantized engine
  std::string observer = "histogram";  // activation observer kind
  std::string weights = "per_channel";  // "per_channel" or "per_tensor" weight quantization
  int64_t calibration_samples = 0;  // 0: convert without calibration (default qparams)

  /// A readable row label, e.g. "graph int8 histogram/per_channel calib=256 onednn".
  std::string name() const;
  /// Calibration is shared by every variant with the same key (engines differ after it).
  std::string calibration_key() const;
};

/// The global qconfig of a variant: the engine's default qconfig with the activation
/// observer and the weight scheme the variant names.
QConfig variant_qconfig(const QuantVariant& variant);

/// Reads [quantization] (modes, engines, observers, weights) and [calibration] samples;
/// returns their Cartesian product. An unknown value is a ConfigError naming the key.
std::vector<QuantVariant> read_variants(Config& config);

}  // namespace qb
