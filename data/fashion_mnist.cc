#include "data/fashion_mnist.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <opencv2/core/mat.hpp>
#include <filesystem>
#include <stdexcept>

#include "data/hash.h"
#include "data/idx.h"

namespace qb {

namespace {

constexpr int64_t kPixels = FashionMnist::kSide * FashionMnist::kSide;

/// The gzipped name if present, else the uncompressed one.
std::string find_file(const std::string& root, const std::string& name) {
  for (const std::string& candidate : {name + ".gz", name}) {
    std::filesystem::path path = std::filesystem::path(root) / candidate;
    std::error_code error;
    if (std::filesystem::exists(path, error)) return path.string();
  }
  throw DataError("fashion-mnist: neither " + name + ".gz nor " + name + " is in " + root);
}

}  // namespace

FashionMnist::FashionMnist(const std::string& split, FashionMnistOptions options)
    : split_(split), root_(options.root), pipeline_(options.pipeline), seed_(options.seed) {
  if (split != "train" && split != "test") {
    throw DataError("fashion-mnist: unknown split '" + split + "' (expected 'train' or 'test')");
  }
  if (!(options.stddev > 0)) {
    throw DataError("fashion-mnist: stddev must be positive, got " +
                    std::to_string(options.stddev));
  }
  if (options.limit && *options.limit < 0) {
    throw DataError("fashion-mnist: limit must not be negative, got " +
                    std::to_string(*options.limit));
  }

  // The test split's files carry the original MNIST name "t10k".
  std::string prefix = split == "train" ? "train" : "t10k";
  IdxImages set = read_idx_images(find_file(root_, prefix + "-images-idx3-ubyte"),
                                  find_file(root_, prefix + "-labels-idx1-ubyte"), num_classes());
  if (set.images.dims[1] != kSide || set.images.dims[2] != kSide) {
    throw DataError(set.images.path + ": images are " + std::to_string(set.images.dims[1]) + "x" +
                    std::to_string(set.images.dims[2]) + ", Fashion-MNIST's are 28x28");
  }
  pixels_ = set.images.data;
  labels_ = set.labels.data;
  file_size_ = set.images.dims[0];
  size_ = options.limit ? std::min(*options.limit, file_size_) : file_size_;

  for (int value = 0; value < 256; ++value) {
    normalised_[value] = static_cast<float>((value / 255.0 - options.mean) / options.stddev);
  }
}

at::Tensor FashionMnist::image(int64_t index) const {
  if (pipeline_) {
    check_index(index);
    // The pipeline only reads the image, so it may wrap the stored bytes.
    const cv::Mat grey(kSide, kSide, CV_8UC1, pixels_.data_ptr<uint8_t>() + index * kPixels);
    return (*pipeline_)(grey, sample_seed(index, seed_));
  }
  at::Tensor out = at::empty({1, kSide, kSide}, at::kFloat);
  write_image(index, out);
  return out;
}

int64_t FashionMnist::label(int64_t index) const {
  check_index(index);
  return labels_.data_ptr<uint8_t>()[index];
}

std::string FashionMnist::describe() const {
  std::string count = std::to_string(size_) + " images";
  if (size_ < file_size_)
    count = "first " + std::to_string(size_) + " of " + std::to_string(file_size_) + " images";
  return "fashion-mnist " + split_ + " (" + count + ", " + std::to_string(num_classes()) +
         " classes) at " + root_;
}

void FashionMnist::write_image(int64_t index, at::Tensor out) const {
  if (pipeline_) return Dataset::write_image(index, out);
  check_index(index);
  if (!out.is_cpu() || out.scalar_type() != at::kFloat || !out.is_contiguous() ||
      out.sizes() != at::IntArrayRef{1, kSide, kSide}) {
    throw std::invalid_argument(describe() +
                                ": write_image needs a contiguous CPU float 1x28x28 tensor");
  }
  const uint8_t* pixels = pixels_.data_ptr<uint8_t>() + index * kPixels;
  float* values = out.data_ptr<float>();
  for (int64_t i = 0; i < kPixels; ++i) values[i] = normalised_[pixels[i]];
}

uint64_t FashionMnist::fingerprint() const {
  uint64_t hash = fnv1a("fashion-mnist " + split_ + "\n");
  hash = fnv1a(pixels_.data_ptr<uint8_t>(), static_cast<size_t>(size_ * kPixels), hash);
  return fnv1a(labels_.data_ptr<uint8_t>(), static_cast<size_t>(size_), hash);
}

uint64_t FashionMnist::content_hash(int64_t index) const {
  check_index(index);
  return fnv1a(pixels_.data_ptr<uint8_t>() + index * kPixels, kPixels);
}

void FashionMnist::check_index(int64_t index) const {
  if (index < 0 || index >= size_) {
    throw std::out_of_range(describe() + ": index " + std::to_string(index) + " is outside [0, " +
                            std::to_string(size_) + ")");
  }
}

}  // namespace qb
