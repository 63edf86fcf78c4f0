#pragma once
// Statistics of repeated measurements: the mean, sample standard deviation and 95% confidence
// interval of the mean (calibration seeds), and the Mann-Whitney U test that decides whether two
// sets of latency repetitions differ (nightly comparisons).

#include <vector>

namespace qb {

struct Summary {
  int n = 0;
  double mean = 0.0;
  double stddev = 0.0;  // sample standard deviation (n - 1); 0 for one value
  double ci95_low = 0.0;
  double ci95_high = 0.0;  // mean -/+ t(0.975, n - 1) * stddev / sqrt(n); the mean for n = 1
};

/// The summary of `values`; std::invalid_argument when empty.
Summary summarize(const std::vector<double>& values);

/// The Mann-Whitney U test of two samples (two-sided), as scipy.stats.mannwhitneyu's default
/// that Google Benchmark's compare.py calls: the exact distribution of U when both samples have
/// fewer than 8 values and no ties, else the normal approximation with tie and continuity
/// corrections.
struct MannWhitney {
  double u = 0.0;        // U of the first sample
  double p_value = 1.0;  // two-sided
};
/// std::invalid_argument when either sample is empty.
MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

/// Student's t quantile t(0.975, dof) for dof >= 1 (tabulated, exact to three decimals).
double t_quantile_975(int dof);

}  // namespace qb
