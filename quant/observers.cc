#include "quant/observers.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

namespace qb {

// ---------------------------------------------------------------------------
// Names

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Python's a // 2.
int64_t floor_half(int64_t a) { return a >= 0 ? a / 2 : -((-a + 1) / 2); }

constexpr std::pair<QScheme, const char*> kSchemeNames[] = {
    {QScheme::kPerTensorAffine, "per_tensor_affine"},
    {QScheme::kPerTensorSymmetric, "per_tensor_symmetric"},
    {QScheme::kPerChannelAffine, "per_channel_affine"},
    {QScheme::kPerChannelSymmetric, "per_channel_symmetric"},
};

constexpr std::pair<QDtype, const char*> kDtypeNames[] = {
    {QDtype::kQUInt8, "quint8"},
    {QDtype::kQInt8, "qint8"},
};

}  // namespace

std::string to_string(QScheme scheme) {
  for (const auto& [value, name] : kSchemeNames) {
    if (value == scheme) return name;
  }
  throw std::invalid_argument("unknown QScheme");
}

std::string to_string(QDtype dtype) {
  for (const auto& [value, name] : kDtypeNames) {
    if (value == dtype) return name;
  }
  throw std::invalid_argument("unknown QDtype");
}

QScheme parse_qscheme(const std::string& name) {
  for (const auto& [value, known] : kSchemeNames) {
    if (name == known) return value;
  }
  throw std::invalid_argument("unknown qscheme '" + name +
                              "' (expected per_tensor_affine, per_tensor_symmetric, "
                              "per_channel_affine or per_channel_symmetric)");
}

QDtype parse_qdtype(const std::string& name) {
  for (const auto& [value, known] : kDtypeNames) {
    if (name == known) return value;
  }
  throw std::invalid_argument("unknown dtype '" + name + "' (expected quint8 or qint8)");
}

bool is_per_channel(QScheme scheme) {
  return scheme == QScheme::kPerChannelAffine || scheme == QScheme::kPerChannelSymmetric;
}

bool is_symmetric(QScheme scheme) {
  return scheme == QScheme::kPerTensorSymmetric || scheme == QScheme::kPerChannelSymmetric;
}

// ---------------------------------------------------------------------------
// extra_repr: observers print "min_val={}, max_val={}".format(...) of their
// buffers. A 0-dim tensor formats as the Python float of its value, a 1-D one
// as torch prints tensors (torch/_tensor_str.py with the default print options).

namespace {

// Python's repr(float): the shortest digits that read back, in fixed notation
// when the decimal exponent is in [-4, 16), scientific otherwise.
std::string python_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, std::abs(v),
                                    std::chars_format::scientific);
  const std::string text(buffer, result.ptr);
  const size_t e = text.find('e');
  const int exponent = std::stoi(text.substr(e + 1));
  std::string digits = text.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int point = exponent + 1;  // value = 0.digits * 10^point
  const int count = static_cast<int>(digits.size());
  std::string out;
  if (point <= -4 || point > 16) {
    out = digits.substr(0, 1) + (count > 1 ? "." + digits.substr(1) : "");
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += suffix;
  } else if (point <= 0) {
    out = "0." + std::string(-point, '0') + digits;
  } else if (point >= count) {
    out = digits + std::string(point - count, '0') + ".0";
  } else {
    out = digits.substr(0, point) + "." + digits.substr(point);
  }
  return (v < 0 ? "-" : "") + out;
}

// printf with one double, except that NaN prints as Python prints it.
std::string format_double(const char* format, int width, double v) {
  if (std::isnan(v)) return std::string(std::max(0, width - 3), ' ') + "nan";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, width, v);
  return buffer;
}

// torch._tensor_str._Formatter for float tensors at precision 4.
class TensorFormatter {
 public:
  explicit TensorFormatter(const std::vector<double>& values) {
    std::vector<double> nonzero_finite;
    for (double v : values) {
      if (std::isfinite(v) && v != 0) nonzero_finite.push_back(v);
    }
    if (nonzero_finite.empty()) return;
    double min_abs = std::abs(nonzero_finite[0]), max_abs = min_abs;
    for (double v : nonzero_finite) {
      min_abs = std::min(min_abs, std::abs(v));
      max_abs = std::max(max_abs, std::abs(v));
      if (v != std::ceil(v)) int_mode_ = false;
    }
    sci_mode_ = max_abs / min_abs > 1000.0 || max_abs > 1.0e8 || (!int_mode_ && min_abs < 1.0e-4);
    for (double v : nonzero_finite) {
      const std::string text = sci_mode_  ? format_double("%*.4e", 0, v)
                               : int_mode_ ? format_double("%*.0f", 0, v) + "."
                                           : format_double("%*.4f", 0, v);
      width_ = std::max(width_, static_cast<int>(text.size()));
    }
  }

  int width() const { return width_; }

  std::string format(double v) const {
    std::string text;
    if (sci_mode_) {
      text = format_double("%*.4e", width_, v);
    } else if (int_mode_) {
      text = format_double("%*.0f", 0, v) + (std::isfinite(v) ? "." : "");
    } else {
      text = format_double("%*.4f", 0, v);
    }
    return std::string(std::max(0, width_ - static_cast<int>(text.size())), ' ') + text;
  }

 private:
  bool int_mode_ = true;
  bool sci_mode_ = false;
  int width_ = 1;
};

