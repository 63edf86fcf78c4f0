#include "data/idx.h"

#include <ATen/ops/empty.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace qb {

namespace {

constexpr uint8_t kUnsignedByte = 0x08;  // the IDX element type code for uint8
constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

std::string hex(uint32_t value, int digits) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%0*X", digits, value);
  return text;
}

std::string hex32(uint32_t value) { return hex(value, 8); }

std::string join_dims(const std::vector<int64_t>& dims) {
  std::string text;
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "x" : "") + std::to_string(dims[i]);
  return text.empty() ? "(scalar)" : text;
}

bool is_gzip_at(const std::vector<uint8_t>& bytes, size_t offset) {
  return bytes.size() >= offset + 2 && bytes[offset] == 0x1f && bytes[offset + 1] == 0x8b;
}

/// Decompressed bytes, and whether the compressed data stopped before the end of the stream.
struct Inflated {
  std::vector<uint8_t> bytes;
  bool ended_early = false;
};

Inflated gunzip(const std::string& path, const std::vector<uint8_t>& compressed) {
  z_stream stream{};
  // 16 + MAX_WBITS: gzip wrapper only, with its CRC and length trailer checked.
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) throw DataError(path + ": cannot start zlib");
  std::unique_ptr<z_stream, decltype(&inflateEnd)> end_stream(&stream, &inflateEnd);

  // zlib counts in 32-bit uInt, so both buffers are handed over in bounded pieces.
  constexpr size_t kPiece = size_t{1} << 30;
  Inflated out;
  out.bytes.resize(std::max<size_t>(size_t{1} << 16, 4 * compressed.size()));
  size_t fed = 0;
  size_t produced = 0;
  while (true) {
    if (stream.avail_in == 0 && fed < compressed.size()) {
      size_t n = std::min(kPiece, compressed.size() - fed);
      stream.next_in = const_cast<Bytef*>(compressed.data() + fed);
      stream.avail_in = static_cast<uInt>(n);
      fed += n;
    }
    if (produced == out.bytes.size()) out.bytes.resize(2 * out.bytes.size());
    size_t room = std::min(kPiece, out.bytes.size() - produced);
    stream.next_out = out.bytes.data() + produced;
    stream.avail_out = static_cast<uInt>(room);

    int status = inflate(&stream, Z_NO_FLUSH);
    produced += room - stream.avail_out;

    if (status == Z_STREAM_END) {
      size_t consumed = fed - stream.avail_in;
      if (consumed == compressed.size()) break;
      // Further members continue the file (as `cat a.gz b.gz` makes); anything else is damage.
      if (!is_gzip_at(compressed, consumed)) {
        throw DataError(path +
                        ": corrupt gzip stream: " + std::to_string(compressed.size() - consumed) +
                        " bytes of trailing data after the end of the stream");
      }
      inflateReset(&stream);
    } else if (status == Z_BUF_ERROR) {
      // With output room available, no progress means the input ran out mid-stream.
      out.ended_early = true;
      break;
    } else if (status != Z_OK) {
      throw DataError(path +
                      ": corrupt gzip stream: " + (stream.msg ? stream.msg : zError(status)));
    }
  }
  out.bytes.resize(produced);
  return out;
}

IdxArray parse_idx(const std::string& path, const std::vector<uint8_t>& bytes,
                   const std::string& note) {
  if (bytes.size() < 4) {
    throw DataError(path + ": truncated file: an IDX header needs at least 4 bytes, found " +
                    std::to_string(bytes.size()) + note);
  }
  uint32_t magic =
      uint32_t{bytes[0]} << 24 | uint32_t{bytes[1]} << 16 | uint32_t{bytes[2]} << 8 | bytes[3];
  if (bytes[0] != 0 || bytes[1] != 0) {
    throw DataError(path + ": wrong magic " + hex32(magic) + ": not an IDX file (expected " +
                    hex32(kImagesMagic) + " for images or " + hex32(kLabelsMagic) + " for labels)");
  }
  if (bytes[2] != kUnsignedByte) {
    throw DataError(path + ": magic " + hex32(magic) + " has unsupported element type " +
                    hex(bytes[2], 2) + " (only 0x08, unsigned byte, is supported)");
  }

  size_t ndims = bytes[3];
  size_t header = 4 + 4 * ndims;
  if (bytes.size() < header) {
    throw DataError(path + ": truncated file: a header with " + std::to_string(ndims) +
                    " dims needs " + std::to_string(header) + " bytes, found " +
                    std::to_string(bytes.size()) + note);
  }
  IdxArray array{path, {}, {}};
  uint64_t expected = 1;
  bool overflow = false;
  for (size_t d = 0; d < ndims; ++d) {
    const uint8_t* p = &bytes[4 + 4 * d];
    uint32_t dim = uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
    array.dims.push_back(dim);
    overflow |= __builtin_mul_overflow(expected, uint64_t{dim}, &expected);
  }
  size_t found = bytes.size() - header;
  if (overflow) {
    throw DataError(path + ": dims " + join_dims(array.dims) +
                    " describe more than 2^64 bytes; found " + std::to_string(found));
  }
  if (found != expected) {
    throw DataError(path + ": " +
                    (found < expected ? "truncated file" : "dims do not match the data") +
                    ": dims " + join_dims(array.dims) + " need " + std::to_string(expected) +
                    " bytes after the header, found " + std::to_string(found) + note);
  }
  array.data = at::empty(array.dims, at::kByte);
  if (found > 0) std::memcpy(array.data.data_ptr<uint8_t>(), bytes.data() + header, found);
  return array;
}

void check_magic(const IdxArray& array, uint32_t wanted, const char* what) {
  uint32_t magic = uint32_t{kUnsignedByte} << 8 | static_cast<uint32_t>(array.dims.size());
  if (magic != wanted) {
    throw DataError(array.path + ": wrong magic " + hex32(magic) + " for " + what + " (expected " +
                    hex32(wanted) + ")");
  }
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  if (!is_gzip_at(bytes, 0)) return parse_idx(path, bytes, "");

  Inflated inflated = gunzip(path, bytes);
  std::string note =
      inflated.ended_early ? " (after decompression; the gzip stream ends early)" : "";
  IdxArray array = parse_idx(path, inflated.bytes, note);
  // The data may be complete while the gzip trailer (CRC and length) is cut off.
  if (inflated.ended_early) throw DataError(path + ": truncated file: the gzip stream ends early");
  return array;
}

IdxImages read_idx_images(const std::string& images_path, const std::string& labels_path,
                          int64_t num_classes) {
  IdxImages set{read_idx(images_path), read_idx(labels_path)};
  check_magic(set.images, kImagesMagic, "an image file");
  check_magic(set.labels, kLabelsMagic, "a label file");

  int64_t n = set.images.dims[0];
  if (set.labels.dims[0] != n) {
    throw DataError(images_path + " has " + std::to_string(n) + " images but " + labels_path +
                    " has " + std::to_string(set.labels.dims[0]) + " labels");
  }
  const uint8_t* labels = set.labels.data.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (labels[i] >= num_classes) {
      throw DataError(labels_path + ": label " + std::to_string(labels[i]) + " at index " +
                      std::to_string(i) + " is outside [0, " + std::to_string(num_classes) + ")");
    }
  }
  return set;
}

}  // namespace qb
