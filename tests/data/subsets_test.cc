// Seeded calibration subsets, the disjointness check, and CachedDataset.

#include "data/subsets.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/batches.h"
#include "tests/catch.h"

namespace {

/// Example i is a 1x2x2 image of values derived from i; classes are uneven: label i mod 4,
/// except that every example past 30 is in class 0.
class Uneven : public qb::Dataset {
 public:
  explicit Uneven(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return 4; }
  at::Tensor image(int64_t index) const override {
    return at::tensor({1.5f, -2.0f, 0.25f, 3.0f}).reshape({1, 2, 2}) / (index + 1.0f);
  }
  int64_t label(int64_t index) const override { return index > 30 ? 0 : index % 4; }
  std::string describe() const override { return "uneven"; }
  uint64_t fingerprint() const override { return static_cast<uint64_t>(n_); }
  // Examples 10 and 20 have the same content, as duplicates in a real data set would.
  uint64_t content_hash(int64_t index) const override { return index == 20 ? 10 : index; }

 private:
  int64_t n_;
};

std::vector<int64_t> class_counts(const qb::Dataset& dataset, const std::vector<int64_t>& subset) {
  std::vector<int64_t> counts(dataset.num_classes());
  for (int64_t index : subset) ++counts[dataset.label(index)];
  return counts;
}

bool all_distinct(const std::vector<int64_t>& v) {
  return std::set<int64_t>(v.begin(), v.end()).size() == v.size();
}

}  // namespace

TEST_CASE("first_n is a seeded, nested choice of distinct indices") {
  std::vector<int64_t> small = qb::first_n(1000, 32, 7);
  std::vector<int64_t> large = qb::first_n(1000, 256, 7);
  REQUIRE(small.size() == 32);
  REQUIRE(large.size() == 256);
  CHECK(small == qb::first_n(1000, 32, 7));
  CHECK(std::equal(small.begin(), small.end(), large.begin()));
  CHECK(small != qb::first_n(1000, 32, 8));
  CHECK(all_distinct(large));
  CHECK(std::all_of(large.begin(), large.end(), [](int64_t i) { return i >= 0 && i < 1000; }));
  CHECK(qb::first_n(10, 0, 7).empty());
  CHECK(qb::first_n(10, 10, 7).size() == 10);
  CHECK_THROWS_AS(qb::first_n(10, 11, 7), std::invalid_argument);
  CHECK_THROWS_AS(qb::first_n(10, -1, 7), std::invalid_argument);
}

TEST_CASE("stratified spreads a seeded subset evenly over the classes") {
  Uneven dataset(30);  // classes 0 and 1 have 8 examples, classes 2 and 3 have 7
  for (int64_t n : {0, 1, 4, 10, 17, 30}) {
    INFO("n = " << n);
    std::vector<int64_t> subset = qb::stratified(dataset, n, 3);
    REQUIRE(static_cast<int64_t>(subset.size()) == n);
    CHECK(all_distinct(subset));
    CHECK(subset == qb::stratified(dataset, n, 3));
    std::vector<int64_t> counts = class_counts(dataset, subset);
    auto [low, high] = std::minmax_element(counts.begin(), counts.end());
    CHECK(*high - *low <= 1);
  }
  CHECK(qb::stratified(dataset, 12, 3) != qb::stratified(dataset, 12, 4));
  std::vector<int64_t> small = qb::stratified(dataset, 6, 3);
  std::vector<int64_t> large = qb::stratified(dataset, 21, 3);
  CHECK(std::equal(small.begin(), small.end(), large.begin()));
  CHECK_THROWS_AS(qb::stratified(dataset, 31, 3), std::invalid_argument);
}

