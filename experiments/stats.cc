#include "experiments/stats.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace qb {

double t_quantile_975(int dof) {
  if (dof < 1) throw std::invalid_argument("t_quantile_975: dof must be >= 1");
  static constexpr std::array<double, 30> kTable = {
      12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
      2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
      2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof <= 30) return kTable[static_cast<size_t>(dof - 1)];
  // Beyond the table the quantile approaches 1.96 as 1/dof; these are the usual table rows.
  if (dof <= 40) return 2.042 + (2.021 - 2.042) * (dof - 30) / 10.0;
  if (dof <= 60) return 2.021 + (2.000 - 2.021) * (dof - 40) / 20.0;
  if (dof <= 120) return 2.000 + (1.980 - 2.000) * (dof - 60) / 60.0;
  return 1.960;
}

namespace {

/// P(U <= u) under the null hypothesis for samples of m and n distinct values: the number of
/// arrangements with U = k follows f(m, n, k) = f(m - 1, n, k - n) + f(m, n - 1, k).
double exact_cdf(int m, int n, int u) {
  // counts[j][k]: arrangements of (i, j) values with U = k, for the current i.
  std::vector<std::vector<double>> counts(n + 1, std::vector<double>(m * n + 1, 0.0));
  for (int j = 0; j <= n; ++j) counts[j][0] = 1.0;
  for (int i = 1; i <= m; ++i) {
    std::vector<std::vector<double>> next(n + 1, std::vector<double>(m * n + 1, 0.0));
    next[0][0] = 1.0;
    for (int j = 1; j <= n; ++j) {
      for (int k = 0; k <= i * j; ++k) {
        next[j][k] = next[j - 1][k] + (k >= j ? counts[j][k - j] : 0.0);
      }
    }
    counts = std::move(next);
  }
  double total = 0.0;
  double below = 0.0;
  for (int k = 0; k <= m * n; ++k) {
    total += counts[n][k];
    if (k <= u) below += counts[n][k];
  }
  return below / total;
}

}  // namespace

MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) throw std::invalid_argument("mann_whitney_u: empty sample");
  const size_t m = a.size();
  const size_t n = b.size();
  // Midranks of the pooled sample.
  std::vector<std::pair<double, size_t>> pooled;
  for (size_t i = 0; i < m; ++i) pooled.emplace_back(a[i], i);
  for (size_t i = 0; i < n; ++i) pooled.emplace_back(b[i], m + i);
  std::sort(pooled.begin(), pooled.end());
  std::vector<double> rank(m + n);
  double tie_term = 0.0;
  for (size_t start = 0; start < pooled.size();) {
    size_t end = start;
    while (end < pooled.size() && pooled[end].first == pooled[start].first) ++end;
    const double midrank = (static_cast<double>(start + end) + 1.0) / 2.0;
    for (size_t k = start; k < end; ++k) rank[pooled[k].second] = midrank;
    const double t = static_cast<double>(end - start);
    tie_term += t * t * t - t;
    start = end;
  }
  double rank_sum_a = 0.0;
  for (size_t i = 0; i < m; ++i) rank_sum_a += rank[i];
  MannWhitney result;
  const double dm = static_cast<double>(m);
  const double dn = static_cast<double>(n);
  result.u = rank_sum_a - dm * (dm + 1.0) / 2.0;
  const double u_big = std::max(result.u, dm * dn - result.u);
  if (m < 8 && n < 8 && tie_term == 0.0) {
    // P(U >= u_big) = P(U <= m n - u_big), by symmetry.
    const double tail = exact_cdf(static_cast<int>(m), static_cast<int>(n),
                                  static_cast<int>(std::lround(dm * dn - u_big)));
    result.p_value = std::min(1.0, 2.0 * tail);
  } else {
    const double total = dm + dn;
    const double sigma =
        std::sqrt(dm * dn / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0))));
    if (sigma == 0.0) return result;  // every value equal: no evidence of a difference
    const double z = (u_big - dm * dn / 2.0 - 0.5) / sigma;
    result.p_value = std::min(1.0, std::erfc(z / std::sqrt(2.0)));
  }
  return result;
}

Summary summarize(const std::vector<double>& values) {
  if (values.empty()) throw std::invalid_argument("summarize: no values");
  Summary s;
  s.n = static_cast<int>(values.size());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / s.n;
  if (s.n > 1) {
    double squares = 0.0;
    for (double v : values) squares += (v - s.mean) * (v - s.mean);
    s.stddev = std::sqrt(squares / (s.n - 1));
  }
  double half = s.n > 1 ? t_quantile_975(s.n - 1) * s.stddev / std::sqrt(s.n) : 0.0;
  s.ci95_low = s.mean - half;
  s.ci95_high = s.mean + half;
  return s;
}

}  // namespace qb
