// FashionMnist on small generated files and on the real Debian copy.

#include "data/fashion_mnist.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <array>
#include "data/subsets.h"
#include "data/transform_spec.h"
#include "tests/catch.h"
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/batches.h"
#include "tests/test_util.h"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes idx_bytes(uint8_t ndims, const std::vector<uint32_t>& dims, const Bytes& payload) {
  Bytes bytes{0, 0, 0x08, ndims};
  for (uint32_t dim : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<uint8_t>(dim >> shift));
  }
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

void write_raw(const std::filesystem::path& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_gzip(const std::filesystem::path& path, const Bytes& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

/// Image k has pixel p equal to (k * 40 + p) mod 256, so every byte value occurs.
Bytes pixels(int64_t images) {
  Bytes bytes(images * 784);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>((i / 784) * 40 + i % 784);
  return bytes;
}

/// A root with a gzipped train split of 5 images and an uncompressed test split of 3.
std::string make_root(const std::string& name) {
  std::filesystem::path root = qb::test::scratch_dir(name);
  write_gzip(root / "train-images-idx3-ubyte.gz", idx_bytes(3, {5, 28, 28}, pixels(5)));
  write_gzip(root / "train-labels-idx1-ubyte.gz", idx_bytes(1, {5}, {3, 0, 9, 9, 1}));
  write_raw(root / "t10k-images-idx3-ubyte", idx_bytes(3, {3, 28, 28}, pixels(3)));
  write_raw(root / "t10k-labels-idx1-ubyte", idx_bytes(1, {3}, {7, 2, 5}));
  return root.string();
}

qb::FashionMnistOptions at_root(const std::string& root) {
  qb::FashionMnistOptions options;
  options.root = root;
  return options;
}

}  // namespace

TEST_CASE("FashionMnist loads generated splits, gzipped or not") {
  std::string root = make_root("fmnist_splits");
  qb::FashionMnist train("train", at_root(root));
  qb::FashionMnist test("test", at_root(root));

  CHECK(train.size() == 5);
  CHECK(train.num_classes() == 10);
  CHECK(train.describe() == "fashion-mnist train (5 images, 10 classes) at " + root);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < train.size(); ++i) labels.push_back(train.label(i));
  CHECK(labels == std::vector<int64_t>{3, 0, 9, 9, 1});

  CHECK(test.size() == 3);
  CHECK(test.label(0) == 7);
  CHECK(test.label(2) == 5);
  CHECK(test.describe() == "fashion-mnist test (3 images, 10 classes) at " + root);
}

TEST_CASE("FashionMnist normalises each pixel as (x / 255 - mean) / stddev") {
  std::string root = make_root("fmnist_normalise");
  Bytes bytes = pixels(5);

  SECTION("default statistics") {
    qb::FashionMnist train("train", at_root(root));
    at::Tensor image = train.image(2);
    REQUIRE(image.scalar_type() == at::kFloat);
    REQUIRE(image.sizes() == at::IntArrayRef{1, 28, 28});
    const float* values = image.data_ptr<float>();
    for (int64_t p = 0; p < 784; ++p) {
      INFO("pixel " << p);
      REQUIRE(values[p] == static_cast<float>((bytes[2 * 784 + p] / 255.0 - 0.2860) / 0.3530));
    }
  }
  SECTION("configured statistics map 0 and 255 exactly to -1 and 1") {
    qb::FashionMnistOptions options = at_root(root);
    options.mean = 0.5;
    options.stddev = 0.5;
    qb::FashionMnist train("train", options);
    at::Tensor image = train.image(0).flatten();
    CHECK(image[0].item<float>() == -1.0f);   // byte 0
    CHECK(image[255].item<float>() == 1.0f);  // byte 255
    CHECK(image[51].item<float>() == static_cast<float>((51 / 255.0 - 0.5) / 0.5));
  }
}

TEST_CASE("FashionMnist fingerprints its content; equal images hash equal across splits") {
  std::string root = make_root("fmnist_fingerprint");
  qb::FashionMnist train("train", at_root(root));
  qb::FashionMnist test("test", at_root(root));
  CHECK(train.fingerprint() == qb::FashionMnist("train", at_root(root)).fingerprint());
  CHECK(train.fingerprint() != test.fingerprint());
  // The generated test images 0..2 are the train images 0..2, as a leaked duplicate would be.
  CHECK(test.content_hash(1) == train.content_hash(1));
  CHECK(test.content_hash(1) != train.content_hash(2));
  CHECK_THROWS_WITH(qb::require_disjoint_content(train, {4, 2}, test, {0, 1, 2}, "calibration"),
                    "calibration: example 2 of fashion-mnist train (5 images, 10 classes) at " +
                        root + " has the same content as example 2 of fashion-mnist test (3 "
                        "images, 10 classes) at " + root);
}

