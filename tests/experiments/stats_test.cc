// Mean, standard deviation and 95% interval over calibration seeds, against hand computation.

#include "experiments/stats.h"

#include <stdexcept>

#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("summarize gives the mean, sample deviation and Student's t interval") {
  // 90, 92, 94: mean 92, sample variance (4 + 0 + 4) / 2 = 4, deviation 2,
  // half-width t(0.975, 2) * 2 / sqrt(3) = 4.303 * 1.1547005 = 4.9686764.
  Summary s = summarize({90.0, 92.0, 94.0});
  CHECK(s.n == 3);
  CHECK(s.mean == 92.0);
  CHECK(s.stddev == 2.0);
  CHECK(s.ci95_low == Approx(92.0 - 4.9686764).epsilon(1e-9));
  CHECK(s.ci95_high == Approx(92.0 + 4.9686764).epsilon(1e-9));

  Summary one = summarize({91.5});
  CHECK(one.stddev == 0.0);
  CHECK(one.ci95_low == 91.5);
  CHECK(one.ci95_high == 91.5);
  CHECK_THROWS_AS(summarize({}), std::invalid_argument);
}

TEST_CASE("Mann-Whitney U gives scipy.stats.mannwhitneyu's two-sided p-values") {
  // Expected values printed by scipy 1.10.1 (python3-scipy): mannwhitneyu(a, b).pvalue.
  CHECK(mann_whitney_u({1.0, 1.1, 1.2, 1.3, 1.4}, {1.5, 1.6, 1.7, 1.8, 1.9}).p_value ==
        Approx(0.007936507936507936).epsilon(1e-12));  // exact: 2 / C(10, 5)
  CHECK(mann_whitney_u({1.0, 1.1, 1.2, 1.3, 1.4}, {1.05, 1.6, 1.15, 1.8, 1.9}).p_value ==
        Approx(0.30952380952380953).epsilon(1e-12));
  CHECK(mann_whitney_u({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
            .p_value == Approx(0.18455093943501133).epsilon(1e-9));  // ties: normal approximation
  CHECK(mann_whitney_u({1, 2, 2, 3, 3}, {2, 3, 4, 4, 5}).p_value ==
        Approx(0.08567343955231686).epsilon(1e-9));
  CHECK(mann_whitney_u({1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8},
                       {1.05, 1.6, 1.15, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3})
            .p_value == Approx(0.05181647136821905).epsilon(1e-9));  // 9 values: normal
  CHECK(mann_whitney_u({1.0, 1.1, 1.2, 1.3, 1.4}, {1.5, 1.6, 1.7, 1.8, 1.9}).u == 0.0);
  CHECK(mann_whitney_u({2.0, 2.0}, {2.0, 2.0}).p_value == 1.0);
  CHECK_THROWS_AS(mann_whitney_u({}, {1.0}), std::invalid_argument);
}

TEST_CASE("t quantiles follow the table and approach 1.96") {
  CHECK(t_quantile_975(1) == 12.706);
  CHECK(t_quantile_975(4) == 2.776);
  CHECK(t_quantile_975(30) == 2.042);
  CHECK(t_quantile_975(40) == Approx(2.021));
  CHECK(t_quantile_975(1000) == 1.960);
  CHECK_THROWS_AS(t_quantile_975(0), std::invalid_argument);
}

}  // namespace
}  // namespace qb
