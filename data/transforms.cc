#include "data/transforms.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <stdexcept>
#include <string>
#include <utility>

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

cv::Mat resample_horizontal(const cv::Mat& in, int out_width) {
  const Coefficients c = bilinear_coefficients(in.cols, out_width);
  const int channels = in.channels();
  cv::Mat out(in.rows, out_width, in.type());
  for (int y = 0; y < in.rows; ++y) {
    const uint8_t* src = in.ptr<uint8_t>(y);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int xx = 0; xx < out_width; ++xx) {
      const int32_t* k = &c.weights[static_cast<size_t>(xx) * c.ksize];
      for (int ch = 0; ch < channels; ++ch) {
        int32_t sum = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < c.count[xx]; ++x) sum += src[(c.first[xx] + x) * channels + ch] * k[x];
        dst[xx * channels + ch] = clip8(sum);
      }
    }
  }
  return out;
}

cv::Mat resample_vertical(const cv::Mat& in, int out_height) {
  const Coefficients c = bilinear_coefficients(in.rows, out_height);
  const int row_values = in.cols * in.channels();
  cv::Mat out(out_height, in.cols, in.type());
  // Whole rows at a time: the same sums as Pillow's, in an order the compiler vectorizes.
  std::vector<int32_t> sums(static_cast<size_t>(row_values));
  for (int yy = 0; yy < out_height; ++yy) {
    const int32_t* k = &c.weights[static_cast<size_t>(yy) * c.ksize];
    std::fill(sums.begin(), sums.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = in.ptr<uint8_t>(c.first[yy] + y);
      const int32_t weight = k[y];
      for (int v = 0; v < row_values; ++v) sums[v] += src[v] * weight;
    }
    uint8_t* dst = out.ptr<uint8_t>(yy);
    for (int v = 0; v < row_values; ++v) dst[v] = clip8(sums[v]);
  }
  return out;
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

cv::Mat resize_bilinear(const cv::Mat& image, int height, int width) {
  require_8bit(image, "resize_bilinear");
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("resize_bilinear: size must be positive");
  // Horizontal pass first, and a pass only where the size changes, as Pillow does: the order
  // changes the 8-bit rounding of the intermediate image.
  cv::Mat out = image.cols != width ? resample_horizontal(image, width) : image;
  if (out.rows != height) out = resample_vertical(out, height);
  return out.data == image.data ? image.clone() : out;
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

Compose& Compose::add(std::shared_ptr<const ImageTransform> step) {
  steps_.push_back(std::move(step));
  return *this;
}

Compose& Compose::normalize_with(Normalization normalization) {
  normalization_ = std::move(normalization);
  return *this;
}

cv::Mat Compose::apply_image(const cv::Mat& image, uint64_t seed) const {
  TransformRng rng(seed);
  cv::Mat out = image;
  for (const auto& step : steps_) out = step->apply(out, rng);
  return out;
}

at::Tensor Compose::operator()(const cv::Mat& image, uint64_t seed) const {
  const at::Tensor tensor = to_tensor(apply_image(image, seed));
  return normalization_ ? normalize(tensor, *normalization_) : tensor;
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
