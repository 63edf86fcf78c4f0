#pragma once
// Observers: modules that watch the tensors flowing through a prepared graph and
// turn what they saw into quantization parameters, as torch.ao.quantization's
// observers do. PyTorch 1.13's observer.py is the reference: MinMaxObserver,
// MovingAverageMinMaxObserver, PerChannelMinMaxObserver,
// MovingAveragePerChannelMinMaxObserver and HistogramObserver reproduce its
// statistics, buffers and qparams exactly. PercentileObserver and EntropyObserver
// are ours, after ONNX Runtime's percentile and TensorRT's entropy calibrators.
//
// Every observer is an fp32 Module that records statistics of its single input
// (without autograd) and returns that input unchanged; its statistics are buffers
// under PyTorch's names ("eps", "min_val", "max_val", "histogram"), so they show
// up in the state_dict.

#include "quant/module.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>

namespace qb {

/// How a tensor is quantized: one (scale, zero point) per tensor or per channel.
enum class QScheme { kPerTensorAffine, kPerTensorSymmetric, kPerChannelAffine, kPerChannelSymmetric };
/// The integer type values are quantized to.
enum class QDtype { kQUInt8, kQInt8 };

/// PyTorch's name without "torch.": "per_tensor_affine", "per_channel_symmetric", ...
std::string to_string(QScheme scheme);
/// PyTorch's name without "torch.": "quint8" or "qint8".
std::string to_string(QDtype dtype);
/// The inverse of to_string(QScheme); other names throw std::invalid_argument.
QScheme parse_qscheme(const std::string& name);
/// The inverse of to_string(QDtype); other names throw std::invalid_argument.
QDtype parse_qdtype(const std::string& name);
/// Whether the scheme has one (scale, zero point) per channel.
bool is_per_channel(QScheme scheme);
/// Whether the scheme is symmetric (zero point fixed by the dtype, not by the data).
bool is_symmetric(QScheme scheme);

/// How to build an observer: one struct with PyTorch's defaults; make_observer checks it.
struct ObserverSpec {
  /// minmax | moving_average_minmax | per_channel_minmax |
  /// moving_average_per_channel_minmax | histogram | percentile | entropy
  std::string kind = "minmax";
  QDtype dtype = QDtype::kQUInt8;
  /// Per-channel kinds need a per-channel scheme, the others a per-tensor one.
  QScheme qscheme = QScheme::kPerTensorAffine;
  /// Halves the integer range (quint8 0..127, qint8 -64..63; a custom range is floor-halved).
  bool reduce_range = false;
  /// A custom integer range: both or neither, must include 0 and fit in the dtype.
  std::optional<int64_t> quant_min, quant_max;
  /// Smallest scale, so that a constant input still gives a usable one.
  double eps = std::numeric_limits<float>::epsilon();
  /// Moving-average kinds: weight of the newest batch's min/max, in (0, 1].
  double averaging_constant = 0.01;
  /// Per-channel kinds: the channel dimension of the input (negative counts from the end).
  int64_t ch_axis = 0;
  /// histogram: its bin count. percentile, entropy: bins of the |x| histogram (even).
  int64_t bins = 2048;
  /// histogram: HistogramObserver's upsample_rate, used when its range grows.
  int64_t upsample_rate = 128;
  /// percentile: the percentile of the data kept inside the range, in [50, 100].
  double percentile = 99.99;
  /// entropy: number of quantized bins of the candidate distributions (TensorRT's 128).
  int64_t quantized_bins = 128;
};

/// Scale and zero point: per-tensor (one element) or per-channel along `axis`.
struct QParams {
  at::Tensor scale;       ///< double, shape [1] or [channels]
  at::Tensor zero_point;  ///< int64, same shape as scale
  QScheme qscheme = QScheme::kPerTensorAffine;
  QDtype dtype = QDtype::kQUInt8;
  /// Channel dimension of per-channel qparams (ObserverSpec::ch_axis as given).
  int64_t axis = 0;
  int64_t quant_min = 0;
  int64_t quant_max = 255;
};

/// A module that records statistics in forward and turns them into qparams.
class Observer : public Module {
 public:
  /// `quant_min`/`quant_max` are the integer range in effect (after reduce_range).
  Observer(ObserverSpec spec, int64_t quant_min, int64_t quant_max);

  /// PyTorch's calculate_qparams; scale 1 and zero point 0 when nothing was observed.
  /// Throws std::runtime_error when the statistics are NaN, as PyTorch's assertion does.
  virtual QParams calculate_qparams() const = 0;
  /// Whether forward has seen at least one non-empty tensor.
  virtual bool calibrated() const = 0;

  const ObserverSpec& spec() const { return spec_; }
  /// The integer range in effect: the dtype's, halved by reduce_range, or the custom one.
  int64_t quant_min() const { return quant_min_; }
  int64_t quant_max() const { return quant_max_; }

 protected:
  /// PyTorch's _calculate_qparams: qparams for a range, per tensor (0-dim) or per channel (1-D).
  QParams qparams_from_range(const at::Tensor& min_val, const at::Tensor& max_val) const;
  /// What PyTorch returns before any data: scale 1, zero point 0.
  QParams default_qparams() const;

 private:
  ObserverSpec spec_;
  int64_t quant_min_;
  int64_t quant_max_;
};

/// Builds the observer `spec.kind` describes. An unknown kind or invalid combination
/// throws std::invalid_argument whose message names the offending field.
std::unique_ptr<Observer> make_observer(const ObserverSpec& spec);

/// PyTorch's FixedQParamsObserver: quint8 at (`scale`, `zero_point`) whatever it sees,
/// for ops whose output range is known (prepare gives it to kFixedQParams ops, quant/ops.h).
std::unique_ptr<Observer> make_fixed_qparams_observer(double scale, int64_t zero_point);

}  // namespace qb
