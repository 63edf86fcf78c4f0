#include "data/transforms.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qb {

double TransformRng::uniform(double lo, double hi) {
  // The top 53 bits fill a double's mantissa exactly.
  return lo + (hi - lo) * (static_cast<double>(next() >> 11) * 0x1.0p-53);
}

int64_t TransformRng::integer(int64_t lo, int64_t hi) {
  if (lo >= hi) throw std::invalid_argument("TransformRng::integer: empty range");
  // Modulo bias is below 2^-40 for ranges the size of an image side.
  return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo));
}

uint64_t TransformRng::next() {
  state_ += 0x9E3779B97F4A7C15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

namespace {

// Pillow's fixed-point precision for 8-bit resampling (Resample.c): weights are scaled by
// 2^22, leaving headroom for 255 * (sum of weights) in an int32 accumulator.
constexpr int kPrecisionBits = 32 - 8 - 2;

void require_8bit(const cv::Mat& image, const char* where) {
  if (image.depth() != CV_8U || image.dims != 2 || image.empty()) {
    throw std::invalid_argument(std::string(where) + ": expects a non-empty 8-bit image");
  }
}

/// For each output pixel along one axis: the first input pixel used, how many, and their
/// fixed-point weights (ksize slots per output pixel).
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;
};

/// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter: when
/// shrinking, the filter's support widens by the scale factor, which is the antialiasing.
Coefficients bilinear_coefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;  // the triangle's support is 1
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    // Truncating casts, as in Pillow, so the windows match pixel for pixel.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    const double inverse_scale =
        1.0 / filter_scale;  // multiplied, as Pillow does, for equal rounding
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double distance = std::abs((x + xmin - center + 0.5) * inverse_scale);
      k[x] = distance < 1.0 ? 1.0 - distance : 0.0;
      total += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = total != 0.0 ? k[x] / total : k[x];
      c.weights[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(
          w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

/// Pillow's clip8: the accumulator back to 0..255, truncating the fraction (the 0.5 rounding
/// term was added when the accumulator started).
uint8_t clip8(int32_t sum) {
  if (sum >= (1 << kPrecisionBits << 8)) return 255;
  if (sum <= 0) return 0;
  return static_cast<uint8_t>(sum >> kPrecisionBits);
}

/// Pillow skips the pass along an axis whose size does not change; nullopt stands for that.
std::optional<Coefficients> axis_coefficients(int in_size, int out_size) {
  if (in_size == out_size) return std::nullopt;
  return bilinear_coefficients(in_size, out_size);
}

/// The input pixels [first, last) that outputs [begin, end) read along one axis.
std::array<int, 2> input_span(const std::optional<Coefficients>& c, int begin, int end) {
  if (!c) return {begin, end};
  // Windows move monotonically with the output position.
  return {c->first[begin], c->first[end - 1] + c->count[end - 1]};
}

/// The horizontal pass on RGB rows with every window `Taps` long, starting at `starts[j]` with
/// weights `weights[j * Taps ...]`: with the length fixed, the compiler unrolls the taps.
template <int Taps>
void horizontal_rgb_portable(const cv::Mat& in, const std::vector<int>& starts,
                             const std::vector<int32_t>& weights, cv::Mat& out) {
  for (int y = 0; y < in.rows; ++y) {
    const uint8_t* src = in.ptr<uint8_t>(y);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int j = 0; j < out.cols; ++j) {
      const uint8_t* pixel = src + 3 * starts[j];
      const int32_t* k = &weights[static_cast<size_t>(j) * Taps];
      int32_t r = 1 << (kPrecisionBits - 1);
      int32_t g = r;
      int32_t b = r;
      for (int t = 0; t < Taps; ++t) {
        r += pixel[3 * t] * k[t];
        g += pixel[3 * t + 1] * k[t];
        b += pixel[3 * t + 2] * k[t];
      }
      dst[3 * j] = clip8(r);
      dst[3 * j + 1] = clip8(g);
      dst[3 * j + 2] = clip8(b);
    }
  }
}

#if defined(__x86_64__)
/// horizontal_rgb_portable with SSE4.1, for CPUs that have it: a pixel's R, G and B (and the
/// next pixel's R, discarded) in four 32-bit lanes, one multiply per tap instead of three. The
/// integer sums are the scalar ones; the saturating packs after the shift clamp to 0..255 exactly
/// as clip8 does.
template <int Taps>
__attribute__((target("sse4.1"))) void horizontal_rgb_sse41(
    const cv::Mat& in, const std::vector<int>& starts, const std::vector<int32_t>& weights,
    cv::Mat& out) {
  // Each row copied with a byte to spare, so the fourth lane never reads past the image.
  std::vector<uint8_t> row(static_cast<size_t>(in.cols) * 3 + 1, 0);
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  for (int y = 0; y < in.rows; ++y) {
    std::copy_n(in.ptr<uint8_t>(y), static_cast<size_t>(in.cols) * 3, row.begin());
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int j = 0; j < out.cols; ++j) {
      const uint8_t* pixel = row.data() + 3 * starts[j];
      const int32_t* k = &weights[static_cast<size_t>(j) * Taps];
      __m128i sums = half;
      for (int t = 0; t < Taps; ++t) {
        int32_t lanes;
        std::memcpy(&lanes, pixel + 3 * t, sizeof(lanes));
        const __m128i values = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(lanes));
        sums = _mm_add_epi32(sums, _mm_mullo_epi32(values, _mm_set1_epi32(k[t])));
      }
      const __m128i shifted = _mm_srai_epi32(sums, kPrecisionBits);
      const __m128i words = _mm_packs_epi32(shifted, shifted);
      const __m128i bytes = _mm_packus_epi16(words, words);
      const int32_t rgb = _mm_cvtsi128_si32(bytes);
      std::memcpy(dst + 3 * j, &rgb, 3);
    }
  }
}
#endif

