#pragma once
// Seeded random images for sweeps that measure latency and size only: no files needed, the same
// tensors on every machine. Their labels are arbitrary, so accuracy on them means nothing.

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace qb {

struct SyntheticOptions {
  /// Shape of one image, e.g. {3, 224, 224}.
  std::vector<int64_t> shape = {3, 224, 224};
  int64_t size = 64;
  int64_t num_classes = 1000;
  uint64_t seed = 0;
};

/// Images of standard normal values (as a normalised photograph roughly is), example i drawn from
/// a generator seeded by (seed, i); label i is i mod num_classes.
class Synthetic : public Dataset {
 public:
  /// Throws DataError for a non-positive size, class count or dimension.
  explicit Synthetic(SyntheticOptions options);

  int64_t size() const override { return options_.size; }
  int64_t num_classes() const override { return options_.num_classes; }
  at::Tensor image(int64_t index) const override;
  int64_t label(int64_t index) const override;
  std::string describe() const override;
  /// A hash of the options: the images follow from them.
  uint64_t fingerprint() const override;
  /// A hash of (seed, index, shape), which determine the image.
  uint64_t content_hash(int64_t index) const override;

 private:
  void check_index(int64_t index) const;

  SyntheticOptions options_;
};

}  // namespace qb
