#pragma once
// The data a sweep measures on, chosen and decoded once before its first point: the evaluation
// examples (a seeded subset or the first N, decoded into memory when asked), and per
// calibration seed its subset, checked not to overlap the evaluation examples.

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/subsets.h"
#include "experiments/experiment.h"

namespace qb {

/// std::invalid_argument naming calibration.samples when `calibration` has fewer than
/// `most_samples` examples.
void check_calibration_size(const Dataset& calibration, int64_t most_samples);

class SweepData {
 public:
  /// Chooses and decodes; `most_samples` is the largest calibration size any point uses, and
  /// the evaluation set is decoded into memory when `evaluates_accuracy` and evaluation.cache.
  /// std::invalid_argument naming the key for too few calibration examples, or for
  /// calibration examples that are also evaluation examples without calibration.allow_overlap.
  SweepData(const Experiment& experiment, const Dataset& evaluation, const Dataset& calibration,
            int64_t most_samples, bool evaluates_accuracy);

  /// The evaluation examples, decoded when evaluation.cache is set.
  const Dataset& evaluation() const;
  /// The evaluation subset's description and fingerprint, and the whole split's.
  std::string describe_evaluation() const { return evaluation_view_->describe(); }
  uint64_t evaluation_fingerprint() const { return evaluation_view_->fingerprint(); }
  uint64_t data_fingerprint() const { return evaluation_source_.fingerprint(); }
  bool evaluation_cached() const { return cached_evaluation_ != nullptr; }
  const Dataset& calibration_source() const { return calibration_source_; }

  /// The calibration batches of `seed`: the first `samples` examples of its subset, in batches
  /// of calibration.batch_size.
  std::vector<at::Tensor> calibration_batches(uint64_t seed, int64_t samples) const;
  /// The tuning subset of [tuning] (experiments/tuning.h): `samples` examples of the calibration
  /// split drawn with `seed`, decoded. std::invalid_argument naming tuning.samples when the split
  /// is too small or any of them is also an evaluation example: tuning on the examples a result
  /// is reported on would overstate it.
  std::unique_ptr<CachedDataset> tuning_set(int64_t samples, uint64_t seed);

  /// A batch of `size` evaluation images (repeating them if the set is smaller).
  at::Tensor evaluation_batch(int64_t size) const;
  /// The subset fingerprint of `seed` (16 hex digits), and how many of its examples are also
  /// evaluation examples.
  const std::string& calibration_fingerprint(uint64_t seed) const { return calibration_fingerprints_.at(seed); }
  int64_t overlap(uint64_t seed) const { return overlaps_.at(seed); }

 private:
  int64_t count_overlap(const std::vector<int64_t>& calibration, const std::vector<int64_t>& evaluation,
                        bool same_split);

  const Experiment& e_;
  const Dataset& evaluation_source_;
  const Dataset& calibration_source_;
  std::unique_ptr<Subset> evaluation_view_;
  std::unique_ptr<CachedDataset> cached_evaluation_;
  std::set<uint64_t> evaluation_hashes_;
  std::map<uint64_t, std::unique_ptr<CachedDataset>> calibration_sets_;
  std::map<uint64_t, std::string> calibration_fingerprints_;
  std::map<uint64_t, int64_t> overlaps_;
};

}  // namespace qb