// str() of a 1-D float tensor: "tensor([a, b, ...])", wrapped at 80 columns and
// summarised as "a, b, c, ..., x, y, z" beyond 1000 elements.
std::string vector_str(const at::Tensor& tensor) {
  constexpr int64_t kThreshold = 1000, kEdgeItems = 3, kLineWidth = 80;
  const std::string prefix = "tensor(";
  if (tensor.numel() == 0) return prefix + "[])";
  const at::Tensor values = tensor.to(at::kDouble).contiguous();
  const double* data = values.data_ptr<double>();
  const int64_t n = values.numel();
  const bool summarize = n > kThreshold;
  std::vector<double> shown;
  for (int64_t i = 0; i < n; ++i) {
    if (!summarize || i < kEdgeItems || i >= n - kEdgeItems) shown.push_back(data[i]);
  }
  const TensorFormatter formatter(shown);
  std::vector<std::string> items;
  for (size_t i = 0; i < shown.size(); ++i) {
    if (summarize && i == static_cast<size_t>(kEdgeItems)) items.push_back(" ...");
    items.push_back(formatter.format(shown[i]));
  }
  const int64_t indent = static_cast<int64_t>(prefix.size());
  const int64_t per_line = std::max<int64_t>(1, (kLineWidth - indent) / (formatter.width() + 2));
  std::string out = prefix + "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) {
      out += i % per_line == 0 ? ",\n" + std::string(indent + 1, ' ') : ", ";
    }
    out += items[i];
  }
  return out + "])";
}

// "{}".format(tensor) in Python.
std::string format_tensor(const at::Tensor& tensor) {
  return tensor.dim() == 0 ? python_float(tensor.item<double>()) : vector_str(tensor);
}

}  // namespace

// ---------------------------------------------------------------------------
// The base: PyTorch's UniformQuantizationObserverBase._calculate_qparams

Observer::Observer(ObserverSpec spec, int64_t quant_min, int64_t quant_max)
    : spec_(std::move(spec)), quant_min_(quant_min), quant_max_(quant_max) {
  // UniformQuantizationObserverBase's first buffer: state_dict order starts with it.
  register_buffer("eps", at::full({1}, spec_.eps, at::kFloat));
}

QParams Observer::default_qparams() const {
  return {at::ones({1}, at::kDouble), at::zeros({1}, at::kLong), spec_.qscheme, spec_.dtype,
          spec_.ch_axis,              quant_min_,                quant_max_};
}

QParams Observer::qparams_from_range(const at::Tensor& min_val, const at::Tensor& max_val) const {
  // check_min_max_valid: no data yet gives the defaults; NaN fails PyTorch's assertion.
  if (min_val.numel() == 0 || max_val.numel() == 0) return default_qparams();
  if (min_val.dim() == 0 || max_val.dim() == 0) {
    if (min_val.item<float>() == kInf && max_val.item<float>() == -kInf) {
      return default_qparams();
    }
  }
  if (!at::all(min_val <= max_val).item<bool>()) {
    throw std::runtime_error(kind() + ": min " + format_tensor(min_val) +
                             " should be less than max " + format_tensor(max_val));
  }

  // The same ATen operations in the same order as PyTorch, so results match bit for bit.
  const int64_t qmin = quant_min_, qmax = quant_max_;
  const at::Tensor& eps = tensor("eps");
  const at::Tensor min_val_neg = at::min(min_val, at::zeros_like(min_val));
  at::Tensor max_val_pos = at::max(max_val, at::zeros_like(max_val));
  at::Tensor scale, zero_point;
  if (is_symmetric(spec_.qscheme)) {
    max_val_pos = at::max(-min_val_neg, max_val_pos);
    scale = at::max(max_val_pos / (static_cast<double>(qmax - qmin) / 2), eps);
    int64_t zero = 0;
    if (spec_.dtype == QDtype::kQUInt8) {
      // A custom range takes its midpoint, rounded down as Python's // does.
      zero = spec_.quant_min ? floor_half(qmin + qmax) : 128;
    }
    zero_point = at::full(min_val_neg.sizes(), zero, at::kLong);
  } else {
    scale = at::max((max_val_pos - min_val_neg) / static_cast<double>(qmax - qmin), eps);
    zero_point = at::rsub(at::round(min_val_neg / scale).to(at::kInt), qmin);
    zero_point = at::clamp(zero_point, qmin, qmax);
  }
  // Per-tensor qparams are one-element vectors, as PyTorch returns them.
  if (scale.dim() == 0) scale = scale.reshape({1});
  if (zero_point.dim() == 0) zero_point = zero_point.reshape({1});
  return {scale.to(at::kDouble), zero_point.to(at::kLong), spec_.qscheme, spec_.dtype,
          spec_.ch_axis,         qmin,                      qmax};
}

namespace {

/// Supplies clone() to the concrete observers, as ModuleBase does for layers.
template <typename Derived>
class ObserverImpl : public Observer {
 public:
  using Observer::Observer;
  std::unique_ptr<Module> clone() const override {
    auto copy = std::make_unique<Derived>(static_cast<const Derived&>(*this));
    copy->clone_tensors_in_place();
    return copy;
  }
};

bool is_unobserved(const at::Tensor& min_val, const at::Tensor& max_val) {
  return min_val.item<float>() == kInf && max_val.item<float>() == -kInf;
}

// ---------------------------------------------------------------------------
// FixedQParamsObserver: the qparams of ops whose output range is known (hardsigmoid,
// sigmoid: [0, 1]), whatever the data.

class FixedQParamsObserver : public ObserverImpl<FixedQParamsObserver> {
 public:
  FixedQParamsObserver(ObserverSpec spec, double scale, int64_t zero_point)
      : ObserverImpl(std::move(spec), 0, 255) {
    register_buffer("scale", at::tensor({scale}, at::kFloat));
    register_buffer("zero_point", at::tensor({zero_point}, at::kInt));
  }

