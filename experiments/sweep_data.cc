#include "experiments/sweep_data.h"

#include <cstdio>
#include <stdexcept>

#include "data/batches.h"
#include "data/hash.h"
#include "eval/progress.h"
#include "experiments/calibration_subset.h"

namespace qb {

namespace {

/// Says which examples did not decode: the points that read them fail, the others go on.
void warn_undecodable(const CachedDataset& set, const std::string& role) {
  if (set.errors().empty()) return;
  std::fprintf(stderr, "WARNING: %zu %s example(s) could not be decoded; the points that use them fail:\n",
               set.errors().size(), role.c_str());
  for (const auto& [index, error] : set.errors()) std::fprintf(stderr, "  %s\n", error.c_str());
}

}  // namespace

void check_calibration_size(const Dataset& calibration, int64_t most_samples) {
  if (most_samples > calibration.size()) {
    throw std::invalid_argument("calibration.samples: " + std::to_string(most_samples) + " samples asked for, but " +
                                calibration.describe() + " has only " + std::to_string(calibration.size()));
  }
}

SweepData::SweepData(const Experiment& e, const Dataset& evaluation, const Dataset& calibration,
                     int64_t most_samples, bool evaluates_accuracy)
    : e_(e), evaluation_source_(evaluation), calibration_source_(calibration) {
  check_calibration_size(calibration_source_, most_samples);
  std::vector<int64_t> eval_indices;
  const int64_t n = e_.evaluation.limit > 0 ? std::min(e_.evaluation.limit, evaluation_source_.size())
                                            : evaluation_source_.size();
  if (e_.evaluation.subset_seed) {
    eval_indices = first_n(evaluation_source_.size(), n, *e_.evaluation.subset_seed);
  } else {
    for (int64_t i = 0; i < n; ++i) eval_indices.push_back(i);
  }
  evaluation_view_ = std::make_unique<Subset>(evaluation_source_, eval_indices);
  if (evaluates_accuracy && e_.evaluation.cache) {
    Progress progress("decoding evaluation set", evaluation_view_->size());
    cached_evaluation_ = std::make_unique<CachedDataset>(
        *evaluation_view_, e_.evaluation.workers, [&](int64_t done) { progress.update(done); });
    progress.finish();
    warn_undecodable(*cached_evaluation_, "evaluation");
  }

  if (most_samples == 0) return;
  const bool same_split = &calibration_source_ == &evaluation_source_;
  for (uint64_t seed : e_.calibration.seeds) {
    std::vector<int64_t> indices =
        calibration_indices(e_.calibration.subset, calibration_source_, most_samples, seed);
    const int64_t overlap = count_overlap(indices, eval_indices, same_split);
    if (overlap > 0 && !e_.calibration.allow_overlap) {
      throw std::invalid_argument(
          "calibration seed " + std::to_string(seed) + ": " + std::to_string(overlap) +
          " calibration examples are also evaluation examples (" +
          (same_split ? "same split" : "same content") +
          "); calibrate on another split (calibration.split) or set "
          "calibration.allow_overlap = true to accept it, which the records then show");
    }
    overlaps_[seed] = overlap;
    Progress progress("decoding calibration set (seed " + std::to_string(seed) + ")", most_samples);
    Subset subset(calibration_source_, indices);
    calibration_sets_[seed] = std::make_unique<CachedDataset>(
        subset, e_.evaluation.workers, [&](int64_t done) { progress.update(done); });
    calibration_fingerprints_[seed] = hex64(subset.fingerprint());
    progress.finish();
    warn_undecodable(*calibration_sets_[seed], "calibration (seed " + std::to_string(seed) + ")");
  }
}

/// Calibration examples that are also evaluation examples: by index within one split, by
/// content across splits.
int64_t SweepData::count_overlap(const std::vector<int64_t>& calibration,
                                 const std::vector<int64_t>& evaluation, bool same_split) {
  if (same_split) {
    std::set<int64_t> in_eval(evaluation.begin(), evaluation.end());
    int64_t overlap = 0;
    for (int64_t index : calibration) overlap += in_eval.count(index);
    return overlap;
  }
  if (evaluation_hashes_.empty()) {
    for (int64_t index : evaluation) evaluation_hashes_.insert(evaluation_source_.content_hash(index));
  }
  int64_t overlap = 0;
  for (int64_t index : calibration) {
    overlap += evaluation_hashes_.count(calibration_source_.content_hash(index));
  }
  return overlap;
}

std::unique_ptr<CachedDataset> SweepData::tuning_set(int64_t samples, uint64_t seed) {
  if (samples > calibration_source_.size()) {
    throw std::invalid_argument("tuning.samples: " + std::to_string(samples) + " examples asked for, but " +
                                calibration_source_.describe() + " has only " +
                                std::to_string(calibration_source_.size()));
  }
  const std::vector<int64_t> indices = first_n(calibration_source_.size(), samples, seed);
  const int64_t overlap =
      count_overlap(indices, evaluation_view_->indices(), &calibration_source_ == &evaluation_source_);
  if (overlap > 0) {
    throw std::invalid_argument("tuning.samples: " + std::to_string(overlap) +
                                " examples of the tuning subset are also evaluation examples; tune on "
                                "another split (calibration.split) than the one results are reported on");
  }
  Progress progress("decoding tuning set (seed " + std::to_string(seed) + ")", samples);
  auto set = std::make_unique<CachedDataset>(Subset(calibration_source_, indices), e_.evaluation.workers,
                                             [&](int64_t done) { progress.update(done); });
  progress.finish();
  return set;
}

const Dataset& SweepData::evaluation() const {
  return cached_evaluation_ ? static_cast<const Dataset&>(*cached_evaluation_) : *evaluation_view_;
}

std::vector<at::Tensor> SweepData::calibration_batches(uint64_t seed, int64_t samples) const {
  const CachedDataset& set = *calibration_sets_.at(seed);
  std::vector<at::Tensor> batches;
  for (int64_t start = 0; start < samples; start += e_.calibration.batch_size) {
    std::vector<int64_t> indices;
    for (int64_t i = start; i < std::min(samples, start + e_.calibration.batch_size); ++i) {
      indices.push_back(i);
    }
    batches.push_back(make_batch(set, indices).images);
  }
  return batches;
}

at::Tensor SweepData::evaluation_batch(int64_t size) const {
  const Dataset& data = evaluation();
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < size; ++i) indices.push_back(i % data.size());
  return make_batch(data, indices).images;
}

}  // namespace qb
