#pragma once
// CIFAR-10 and CIFAR-100 (32x32 colour photos) from their binary distributions,
// held in memory as uint8 and normalised per channel on demand.

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"

namespace qb {

/// Which of the two CIFAR data sets a directory holds.
enum class CifarVersion { k10, k100 };

/// Where to find CIFAR and how to label and normalise it.
struct CifarOptions {
  /// The extracted binary tarball; empty means /usr/share/datasets/cifar-10-batches-bin or
  /// /usr/share/datasets/cifar-100-binary.
  std::string root;
  /// CIFAR-100 only: "fine" (100 classes) or "coarse" (20 superclasses). CIFAR-10 has only "fine".
  std::string label = "fine";
  /// Channel c (R, G, B) becomes (x / 255 - mean[c]) / stddev[c]; the defaults are CIFAR-10's
  /// training statistics as used by the study this project reproduces, also for CIFAR-100.
  std::array<double, 3> mean = {0.4914, 0.4822, 0.4465};
  std::array<double, 3> stddev = {0.2023, 0.1994, 0.2010};
  /// Keep only the first `limit` examples (all of them when unset).
  std::optional<int64_t> limit;
  /// Transforms on the 32x32 RGB image instead of the plain normalisation above (which they then
  /// replace: give them their own Normalize); example i draws from sample_seed(i, seed).
  std::optional<Compose> pipeline;
  std::optional<uint64_t> seed;
};

/// The "train" (50000 images) or "test" (10000 images) split of CIFAR-10 or CIFAR-100.
class Cifar : public Dataset {
 public:
  static constexpr int64_t kSide = 32;
  static constexpr int64_t kChannels = 3;

  /// Loads the whole split; throws DataError for an unknown split, bad options or bad files.
  Cifar(CifarVersion version, const std::string& split, CifarOptions options = {});

  int64_t size() const override { return size_; }
  int64_t num_classes() const override { return static_cast<int64_t>(class_names_.size()); }
  /// A 3x32x32 float tensor, channels in R, G, B order.
  at::Tensor image(int64_t index) const override;
  int64_t label(int64_t index) const override;
  std::string describe() const override;
  uint64_t fingerprint() const override;
  uint64_t content_hash(int64_t index) const override;
  /// Converts the stored bytes straight into `out` (float, contiguous, 3x32x32).
  void write_image(int64_t index, at::Tensor out) const override;

  /// Class names in label order, as read from the meta file.
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  void check_index(int64_t index) const;

  std::string name_;  // "cifar-10" or "cifar-100", for messages
  std::string split_;
  std::string root_;
  std::string label_kind_;
  std::vector<std::string> class_names_;
  int64_t file_size_;  // examples in the files, before `limit`
  int64_t size_;
  at::Tensor pixels_;                                 // (file_size_, 3, 32, 32) uint8
  std::vector<uint8_t> labels_;                       // (file_size_), of the chosen kind
  std::array<std::array<float, 256>, 3> normalised_;  // channel, byte -> pixel, computed once
  std::optional<Compose> pipeline_;
  std::optional<uint64_t> seed_;
};

}  // namespace qb