  std::string kind() const override { return "FixedQParamsObserver"; }

  at::Tensor forward(const std::vector<at::Tensor>& inputs) override { return only_input(inputs); }

  QParams calculate_qparams() const override {
    return {tensor("scale").to(at::kDouble), tensor("zero_point").to(at::kLong),
            QScheme::kPerTensorAffine, QDtype::kQUInt8, 0, quant_min(), quant_max()};
  }

  bool calibrated() const override { return true; }  // needs no data
};

// ---------------------------------------------------------------------------
// MinMaxObserver and MovingAverageMinMaxObserver

class MinMaxObserver : public ObserverImpl<MinMaxObserver> {
 public:
  MinMaxObserver(ObserverSpec spec, int64_t quant_min, int64_t quant_max)
      : ObserverImpl(std::move(spec), quant_min, quant_max) {
    register_buffer("min_val", at::scalar_tensor(kInf, at::kFloat));
    register_buffer("max_val", at::scalar_tensor(-kInf, at::kFloat));
  }

  std::string kind() const override {
    return moving_average() ? "MovingAverageMinMaxObserver" : "MinMaxObserver";
  }

  at::Tensor forward(const std::vector<at::Tensor>& inputs) override {
    const at::Tensor& input = only_input(inputs);
    if (input.numel() == 0) return input;
    at::NoGradGuard no_grad;
    const auto [batch_min, batch_max] = at::aminmax(input.detach().to(at::kFloat));
    const at::Tensor& min_val = tensor("min_val");
    const at::Tensor& max_val = tensor("max_val");
    if (!moving_average()) {
      min_val.copy_(at::min(batch_min, min_val));
      max_val.copy_(at::max(batch_max, max_val));
    } else if (!calibrated()) {  // the first batch initialises the averages
      min_val.copy_(batch_min);
      max_val.copy_(batch_max);
    } else {
      const double c = spec().averaging_constant;
      min_val.copy_(min_val + (batch_min - min_val) * c);
      max_val.copy_(max_val + (batch_max - max_val) * c);
    }
    return input;
  }

  QParams calculate_qparams() const override {
    return qparams_from_range(tensor("min_val"), tensor("max_val"));
  }

  bool calibrated() const override { return !is_unobserved(tensor("min_val"), tensor("max_val")); }

  std::string extra_repr() const override {
    return "min_val=" + format_tensor(tensor("min_val")) +
           ", max_val=" + format_tensor(tensor("max_val"));
  }

 private:
  bool moving_average() const { return spec().kind == "moving_average_minmax"; }
};

// ---------------------------------------------------------------------------
// PerChannelMinMaxObserver and MovingAveragePerChannelMinMaxObserver

class PerChannelMinMaxObserver : public ObserverImpl<PerChannelMinMaxObserver> {
 public:
  PerChannelMinMaxObserver(ObserverSpec spec, int64_t quant_min, int64_t quant_max)
      : ObserverImpl(std::move(spec), quant_min, quant_max) {
    // Empty until the first batch tells the channel count.
    register_buffer("min_val", at::empty({0}, at::kFloat));
    register_buffer("max_val", at::empty({0}, at::kFloat));
  }

  std::string kind() const override {
    return moving_average() ? "MovingAveragePerChannelMinMaxObserver" : "PerChannelMinMaxObserver";
  }

  at::Tensor forward(const std::vector<at::Tensor>& inputs) override {
    const at::Tensor& input = only_input(inputs);
    if (input.numel() == 0) return input;
    const int64_t dims = input.dim(), axis = spec().ch_axis;
    // PyTorch flattens everything after the channel axis: it needs two dimensions.
    if (dims < 2 || axis < -dims || axis >= dims) {
      throw std::invalid_argument(kind() + ": ch_axis " + std::to_string(axis) +
                                  " is not a channel dimension of a " + std::to_string(dims) +
                                  "-d input (needs at least 2 dimensions)");
    }
    at::NoGradGuard no_grad;
    const at::Tensor rows = input.detach().to(at::kFloat).transpose(0, axis).flatten(1);
    auto [new_min, new_max] = at::aminmax(rows, 1);
    const at::Tensor& min_val = tensor("min_val");
    const at::Tensor& max_val = tensor("max_val");
    if (calibrated()) {
      if (new_min.numel() != min_val.numel()) {
        throw std::invalid_argument(kind() + ": input has " + std::to_string(new_min.numel()) +
                                    " channels along ch_axis " + std::to_string(axis) +
                                    ", earlier inputs had " + std::to_string(min_val.numel()));
      }
      if (moving_average()) {
        const double c = spec().averaging_constant;
        new_min = min_val + (new_min - min_val) * c;
        new_max = max_val + (new_max - max_val) * c;
      } else {
        new_min = at::min(new_min, min_val);
        new_max = at::max(new_max, max_val);
      }
    }
    // In place, like PyTorch, so handles to the buffers see the statistics.
    min_val.resize_(new_min.sizes()).copy_(new_min);
    max_val.resize_(new_max.sizes()).copy_(new_max);
    return input;
  }

