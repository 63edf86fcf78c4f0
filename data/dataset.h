#pragma once
// The interface every dataset implements (Fashion-MNIST now; ImageNet and
// CIFAR later), so batching and loaders never depend on a file format.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace qb {

/// A malformed or missing data file; the message names the file and the fault.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An indexed collection of (image tensor, label) examples.
class Dataset {
 public:
  virtual ~Dataset() = default;

  /// Number of examples; valid indices are [0, size()).
  virtual int64_t size() const = 0;
  /// Labels lie in [0, num_classes()).
  virtual int64_t num_classes() const = 0;
  /// Example `index` as a float CHW tensor, already transformed and normalised.
  virtual at::Tensor image(int64_t index) const = 0;
  /// The class of example `index`.
  virtual int64_t label(int64_t index) const = 0;
  /// One line for logs, e.g. "fashion-mnist test (10000 images, 10 classes) at /usr/share/...".
  virtual std::string describe() const = 0;

  /// Writes image(index) into `out`, a slot of a preallocated batch of the same shape.
  /// Datasets override it to convert straight into the batch without a temporary tensor.
  virtual void write_image(int64_t index, at::Tensor out) const;
};

/// The whole file; a DataError naming it when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);

/// A stacked group of examples: images (N,C,H,W) float, labels (N) int64, and their indices.
struct Batch {
  at::Tensor images;
  at::Tensor labels;
  std::vector<int64_t> indices;
};

}  // namespace qb
