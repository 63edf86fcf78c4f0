#include "experiments/calibration_subset.h"

#include <numeric>
#include <stdexcept>

#include "data/subsets.h"

namespace qb {

std::vector<int64_t> calibration_indices(const std::string& subset, const Dataset& calibration,
                                         int64_t n, uint64_t seed) {
  if (subset == "random") return first_n(calibration.size(), n, seed);
  if (subset == "stratified") return stratified(calibration, n, seed);
  if (subset != "sequential") {
    throw std::invalid_argument("calibration subset '" + subset +
                                "' is not random, stratified or sequential");
  }
  if (n < 0 || n > calibration.size()) {
    throw std::invalid_argument("sequential: n must be in [0, " +
                                std::to_string(calibration.size()) + "], got " +
                                std::to_string(n));
  }
  std::vector<int64_t> indices(static_cast<size_t>(n));
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

}  // namespace qb