  QParams calculate_qparams() const override {
    return qparams_from_range(tensor("min_val"), tensor("max_val"));
  }

  bool calibrated() const override { return tensor("min_val").numel() > 0; }

  std::string extra_repr() const override {
    return "min_val=" + format_tensor(tensor("min_val")) +
           ", max_val=" + format_tensor(tensor("max_val"));
  }

 private:
  bool moving_average() const { return spec().kind == "moving_average_per_channel_minmax"; }
};

// ---------------------------------------------------------------------------
// HistogramObserver: a port of PyTorch 1.13's, operation for operation. Its
// quirks are kept because the qparams must match: histc is called with the
// range truncated to integers (int(min_val)), so values outside the truncated
// range are not counted, and a range of [0, 0] makes histc use the batch's own
// min and max.

// Python's int() of a float: truncation toward zero (kept as a double, which
// histc converts to double anyway).
double python_int(const at::Tensor& value) { return std::trunc(value.item<double>()); }

class HistogramObserver : public ObserverImpl<HistogramObserver> {
 public:
  HistogramObserver(ObserverSpec spec, int64_t quant_min, int64_t quant_max)
      : ObserverImpl(std::move(spec), quant_min, quant_max) {
    register_buffer("histogram", at::zeros({this->spec().bins}, at::kFloat));
    register_buffer("min_val", at::scalar_tensor(kInf, at::kFloat));
    register_buffer("max_val", at::scalar_tensor(-kInf, at::kFloat));
  }

  std::string kind() const override { return "HistogramObserver"; }

  at::Tensor forward(const std::vector<at::Tensor>& inputs) override {
    const at::Tensor& input = only_input(inputs);
    if (input.numel() == 0) return input;
    at::NoGradGuard no_grad;
    const at::Tensor x = input.detach().to(at::kFloat);
    const int64_t bins = spec().bins;
    const auto [new_min, new_max] = at::aminmax(x);
    // PyTorch fails in int() on NaN or infinity; we fail before touching the state.
    if (!std::isfinite(new_min.item<float>()) || !std::isfinite(new_max.item<float>())) {
      throw std::invalid_argument(kind() + ": input has NaN or infinite values");
    }
    const at::Tensor& histogram = tensor("histogram");
    const at::Tensor& min_val = tensor("min_val");
    const at::Tensor& max_val = tensor("max_val");
    // A constant history has no bin width to combine with: start again from this batch.
    const bool same_values = min_val.item<float>() == max_val.item<float>();
    if (!calibrated() || same_values) {
      min_val.copy_(new_min);
      max_val.copy_(new_max);
      histogram.copy_(at::histc(x, bins, python_int(min_val), python_int(max_val)));
      return input;
    }
    at::Tensor combined_min = at::min(new_min, min_val);
    at::Tensor combined_max = at::max(new_max, max_val);
    int64_t downsample_rate = 0, start_idx = 0;
    std::tie(combined_max, downsample_rate, start_idx) = adjust_min_max(combined_min, combined_max);
    at::Tensor combined =
        at::histc(x, bins, python_int(combined_min), python_int(combined_max));
    if (combined_min.item<float>() == min_val.item<float>() &&
        combined_max.item<float>() == max_val.item<float>()) {
      combined += histogram;
    } else {
      combined = combine_histograms(combined, histogram, downsample_rate, start_idx);
    }
    histogram.copy_(combined);
    min_val.copy_(combined_min);
    max_val.copy_(combined_max);
    return input;
  }

  QParams calculate_qparams() const override {
    if (!calibrated()) return default_qparams();
    const auto [new_min, new_max] = non_linear_param_search();
    return qparams_from_range(new_min, new_max);
  }

  bool calibrated() const override { return !is_unobserved(tensor("min_val"), tensor("max_val")); }

  std::string extra_repr() const override {
    return "min_val=" + format_tensor(tensor("min_val")) +
           ", max_val=" + format_tensor(tensor("max_val"));
  }

 private:
  // 2 ** torch.iinfo(dtype).bits: 256 for both 8-bit dtypes, whatever the range.
  static constexpr int64_t kDstBins = 256;

  // _adjust_min_max: widens the max so the old and new bin widths are commensurate.
  // Returns the new max, the downsample rate and where the old range starts.
  std::tuple<at::Tensor, int64_t, int64_t> adjust_min_max(const at::Tensor& combined_min,
                                                          const at::Tensor& combined_max) const {
    const int64_t bins = spec().bins, upsample_rate = spec().upsample_rate;
    const at::Tensor& min_val = tensor("min_val");
    const at::Tensor& max_val = tensor("max_val");
    const at::Tensor hist_bin_width = (max_val - min_val) / (bins * upsample_rate);
    const double rate = at::ceil((combined_max - combined_min) / (hist_bin_width * bins)).item<double>();
    if (!std::isfinite(rate)) {
      throw std::runtime_error(kind() + ": histogram range too narrow to combine batches");
    }
    const auto downsample_rate = static_cast<int64_t>(rate);
    const at::Tensor e =
        (hist_bin_width * bins) * downsample_rate - (combined_max - combined_min);
    const auto start_idx = static_cast<int64_t>(
        at::round((min_val - combined_min) / hist_bin_width).item<double>());
    return {combined_max + e, downsample_rate, start_idx};
  }

