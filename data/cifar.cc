#include "data/cifar.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <opencv2/core.hpp>
#include <stdexcept>

#include "data/hash.h"

namespace qb {

namespace {

constexpr int64_t kPlane = Cifar::kSide * Cifar::kSide;
constexpr int64_t kPixels = Cifar::kChannels * kPlane;

/// What a data set's directory holds and how its records begin.
struct Format {
  const char* name;
  const char* default_root;
  std::vector<std::string> train_files;
  std::string test_file;
  /// Each record starts with one byte per label kind, in this order, then the pixels.
  std::vector<std::string> label_kinds;
  std::vector<int64_t> label_ranges;

  size_t record_bytes() const { return label_kinds.size() + kPixels; }
};

const Format& format_of(CifarVersion version) {
  static const Format cifar10{
      "cifar-10",
      "/usr/share/datasets/cifar-10-batches-bin",
      {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
       "data_batch_5.bin"},
      "test_batch.bin",
      {"fine"},
      {10},
  };
  static const Format cifar100{
      "cifar-100",
      "/usr/share/datasets/cifar-100-binary",  // directory names as in the official tarballs
      {"train.bin"},
      "test.bin",
      {"coarse", "fine"},  // the coarse label byte comes first
      {20, 100},
  };
  return version == CifarVersion::k10 ? cifar10 : cifar100;
}

/// The meta file naming the classes of one label kind.
std::string meta_file(CifarVersion version, const std::string& kind) {
  return version == CifarVersion::k10 ? "batches.meta.txt" : kind + "_label_names.txt";
}

std::string existing_file(const Format& format, const std::string& root, const std::string& name) {
  std::filesystem::path path = std::filesystem::path(root) / name;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    throw DataError(std::string(format.name) + ": " + path.string() + " is missing");
  }
  return path.string();
}

/// One name per line; trailing blank lines (the real files end with one) are ignored.
std::vector<std::string> read_class_names(const std::string& path, int64_t expected) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  std::vector<std::string> names;
  std::string line;
  for (size_t i = 0; i <= bytes.size(); ++i) {
    if (i < bytes.size() && bytes[i] != '\n') {
      line += static_cast<char>(bytes[i]);
      continue;
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    names.push_back(line);
    line.clear();
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) {
      throw DataError(path + ": line " + std::to_string(i + 1) +
                      " is blank, expected a class name");
    }
  }
  if (static_cast<int64_t>(names.size()) != expected) {
    throw DataError(path + ": has " + std::to_string(names.size()) + " class names, expected " +
                    std::to_string(expected));
  }
  return names;
}

/// A batch file's bytes, checked to be whole records with every label in range.
std::vector<uint8_t> read_records(const Format& format, const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  size_t record = format.record_bytes();
  if (bytes.empty()) {
    throw DataError(path + ": empty file, expected records of " + std::to_string(record) +
                    " bytes");
  }
  if (size_t partial = bytes.size() % record) {
    throw DataError(path + ": record " + std::to_string(bytes.size() / record) +
                    " is short: " + std::to_string(partial) + " of " + std::to_string(record) +
                    " bytes (the file size " + std::to_string(bytes.size()) +
                    " is not a multiple of the record size)");
  }
  for (size_t r = 0; r < bytes.size() / record; ++r) {
    for (size_t k = 0; k < format.label_kinds.size(); ++k) {
      uint8_t label = bytes[r * record + k];
      if (label >= format.label_ranges[k]) {
        // CIFAR-10 has a single kind of label, so only CIFAR-100's messages name the kind.
        std::string kind = format.label_kinds.size() > 1 ? format.label_kinds[k] + " " : "";
        throw DataError(path + ": record " + std::to_string(r) + " has " + kind + "label " +
                        std::to_string(label) + ", outside [0, " +
                        std::to_string(format.label_ranges[k]) + ")");
      }
    }
  }
  return bytes;
}

}  // namespace

