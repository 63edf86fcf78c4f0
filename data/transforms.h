#pragma once
// torchvision's image transforms on decoded 8-bit images (cv::Mat CV_8UC3 in RGB order, or
// CV_8UC1), giving the same pixels torchvision gives on PIL images: Resize reimplements PIL's
// antialiased bilinear resampling, because OpenCV's INTER_LINEAR does not filter when shrinking.
// Random transforms draw only from the generator handed to them, which a pipeline seeds from a
// per-sample seed, so results never depend on threads or timing. Matching torchvision's random
// numbers is not a goal; its geometry rules (crop sizes, bounds, fallbacks) are followed exactly.

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <optional>
#include <vector>

namespace qb {

/// A small deterministic generator (splitmix64): the same seed gives the same draws everywhere.
class TransformRng {
 public:
  /// Starts the stream of `seed`.
  explicit TransformRng(uint64_t seed) : state_(seed) {}
  /// A uniform double in [lo, hi).
  double uniform(double lo, double hi);
  /// A uniform integer in [lo, hi); requires lo < hi.
  int64_t integer(int64_t lo, int64_t hi);

 private:
  uint64_t next();
  uint64_t state_;
};

/// A rectangle of an image: top row, left column, height and width in pixels.
struct CropBox {
  int top = 0;
  int left = 0;
  int height = 0;
  int width = 0;
};

/// One step on an 8-bit image; random steps draw only from `rng`.
class ImageTransform {
 public:
  virtual ~ImageTransform() = default;
  /// The transformed image; `image` is left untouched.
  virtual cv::Mat apply(const cv::Mat& image, TransformRng& rng) const = 0;
};

/// PIL's Image.resize(BILINEAR) to exactly (height, width): antialiased when shrinking.
cv::Mat resize_bilinear(const cv::Mat& image, int height, int width);

/// The (height, width) torchvision's Resize(size) gives: shorter side `size`, the other truncated.
std::array<int, 2> resized_size(int height, int width, int size);

/// The top-left corner torchvision's CenterCrop takes, rounding half offsets to even.
std::array<int, 2> center_crop_offsets(int height, int width, int crop_height, int crop_width);

/// Resize(size): the shorter side to `size`, aspect ratio kept as torchvision computes it.
class Resize : public ImageTransform {
 public:
  explicit Resize(int size);
  cv::Mat apply(const cv::Mat& image, TransformRng& rng) const override;

 private:
  int size_;
};

/// CenterCrop(size): a size x size centre crop, zero-padded first if the image is smaller.
class CenterCrop : public ImageTransform {
 public:
  explicit CenterCrop(int size);
  cv::Mat apply(const cv::Mat& image, TransformRng& rng) const override;

 private:
  int size_;
};

/// RandomResizedCrop(size, scale, ratio): a random area/aspect crop resized to size x size.
class RandomResizedCrop : public ImageTransform {
 public:
  RandomResizedCrop(int size, std::array<double, 2> scale = {0.08, 1.0},
                    std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0});
  /// torchvision's get_params: 10 attempts at a random area and log-uniform aspect ratio, then a
  /// centre crop clamped to the ratio bounds.
  CropBox sample(int height, int width, TransformRng& rng) const;
  cv::Mat apply(const cv::Mat& image, TransformRng& rng) const override;

 private:
  int size_;
  std::array<double, 2> scale_;
  std::array<double, 2> ratio_;
};

/// RandomCrop(size, padding): zero-pad every side by `padding`, then a random size x size crop.
class RandomCrop : public ImageTransform {
 public:
  RandomCrop(int size, int padding = 0);
  cv::Mat apply(const cv::Mat& image, TransformRng& rng) const override;

 private:
  int size_;
  int padding_;
};

/// RandomHorizontalFlip(p): mirrors left-right with probability p.
class RandomHorizontalFlip : public ImageTransform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  cv::Mat apply(const cv::Mat& image, TransformRng& rng) const override;

 private:
  double p_;
};

/// ToTensor: an HxWxC uint8 image as a CxHxW float tensor in [0, 1] (value / 255).
at::Tensor to_tensor(const cv::Mat& image);

/// Per-channel mean and standard deviation for Normalize.
struct Normalization {
  std::vector<double> mean;
  std::vector<double> std;
};

/// Normalize: (tensor - mean) / std per channel of a CxHxW float tensor, in float as torchvision.
at::Tensor normalize(const at::Tensor& tensor, const Normalization& normalization);

/// Image steps, then ToTensor, then an optional Normalize; one seed per sample fixes every draw.
class Compose {
 public:
  /// Appends an image step; returns *this for chaining.
  Compose& add(std::shared_ptr<const ImageTransform> step);
  /// Normalizes after ToTensor; returns *this for chaining.
  Compose& normalize_with(Normalization normalization);

  /// The image after every image step, drawing from a generator seeded with `seed`.
  cv::Mat apply_image(const cv::Mat& image, uint64_t seed) const;
  /// The full pipeline: image steps, ToTensor, Normalize if set.
  at::Tensor operator()(const cv::Mat& image, uint64_t seed) const;

 private:
  std::vector<std::shared_ptr<const ImageTransform>> steps_;
  std::optional<Normalization> normalization_;
};

/// ImageNet's channel statistics, as torchvision's models expect.
Normalization imagenet_normalization();
/// The CIFAR-10 statistics the study uses.
Normalization cifar_normalization();

/// Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize(ImageNet).
Compose imagenet_eval_pipeline();
/// RandomCrop(32, padding=4) -> RandomHorizontalFlip -> ToTensor -> Normalize(CIFAR).
Compose cifar_train_pipeline();
/// ToTensor -> Normalize(CIFAR).
Compose cifar_test_pipeline();

}  // namespace qb