  // _combine_histograms: upsamples the old histogram, places it in the combined
  // range and integrates it down to the combined bins.
  at::Tensor combine_histograms(const at::Tensor& new_counts, const at::Tensor& old_histogram,
                                int64_t downsample_rate, int64_t start_idx) const {
    const int64_t bins = spec().bins, upsample_rate = spec().upsample_rate;
    const at::Tensor upsampled = old_histogram.repeat_interleave(upsample_rate);
    at::Tensor with_output_range = at::zeros({bins * downsample_rate}, at::kFloat);
    with_output_range.slice(0, start_idx, bins * upsample_rate + start_idx).copy_(upsampled);
    // Double precision, as PyTorch notes, so that the running sum cannot overflow.
    const at::Tensor integral = at::cumsum(with_output_range, 0, at::kDouble)
                                    .slice(0, downsample_rate - 1, INT64_MAX, downsample_rate);
    at::Tensor shifted = at::zeros({bins}, at::kFloat);
    shifted.slice(0, 1, bins).copy_(integral.slice(0, 0, integral.size(0) - 1));
    const at::Tensor interpolated = (integral - shifted) / upsample_rate;
    return new_counts + interpolated.to(at::kFloat);
  }

  // _get_norm: density times the integral of x^2 between the deltas (L2 norm).
  static at::Tensor get_norm(const at::Tensor& delta_begin, const at::Tensor& delta_end,
                             const at::Tensor& density) {
    const at::Tensor norm =
        (delta_end * delta_end * delta_end - delta_begin * delta_begin * delta_begin) / 3;
    return density * norm;
  }

  // _compute_quantization_error: L2 error of quantizing the histogram to
  // kDstBins levels spread over bins [next_start_bin, next_end_bin].
  double quantization_error(int64_t next_start_bin, int64_t next_end_bin) const {
    const int64_t bins = spec().bins;
    const at::Tensor& histogram = tensor("histogram");
    const double bin_width =
        (tensor("max_val").item<double>() - tensor("min_val").item<double>()) / bins;
    const double dst_bin_width =
        bin_width * static_cast<double>(next_end_bin - next_start_bin + 1) / kDstBins;
    if (dst_bin_width == 0.0) return 0.0;

    const at::Tensor src_bin = at::arange(bins);
    // Distances from the start of the first destination bin to each source bin's edges.
    const at::Tensor src_bin_begin = (src_bin - next_start_bin) * bin_width;
    const at::Tensor src_bin_end = src_bin_begin + bin_width;
    // The destination bins holding the two edges of each source bin.
    const at::Tensor dst_bin_of_begin =
        at::clamp(at::div(src_bin_begin, dst_bin_width, "floor"), 0, kDstBins - 1);
    const at::Tensor dst_bin_of_begin_center = (dst_bin_of_begin + 0.5) * dst_bin_width;
    const at::Tensor dst_bin_of_end =
        at::clamp(at::div(src_bin_end, dst_bin_width, "floor"), 0, kDstBins - 1);
    const at::Tensor density = histogram / bin_width;

    at::Tensor norm = at::zeros({bins}, at::kFloat);
    const at::Tensor delta_begin = src_bin_begin - dst_bin_of_begin_center;
    norm += get_norm(delta_begin, at::ones({bins}, at::kFloat) * (dst_bin_width / 2), density);
    // torch.tensor(python float) is a float32 0-dim tensor, not a wrapped double.
    const at::Tensor half_neg = at::scalar_tensor(-dst_bin_width / 2, at::kFloat);
    const at::Tensor half_pos = at::scalar_tensor(dst_bin_width / 2, at::kFloat);
    norm += (dst_bin_of_end - dst_bin_of_begin - 1) * get_norm(half_neg, half_pos, density);
    const at::Tensor dst_bin_of_end_center = dst_bin_of_end * dst_bin_width + dst_bin_width / 2;
    norm += get_norm(half_neg, src_bin_end - dst_bin_of_end_center, density);
    return norm.sum().item<double>();
  }