/// horizontal_rgb_sse41 where the CPU has SSE4.1, else horizontal_rgb_portable.
template <int Taps>
void horizontal_rgb(const cv::Mat& in, const std::vector<int>& starts,
                    const std::vector<int32_t>& weights, cv::Mat& out) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.1")) {
    horizontal_rgb_sse41<Taps>(in, starts, weights, out);
    return;
  }
#endif
  horizontal_rgb_portable<Taps>(in, starts, weights, out);
}

/// resample_horizontal for RGB images when every window fits in at most 8 taps; false otherwise.
bool resample_horizontal_rgb(const cv::Mat& in, int in_left, const Coefficients& c, int begin,
                             cv::Mat& out) {
  const int taps = *std::max_element(c.count.begin() + begin, c.count.begin() + begin + out.cols);
  if (in.channels() != 3 || taps > 8 || taps > in.cols) return false;
  // Equal-length windows: each one moved to stay inside `in` and padded with zero weights, which
  // add nothing to the sums.
  std::vector<int> starts(out.cols);
  std::vector<int32_t> weights(static_cast<size_t>(out.cols) * taps, 0);
  for (int j = 0; j < out.cols; ++j) {
    const int xx = begin + j;
    const int first = c.first[xx] - in_left;
    starts[j] = std::min(first, in.cols - taps);
    for (int x = 0; x < c.count[xx]; ++x) {
      weights[static_cast<size_t>(j) * taps + (first - starts[j]) + x] =
          c.weights[static_cast<size_t>(xx) * c.ksize + x];
    }
  }
  switch (taps) {
    case 1:
      horizontal_rgb<1>(in, starts, weights, out);
      break;
    case 2:
      horizontal_rgb<2>(in, starts, weights, out);
      break;
    case 3:
      horizontal_rgb<3>(in, starts, weights, out);
      break;
    case 4:
      horizontal_rgb<4>(in, starts, weights, out);
      break;
    case 5:
      horizontal_rgb<5>(in, starts, weights, out);
      break;
    case 6:
      horizontal_rgb<6>(in, starts, weights, out);
      break;
    case 7:
      horizontal_rgb<7>(in, starts, weights, out);
      break;
    default:
      horizontal_rgb<8>(in, starts, weights, out);
      break;
  }
  return true;
}

