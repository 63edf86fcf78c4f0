#pragma once
// Fashion-MNIST (Zalando's 28x28 grey clothing photos, 10 classes) from its
// four IDX files, held in memory as uint8 and normalised per image on demand.

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "data/dataset.h"
#include "data/transforms.h"

namespace qb {

/// Where to find Fashion-MNIST and how to normalise it.
struct FashionMnistOptions {
  /// Directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte, each gzipped or not.
  std::string root = "/usr/share/datasets/fashion-mnist";
  /// Pixels become (x / 255 - mean) / stddev; the defaults are the training set's statistics.
  double mean = 0.2860;
  double stddev = 0.3530;
  /// Keep only the first `limit` examples (all of them when unset).
  std::optional<int64_t> limit;
  /// Transforms on the 28x28 grey image instead of the plain normalisation above (which they then
  /// replace: give them their own Normalize); example i draws from sample_seed(i, seed).
  std::optional<Compose> pipeline;
  std::optional<uint64_t> seed;
};

/// The "train" (60000 images) or "test" (10000 images) split of Fashion-MNIST.
class FashionMnist : public Dataset {
 public:
  /// Class names in label order.
  static constexpr std::array<std::string_view, 10> kClassNames = {
      "t-shirt/top", "trouser", "pullover", "dress", "coat",
      "sandal",      "shirt",   "sneaker",  "bag",   "ankle boot"};
  static constexpr int64_t kSide = 28;

  /// Loads the whole split; throws DataError for an unknown split, bad options or bad files.
  explicit FashionMnist(const std::string& split, FashionMnistOptions options = {});

  int64_t size() const override { return size_; }
  int64_t num_classes() const override { return static_cast<int64_t>(kClassNames.size()); }
  /// A 1x28x28 float tensor.
  at::Tensor image(int64_t index) const override;
  int64_t label(int64_t index) const override;
  std::string describe() const override;
  uint64_t fingerprint() const override;
  uint64_t content_hash(int64_t index) const override;
  /// Converts the stored bytes straight into `out` (float, contiguous, 1x28x28).
  void write_image(int64_t index, at::Tensor out) const override;

 private:
  void check_index(int64_t index) const;

  std::string split_;
  std::string root_;
  int64_t file_size_;  // examples in the files, before `limit`
  int64_t size_;
  at::Tensor pixels_;                  // (file_size_, 28, 28) uint8
  at::Tensor labels_;                  // (file_size_) uint8
  std::array<float, 256> normalised_;  // byte value -> normalised pixel, computed once
  std::optional<Compose> pipeline_;
  std::optional<uint64_t> seed_;
};

}  // namespace qb
