#include "data/dataset.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace qb {

void Dataset::write_image(int64_t index, at::Tensor out) const {
  at::Tensor img = image(index);
  // copy_ would broadcast a smaller image silently; a batch needs equal shapes.
  if (img.sizes() != out.sizes()) {
    throw DataError(describe() + ": image " + std::to_string(index) + " has shape " +
                    c10::str(img.sizes()) + " but the batch expects " + c10::str(out.sizes()));
  }
  out.copy_(img);
}

uint64_t sample_seed(int64_t index, const std::optional<uint64_t>& seed) {
  // An odd constant spreads the data set seed so that nearby seeds give unrelated streams.
  uint64_t mixed = static_cast<uint64_t>(index);
  if (seed) mixed += *seed * 0x9E3779B97F4A7C15ULL;
  return mixed;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "rb"),
                                                          &std::fclose);
  if (!file) throw DataError(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  while (size_t n = std::fread(chunk.data(), 1, chunk.size(), file.get())) {
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  // A directory opens fine on Linux and only fails here, with EISDIR.
  if (std::ferror(file.get())) throw DataError(path + ": cannot read: " + std::strerror(errno));
  return bytes;
}

}  // namespace qb