/// The horizontal pass for outputs [begin, begin + out.cols) on every row of `in`, whose first
/// column is input column `in_left`.
void resample_horizontal(const cv::Mat& in, int in_left, const Coefficients& c, int begin,
                         cv::Mat& out) {
  if (resample_horizontal_rgb(in, in_left, c, begin, out)) return;
  const int channels = in.channels();
  for (int y = 0; y < in.rows; ++y) {
    const uint8_t* src = in.ptr<uint8_t>(y);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int j = 0; j < out.cols; ++j) {
      const int xx = begin + j;
      const int32_t* k = &c.weights[static_cast<size_t>(xx) * c.ksize];
      const uint8_t* pixel = src + static_cast<ptrdiff_t>(c.first[xx] - in_left) * channels;
      for (int ch = 0; ch < channels; ++ch) {
        int32_t sum = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < c.count[xx]; ++x) sum += pixel[x * channels + ch] * k[x];
        dst[j * channels + ch] = clip8(sum);
      }
    }
  }
}

/// The vertical pass for output rows [begin, begin + out.rows) from `in`, whose first row is
/// input row `in_top`. Also built for AVX2 and picked at load time where the CPU has it: 32-bit
/// multiplies are single instructions there, while baseline x86-64 emulates them.
__attribute__((target_clones("avx2", "default")))
void resample_vertical(const cv::Mat& in, int in_top, const Coefficients& c, int begin,
                       cv::Mat& out) {
  // Blocks of a fixed number of values, each summed over the taps in registers: a loop shape the
  // compiler vectorizes at -O2. The sums are Pillow's; only the order of independent values
  // differs.
  constexpr int kBlock = 16;
  const int row_values = in.cols * in.channels();
  std::vector<const uint8_t*> rows(static_cast<size_t>(c.ksize));
  for (int i = 0; i < out.rows; ++i) {
    const int yy = begin + i;
    const int taps = c.count[yy];
    const int32_t* k = &c.weights[static_cast<size_t>(yy) * c.ksize];
    for (int y = 0; y < taps; ++y) rows[y] = in.ptr<uint8_t>(c.first[yy] - in_top + y);
    uint8_t* dst = out.ptr<uint8_t>(i);
    int v = 0;
    for (; v + kBlock <= row_values; v += kBlock) {
      int32_t sums[kBlock];
      for (int b = 0; b < kBlock; ++b) sums[b] = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < taps; ++y) {
        const uint8_t* src = rows[y] + v;
        for (int b = 0; b < kBlock; ++b) sums[b] += src[b] * k[y];
      }
      for (int b = 0; b < kBlock; ++b) dst[v + b] = clip8(sums[b]);
    }
    for (; v < row_values; ++v) {
      int32_t sum = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < taps; ++y) sum += rows[y][v] * k[y];
      dst[v] = clip8(sum);
    }
  }
}

bool contains(const CropBox& outer, const CropBox& inner) {
  return outer.top <= inner.top && outer.left <= inner.left &&
         inner.top + inner.height <= outer.top + outer.height &&
         inner.left + inner.width <= outer.left + outer.width;
}

/// Zero-pads to at least (height, width) the way torchvision's center_crop does: the odd extra
/// pixel goes right and bottom.
cv::Mat pad_to(const cv::Mat& image, int height, int width) {
  const int extra_h = std::max(height - image.rows, 0);
  const int extra_w = std::max(width - image.cols, 0);
  if (extra_h == 0 && extra_w == 0) return image;
  cv::Mat padded;
  cv::copyMakeBorder(image, padded, extra_h / 2, (extra_h + 1) / 2, extra_w / 2, (extra_w + 1) / 2,
                     cv::BORDER_CONSTANT, cv::Scalar::all(0));
  return padded;
}

