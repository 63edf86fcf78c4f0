// Which calibration examples each calibration.subset choice takes.

#include "experiments/calibration_subset.h"

#include <numeric>
#include <stdexcept>
#include <vector>

#include "data/subsets.h"
#include "data/synthetic.h"
#include "tests/catch.h"

namespace qb {
namespace {

Synthetic hundred_images() {
  SyntheticOptions options;
  options.shape = {1, 2, 2};
  options.size = 100;
  options.num_classes = 10;
  return Synthetic(options);
}

TEST_CASE("sequential calibration is the first examples in file order, whatever the seed") {
  Synthetic data = hundred_images();
  std::vector<int64_t> first(32);
  std::iota(first.begin(), first.end(), 0);
  CHECK(calibration_indices("sequential", data, 32, 0) == first);
  CHECK(calibration_indices("sequential", data, 32, 7) == first);
  CHECK(calibration_indices("sequential", data, 0, 0).empty());
  CHECK(calibration_indices("sequential", data, 100, 0).back() == 99);
  CHECK_THROWS_WITH(calibration_indices("sequential", data, 101, 0),
                    "sequential: n must be in [0, 100], got 101");
}

TEST_CASE("random and stratified calibration are data/subsets.h's seeded subsets") {
  Synthetic data = hundred_images();
  CHECK(calibration_indices("random", data, 32, 3) == first_n(100, 32, 3));
  CHECK(calibration_indices("stratified", data, 32, 3) == stratified(data, 32, 3));
  CHECK(calibration_indices("random", data, 32, 3) != calibration_indices("random", data, 32, 4));
  CHECK_THROWS_AS(calibration_indices("best", data, 32, 0), std::invalid_argument);
}

}  // namespace
}  // namespace qb