  // _non_linear_param_search: narrows [start_bin, end_bin] by quantile steps of
  // 1e-5 from whichever side moves further, while the L2 error keeps falling.
  std::pair<at::Tensor, at::Tensor> non_linear_param_search() const {
    const int64_t bins = spec().bins;
    const at::Tensor& histogram = tensor("histogram");
    const at::Tensor& min_val = tensor("min_val");
    const at::Tensor bin_width = (tensor("max_val") - min_val) / bins;
    const double total = at::sum(histogram).item<double>();
    const at::Tensor cumulative = at::cumsum(histogram, 0).contiguous();
    const float* c_sum = cumulative.data_ptr<float>();

    const double stepsize = 1e-5;
    double alpha = 0.0, beta = 1.0;
    int64_t start_bin = 0, end_bin = bins - 1;
    double norm_min = std::numeric_limits<double>::infinity();
    while (alpha < beta) {
      const double next_alpha = alpha + stepsize;
      const double next_beta = beta - stepsize;
      // PyTorch compares a float32 element with a Python float: in float32.
      const auto low_quantile = static_cast<float>(next_alpha * total);
      const auto high_quantile = static_cast<float>(next_beta * total);
      int64_t l = start_bin, r = end_bin;
      while (l < end_bin && c_sum[l] < low_quantile) ++l;
      while (r > start_bin && c_sum[r] > high_quantile) --r;

      int64_t next_start_bin = start_bin, next_end_bin = end_bin;
      if (l - start_bin > end_bin - r) {
        next_start_bin = l;
        alpha = next_alpha;
      } else {
        next_end_bin = r;
        beta = next_beta;
      }
      if (next_start_bin == start_bin && next_end_bin == end_bin) continue;

      const double norm = quantization_error(next_start_bin, next_end_bin);
      if (norm > norm_min) break;
      norm_min = norm;
      start_bin = next_start_bin;
      end_bin = next_end_bin;
    }
    return {min_val + bin_width * start_bin, min_val + bin_width * (end_bin + 1)};
  }
};

// ---------------------------------------------------------------------------
// PercentileObserver and EntropyObserver (ours): both clip the range to a
// threshold found in a histogram of everything observed.
//
// The histogram counts x over [-bound, bound] in 2 * bins bins (float64 counts,
// exact), so bins [0, bins) hold the negative values and [bins, 2 * bins) the
// others; folding the two halves gives the |x| histogram of `bins` bins over
// [0, bound] that TensorRT's and ONNX Runtime's calibrators use. bound starts at
// the first nonzero batch's max|x|; when a batch exceeds it, bound doubles and
// each pair of bins merges into one, which keeps every count in the bin that
// holds its value (no interpolation, unlike HistogramObserver), whatever the
// order of the batches' ranges. Zeros land in bin `bins` for any bound.
//
// The clipped range is [max(low, min_val), min(high, max_val)] for the
// threshold(s) found, then PyTorch's min/max rule gives the qparams.

template <typename Derived>
class ClippingObserver : public ObserverImpl<Derived> {
 public:
  ClippingObserver(ObserverSpec spec, int64_t quant_min, int64_t quant_max)
      : ObserverImpl<Derived>(std::move(spec), quant_min, quant_max) {
    this->register_buffer("histogram", at::zeros({2 * this->spec().bins}, at::kDouble));
    this->register_buffer("min_val", at::scalar_tensor(kInf, at::kFloat));
    this->register_buffer("max_val", at::scalar_tensor(-kInf, at::kFloat));
    this->register_buffer("bound", at::scalar_tensor(0.0f, at::kFloat));
  }

  at::Tensor forward(const std::vector<at::Tensor>& inputs) override {
    const at::Tensor& input = this->only_input(inputs);
    if (input.numel() == 0) return input;
    at::NoGradGuard no_grad;
    const at::Tensor x = input.detach().to(at::kFloat);
    const auto [batch_min, batch_max] = at::aminmax(x);
    const float lo = batch_min.item<float>(), hi = batch_max.item<float>();
    if (!std::isfinite(lo) || !std::isfinite(hi)) {
      throw std::invalid_argument(this->kind() + ": input has NaN or infinite values");
    }
    const int64_t bins = this->spec().bins;
    const at::Tensor& histogram = this->tensor("histogram");
    const at::Tensor& bound_buffer = this->tensor("bound");
    const float amax = std::max(-lo, hi);
    float bound = bound_buffer.item<float>();
    if (bound == 0) bound = amax;  // only zeros so far: they sit in bin `bins` for any bound
    while (bound < amax) {
      const at::Tensor merged = histogram.view({bins, 2}).sum(1);
      histogram.zero_();
      histogram.slice(0, bins / 2, bins / 2 + bins).copy_(merged);
      bound *= 2;
    }
    if (bound > 0) {
      histogram.add_(at::histc(x, 2 * bins, -bound, bound).to(at::kDouble));
    } else {
      histogram[bins].add_(static_cast<double>(x.numel()));
    }
    bound_buffer.fill_(bound);
    const at::Tensor& min_val = this->tensor("min_val");
    const at::Tensor& max_val = this->tensor("max_val");
    min_val.copy_(at::min(batch_min, min_val));
    max_val.copy_(at::max(batch_max, max_val));
    return input;
  }

  QParams calculate_qparams() const override {
    if (!calibrated()) return this->default_qparams();
    const auto [low, high] = clipping_range();
    const float min_val = this->tensor("min_val").template item<float>();
    const float max_val = this->tensor("max_val").template item<float>();
    return this->qparams_from_range(
        at::scalar_tensor(std::max(static_cast<float>(low), min_val), at::kFloat),
        at::scalar_tensor(std::min(static_cast<float>(high), max_val), at::kFloat));
  }

  bool calibrated() const override {
    return !is_unobserved(this->tensor("min_val"), this->tensor("max_val"));
  }

 protected:
  /// The thresholds (low, high) found in the histogram, before clipping to min/max.
  virtual std::pair<double, double> clipping_range() const = 0;

  /// The signed histogram's counts, 2 * bins of them from -bound to bound.
  std::vector<double> signed_counts() const {
    const at::Tensor counts = this->tensor("histogram").contiguous();
    return {counts.data_ptr<double>(), counts.data_ptr<double>() + counts.numel()};
  }

  /// The |x| histogram: `bins` counts from 0 to bound.
  std::vector<double> abs_counts() const {
    const std::vector<double> counts = signed_counts();
    const int64_t bins = this->spec().bins;
    std::vector<double> folded(bins);
    for (int64_t i = 0; i < bins; ++i) folded[i] = counts[bins + i] + counts[bins - 1 - i];
    return folded;
  }