cv::Mat crop(const cv::Mat& image, const CropBox& box) {
  return image(cv::Rect(box.left, box.top, box.width, box.height)).clone();
}

/// Python's round(): halves go to the even neighbour (the default floating-point rounding mode).
int round_half_even(double x) { return static_cast<int>(std::nearbyint(x)); }

}  // namespace

ImagePart whole_image(const cv::Mat& image) {
  return {image, {0, 0, image.rows, image.cols}, image.rows, image.cols};
}

cv::Mat resize_bilinear(const cv::Mat& image, int height, int width) {
  return resize_bilinear_region(whole_image(image), height, width, {0, 0, height, width});
}

CropBox resize_source_box(int in_height, int in_width, int height, int width,
                          const CropBox& region) {
  const auto [top, bottom] =
      input_span(axis_coefficients(in_height, height), region.top, region.top + region.height);
  const auto [left, right] =
      input_span(axis_coefficients(in_width, width), region.left, region.left + region.width);
  return {top, left, bottom - top, right - left};
}

cv::Mat resize_bilinear_region(const ImagePart& part, int height, int width,
                               const CropBox& region) {
  require_8bit(part.pixels, "resize_bilinear");
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("resize_bilinear: size must be positive");
  if (region.height <= 0 || region.width <= 0 || !contains({0, 0, height, width}, region)) {
    throw std::invalid_argument("resize_bilinear_region: the region lies outside the output");
  }
  if (part.pixels.rows != part.box.height || part.pixels.cols != part.box.width ||
      !contains({0, 0, part.height, part.width}, part.box)) {
    throw std::invalid_argument("resize_bilinear_region: the part does not fit its image");
  }
  const std::optional<Coefficients> horizontal = axis_coefficients(part.width, width);
  const std::optional<Coefficients> vertical = axis_coefficients(part.height, height);
  const auto [top, bottom] = input_span(vertical, region.top, region.top + region.height);
  const auto [left, right] = input_span(horizontal, region.left, region.left + region.width);
  if (!contains(part.box, {top, left, bottom - top, right - left})) {
    throw std::invalid_argument("resize_bilinear_region: the part misses pixels the region reads");
  }
  // Horizontal pass first, as Pillow does: the order changes the 8-bit rounding of the
  // intermediate image. It runs only on the source rows the vertical pass reads.
  const cv::Mat rows = part.pixels.rowRange(top - part.box.top, bottom - part.box.top);
  cv::Mat intermediate;
  if (horizontal) {
    intermediate.create(rows.rows, region.width, rows.type());
    resample_horizontal(rows, part.box.left, *horizontal, region.left, intermediate);
  } else {
    intermediate =
        rows.colRange(region.left - part.box.left, region.left - part.box.left + region.width);
  }
  if (!vertical) return horizontal ? intermediate : intermediate.clone();
  cv::Mat out(region.height, region.width, rows.type());
  resample_vertical(intermediate, top, *vertical, region.top, out);
  return out;
}

std::array<int, 2> resized_size(int height, int width, int size) {
  if (size <= 0) throw std::invalid_argument("Resize: size must be positive");
  const int shorter = std::min(height, width);
  const int longer = std::max(height, width);
  // int(size * long / short) in Python: an exact product, a correctly rounded division, truncation.
  const int new_long = static_cast<int>(static_cast<double>(int64_t{size} * longer) / shorter);
  return width <= height ? std::array<int, 2>{new_long, size} : std::array<int, 2>{size, new_long};
}

std::array<int, 2> center_crop_offsets(int height, int width, int crop_height, int crop_width) {
  return {round_half_even((height - crop_height) / 2.0),
          round_half_even((width - crop_width) / 2.0)};
}

