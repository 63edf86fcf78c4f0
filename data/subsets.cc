#include "data/subsets.h"

#include <ATen/ATen.h>

#include <cstring>
#include <numeric>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "data/batches.h"
#include "data/hash.h"
#include "data/loader.h"

namespace qb {

namespace {

void check_subset_size(const char* what, int64_t n, int64_t available) {
  if (n < 0 || n > available) {
    throw std::invalid_argument(std::string(what) + ": n must be in [0, " +
                                std::to_string(available) + "], got " + std::to_string(n));
  }
}

}  // namespace

std::vector<int64_t> first_n(int64_t dataset_size, int64_t n, uint64_t seed) {
  check_subset_size("first_n", n, dataset_size);
  std::vector<int64_t> order = epoch_order(dataset_size, true, seed, 0);
  order.resize(n);
  return order;
}

std::vector<int64_t> stratified(const std::vector<int64_t>& labels, int64_t num_classes,
                                int64_t n, uint64_t seed) {
  check_subset_size("stratified", n, static_cast<int64_t>(labels.size()));
  if (num_classes <= 0) {
    throw std::invalid_argument("stratified: num_classes must be positive, got " +
                                std::to_string(num_classes));
  }
  std::vector<std::vector<int64_t>> members(num_classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    int64_t label = labels[i];
    if (label < 0 || label >= num_classes) {
      throw std::invalid_argument("stratified: label " + std::to_string(label) + " of example " +
                                  std::to_string(i) + " is outside [0, " +
                                  std::to_string(num_classes) + ")");
    }
    members[label].push_back(static_cast<int64_t>(i));
  }
  // The class number as the epoch gives each class its own permutation under one seed.
  for (int64_t c = 0; c < num_classes; ++c) {
    std::vector<int64_t> order =
        epoch_order(static_cast<int64_t>(members[c].size()), true, seed, c);
    std::vector<int64_t> shuffled(order.size());
    for (size_t k = 0; k < order.size(); ++k) shuffled[k] = members[c][order[k]];
    members[c] = std::move(shuffled);
  }

  std::vector<int64_t> chosen;
  chosen.reserve(n);
  for (size_t turn = 0; static_cast<int64_t>(chosen.size()) < n; ++turn) {
    for (int64_t c = 0; c < num_classes && static_cast<int64_t>(chosen.size()) < n; ++c) {
      if (turn < members[c].size()) chosen.push_back(members[c][turn]);
    }
  }
  return chosen;
}

std::vector<int64_t> stratified(const Dataset& dataset, int64_t n, uint64_t seed) {
  std::vector<int64_t> labels(dataset.size());
  for (int64_t i = 0; i < dataset.size(); ++i) labels[i] = dataset.label(i);
  return stratified(labels, dataset.num_classes(), n, seed);
}

void require_disjoint(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                      const std::string& context) {
  std::unordered_set<int64_t> in_b(b.begin(), b.end());
  for (int64_t index : a) {
    if (in_b.count(index)) {
      throw std::invalid_argument(context + ": example " + std::to_string(index) +
                                  " is in both sets");
    }
  }
}

Subset::Subset(const Dataset& source, std::vector<int64_t> indices)
    : source_(source), indices_(std::move(indices)) {
  whole_ = static_cast<int64_t>(indices_.size()) == source.size();
  for (size_t i = 0; i < indices_.size(); ++i) {
    const int64_t index = indices_[i];
    whole_ = whole_ && index == static_cast<int64_t>(i);
    if (index < 0 || index >= source.size()) {
      throw std::out_of_range(source.describe() + ": subset index " + std::to_string(index) +
                              " is outside [0, " + std::to_string(source.size()) + ")");
    }
  }
}

std::string Subset::describe() const {
  if (whole_) return source_.describe();
  return std::to_string(indices_.size()) + " chosen examples of " + source_.describe();
}

uint64_t Subset::fingerprint() const {
  uint64_t hash = source_.fingerprint();
  return fnv1a(indices_.data(), indices_.size() * sizeof(int64_t), hash);
}

int64_t Subset::at(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw std::out_of_range(describe() + ": index " + std::to_string(index) + " is outside [0, " +
                            std::to_string(size()) + ")");
  }
  return indices_[static_cast<size_t>(index)];
}

