// IDX reading on small generated files, raw and gzipped, valid and broken.

#include "data/idx.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include "tests/catch.h"
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace {

using Bytes = std::vector<uint8_t>;

/// An IDX file: magic 0x0000TTNN, big-endian dims, then the payload as given.
Bytes idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& payload) {
  Bytes bytes{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t dim : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<uint8_t>(dim >> shift));
  }
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

/// A counting payload 0, 1, 2, ... (mod 256), so every byte position is checked.
Bytes counting(size_t n) {
  Bytes bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  return bytes;
}

Bytes gzip(const Bytes& raw) {
  z_stream stream{};
  REQUIRE(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                       Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&stream, raw.size()));
  stream.next_in = const_cast<Bytef*>(raw.data());
  stream.avail_in = static_cast<uInt>(raw.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&stream, Z_FINISH) == Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

std::string write(const std::string& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

Bytes tensor_bytes(const at::Tensor& t) {
  const uint8_t* p = t.data_ptr<uint8_t>();
  return Bytes(p, p + t.numel());
}

}  // namespace

TEST_CASE("read_idx reads raw and gzipped files, telling them apart by content") {
  std::string dir = qb::test::scratch_dir("idx_read").string();
  Bytes payload = counting(3 * 2 * 4);
  Bytes raw = idx_bytes(0x08, {3, 2, 4}, payload);

  // Names deliberately lie about the compression: detection must use the magic bytes.
  for (const std::string& path :
       {write(dir + "/raw", raw), write(dir + "/raw-named.gz", raw),
        write(dir + "/zipped.gz", gzip(raw)), write(dir + "/zipped-named", gzip(raw))}) {
    INFO(path);
    qb::IdxArray array = qb::read_idx(path);
    CHECK(array.path == path);
    CHECK(array.dims == std::vector<int64_t>{3, 2, 4});
    CHECK(array.data.scalar_type() == at::kByte);
    CHECK(array.data.sizes() == at::IntArrayRef{3, 2, 4});
    CHECK(tensor_bytes(array.data) == payload);
  }
}

TEST_CASE("read_idx reads label files, empty arrays and concatenated gzip members") {
  std::string dir = qb::test::scratch_dir("idx_shapes").string();
  qb::IdxArray labels = qb::read_idx(write(dir + "/labels", idx_bytes(0x08, {5}, {9, 0, 3, 3, 1})));
  CHECK(labels.dims == std::vector<int64_t>{5});
  CHECK(tensor_bytes(labels.data) == Bytes{9, 0, 3, 3, 1});

  qb::IdxArray empty = qb::read_idx(write(dir + "/empty", idx_bytes(0x08, {0, 28, 28}, {})));
  CHECK(empty.dims == std::vector<int64_t>{0, 28, 28});
  CHECK(empty.data.numel() == 0);

  // `cat a.gz b.gz` is a valid gzip file of the concatenated contents.
  Bytes raw = idx_bytes(0x08, {2, 50}, counting(100));
  Bytes first(raw.begin(), raw.begin() + 40), second(raw.begin() + 40, raw.end());
  Bytes members = gzip(first);
  Bytes tail = gzip(second);
  members.insert(members.end(), tail.begin(), tail.end());
  qb::IdxArray joined = qb::read_idx(write(dir + "/members.gz", members));
  CHECK(joined.dims == std::vector<int64_t>{2, 50});
  CHECK(tensor_bytes(joined.data) == counting(100));
}

TEST_CASE("read_idx reports missing and unreadable files") {
  std::string dir = qb::test::scratch_dir("idx_missing").string();
  REQUIRE_THROWS_AS(qb::read_idx(dir + "/nothing-here"), qb::DataError);
  REQUIRE_THROWS_WITH(qb::read_idx(dir + "/nothing-here"),
                      dir + "/nothing-here: cannot open: No such file or directory");
  REQUIRE_THROWS_WITH(qb::read_idx(dir), Catch::Contains(dir + ": cannot read"));
}

TEST_CASE("read_idx rejects headers that are not uint8 IDX") {
  std::string dir = qb::test::scratch_dir("idx_header").string();
  std::string wrong = write(dir + "/wrong", Bytes{0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0});
  REQUIRE_THROWS_AS(qb::read_idx(wrong), qb::DataError);
  REQUIRE_THROWS_WITH(qb::read_idx(wrong),
                      Catch::Contains(wrong) && Catch::Contains("wrong magic 0x12345678"));

  std::string floats = write(dir + "/floats", idx_bytes(0x0D, {2}, counting(8)));
  REQUIRE_THROWS_WITH(
      qb::read_idx(floats),
      Catch::Contains(floats) &&
          Catch::Contains(
              "unsupported element type 0x0D (only 0x08, unsigned byte, is supported)"));

  std::string tiny = write(dir + "/tiny", Bytes{0, 0});
  REQUIRE_THROWS_WITH(qb::read_idx(tiny),
                      tiny + ": truncated file: an IDX header needs at least 4 bytes, found 2");

  std::string short_header = write(dir + "/short-header", Bytes{0, 0, 8, 3, 0, 0, 0, 1});
  REQUIRE_THROWS_WITH(
      qb::read_idx(short_header),
      short_header + ": truncated file: a header with 3 dims needs 16 bytes, found 8");
}