Resize::Resize(int size) : size_(size) {
  if (size <= 0) throw std::invalid_argument("Resize: size must be positive");
}

cv::Mat Resize::apply(const cv::Mat& image, TransformRng&) const {
  const auto [height, width] = resized_size(image.rows, image.cols, size_);
  return resize_bilinear(image, height, width);
}

CenterCrop::CenterCrop(int size) : size_(size) {
  if (size <= 0) throw std::invalid_argument("CenterCrop: size must be positive");
}

cv::Mat CenterCrop::apply(const cv::Mat& image, TransformRng&) const {
  require_8bit(image, "CenterCrop");
  const cv::Mat padded = pad_to(image, size_, size_);
  const auto [top, left] = center_crop_offsets(padded.rows, padded.cols, size_, size_);
  return crop(padded, {top, left, size_, size_});
}

RandomResizedCrop::RandomResizedCrop(int size, std::array<double, 2> scale,
                                     std::array<double, 2> ratio)
    : size_(size), scale_(scale), ratio_(ratio) {
  if (size <= 0) throw std::invalid_argument("RandomResizedCrop: size must be positive");
  if (scale[0] > scale[1] || ratio[0] > ratio[1] || scale[0] <= 0 || ratio[0] <= 0) {
    throw std::invalid_argument(
        "RandomResizedCrop: scale and ratio must be positive (min, max) pairs");
  }
}

