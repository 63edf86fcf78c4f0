#pragma once
// Seeded example subsets for calibration, and a dataset cached in memory so a
// sweep over many configurations decodes and transforms its images only once.
//
// Every subset depends only on its arguments, so two experiments asking for
// the same (n, seed) calibrate on exactly the same examples.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace qb {

/// The first n of epoch_order(dataset_size, true, seed, 0), so a smaller n gives a prefix of a
/// larger one; throws std::invalid_argument unless 0 <= n <= dataset_size.
std::vector<int64_t> first_n(int64_t dataset_size, int64_t n, uint64_t seed);

/// n indices of `labels` (each in [0, num_classes)) spread over the classes as evenly as possible.
/// Each class's members are shuffled by (seed, class) and the classes take turns in label order,
/// one example each, skipping a class once it runs out. So every class gets floor(n / classes) or
/// ceil(n / classes), except that a class with too few examples gives all it has and the others
/// make up the rest. The result lists the examples in that turn order, which keeps each batch
/// balanced and makes a smaller n a prefix of a larger one. Throws std::invalid_argument unless
/// 0 <= n <= labels.size() and every label is in range.
std::vector<int64_t> stratified(const std::vector<int64_t>& labels, int64_t num_classes,
                                int64_t n, uint64_t seed);
/// stratified() over the labels of every example of `dataset`.
std::vector<int64_t> stratified(const Dataset& dataset, int64_t n, uint64_t seed);

/// Throws std::invalid_argument naming `context` and the first index of `a` that is also in `b`,
/// e.g. to prove a calibration subset shares no example with the evaluation set.
void require_disjoint(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                      const std::string& context);

/// Throws std::invalid_argument naming `context` and the first example of `a_indices` (in `a`)
/// whose content hash equals that of an example of `b_indices` (in `b`): the same image in two
/// splits or data sets, which an index check cannot see.
void require_disjoint_content(const Dataset& a, const std::vector<int64_t>& a_indices,
                              const Dataset& b, const std::vector<int64_t>& b_indices,
                              const std::string& context);

/// Examples `indices` of `source` as a Dataset: example i is source example indices[i]. The source
/// must outlive it; std::out_of_range names the first index outside the source.
class Subset : public Dataset {
 public:
  Subset(const Dataset& source, std::vector<int64_t> indices);

  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  int64_t num_classes() const override { return source_.num_classes(); }
  at::Tensor image(int64_t index) const override { return source_.image(at(index)); }
  int64_t label(int64_t index) const override { return source_.label(at(index)); }
  /// The source's description, with the subset's size unless it is all of the source in order.
  std::string describe() const override;
  /// The source's fingerprint combined with the chosen indices.
  uint64_t fingerprint() const override;
  uint64_t content_hash(int64_t index) const override { return source_.content_hash(at(index)); }
  void write_image(int64_t index, at::Tensor out) const override {
    source_.write_image(at(index), out);
  }
  /// The source indices, in subset order.
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  int64_t at(int64_t index) const;

  const Dataset& source_;
  std::vector<int64_t> indices_;
  bool whole_;  // every example in source order: describes itself as the source
};

/// A copy of a dataset's transformed images in one contiguous (N,C,H,W) tensor, with its labels.
/// It does not refer to the source afterwards; it holds N images of floats, so it suits
/// evaluation sets and subsets, not ImageNet's training split.
class CachedDataset : public Dataset {
 public:
  /// Decodes every example of `source` once, with `workers` Loader threads, calling `on_progress`
  /// with the number of examples done after each batch; throws std::invalid_argument for an empty
  /// dataset and DataError when the images differ in shape. An example that fails to decode is
  /// not cached: reading it raises its error again, so only what uses it fails.
  explicit CachedDataset(const Dataset& source, int workers = 1,
                         const std::function<void(int64_t)>& on_progress = {});

  int64_t size() const override { return images_.size(0); }
  int64_t num_classes() const override { return num_classes_; }
  /// A copy, so callers cannot modify the cache through it.
  at::Tensor image(int64_t index) const override;
  int64_t label(int64_t index) const override;
  /// "cached " followed by the source's description.
  std::string describe() const override;
  /// The source's fingerprint and content hashes, taken when caching.
  uint64_t fingerprint() const override { return fingerprint_; }
  uint64_t content_hash(int64_t index) const override;
  /// Copies the cached image into `out` without a temporary tensor.
  void write_image(int64_t index, at::Tensor out) const override;
  /// The examples that failed to decode, with their errors.
  const std::map<int64_t, std::string>& errors() const { return errors_; }

 private:
  void check_index(int64_t index) const;

  at::Tensor images_;  // (N, C, H, W), contiguous
  at::Tensor labels_;  // (N) int64
  int64_t num_classes_;
  std::string description_;
  uint64_t fingerprint_;
  std::vector<uint64_t> content_hashes_;
  std::map<int64_t, std::string> errors_;
};

}  // namespace qb
