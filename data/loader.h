#pragma once
// Batches of a Dataset assembled ahead of time by worker threads, yet handed
// out strictly in epoch order, so a parallel evaluation sees exactly the
// batches a sequential one would.
//
// LibTorch's thread settings are process-wide, so the workers leave them alone
// (no at::set_num_threads). Instead they build each batch from per-sample calls
// (Dataset::image for the first example, Dataset::write_image for the rest, a
// memcpy and at::empty), none of which needs ATen's intra-op pool for
// the datasets here; a dataset whose write_image runs large ATen ops may still
// use that pool from every worker at once.

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/dataset.h"

namespace qb {

/// How a Loader batches one epoch and how far ahead its workers may run.
struct LoaderOptions {
  /// Examples per batch.
  int64_t batch_size = 64;
  /// Worker threads assembling batches; at least 1.
  int workers = 2;
  /// Batches assembled (or being assembled) ahead of the consumer; at least 1.
  int64_t prefetch = 4;
  /// Visit the examples in epoch_order(size, true, seed, epoch) instead of 0..size-1.
  bool shuffle = false;
  /// Seed of the shuffled order; unused without shuffle.
  uint64_t seed = 0;
  /// Epoch of the shuffled order, so each epoch of a run gets its own permutation.
  int64_t epoch = 0;
  /// Omit a final batch smaller than batch_size.
  bool drop_last = false;
};

/// One epoch of batches, assembled by worker threads and delivered in order.
/// The dataset must outlive the Loader and allow concurrent image/write_image/label calls.
/// next() is for one consumer thread; a new epoch is a new Loader with options.epoch + 1.
class Loader {
 public:
  /// Starts the workers; throws std::invalid_argument for a non-positive batch size, worker
  /// count or prefetch.
  Loader(const Dataset& dataset, LoaderOptions options);
  /// Stops the workers, waiting only for the batches they are assembling, and joins them.
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// Number of batches in the epoch.
  int64_t size() const { return num_batches_; }
  /// Batch i on the i-th call (the same as Batches::batch(i)), or nullopt after the last.
  /// Rethrows the exception that assembling the batch raised, on this and every later call.
  std::optional<Batch> next();

 private:
  /// Where a worker leaves batch i for the consumer; slots_[i % prefetch] holds it.
  struct Slot {
    bool ready = false;
    Batch batch;
    std::exception_ptr error;
  };

  void work();
  Batch assemble(int64_t i) const;
  void stop();

  const Dataset& dataset_;
  std::vector<int64_t> order_;
  int64_t batch_size_;
  int64_t num_batches_;
  int64_t prefetch_;

  std::mutex mutex_;
  std::condition_variable batch_ready_;  // a worker filled a slot
  std::condition_variable slot_free_;    // the consumer took a batch, or the Loader is stopping
  // Guarded by mutex_: workers claim batch next_claim_ only while it is fewer than prefetch_
  // ahead of next_deliver_, which bounds memory and keeps the claimed batches' slots distinct.
  int64_t next_claim_ = 0;
  int64_t next_deliver_ = 0;
  bool stopping_ = false;
  std::vector<Slot> slots_;

  std::vector<std::thread> workers_;
};

}  // namespace qb
