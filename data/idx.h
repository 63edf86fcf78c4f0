#pragma once
// Reader for the IDX format of the MNIST family (big-endian header, then a
// dense array), gzip-compressed or raw. Every malformed input is a DataError.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace qb {

/// The contents of one IDX file.
struct IdxArray {
  std::string path;
  std::vector<int64_t> dims;
  at::Tensor data;  // uint8, shaped by dims
};

/// Reads an IDX file of unsigned bytes; gzip is recognised by its magic bytes, not the name.
IdxArray read_idx(const std::string& path);

/// An image file (N,H,W) with its label file (N), already cross-checked.
struct IdxImages {
  IdxArray images;
  IdxArray labels;
};

/// Reads images (magic 0x00000803) and labels (0x00000801); counts must match, labels lie in [0,
/// num_classes).
IdxImages read_idx_images(const std::string& images_path, const std::string& labels_path,
                          int64_t num_classes);

}  // namespace qb