  /// Width of one bin in either histogram.
  double bin_width() const {
    return this->tensor("bound").template item<double>() / static_cast<double>(this->spec().bins);
  }
};

// Percentile: symmetric schemes keep `percentile` % of |x|: the threshold T is
// the upper edge of the first |x| bin where the cumulative count reaches
// percentile% of all counts, and the range is [-T, T] (ONNX Runtime's symmetric
// percentile calibration). Affine schemes cut each tail on its own: the high
// end is the upper edge of the first signed bin where the count from the left
// reaches percentile%, the low end the lower edge of the last bin where the
// count from the right does (so 99.99 keeps the 0.01th to 99.99th percentile).
// percentile = 100 gives MinMaxObserver's range exactly.
class PercentileObserver : public ClippingObserver<PercentileObserver> {
 public:
  using ClippingObserver::ClippingObserver;

  std::string kind() const override { return "PercentileObserver"; }

  std::string extra_repr() const override {
    return "percentile=" + python_float(spec().percentile) +
           ", min_val=" + format_tensor(tensor("min_val")) +
           ", max_val=" + format_tensor(tensor("max_val"));
  }

 protected:
  std::pair<double, double> clipping_range() const override {
    const double width = bin_width(), bound = tensor("bound").item<double>();
    const double fraction = spec().percentile / 100;
    if (is_symmetric(spec().qscheme)) {
      const double t = (first_reaching(abs_counts(), fraction) + 1) * width;
      return {-t, t};
    }
    std::vector<double> counts = signed_counts();
    const double high = -bound + (first_reaching(counts, fraction) + 1) * width;
    std::reverse(counts.begin(), counts.end());
    const auto last = static_cast<int64_t>(counts.size()) - 1 - first_reaching(counts, fraction);
    return {-bound + last * width, high};
  }

 private:
  // Index of the first bin where the running count reaches `fraction` of the total.
  static int64_t first_reaching(const std::vector<double>& counts, double fraction) {
    double total = 0;
    for (double c : counts) total += c;
    double running = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      running += counts[i];
      if (running >= fraction * total) return static_cast<int64_t>(i);
    }
    return static_cast<int64_t>(counts.size()) - 1;
  }
};

// Entropy: TensorRT's KL-divergence calibration on the |x| histogram, as NVIDIA's
// pytorch-quantization implements it (_compute_amax_entropy). For each candidate
// i from quantized_bins to bins, the reference P is the first i bins with all
// counts beyond added to bin i - 1; the candidate Q merges those i bins into
// quantized_bins groups (bin j goes to group j * quantized_bins / i) and spreads
// each group's count evenly over its bins where P is nonzero (zero elsewhere).
// The threshold is i * bin width for the i of least KL(P || Q) (the largest
// such i on ties; infinite when Q is 0 where P is not). As pytorch-quantization
// does, bin 0 is replaced by bin 1 first, so ReLU's exact zeros do not dominate
// the divergence. The range is [-T, T].
class EntropyObserver : public ClippingObserver<EntropyObserver> {
 public:
  using ClippingObserver::ClippingObserver;

  std::string kind() const override { return "EntropyObserver"; }

  std::string extra_repr() const override {
    return "min_val=" + format_tensor(tensor("min_val")) +
           ", max_val=" + format_tensor(tensor("max_val"));
  }

 protected:
  std::pair<double, double> clipping_range() const override {
    std::vector<double> counts = abs_counts();
    const int64_t bins = spec().bins, levels = spec().quantized_bins;
    counts[0] = counts[1];
    std::vector<double> beyond(bins + 1, 0.0);  // beyond[i]: total count of bins >= i
    for (int64_t i = bins - 1; i >= 0; --i) beyond[i] = beyond[i + 1] + counts[i];

    double best_divergence = std::numeric_limits<double>::infinity();
    int64_t best = bins;
    std::vector<double> group_sum(levels), reference(bins);
    std::vector<int64_t> group_nonzero(levels);
    for (int64_t i = levels; i <= bins; ++i) {
      std::copy(counts.begin(), counts.begin() + i, reference.begin());
      reference[i - 1] += beyond[i];
      std::fill(group_sum.begin(), group_sum.end(), 0.0);
      std::fill(group_nonzero.begin(), group_nonzero.end(), 0);
      for (int64_t j = 0; j < i; ++j) {
        const int64_t group = j * levels / i;
        group_sum[group] += counts[j];
        group_nonzero[group] += reference[j] != 0;
      }
      double candidate_total = 0;
      for (int64_t g = 0; g < levels; ++g) candidate_total += group_sum[g];
      const double reference_total = beyond[0];
      double divergence = 0;
      for (int64_t j = 0; j < i && std::isfinite(divergence); ++j) {
        if (reference[j] == 0) continue;
        const int64_t group = j * levels / i;
        const double p = reference[j] / reference_total;
        const double q = group_sum[group] / group_nonzero[group] / candidate_total;
        divergence += q > 0 ? p * std::log(p / q) : std::numeric_limits<double>::infinity();
      }
      if (divergence <= best_divergence) {
        best_divergence = divergence;
        best = i;
      }
    }
    const double t = static_cast<double>(best) * bin_width();
    return {-t, t};
  }
};

// ---------------------------------------------------------------------------
// make_observer

[[noreturn]] void invalid(const std::string& field, const std::string& why) {
  throw std::invalid_argument("ObserverSpec." + field + ": " + why);
}

