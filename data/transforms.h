#pragma once
// torchvision's image transforms on decoded 8-bit images (cv::Mat CV_8UC3 in RGB order, or
// CV_8UC1), giving the same pixels torchvision gives on PIL images: Resize reimplements PIL's
// antialiased bilinear resampling, because OpenCV's INTER_LINEAR does not filter when shrinking.
// Random transforms draw only from the generator handed to them, which a pipeline seeds from a
// per-sample seed, so results never depend on threads or timing. Matching torchvision's random
// numbers is not a goal; its geometry rules (crop sizes, bounds, fallbacks) are followed exactly.
// Compose runs Resize followed by CenterCrop, and ToTensor with Normalize, as fused passes that
// compute only the output's pixels and give the very values the separate steps give.

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <optional>
#include <utility>
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

/// The pixels of part of an image: rows [box.top, box.top + box.height) and columns [box.left,
/// box.left + box.width) of an image of height x width (a decoder may produce no more).
struct ImagePart {
  cv::Mat pixels;
  CropBox box;
  int height = 0;
  int width = 0;
};

/// The whole of `image` as an ImagePart (no copy).
ImagePart whole_image(const cv::Mat& image);

/// One step on an 8-bit image; random steps draw only from `rng`.
class ImageTransform {
 public:
  virtual ~ImageTransform() = default;
  /// The transformed image; `image` is left untouched.
  virtual cv::Mat apply(const cv::Mat& image, TransformRng& rng) const = 0;
};

/// PIL's Image.resize(BILINEAR) to exactly (height, width): antialiased when shrinking.
cv::Mat resize_bilinear(const cv::Mat& image, int height, int width);

/// crop(resize_bilinear(image, height, width), region) with the same values, computed only where
/// the region needs it: the horizontal pass for the source rows and intermediate columns the
/// region reads, the vertical pass for its rows. `part` must cover resize_source_box(...).
cv::Mat resize_bilinear_region(const ImagePart& part, int height, int width, const CropBox& region);

/// The pixels of an in_height x in_width image that resize_bilinear_region reads for `region`.
CropBox resize_source_box(int in_height, int in_width, int height, int width,
                          const CropBox& region);

/// The (height, width) torchvision's Resize(size) gives: shorter side `size`, the other truncated.
std::array<int, 2> resized_size(int height, int width, int size);

/// The top-left corner torchvision's CenterCrop takes, rounding half offsets to even.
std::array<int, 2> center_crop_offsets(int height, int width, int crop_height, int crop_width);

/// Resize(size): the shorter side to `size`, aspect ratio kept as torchvision computes it.
class Resize : public ImageTransform {
 public:
  explicit Resize(int size);
  cv::Mat apply(const cv::Mat& image, TransformRng& rng) const override;
  /// The shorter side's length after resizing.
  int size() const { return size_; }

 private:
  int size_;
};

/// CenterCrop(size): a size x size centre crop, zero-padded first if the image is smaller.
class CenterCrop : public ImageTransform {
 public:
  explicit CenterCrop(int size);
  cv::Mat apply(const cv::Mat& image, TransformRng& rng) const override;
  /// The crop's side.
  int size() const { return size_; }

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
  /// No image steps and no Normalize: ToTensor alone.
  Compose();
  /// Appends an image step; returns *this for chaining.
  Compose& add(std::shared_ptr<const ImageTransform> step);
  /// Normalizes after ToTensor; returns *this for chaining.
  Compose& normalize_with(Normalization normalization);

  /// The part of a height x width image the image steps read, when that is known before seeing
  /// the pixels: for Resize followed by a CenterCrop that needs no padding. nullopt means the
  /// whole image (random steps, anything else).
  std::optional<CropBox> source_region(int height, int width) const;

  /// The image after every image step, drawing from a generator seeded with `seed`.
  cv::Mat apply_image(const cv::Mat& image, uint64_t seed) const;
  /// The same from part of an image, which must cover source_region(part.height, part.width), or
  /// the whole image when that is nullopt.
  cv::Mat apply_image(const ImagePart& part, uint64_t seed) const;
  /// The full pipeline: image steps, ToTensor, Normalize if set.
  at::Tensor operator()(const cv::Mat& image, uint64_t seed) const;
  /// The full pipeline from part of an image, as apply_image(part, seed).
  at::Tensor operator()(const ImagePart& part, uint64_t seed) const;

 private:
  /// When the image steps are Resize then a CenterCrop that needs no padding: the resized
  /// (height, width) of a height x width image and the crop taken from it.
  std::optional<std::pair<std::array<int, 2>, CropBox>> resize_center_crop(int height,
                                                                           int width) const;

  std::vector<std::shared_ptr<const ImageTransform>> steps_;
  std::optional<Normalization> normalization_;
  /// ToTensor then Normalize for each 8-bit value, 256 floats per channel; one channel (ToTensor
  /// alone) without normalization.
  std::vector<float> lookup_;
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