TEST_CASE("FashionMnist runs configured transforms on the grey image") {
  qb::FashionMnistOptions options = at_root(make_root("fmnist_pipeline"));
  options.pipeline = qb::parse_pipeline({"Resize(32)"}, qb::Normalization{{0.5}, {0.25}});
  qb::FashionMnist resized("train", options);
  at::Tensor image = resized.image(1);
  CHECK(image.sizes() == at::IntArrayRef{1, 32, 32});
  at::Tensor slot = at::empty({1, 32, 32});
  resized.write_image(1, slot);
  CHECK(slot.equal(image));
  CHECK_THROWS_AS(resized.write_image(1, at::empty({1, 28, 28})), qb::DataError);
}

TEST_CASE("FashionMnist limit keeps the first examples") {
  qb::FashionMnistOptions options = at_root(make_root("fmnist_limit"));
  options.limit = 2;
  qb::FashionMnist train("train", options);
  CHECK(train.size() == 2);
  CHECK(train.label(1) == 0);
  CHECK(train.describe() ==
        "fashion-mnist train (first 2 of 5 images, 10 classes) at " + options.root);
  CHECK_THROWS_AS(train.image(2), std::out_of_range);
  CHECK_THROWS_AS(train.label(-1), std::out_of_range);

  options.limit = 100;
  CHECK(qb::FashionMnist("train", options).size() == 5);
}

TEST_CASE("FashionMnist rejects bad splits, options and files") {
  std::string root = make_root("fmnist_errors");
  REQUIRE_THROWS_AS(qb::FashionMnist("val", at_root(root)), qb::DataError);
  REQUIRE_THROWS_WITH(qb::FashionMnist("val", at_root(root)),
                      "fashion-mnist: unknown split 'val' (expected 'train' or 'test')");

  qb::FashionMnistOptions zero_std = at_root(root);
  zero_std.stddev = 0;
  REQUIRE_THROWS_AS(qb::FashionMnist("test", zero_std), qb::DataError);

  std::filesystem::remove(std::filesystem::path(root) / "t10k-labels-idx1-ubyte");
  REQUIRE_THROWS_WITH(
      qb::FashionMnist("test", at_root(root)),
      "fashion-mnist: neither t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte is in " + root);

  std::string images = (std::filesystem::path(root) / "train-images-idx3-ubyte.gz").string();
  write_gzip(images, idx_bytes(3, {5, 27, 27}, Bytes(5 * 27 * 27)));
  REQUIRE_THROWS_WITH(qb::FashionMnist("train", at_root(root)),
                      images + ": images are 27x27, Fashion-MNIST's are 28x28");
}

TEST_CASE("FashionMnist reads the Debian copy of the real data set") {
  qb::FashionMnist test("test");
  REQUIRE(test.size() == 10000);
  CHECK(test.describe() ==
        "fashion-mnist test (10000 images, 10 classes) at /usr/share/datasets/fashion-mnist");
  CHECK(test.label(0) == 9);
  CHECK(qb::FashionMnist::kClassNames[test.label(0)] == "ankle boot");

  std::array<int64_t, 10> per_class{};
  for (int64_t i = 0; i < test.size(); ++i) ++per_class[test.label(i)];
  for (int64_t count : per_class) CHECK(count == 1000);

  // With mean 0 and stddev 1 the batches hold x / 255, whose mean is the documented 0.2860.
  qb::FashionMnistOptions raw;
  raw.mean = 0;
  raw.stddev = 1;
  qb::FashionMnist train("train", raw);
  REQUIRE(train.size() == 60000);
  qb::Batches batches(train, qb::epoch_order(train.size(), false, 0, 0), 10000, false);
  double sum = 0;
  int64_t labelled = 0;
  for (const qb::Batch& batch : batches) {
    REQUIRE(batch.images.sizes() == at::IntArrayRef{10000, 1, 28, 28});
    sum += batch.images.sum(at::kDouble).item<double>();
    labelled += batch.labels.size(0);
  }
  CHECK(labelled == 60000);
  CHECK(sum / (60000.0 * 784) == Approx(0.2860).margin(1e-3));
}
