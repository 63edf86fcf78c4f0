// libFuzzer target for the IDX reader (data/idx.cc): any input may be rejected
// with a DataError, but nothing may crash, leak or throw anything else.
// Built and run by tools/fuzz.sh, outside Bazel.

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "data/idx.h"

namespace {

/// A file private to this process, so parallel fuzzing jobs do not share it.
std::string temp_path(const char* name) {
  return "/tmp/qb_idx_fuzzer_" + std::to_string(getpid()) + "_" + name;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string whole = temp_path("whole");
  static const std::string images = temp_path("images");
  static const std::string labels = temp_path("labels");

  write_file(whole, data, size);
  try {
    qb::read_idx(whole);
  } catch (const qb::DataError&) {
  }

  // The first byte splits the rest into an image file and a label file for the cross-checks.
  if (size == 0) return 0;
  size_t split = 1 + std::min<size_t>(size - 1, data[0] * (size - 1) / 255);
  write_file(images, data + 1, split - 1);
  write_file(labels, data + split, size - split);
  try {
    qb::read_idx_images(images, labels, 10);
  } catch (const qb::DataError&) {
  }
  return 0;
}
