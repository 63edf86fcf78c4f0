#pragma once
// Epoch orders and batch assembly over any Dataset. Shuffling is reproducible
// bit for bit: the permutation depends only on (n, seed, epoch).

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace qb {

/// The visiting order of n examples in one epoch: 0..n-1, or a permutation fixed by (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch);

/// Stacks the examples at `indices` (at least one) into images (N,C,H,W) and int64 labels (N).
Batch make_batch(const Dataset& dataset, const std::vector<int64_t>& indices);

/// One epoch of batches over `order`, for range-for or random access; the dataset must outlive it.
class Batches {
 public:
  /// Batch i holds order[i * batch_size ...]; drop_last omits a final batch smaller than
  /// batch_size.
  Batches(const Dataset& dataset, std::vector<int64_t> order, int64_t batch_size, bool drop_last);

  /// Number of batches.
  int64_t size() const;
  /// Assembles batch i, 0 <= i < size(); batches are independent, so workers may build them in any
  /// order.
  Batch batch(int64_t i) const;

  /// Input iterator whose dereference assembles the batch.
  class Iterator {
   public:
    Iterator(const Batches* batches, int64_t i) : batches_(batches), i_(i) {}
    Batch operator*() const { return batches_->batch(i_); }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const Iterator& other) const { return i_ == other.i_; }
    bool operator!=(const Iterator& other) const { return i_ != other.i_; }

   private:
    const Batches* batches_;
    int64_t i_;
  };

  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, size()); }

 private:
  const Dataset& dataset_;
  std::vector<int64_t> order_;
  int64_t batch_size_;
  bool drop_last_;
};

}  // namespace qb