TEST_CASE("read_idx rejects dims that do not match the data") {
  std::string dir = qb::test::scratch_dir("idx_dims").string();
  Bytes raw = idx_bytes(0x08, {3, 2, 4}, counting(24));

  SECTION("raw file cut short") {
    std::string cut = write(dir + "/cut", Bytes(raw.begin(), raw.end() - 5));
    REQUIRE_THROWS_AS(qb::read_idx(cut), qb::DataError);
    REQUIRE_THROWS_WITH(
        qb::read_idx(cut),
        cut + ": truncated file: dims 3x2x4 need 24 bytes after the header, found 19");
  }
  SECTION("gzip file cut short") {
    // Large enough that half the compressed bytes still decode past the header.
    Bytes zipped = gzip(idx_bytes(0x08, {3, 20, 20}, counting(1200)));
    std::string cut =
        write(dir + "/cut.gz", Bytes(zipped.begin(), zipped.begin() + zipped.size() / 2));
    REQUIRE_THROWS_AS(qb::read_idx(cut), qb::DataError);
    REQUIRE_THROWS_WITH(qb::read_idx(cut),
                        Catch::StartsWith(cut + ": truncated file: dims 3x20x20 need 1200 bytes "
                                                "after the header, found ") &&
                            Catch::EndsWith("(after decompression; the gzip stream ends early)"));
  }
  SECTION("gzip file missing only its trailer") {
    Bytes zipped = gzip(raw);
    std::string cut = write(dir + "/no-trailer.gz", Bytes(zipped.begin(), zipped.end() - 8));
    REQUIRE_THROWS_WITH(qb::read_idx(cut), cut + ": truncated file: the gzip stream ends early");
  }
  SECTION("more data than the dims describe") {
    Bytes longer = raw;
    longer.push_back(0);
    std::string path = write(dir + "/long", longer);
    REQUIRE_THROWS_WITH(
        qb::read_idx(path),
        path + ": dims do not match the data: dims 3x2x4 need 24 bytes after the header, found 25");
  }
  SECTION("dims whose product overflows") {
    std::string path =
        write(dir + "/huge", idx_bytes(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, counting(10)));
    REQUIRE_THROWS_WITH(qb::read_idx(path),
                        Catch::Contains(path) && Catch::Contains("more than 2^64 bytes"));
  }
}

TEST_CASE("read_idx rejects corrupt gzip streams") {
  std::string dir = qb::test::scratch_dir("idx_corrupt").string();
  Bytes zipped = gzip(idx_bytes(0x08, {3, 2, 4}, counting(24)));

  SECTION("invalid deflate block") {
    // A valid gzip header, then a final block of the reserved type 3.
    std::string path =
        write(dir + "/block.gz", Bytes{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x07, 0, 0});
    REQUIRE_THROWS_AS(qb::read_idx(path), qb::DataError);
    REQUIRE_THROWS_WITH(qb::read_idx(path), path + ": corrupt gzip stream: invalid block type");
  }
  SECTION("unknown compression method") {
    zipped[2] = 9;
    std::string path = write(dir + "/method.gz", zipped);
    REQUIRE_THROWS_WITH(qb::read_idx(path),
                        path + ": corrupt gzip stream: unknown compression method");
  }
  SECTION("checksum mismatch") {
    zipped[zipped.size() - 8] ^= 0xFF;  // first byte of the CRC-32 trailer
    std::string path = write(dir + "/crc.gz", zipped);
    REQUIRE_THROWS_WITH(qb::read_idx(path), path + ": corrupt gzip stream: incorrect data check");
  }
  SECTION("garbage after the stream") {
    zipped.push_back(0x42);
    std::string path = write(dir + "/trailing.gz", zipped);
    REQUIRE_THROWS_WITH(
        qb::read_idx(path),
        path + ": corrupt gzip stream: 1 bytes of trailing data after the end of the stream");
  }
}

TEST_CASE("read_idx_images cross-checks images and labels") {
  std::string dir = qb::test::scratch_dir("idx_images").string();
  std::string images = write(dir + "/images", idx_bytes(0x08, {3, 2, 2}, counting(12)));
  std::string labels = write(dir + "/labels", idx_bytes(0x08, {3}, {0, 4, 2}));

  qb::IdxImages set = qb::read_idx_images(images, labels, 5);
  CHECK(set.images.dims == std::vector<int64_t>{3, 2, 2});
  CHECK(tensor_bytes(set.labels.data) == Bytes{0, 4, 2});

  SECTION("label out of range names the file and the index") {
    REQUIRE_THROWS_AS(qb::read_idx_images(images, labels, 4), qb::DataError);
    REQUIRE_THROWS_WITH(qb::read_idx_images(images, labels, 4),
                        labels + ": label 4 at index 1 is outside [0, 4)");
  }
  SECTION("count mismatch names both files") {
    std::string four = write(dir + "/four-labels", idx_bytes(0x08, {4}, {0, 1, 2, 3}));
    REQUIRE_THROWS_AS(qb::read_idx_images(images, four, 5), qb::DataError);
    REQUIRE_THROWS_WITH(qb::read_idx_images(images, four, 5),
                        images + " has 3 images but " + four + " has 4 labels");
  }
  SECTION("files swapped are caught by their magic") {
    REQUIRE_THROWS_WITH(
        qb::read_idx_images(labels, images, 5),
        labels + ": wrong magic 0x00000801 for an image file (expected 0x00000803)");
    REQUIRE_THROWS_WITH(qb::read_idx_images(images, images, 5),
                        images + ": wrong magic 0x00000803 for a label file (expected 0x00000801)");
  }
}