// calculate_qmin_qmax after checking the range fields.
std::pair<int64_t, int64_t> checked_quant_range(const ObserverSpec& spec) {
  const bool signed_dtype = spec.dtype == QDtype::kQInt8;
  const int64_t dtype_min = signed_dtype ? -128 : 0, dtype_max = signed_dtype ? 127 : 255;
  const std::string dtype = to_string(spec.dtype);
  if (spec.reduce_range && is_symmetric(spec.qscheme) && !signed_dtype) {
    invalid("reduce_range",
            "cannot reduce the range of symmetric quint8 (its zero point 128 would leave 0..127)");
  }
  if (spec.quant_min.has_value() != spec.quant_max.has_value()) {
    invalid(spec.quant_min ? "quant_max" : "quant_min",
            "quant_min and quant_max must be given together");
  }
  if (!spec.quant_min) {
    return spec.reduce_range ? std::pair{floor_half(dtype_min), floor_half(dtype_max)}
                             : std::pair{dtype_min, dtype_max};
  }
  const int64_t qmin = *spec.quant_min, qmax = *spec.quant_max;
  const std::string range = "[" + std::to_string(qmin) + ", " + std::to_string(qmax) + "]";
  if (qmin > 0) invalid("quant_min", "the custom range " + range + " must include 0");
  if (qmax < 0) invalid("quant_max", "the custom range " + range + " must include 0");
  if (qmin >= qmax) invalid("quant_min", "must be less than quant_max, got " + range);
  if (qmin < dtype_min) {
    invalid("quant_min", std::to_string(qmin) + " is below " + dtype + "'s minimum " +
                             std::to_string(dtype_min));
  }
  if (qmax > dtype_max) {
    invalid("quant_max", std::to_string(qmax) + " is above " + dtype + "'s maximum " +
                             std::to_string(dtype_max));
  }
  if (!spec.reduce_range) return {qmin, qmax};
  if (floor_half(qmin) >= floor_half(qmax)) {
    invalid("reduce_range", "halving the custom range " + range + " leaves it empty");
  }
  return {floor_half(qmin), floor_half(qmax)};
}

}  // namespace

std::unique_ptr<Observer> make_observer(const ObserverSpec& spec) {
  static const std::vector<std::string> kKinds = {
      "minmax",    "moving_average_minmax", "per_channel_minmax", "moving_average_per_channel_minmax",
      "histogram", "percentile",            "entropy"};
  const std::string& kind = spec.kind;
  if (std::find(kKinds.begin(), kKinds.end(), kind) == kKinds.end()) {
    std::string known;
    for (const auto& k : kKinds) known += (known.empty() ? "" : ", ") + k;
    invalid("kind", "unknown observer '" + kind + "' (expected one of " + known + ")");
  }
  const bool per_channel_kind = kind.find("per_channel") != std::string::npos;
  if (is_per_channel(spec.qscheme) != per_channel_kind) {
    invalid("qscheme", kind + " needs a " + (per_channel_kind ? "per-channel" : "per-tensor") +
                           " scheme, got " + to_string(spec.qscheme));
  }
  const auto [quant_min, quant_max] = checked_quant_range(spec);
  if (!(spec.eps > 0) || !std::isfinite(spec.eps)) {
    invalid("eps", "must be positive and finite, got " + python_float(spec.eps));
  }
  if (kind.find("moving_average") == 0 &&
      !(spec.averaging_constant > 0 && spec.averaging_constant <= 1)) {
    invalid("averaging_constant", "must be in (0, 1], got " + python_float(spec.averaging_constant));
  }
  if (kind == "histogram") {
    if (spec.bins < 1) invalid("bins", "must be positive, got " + std::to_string(spec.bins));
    if (spec.upsample_rate < 1) {
      invalid("upsample_rate", "must be positive, got " + std::to_string(spec.upsample_rate));
    }
    return std::make_unique<HistogramObserver>(spec, quant_min, quant_max);
  }
  if (kind == "percentile" || kind == "entropy") {
    // Merging pairs of bins when the range doubles needs an even count.
    if (spec.bins < 2 || spec.bins % 2 != 0) {
      invalid("bins", "must be even and at least 2, got " + std::to_string(spec.bins));
    }
  }
  if (kind == "percentile") {
    if (!(spec.percentile >= 50 && spec.percentile <= 100)) {
      invalid("percentile", "must be in [50, 100], got " + python_float(spec.percentile));
    }
    return std::make_unique<PercentileObserver>(spec, quant_min, quant_max);
  }
  if (kind == "entropy") {
    if (spec.quantized_bins < 2 || spec.quantized_bins > spec.bins) {
      invalid("quantized_bins", "must be in [2, bins = " + std::to_string(spec.bins) + "], got " +
                                    std::to_string(spec.quantized_bins));
    }
    return std::make_unique<EntropyObserver>(spec, quant_min, quant_max);
  }
  if (per_channel_kind) return std::make_unique<PerChannelMinMaxObserver>(spec, quant_min, quant_max);
  return std::make_unique<MinMaxObserver>(spec, quant_min, quant_max);
}

std::unique_ptr<Observer> make_fixed_qparams_observer(double scale, int64_t zero_point) {
  return std::make_unique<FixedQParamsObserver>(ObserverSpec{}, scale, zero_point);
}

}  // namespace qb
