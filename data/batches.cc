#include "data/batches.h"

#include <ATen/ops/empty.h>

#include <numeric>
#include <stdexcept>
#include <string>

namespace qb {

namespace {

/// splitmix64's output function: a bijective mix of 64 bits.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast and fully specified, so every
/// platform draws the same numbers, which std::shuffle's distributions do not promise.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}

  uint64_t next() { return mix64(state_ += 0x9E3779B97F4A7C15ULL); }

  /// Uniform in [0, bound): rejecting the lowest 2^64 mod bound values removes modulo bias.
  uint64_t below(uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    uint64_t value;
    do {
      value = next();
    } while (value < threshold);
    return value % bound;
  }

 private:
  uint64_t state_;
};

}  // namespace

std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  if (n < 0)
    throw std::invalid_argument("epoch_order: n must not be negative, got " + std::to_string(n));
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle) return order;

  // Mixing the seed first keeps nearby seeds' streams apart; adding the epoch gives each epoch its
  // own stream.
  SplitMix64 rng(mix64(seed) + static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher–Yates
    int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

Batch make_batch(const Dataset& dataset, const std::vector<int64_t>& indices) {
  if (indices.empty())
    throw std::invalid_argument("make_batch: no indices for " + dataset.describe());
  int64_t n = static_cast<int64_t>(indices.size());

  // The first image fixes the shape; the rest are written straight into one preallocated tensor.
  at::Tensor first = dataset.image(indices[0]);
  std::vector<int64_t> shape{n};
  shape.insert(shape.end(), first.sizes().begin(), first.sizes().end());
  Batch batch{at::empty(shape, first.options()), at::empty({n}, at::kLong), indices};
  batch.images[0].copy_(first);
  for (int64_t i = 1; i < n; ++i) dataset.write_image(indices[i], batch.images[i]);

  int64_t* labels = batch.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) labels[i] = dataset.label(indices[i]);
  return batch;
}

Batches::Batches(const Dataset& dataset, std::vector<int64_t> order, int64_t batch_size,
                 bool drop_last)
    : dataset_(dataset), order_(std::move(order)), batch_size_(batch_size), drop_last_(drop_last) {
  if (batch_size <= 0) {
    throw std::invalid_argument("Batches: batch_size must be positive, got " +
                                std::to_string(batch_size));
  }
}

int64_t Batches::size() const {
  int64_t n = static_cast<int64_t>(order_.size());
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

Batch Batches::batch(int64_t i) const {
  if (i < 0 || i >= size()) {
    throw std::out_of_range("Batches: batch " + std::to_string(i) + " is outside [0, " +
                            std::to_string(size()) + ")");
  }
  auto begin = order_.begin() + i * batch_size_;
  auto end = order_.begin() + std::min<int64_t>((i + 1) * batch_size_, order_.size());
  return make_batch(dataset_, std::vector<int64_t>(begin, end));
}

}  // namespace qb