CropBox RandomResizedCrop::sample(int height, int width, TransformRng& rng) const {
  const double area = static_cast<double>(height) * width;
  const double log_min = std::log(ratio_[0]);
  const double log_max = std::log(ratio_[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale_[0], scale_[1]);
    // Log-uniform, so a ratio and its inverse are equally likely.
    const double aspect = std::exp(rng.uniform(log_min, log_max));
    const int w = round_half_even(std::sqrt(target_area * aspect));
    const int h = round_half_even(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int top = static_cast<int>(rng.integer(0, height - h + 1));
      const int left = static_cast<int>(rng.integer(0, width - w + 1));
      return {top, left, h, w};
    }
  }
  // No attempt fitted: the largest centred crop whose aspect lies within the ratio bounds.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width;
  int h = height;
  if (in_ratio < ratio_[0]) {
    h = round_half_even(w / ratio_[0]);
  } else if (in_ratio > ratio_[1]) {
    w = round_half_even(h * ratio_[1]);
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

cv::Mat RandomResizedCrop::apply(const cv::Mat& image, TransformRng& rng) const {
  require_8bit(image, "RandomResizedCrop");
  return resize_bilinear(crop(image, sample(image.rows, image.cols, rng)), size_, size_);
}

RandomCrop::RandomCrop(int size, int padding) : size_(size), padding_(padding) {
  if (size <= 0 || padding < 0)
    throw std::invalid_argument("RandomCrop: size must be positive, padding >= 0");
}

cv::Mat RandomCrop::apply(const cv::Mat& image, TransformRng& rng) const {
  require_8bit(image, "RandomCrop");
  cv::Mat padded = image;
  if (padding_ > 0) {
    cv::copyMakeBorder(image, padded, padding_, padding_, padding_, padding_, cv::BORDER_CONSTANT,
                       cv::Scalar::all(0));
  }
  if (padded.rows < size_ || padded.cols < size_) {
    throw std::invalid_argument("RandomCrop: crop size " + std::to_string(size_) +
                                " exceeds the padded image " + std::to_string(padded.rows) + "x" +
                                std::to_string(padded.cols));
  }
  const int top = static_cast<int>(rng.integer(0, padded.rows - size_ + 1));
  const int left = static_cast<int>(rng.integer(0, padded.cols - size_ + 1));
  return crop(padded, {top, left, size_, size_});
}

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {}

cv::Mat RandomHorizontalFlip::apply(const cv::Mat& image, TransformRng& rng) const {
  require_8bit(image, "RandomHorizontalFlip");
  cv::Mat out;
  if (rng.uniform(0.0, 1.0) < p_) {
    cv::flip(image, out, 1);
  } else {
    out = image.clone();
  }
  return out;
}

at::Tensor to_tensor(const cv::Mat& image) {
  require_8bit(image, "to_tensor");
  const cv::Mat dense = image.isContinuous() ? image : image.clone();
  const at::Tensor hwc =
      at::from_blob(dense.data, {dense.rows, dense.cols, dense.channels()}, at::kByte);
  // The float conversion copies, so the tensor never aliases the image's memory.
  return hwc.permute({2, 0, 1}).contiguous().to(at::kFloat).div(255);
}

at::Tensor normalize(const at::Tensor& tensor, const Normalization& normalization) {
  const int64_t channels = tensor.size(0);
  if (static_cast<int64_t>(normalization.mean.size()) != channels ||
      static_cast<int64_t>(normalization.std.size()) != channels) {
    throw std::invalid_argument("normalize: mean and std need one value per channel");
  }
  // Float32 statistics, as torchvision converts them, so the arithmetic is the same.
  const at::Tensor mean = at::tensor(normalization.mean, at::kFloat).view({-1, 1, 1});
  const at::Tensor std = at::tensor(normalization.std, at::kFloat).view({-1, 1, 1});
  return tensor.sub(mean).div(std);
}

namespace {

/// ToTensor then Normalize applied to every 8-bit value with the very ATen operations torchvision
/// runs (float division by 255, float32 mean and std), so looking values up gives the same floats:
/// 256 entries per channel, or one table of 256 without normalization.
std::vector<float> value_lookup(const std::optional<Normalization>& normalization) {
  at::Tensor values = at::arange(256, at::kFloat).div(255);
  if (normalization) {
    if (normalization->mean.size() != normalization->std.size() || normalization->mean.empty()) {
      throw std::invalid_argument("normalize: mean and std need one value per channel");
    }
    const at::Tensor mean = at::tensor(normalization->mean, at::kFloat).view({-1, 1});
    const at::Tensor std = at::tensor(normalization->std, at::kFloat).view({-1, 1});
    values = values.view({1, 256}).sub(mean).div(std).contiguous();
  }
  return std::vector<float>(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
}

/// An HxWxC 8-bit image as a CxHxW float tensor of lookup[channel][value] (lookup[value] for
/// every channel when the table has 256 entries), in one pass.
at::Tensor lookup_tensor(const cv::Mat& image, const std::vector<float>& lookup) {
  require_8bit(image, "to_tensor");
  const int channels = image.channels();
  const size_t tables = lookup.size() / 256;
  at::Tensor out = at::empty({channels, image.rows, image.cols}, at::kFloat);
  float* values = out.data_ptr<float>();
  const size_t plane = static_cast<size_t>(image.rows) * image.cols;
  if (channels == 3) {
    // RGB in one sweep over the pixels, writing the three planes side by side.
    const float* red = lookup.data();
    const float* green = lookup.data() + (tables == 1 ? 0 : 256);
    const float* blue = lookup.data() + (tables == 1 ? 0 : 512);
    for (int y = 0; y < image.rows; ++y) {
      const uint8_t* src = image.ptr<uint8_t>(y);
      float* dst = values + static_cast<size_t>(y) * image.cols;
      for (int x = 0; x < image.cols; ++x, src += 3) {
        // All loads before the stores: a byte load may alias a float store, and interleaving
        // them serializes the loop.
        const float r = red[src[0]];
        const float g = green[src[1]];
        const float b = blue[src[2]];
        dst[x] = r;
        dst[plane + x] = g;
        dst[2 * plane + x] = b;
      }
    }
    return out;
  }
  for (int c = 0; c < channels; ++c) {
    const float* table = lookup.data() + (tables == 1 ? 0 : 256 * c);
    float* dst = values + c * plane;
    for (int y = 0; y < image.rows; ++y) {
      const uint8_t* src = image.ptr<uint8_t>(y) + c;
      for (int x = 0; x < image.cols; ++x) *dst++ = table[src[x * channels]];
    }
  }
  return out;
}

}  // namespace

Compose::Compose() : lookup_(value_lookup(std::nullopt)) {}

Compose& Compose::add(std::shared_ptr<const ImageTransform> step) {
  steps_.push_back(std::move(step));
  return *this;
}

Compose& Compose::normalize_with(Normalization normalization) {
  lookup_ = value_lookup(normalization);
  normalization_ = std::move(normalization);
  return *this;
}

std::optional<std::pair<std::array<int, 2>, CropBox>> Compose::resize_center_crop(int height,
                                                                                  int width) const {
  if (steps_.size() != 2) return std::nullopt;
  const auto* resize = dynamic_cast<const Resize*>(steps_[0].get());
  const auto* center_crop = dynamic_cast<const CenterCrop*>(steps_[1].get());
  if (!resize || !center_crop) return std::nullopt;
  const std::array<int, 2> resized = resized_size(height, width, resize->size());
  const int crop = center_crop->size();
  if (resized[0] < crop || resized[1] < crop) return std::nullopt;
  const auto [top, left] = center_crop_offsets(resized[0], resized[1], crop, crop);
  return std::make_pair(resized, CropBox{top, left, crop, crop});
}

std::optional<CropBox> Compose::source_region(int height, int width) const {
  const auto fused = resize_center_crop(height, width);
  if (!fused) return std::nullopt;
  const auto& [resized, region] = *fused;
  return resize_source_box(height, width, resized[0], resized[1], region);
}

cv::Mat Compose::apply_image(const cv::Mat& image, uint64_t seed) const {
  return apply_image(whole_image(image), seed);
}

cv::Mat Compose::apply_image(const ImagePart& part, uint64_t seed) const {
  // Resize then CenterCrop computes only the crop's pixels, with the values the two steps give.
  if (const auto fused = resize_center_crop(part.height, part.width)) {
    const auto& [resized, region] = *fused;
    return resize_bilinear_region(part, resized[0], resized[1], region);
  }
  if (part.box.top != 0 || part.box.left != 0 || part.box.height != part.height ||
      part.box.width != part.width) {
    throw std::invalid_argument("Compose: these image steps need the whole image");
  }
  TransformRng rng(seed);
  cv::Mat out = part.pixels;
  for (const auto& step : steps_) out = step->apply(out, rng);
  return out;
}

at::Tensor Compose::operator()(const cv::Mat& image, uint64_t seed) const {
  return (*this)(whole_image(image), seed);
}

at::Tensor Compose::operator()(const ImagePart& part, uint64_t seed) const {
  const cv::Mat image = apply_image(part, seed);
  if (normalization_ && normalization_->mean.size() != static_cast<size_t>(image.channels())) {
    throw std::invalid_argument("normalize: mean and std need one value per channel");
  }
  return lookup_tensor(image, lookup_);
}

Normalization imagenet_normalization() { return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}}; }

Normalization cifar_normalization() { return {{0.4914, 0.4822, 0.4465}, {0.2023, 0.1994, 0.2010}}; }

Compose imagenet_eval_pipeline() {
  Compose pipeline;
  pipeline.add(std::make_shared<Resize>(256)).add(std::make_shared<CenterCrop>(224));
  pipeline.normalize_with(imagenet_normalization());
  return pipeline;
}

Compose cifar_train_pipeline() {
  Compose pipeline;
  pipeline.add(std::make_shared<RandomCrop>(32, 4))
      .add(std::make_shared<RandomHorizontalFlip>(0.5));
  pipeline.normalize_with(cifar_normalization());
  return pipeline;
}

Compose cifar_test_pipeline() {
  Compose pipeline;
  pipeline.normalize_with(cifar_normalization());
  return pipeline;
}

}  // namespace qb