TEST_CASE("stratified lets the other classes make up for a small one") {
  // Class 3 has only 2 members; the remaining 8 of 14 go evenly to the other three classes.
  std::vector<int64_t> labels{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3};
  std::vector<int64_t> subset = qb::stratified(labels, 4, 14, 9);
  std::vector<int64_t> counts(4);
  for (int64_t index : subset) ++counts[labels[index]];
  CHECK(counts == std::vector<int64_t>{4, 4, 4, 2});

  Uneven dataset(60);  // class 0 has 37 examples, the others 7 or 8
  CHECK(class_counts(dataset, qb::stratified(dataset, 40, 1)) == std::vector<int64_t>{17, 8, 8, 7});

  CHECK_THROWS_AS(qb::stratified({0, 4}, 4, 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(qb::stratified({0, 1}, 0, 1, 0), std::invalid_argument);
}

TEST_CASE("require_disjoint names an index shared by two sets") {
  CHECK_NOTHROW(qb::require_disjoint({1, 2, 3}, {4, 5}, "calibration vs test"));
  CHECK_NOTHROW(qb::require_disjoint({}, {4, 5}, "calibration vs test"));
  CHECK_THROWS_WITH(qb::require_disjoint({1, 5, 3}, {4, 5}, "calibration vs test"),
                    "calibration vs test: example 5 is in both sets");
  CHECK_THROWS_AS(qb::require_disjoint(qb::first_n(100, 50, 1), qb::first_n(100, 60, 2), "x"),
                  std::invalid_argument);
}

TEST_CASE("require_disjoint_content finds the same image under another index") {
  Uneven dataset(30);
  CHECK_NOTHROW(qb::require_disjoint_content(dataset, {1, 2, 3}, dataset, {4, 5}, "calibration"));
  CHECK_THROWS_WITH(
      qb::require_disjoint_content(dataset, {1, 20, 3}, dataset, {4, 10}, "calibration vs test"),
      "calibration vs test: example 20 of uneven has the same content as example 10 of uneven");
}

TEST_CASE("CachedDataset reproduces its source bit for bit") {
  Uneven source(37);
  std::vector<int64_t> progress;
  qb::CachedDataset cached(source, 2, [&](int64_t done) { progress.push_back(done); });
  CHECK(progress == std::vector<int64_t>{37});
  CHECK(cached.fingerprint() == 37);
  CHECK(cached.content_hash(20) == 10);
  REQUIRE(cached.size() == 37);
  CHECK(cached.num_classes() == 4);
  CHECK(cached.describe() == "cached uneven");
  for (int64_t i = 0; i < source.size(); ++i) {
    at::Tensor want = source.image(i);
    at::Tensor got = cached.image(i);
    REQUIRE(got.sizes() == want.sizes());
    CHECK(std::memcmp(got.data_ptr(), want.data_ptr(), want.nbytes()) == 0);
    CHECK(cached.label(i) == source.label(i));
  }
  qb::Batch want = qb::make_batch(source, qb::epoch_order(37, true, 5, 0));
  qb::Batch got = qb::make_batch(cached, qb::epoch_order(37, true, 5, 0));
  CHECK(std::memcmp(got.images.data_ptr(), want.images.data_ptr(), want.images.nbytes()) == 0);
  CHECK(got.labels.equal(want.labels));

  // image() hands out a copy, so writing to it leaves the cache intact.
  cached.image(0).fill_(0.0f);
  CHECK(cached.image(0).equal(source.image(0)));
  CHECK_THROWS_AS(cached.image(37), std::out_of_range);
  CHECK_THROWS_AS(cached.write_image(0, at::empty({1, 2, 3})), qb::DataError);
  CHECK_THROWS_AS(qb::CachedDataset(Uneven(0)), std::invalid_argument);
}

TEST_CASE("Subset presents chosen examples of its source") {
  Uneven source(10);
  qb::Subset subset(source, {7, 2});
  REQUIRE(subset.size() == 2);
  CHECK(subset.num_classes() == 4);
  CHECK(subset.label(0) == source.label(7));
  CHECK(subset.image(1).equal(source.image(2)));
  CHECK(subset.content_hash(0) == 7);
  CHECK(subset.describe() == "2 chosen examples of uneven");
  CHECK(qb::Subset(source, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}).describe() == "uneven");
  CHECK(qb::Subset(source, {1, 0, 2, 3, 4, 5, 6, 7, 8, 9}).describe() ==
        "10 chosen examples of uneven");
  CHECK(subset.fingerprint() != qb::Subset(source, {2, 7}).fingerprint());
  CHECK(subset.fingerprint() == qb::Subset(source, {7, 2}).fingerprint());
  CHECK_THROWS_AS(qb::Subset(source, {10}), std::out_of_range);
  CHECK_THROWS_AS(subset.image(2), std::out_of_range);
}
