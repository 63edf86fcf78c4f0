#pragma once
// Which examples of the calibration split a seed calibrates on, as calibration.subset says.

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace qb {

/// The `n` calibration examples (indices into `calibration`) of `seed` for `subset`:
///   "random"      first_n (data/subsets.h): a seeded shuffle's first n;
///   "stratified"  stratified (data/subsets.h): as many per class as possible, seeded;
///   "sequential"  0, 1, ..., n-1: the split in file order, as a PyTorch DataLoader without
///                 shuffling gives it; the seed changes nothing.
/// A smaller n is always a prefix of a larger one. Throws std::invalid_argument for another
/// `subset` or unless 0 <= n <= calibration.size().
std::vector<int64_t> calibration_indices(const std::string& subset, const Dataset& calibration,
                                         int64_t n, uint64_t seed);

}  // namespace qb
