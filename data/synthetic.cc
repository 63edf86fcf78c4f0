#include "data/synthetic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <stdexcept>

#include "data/hash.h"

namespace qb {

Synthetic::Synthetic(SyntheticOptions options) : options_(std::move(options)) {
  if (options_.size < 1 || options_.num_classes < 1 || options_.shape.empty()) {
    throw DataError("synthetic: size, num_classes and shape must be positive");
  }
  for (int64_t dim : options_.shape) {
    if (dim < 1) throw DataError("synthetic: every dimension of shape must be positive");
  }
}

at::Tensor Synthetic::image(int64_t index) const {
  check_index(index);
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(sample_seed(index, options_.seed));
  return at::randn(options_.shape, generator, at::kFloat);
}

int64_t Synthetic::label(int64_t index) const {
  check_index(index);
  return index % options_.num_classes;
}

std::string Synthetic::describe() const {
  std::string shape;
  for (int64_t dim : options_.shape) shape += (shape.empty() ? "" : "x") + std::to_string(dim);
  return "synthetic (" + std::to_string(options_.size) + " images of " + shape + ", seed " +
         std::to_string(options_.seed) + ")";
}

uint64_t Synthetic::fingerprint() const {
  uint64_t hash = fnv1a(describe());
  return fnv1a(std::to_string(options_.num_classes), hash);
}

uint64_t Synthetic::content_hash(int64_t index) const {
  check_index(index);
  return fnv1a(std::to_string(index), fnv1a(describe()));
}

void Synthetic::check_index(int64_t index) const {
  if (index < 0 || index >= options_.size) {
    throw std::out_of_range(describe() + ": index " + std::to_string(index) + " is outside [0, " +
                            std::to_string(options_.size) + ")");
  }
}

}  // namespace qb
