// Loader: the same batches as Batches in the same order whatever the worker count and timing,
// early shutdown, and a worker's exception reaching the consumer.

#include "data/loader.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "data/batches.h"
#include "tests/catch.h"

namespace {

/// Example i is a 2x3x4 image of distinct values derived from i, labelled i mod 5. Images of
/// small indices take longest, so later batches tend to finish first with several workers.
class Slow : public qb::Dataset {
 public:
  explicit Slow(int64_t n, std::chrono::microseconds delay = std::chrono::microseconds(0))
      : n_(n), delay_(delay) {}
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return 5; }
  at::Tensor image(int64_t index) const override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_ * (n_ - index) / n_);
    return at::arange(24, at::kFloat).reshape({2, 3, 4}) * 0.1f + static_cast<float>(index);
  }
  int64_t label(int64_t index) const override { return index % 5; }
  std::string describe() const override { return "slow"; }
  uint64_t fingerprint() const override { return static_cast<uint64_t>(n_); }
  uint64_t content_hash(int64_t index) const override { return static_cast<uint64_t>(index); }

 private:
  int64_t n_;
  std::chrono::microseconds delay_;
};

/// Like Slow, but image() of one index fails as a corrupt file would.
class Corrupt : public Slow {
 public:
  Corrupt(int64_t n, int64_t bad) : Slow(n), bad_(bad) {}
  at::Tensor image(int64_t index) const override {
    if (index == bad_) throw qb::DataError("slow: image " + std::to_string(index) + " is corrupt");
    return Slow::image(index);
  }

 private:
  int64_t bad_;
};

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && a.is_contiguous() &&
         b.is_contiguous() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("Loader delivers exactly the batches of Batches, in order") {
  Slow dataset(50, std::chrono::microseconds(200));
  for (int workers : {1, 2, 4}) {
    for (bool shuffle : {false, true}) {
      for (bool drop_last : {false, true}) {
        INFO("workers " << workers << ", shuffle " << shuffle << ", drop_last " << drop_last);
        qb::LoaderOptions options;
        options.batch_size = 8;
        options.workers = workers;
        options.prefetch = 3;
        options.shuffle = shuffle;
        options.seed = 11;
        options.epoch = 2;
        options.drop_last = drop_last;
        qb::Loader loader(dataset, options);
        qb::Batches expected(dataset, qb::epoch_order(50, shuffle, 11, 2), 8, drop_last);
        REQUIRE(loader.size() == expected.size());

        for (int64_t i = 0; i < expected.size(); ++i) {
          std::optional<qb::Batch> batch = loader.next();
          REQUIRE(batch);
          qb::Batch want = expected.batch(i);
          CHECK(batch->indices == want.indices);
          CHECK(same_bits(batch->images, want.images));
          CHECK(same_bits(batch->labels, want.labels));
        }
        CHECK_FALSE(loader.next());
        CHECK_FALSE(loader.next());
      }
    }
  }
}

TEST_CASE("Loader with more workers than prefetch slots and an empty dataset") {
  Slow dataset(7);
  qb::LoaderOptions options;
  options.batch_size = 2;
  options.workers = 4;
  options.prefetch = 1;
  qb::Loader loader(dataset, options);
  int64_t count = 0;
  while (std::optional<qb::Batch> batch = loader.next()) count += batch->images.size(0);
  CHECK(count == 7);

  Slow empty(0);
  qb::Loader nothing(empty, options);
  CHECK(nothing.size() == 0);
  CHECK_FALSE(nothing.next());
}

TEST_CASE("Loader rejects non-positive options") {
  Slow dataset(4);
  qb::LoaderOptions options;
  options.batch_size = 0;
  CHECK_THROWS_AS(qb::Loader(dataset, options), std::invalid_argument);
  options = {};
  options.workers = 0;
  CHECK_THROWS_AS(qb::Loader(dataset, options), std::invalid_argument);
  options = {};
  options.prefetch = 0;
  CHECK_THROWS_AS(qb::Loader(dataset, options), std::invalid_argument);
}

TEST_CASE("Destroying a Loader after one batch of many returns promptly") {
  // 2000 batches of 10 ms each would take 10 s on 2 workers; only the few in flight may run.
  Slow dataset(16000, std::chrono::microseconds(2500));
  auto start = std::chrono::steady_clock::now();
  {
    qb::LoaderOptions options;
    options.batch_size = 8;
    options.workers = 2;
    options.prefetch = 2;
    qb::Loader loader(dataset, options);
    REQUIRE(loader.next());
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("A worker's exception surfaces from next() at the batch that failed") {
  Corrupt dataset(40, 13);  // batch 3 of batch size 4 holds examples 12..15
  for (int workers : {1, 4}) {
    INFO("workers " << workers);
    qb::LoaderOptions options;
    options.batch_size = 4;
    options.workers = workers;
    options.prefetch = 4;
    qb::Loader loader(dataset, options);
    for (int i = 0; i < 3; ++i) {
      std::optional<qb::Batch> batch = loader.next();
      REQUIRE(batch);
      CHECK(batch->indices.front() == 4 * i);
    }
    CHECK_THROWS_AS(loader.next(), qb::DataError);
    CHECK_THROWS_WITH(loader.next(), "slow: image 13 is corrupt");  // and again on later calls
  }
}
