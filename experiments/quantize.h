#pragma once
// `quantize`: a user's TorchScript model in, an int8 TorchScript model out, in one call.
//
//   bazel run //:quantize -- --model FP32.pt --calibration CALIB.pt --output INT8.pt
//       [--calibration-batch-size 32] [--engine onednn]
//       [--observer histogram|minmax|moving_average_minmax|percentile|entropy]
//       [--weights per_channel|per_tensor] [--mapping FILE.toml]
//
// FP32.pt is imported (models/torchscript_import.h); CALIB.pt is a torch.save'd float
// tensor (N, C, H, W) fed in file order in batches of the batch size, as a PyTorch
// DataLoader without shuffling feeds it; the qconfig is the engine's default
// (get_default_qconfig), with the observer and weights options overriding its
// activation observer and weight scheme, and a mapping file (quant/qconfig_mapping.h)
// adding object_type / module_name_regex / module_name entries over it. INT8.pt is the
// TorchScript export (models/torchscript_export.h). Everything is checked before any
// work: the files, the options, the engine.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/inspect.h"

namespace qb {

/// Bad command-line input; the message says which flag or file and what to do.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct QuantizeOptions {
  std::string model;        // FP32.pt, a TorchScript file
  std::string calibration;  // CALIB.pt, a torch.save'd tensor
  std::string output;       // INT8.pt
  int64_t calibration_batch_size = 32;
  std::string engine = "onednn";
  std::string observer;  // empty: the engine default's
  std::string weights;   // empty: the engine default's
  std::string mapping;   // a qconfig mapping file, or empty
};

/// The options `argv` gives (paths as typed: the caller resolves them); UsageError on
/// an unknown flag, a missing value or a missing required flag.
QuantizeOptions parse_quantize_arguments(const std::vector<std::string>& arguments);

/// The usage text.
std::string quantize_usage();

/// What one quantization did, for the summary the tool prints.
struct QuantizeReport {
  PrecisionCounts precisions;
  /// Per-layer SQNR against the fused fp32 model on the first calibration batches.
  std::vector<LayerSqnr> layer_sqnr;
  int64_t sqnr_batches = 0;
  int64_t calibration_examples = 0;
  int64_t calibration_batches = 0;
  int64_t input_bytes = 0;   // FP32.pt on disk
  int64_t output_bytes = 0;  // INT8.pt on disk
  /// Seconds per step, in order: ("import", 0.2), ("prepare", ...), ...
  std::vector<std::pair<std::string, double>> step_seconds;
};

/// Runs the whole quantization. Errors (ImportError, UsageError, ExportError, ...) say
/// which file or flag; nothing is written unless every step succeeded. `progress` sees
/// the calibration examples done so far: 0 before the first batch, `total` after the last.
QuantizeReport quantize(const QuantizeOptions& options,
                        const std::function<void(int64_t done, int64_t total)>& progress);

/// The report as the tool prints it.
std::string format_report(const QuantizeOptions& options, const QuantizeReport& report);

}  // namespace qb