Cifar::Cifar(CifarVersion version, const std::string& split, CifarOptions options)
    : name_(format_of(version).name), split_(split), label_kind_(options.label),
      pipeline_(options.pipeline), seed_(options.seed) {
  const Format& format = format_of(version);
  root_ = options.root.empty() ? format.default_root : options.root;
  if (split != "train" && split != "test") {
    throw DataError(name_ + ": unknown split '" + split + "' (expected 'train' or 'test')");
  }
  auto kind = std::find(format.label_kinds.begin(), format.label_kinds.end(), label_kind_);
  if (kind == format.label_kinds.end()) {
    throw DataError(name_ + ": unknown label '" + label_kind_ + "' (expected " +
                    (version == CifarVersion::k10 ? "'fine')" : "'fine' or 'coarse')"));
  }
  size_t label_offset = kind - format.label_kinds.begin();
  for (int c = 0; c < kChannels; ++c) {
    if (!(options.stddev[c] > 0)) {
      throw DataError(name_ + ": stddev must be positive, got " +
                      std::to_string(options.stddev[c]) + " for channel " + std::to_string(c));
    }
  }
  if (options.limit && *options.limit < 0) {
    throw DataError(name_ + ": limit must not be negative, got " + std::to_string(*options.limit));
  }
  std::error_code error;
  if (!std::filesystem::is_directory(root_, error)) {
    throw DataError(name_ + ": root directory " + root_ + " does not exist");
  }

  class_names_ = read_class_names(existing_file(format, root_, meta_file(version, label_kind_)),
                                  format.label_ranges[label_offset]);

  // Every file is read and checked before the tensor of all records is filled.
  std::vector<std::vector<uint8_t>> files;
  for (const std::string& name :
       split == "train" ? format.train_files : std::vector<std::string>{format.test_file}) {
    files.push_back(read_records(format, existing_file(format, root_, name)));
  }
  size_t record = format.record_bytes();
  file_size_ = 0;
  for (const std::vector<uint8_t>& bytes : files) file_size_ += bytes.size() / record;
  size_ = options.limit ? std::min(*options.limit, file_size_) : file_size_;

  pixels_ = at::empty({file_size_, kChannels, kSide, kSide}, at::kByte);
  uint8_t* pixels = pixels_.data_ptr<uint8_t>();
  for (const std::vector<uint8_t>& bytes : files) {
    for (size_t start = 0; start < bytes.size(); start += record) {
      labels_.push_back(bytes[start + label_offset]);
      std::memcpy(pixels, bytes.data() + start + format.label_kinds.size(), kPixels);
      pixels += kPixels;
    }
  }

  for (int c = 0; c < kChannels; ++c) {
    for (int value = 0; value < 256; ++value) {
      normalised_[c][value] =
          static_cast<float>((value / 255.0 - options.mean[c]) / options.stddev[c]);
    }
  }
}

at::Tensor Cifar::image(int64_t index) const {
  if (pipeline_) {
    check_index(index);
    // Records store R, G and B planes; transforms take interleaved RGB pixels.
    const uint8_t* planes = pixels_.data_ptr<uint8_t>() + index * kPixels;
    cv::Mat rgb;
    cv::merge(std::vector<cv::Mat>{cv::Mat(kSide, kSide, CV_8UC1, const_cast<uint8_t*>(planes)),
                                   cv::Mat(kSide, kSide, CV_8UC1, const_cast<uint8_t*>(planes + kPlane)),
                                   cv::Mat(kSide, kSide, CV_8UC1, const_cast<uint8_t*>(planes + 2 * kPlane))},
              rgb);
    return (*pipeline_)(rgb, sample_seed(index, seed_));
  }
  at::Tensor out = at::empty({kChannels, kSide, kSide}, at::kFloat);
  write_image(index, out);
  return out;
}

int64_t Cifar::label(int64_t index) const {
  check_index(index);
  return labels_[index];
}

std::string Cifar::describe() const {
  std::string count = std::to_string(size_) + " images";
  if (size_ < file_size_)
    count = "first " + std::to_string(size_) + " of " + std::to_string(file_size_) + " images";
  std::string kind = name_ == "cifar-100" ? " " + label_kind_ : "";
  return name_ + " " + split_ + " (" + count + ", " + std::to_string(num_classes()) + kind +
         " classes) at " + root_;
}

void Cifar::write_image(int64_t index, at::Tensor out) const {
  if (pipeline_) return Dataset::write_image(index, out);
  check_index(index);
  if (!out.is_cpu() || out.scalar_type() != at::kFloat || !out.is_contiguous() ||
      out.sizes() != at::IntArrayRef{kChannels, kSide, kSide}) {
    throw std::invalid_argument(describe() +
                                ": write_image needs a contiguous CPU float 3x32x32 tensor");
  }
  // The record stores the R, G and B planes one after another, which is already CHW.
  const uint8_t* pixels = pixels_.data_ptr<uint8_t>() + index * kPixels;
  float* values = out.data_ptr<float>();
  for (int64_t i = 0; i < kPixels; ++i) values[i] = normalised_[i / kPlane][pixels[i]];
}

uint64_t Cifar::fingerprint() const {
  uint64_t hash = fnv1a(name_ + " " + split_ + " " + label_kind_ + "\n");
  for (const std::string& name : class_names_) hash = fnv1a(name + "\n", hash);
  hash = fnv1a(pixels_.data_ptr<uint8_t>(), static_cast<size_t>(size_ * kPixels), hash);
  return fnv1a(labels_.data(), static_cast<size_t>(size_), hash);
}

uint64_t Cifar::content_hash(int64_t index) const {
  check_index(index);
  return fnv1a(pixels_.data_ptr<uint8_t>() + index * kPixels, kPixels);
}

void Cifar::check_index(int64_t index) const {
  if (index < 0 || index >= size_) {
    throw std::out_of_range(describe() + ": index " + std::to_string(index) + " is outside [0, " +
                            std::to_string(size_) + ")");
  }
}

}  // namespace qb
