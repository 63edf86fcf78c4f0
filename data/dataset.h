#pragma once
// The interface every dataset implements (Fashion-MNIST, CIFAR, ImageNet), so
// batching, loaders and the sweep never depend on a file format.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
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

  /// FNV-1a 64 over what the examples are made of (source bytes or their listing, labels, class
  /// names), for provenance: the same files give the same value on any machine. Transform
  /// settings are not included; a run records them with its configuration.
  virtual uint64_t fingerprint() const = 0;
  /// FNV-1a 64 of example `index`'s source bytes (its record or file, not the transformed
  /// tensor), so the same image can be recognised in two splits or two data sets.
  virtual uint64_t content_hash(int64_t index) const = 0;

  /// Writes image(index) into `out`, a slot of a preallocated batch of the same shape.
  /// Datasets override it to convert straight into the batch without a temporary tensor.
  virtual void write_image(int64_t index, at::Tensor out) const;

  /// Files the reader left out of the examples because they do not decode (ImageNet's
  /// skip_corrupt), relative to the data's root; none by default.
  virtual std::vector<std::string> skipped_files() const { return {}; }
};

/// The seed of example `index`'s random transforms: the index itself, or mixed with a data set
/// seed when one is set, so that every (seed, index) pair gets its own stream.
uint64_t sample_seed(int64_t index, const std::optional<uint64_t>& seed);

/// The whole file; a DataError naming it when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);

/// A stacked group of examples: images (N,C,H,W) float, labels (N) int64, and their indices.
struct Batch {
  at::Tensor images;
  at::Tensor labels;
  std::vector<int64_t> indices;
};

}  // namespace qb