void require_disjoint_content(const Dataset& a, const std::vector<int64_t>& a_indices,
                              const Dataset& b, const std::vector<int64_t>& b_indices,
                              const std::string& context) {
  std::unordered_map<uint64_t, int64_t> in_b;
  for (int64_t index : b_indices) in_b.emplace(b.content_hash(index), index);
  for (int64_t index : a_indices) {
    auto it = in_b.find(a.content_hash(index));
    if (it != in_b.end()) {
      throw std::invalid_argument(context + ": example " + std::to_string(index) + " of " +
                                  a.describe() + " has the same content as example " +
                                  std::to_string(it->second) + " of " + b.describe());
    }
  }
}

CachedDataset::CachedDataset(const Dataset& source, int workers,
                             const std::function<void(int64_t)>& on_progress)
    : num_classes_(source.num_classes()),
      description_("cached " + source.describe()),
      fingerprint_(source.fingerprint()) {
  const int64_t size = source.size();
  if (size == 0) throw std::invalid_argument(description_ + ": nothing to cache");
  // The Loader's batches are checked for equal shapes; they are copied into one tensor so that
  // example i stays at row i whatever the batch size.
  LoaderOptions options;
  options.batch_size = 64;
  options.workers = workers;
  int64_t done = 0;
  auto allocate = [&](const at::Tensor& example, bool batched) {
    if (images_.defined()) return;
    std::vector<int64_t> shape = example.sizes().vec();
    if (!batched) shape.insert(shape.begin(), 1);
    shape[0] = size;
    images_ = at::zeros(shape, example.options());
    labels_ = at::zeros({size}, at::kLong);
  };
  try {
    Loader loader(source, options);
    while (std::optional<Batch> batch = loader.next()) {
      allocate(batch->images, true);
      const int64_t n = batch->images.size(0);
      images_.narrow(0, done, n).copy_(batch->images);
      labels_.narrow(0, done, n).copy_(batch->labels);
      done += n;
      if (on_progress) on_progress(done);
    }
  } catch (const std::exception&) {
    // An example that does not decode (a corrupt file) must fail only what uses it: the rest
    // is decoded one by one, and that example's error is raised again when it is read.
    for (int64_t i = done; i < size; ++i) {
      try {
        at::Tensor image = source.image(i);
        allocate(image, false);
        images_[i].copy_(image);
        labels_.data_ptr<int64_t>()[i] = source.label(i);
      } catch (const std::exception& e) {
        errors_.emplace(i, e.what());
      }
      if (on_progress) on_progress(i + 1);
    }
    if (!images_.defined()) throw;  // not one example decodes
  }
  content_hashes_.reserve(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) content_hashes_.push_back(source.content_hash(i));
}

uint64_t CachedDataset::content_hash(int64_t index) const {
  check_index(index);
  return content_hashes_[static_cast<size_t>(index)];
}

at::Tensor CachedDataset::image(int64_t index) const {
  check_index(index);
  return images_[index].clone();
}

int64_t CachedDataset::label(int64_t index) const {
  check_index(index);
  return labels_.data_ptr<int64_t>()[index];
}

std::string CachedDataset::describe() const { return description_; }

void CachedDataset::write_image(int64_t index, at::Tensor out) const {
  check_index(index);
  at::Tensor cached = images_[index];
  if (out.sizes() != cached.sizes()) {
    throw DataError(describe() + ": image " + std::to_string(index) + " has shape " +
                    c10::str(cached.sizes()) + " but the batch expects " + c10::str(out.sizes()));
  }
  // A batch slot is contiguous and of the same type: memcpy then avoids copy_'s dispatch and its
  // intra-op threads, which matters when Loader workers call this concurrently.
  if (out.is_cpu() && out.is_contiguous() && out.scalar_type() == cached.scalar_type()) {
    std::memcpy(out.data_ptr(), cached.data_ptr(), cached.nbytes());
  } else {
    out.copy_(cached);
  }
}

void CachedDataset::check_index(int64_t index) const {
  auto error = errors_.find(index);
  if (error != errors_.end()) throw DataError(error->second);
  if (index < 0 || index >= size()) {
    throw std::out_of_range(describe() + ": index " + std::to_string(index) + " is outside [0, " +
                            std::to_string(size()) + ")");
  }
}

}  // namespace qb
