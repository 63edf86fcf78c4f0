#include "data/loader.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "data/batches.h"

namespace qb {

namespace {

void require_positive(const char* what, int64_t value) {
  if (value <= 0) {
    throw std::invalid_argument(std::string("Loader: ") + what + " must be positive, got " +
                                std::to_string(value));
  }
}

}  // namespace

Loader::Loader(const Dataset& dataset, LoaderOptions options)
    : dataset_(dataset),
      order_(epoch_order(dataset.size(), options.shuffle, options.seed, options.epoch)),
      batch_size_(options.batch_size),
      prefetch_(options.prefetch) {
  require_positive("batch_size", options.batch_size);
  require_positive("workers", options.workers);
  require_positive("prefetch", options.prefetch);
  // The same count as Batches::size(), which the tests hold the Loader to.
  int64_t n = static_cast<int64_t>(order_.size());
  num_batches_ = options.drop_last ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
  slots_.resize(prefetch_);

  // Without this, a failed thread start would leave the started ones joinable and terminate.
  try {
    for (int i = 0; i < options.workers; ++i) workers_.emplace_back(&Loader::work, this);
  } catch (...) {
    stop();
    throw;
  }
}

Loader::~Loader() { stop(); }

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_deliver_ == num_batches_) return std::nullopt;
  Slot& slot = slots_[next_deliver_ % prefetch_];
  batch_ready_.wait(lock, [&] { return slot.ready; });
  // A failed batch stays in its slot, so every later call fails the same way.
  if (slot.error) std::rethrow_exception(slot.error);

  Batch batch = std::move(slot.batch);
  slot = Slot{};
  ++next_deliver_;
  lock.unlock();
  slot_free_.notify_all();
  return batch;
}

void Loader::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    slot_free_.wait(lock, [&] {
      return stopping_ || next_claim_ == num_batches_ || next_claim_ < next_deliver_ + prefetch_;
    });
    if (stopping_ || next_claim_ == num_batches_) return;
    int64_t i = next_claim_++;
    lock.unlock();

    Slot result;
    try {
      result.batch = assemble(i);
    } catch (...) {
      result.error = std::current_exception();
    }
    result.ready = true;

    lock.lock();
    slots_[i % prefetch_] = std::move(result);
    batch_ready_.notify_one();
  }
}

// The same batch as make_batch, but the first image is copied with memcpy rather than copy_,
// which would fan out over ATen's intra-op pool for large images from every worker at once.
Batch Loader::assemble(int64_t i) const {
  auto begin = order_.begin() + i * batch_size_;
  auto end = order_.begin() + std::min<int64_t>((i + 1) * batch_size_, order_.size());
  std::vector<int64_t> indices(begin, end);
  int64_t n = static_cast<int64_t>(indices.size());

  at::Tensor first = dataset_.image(indices[0]).contiguous();
  if (!first.is_cpu()) {
    throw DataError(dataset_.describe() + ": image " + std::to_string(indices[0]) +
                    " is not a CPU tensor");
  }
  std::vector<int64_t> shape{n};
  shape.insert(shape.end(), first.sizes().begin(), first.sizes().end());
  Batch batch{at::empty(shape, first.options()), at::empty({n}, at::kLong), std::move(indices)};
  std::memcpy(batch.images.data_ptr(), first.data_ptr(), first.nbytes());
  for (int64_t j = 1; j < n; ++j) dataset_.write_image(batch.indices[j], batch.images[j]);

  int64_t* labels = batch.labels.data_ptr<int64_t>();
  for (int64_t j = 0; j < n; ++j) labels[j] = dataset_.label(batch.indices[j]);
  return batch;
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  slot_free_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

}  // namespace qb
