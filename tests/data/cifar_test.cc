// Cifar (CIFAR-10 and CIFAR-100 binary batches) on small generated trees.

#include "data/cifar.h"

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/transform_spec.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace {

using Bytes = std::vector<uint8_t>;
namespace fs = std::filesystem;

constexpr int64_t kPixels = 3 * 32 * 32;

/// Pixel i of record k; the 85 per plane makes R, G and B differ at the same position.
uint8_t pixel(int64_t k, int64_t i) { return static_cast<uint8_t>(k * 50 + (i / 1024) * 85 + i); }

/// Records numbered from `first`, each the given label bytes followed by the pixels.
Bytes records(int64_t first, const std::vector<Bytes>& labels) {
  Bytes bytes;
  for (size_t r = 0; r < labels.size(); ++r) {
    bytes.insert(bytes.end(), labels[r].begin(), labels[r].end());
    for (int64_t i = 0; i < kPixels; ++i) bytes.push_back(pixel(first + r, i));
  }
  return bytes;
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

/// n lines "<prefix>0".."<prefix>n-1", then a blank line as in the real meta files.
std::string names(const std::string& prefix, int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += prefix + std::to_string(i) + "\n";
  return text + "\n";
}

/// CIFAR-10 tree: train records 0..5 (two in the first batch file), test records 10..12.
std::string make_cifar10(const std::string& name) {
  fs::path root = qb::test::scratch_dir(name);
  write_file(root / "data_batch_1.bin", records(0, {{3}, {0}}));
  for (int b = 2; b <= 5; ++b) {
    write_file(root / ("data_batch_" + std::to_string(b) + ".bin"),
               records(b, {{static_cast<uint8_t>(b + 4)}}));
  }
  write_file(root / "test_batch.bin", records(10, {{9}, {1}, {4}}));
  write_text(root / "batches.meta.txt", names("class", 10));
  return root.string();
}

/// CIFAR-100 tree: train records 0..3, test records 10..11; label bytes are {coarse, fine}.
std::string make_cifar100(const std::string& name) {
  fs::path root = qb::test::scratch_dir(name);
  write_file(root / "train.bin", records(0, {{19, 99}, {0, 0}, {7, 42}, {3, 15}}));
  write_file(root / "test.bin", records(10, {{1, 2}, {11, 55}}));
  write_text(root / "fine_label_names.txt", names("fine", 100));
  write_text(root / "coarse_label_names.txt", names("coarse", 20));
  return root.string();
}

qb::CifarOptions at_root(const std::string& root) {
  qb::CifarOptions options;
  options.root = root;
  return options;
}

std::vector<int64_t> all_labels(const qb::Dataset& dataset) {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < dataset.size(); ++i) labels.push_back(dataset.label(i));
  return labels;
}

}  // namespace

TEST_CASE("Cifar loads CIFAR-10 splits across batch files") {
  std::string root = make_cifar10("cifar10_splits");
  qb::Cifar train(qb::CifarVersion::k10, "train", at_root(root));
  qb::Cifar test(qb::CifarVersion::k10, "test", at_root(root));

  CHECK(train.size() == 6);
  CHECK(train.num_classes() == 10);
  CHECK(all_labels(train) == std::vector<int64_t>{3, 0, 6, 7, 8, 9});
  CHECK(train.describe() == "cifar-10 train (6 images, 10 classes) at " + root);
  REQUIRE(train.class_names().size() == 10);
  CHECK(train.class_names()[0] == "class0");
  CHECK(train.class_names()[9] == "class9");

  CHECK(test.size() == 3);
  CHECK(all_labels(test) == std::vector<int64_t>{9, 1, 4});
  CHECK(test.describe() == "cifar-10 test (3 images, 10 classes) at " + root);
}

TEST_CASE("Cifar loads CIFAR-100 with fine or coarse labels") {
  std::string root = make_cifar100("cifar100_splits");
  qb::Cifar fine(qb::CifarVersion::k100, "train", at_root(root));
  CHECK(fine.size() == 4);
  CHECK(fine.num_classes() == 100);
  CHECK(all_labels(fine) == std::vector<int64_t>{99, 0, 42, 15});
  CHECK(fine.class_names()[42] == "fine42");
  CHECK(fine.describe() == "cifar-100 train (4 images, 100 fine classes) at " + root);

  qb::CifarOptions options = at_root(root);
  options.label = "coarse";
  qb::Cifar coarse(qb::CifarVersion::k100, "test", options);
  CHECK(coarse.size() == 2);
  CHECK(coarse.num_classes() == 20);
  CHECK(all_labels(coarse) == std::vector<int64_t>{1, 11});
  CHECK(coarse.class_names()[11] == "coarse11");
  CHECK(coarse.describe() == "cifar-100 test (2 images, 20 coarse classes) at " + root);
}

TEST_CASE("Cifar normalises each channel as (x / 255 - mean[c]) / stddev[c], in R, G, B order") {
  const std::array<double, 3> mean = {0.4914, 0.4822, 0.4465};
  const std::array<double, 3> stddev = {0.2023, 0.1994, 0.2010};

  SECTION("CIFAR-10 with the default statistics, across a batch file boundary") {
    qb::Cifar train(qb::CifarVersion::k10, "train", at_root(make_cifar10("cifar10_normalise")));
    for (int64_t k : {1, 2}) {
      at::Tensor image = train.image(k);
      REQUIRE(image.scalar_type() == at::kFloat);
      REQUIRE(image.sizes() == at::IntArrayRef{3, 32, 32});
      const float* values = image.data_ptr<float>();
      for (int64_t i = 0; i < kPixels; ++i) {
        INFO("record " << k << " pixel " << i);
        int64_t c = i / 1024;
        REQUIRE(values[i] == static_cast<float>((pixel(k, i) / 255.0 - mean[c]) / stddev[c]));
      }
    }
  }
  SECTION("CIFAR-100 with configured statistics") {
    qb::CifarOptions options = at_root(make_cifar100("cifar100_normalise"));
    options.mean = {0.5, 0.0, 1.0};
    options.stddev = {0.5, 1.0, 0.25};
    qb::Cifar test(qb::CifarVersion::k100, "test", options);
    at::Tensor image = test.image(1);  // record 11: plane c starts at byte (550 + 85 c) mod 256
    CHECK(image[0][0][0].item<float>() == static_cast<float>((38 / 255.0 - 0.5) / 0.5));
    CHECK(image[1][0][0].item<float>() == static_cast<float>(123 / 255.0));
    CHECK(image[2][0][0].item<float>() == static_cast<float>((208 / 255.0 - 1.0) / 0.25));
    CHECK(image[2][31][31].item<float>() ==
          static_cast<float>((pixel(11, 3071) / 255.0 - 1.0) / 0.25));
  }
}

TEST_CASE("Cifar runs configured transforms on the RGB image, seeded per example") {
  const std::string root = make_cifar10("cifar10_pipeline");
  qb::CifarOptions options = at_root(root);
  options.pipeline = qb::parse_pipeline({"RandomCrop(32, padding=4)", "RandomHorizontalFlip()"},
                                        qb::cifar_normalization());
  qb::Cifar augmented(qb::CifarVersion::k10, "train", options);
  // The same example draws the same crop and flip every time; the seed changes them.
  CHECK(augmented.image(2).equal(augmented.image(2)));
  options.seed = 5;
  qb::Cifar reseeded(qb::CifarVersion::k10, "train", options);
  bool any_differs = false;
  for (int64_t k = 0; k < 6; ++k) any_differs |= !reseeded.image(k).equal(augmented.image(k));
  CHECK(any_differs);

  // Transforms that keep every pixel give the plain normalisation up to float rounding, which
  // shows the planes were interleaved in R, G, B order.
  options.pipeline = qb::parse_pipeline({"CenterCrop(32)"}, qb::cifar_normalization());
  qb::Cifar identity(qb::CifarVersion::k10, "train", options);
  qb::Cifar plain(qb::CifarVersion::k10, "train", at_root(root));
  CHECK(identity.image(3).allclose(plain.image(3), 0.0, 1e-6));
  at::Tensor batch_slot = at::empty({3, 32, 32});
  identity.write_image(3, batch_slot);
  CHECK(batch_slot.equal(identity.image(3)));
}

TEST_CASE("Cifar fingerprints its content and hashes each record's pixels") {
  const std::string root = make_cifar10("cifar10_fingerprint");
  qb::Cifar train(qb::CifarVersion::k10, "train", at_root(root));
  qb::Cifar test(qb::CifarVersion::k10, "test", at_root(root));
  CHECK(train.fingerprint() == qb::Cifar(qb::CifarVersion::k10, "train", at_root(root)).fingerprint());
  CHECK(train.fingerprint() != test.fingerprint());
  qb::CifarOptions first_three = at_root(root);
  first_three.limit = 3;
  CHECK(qb::Cifar(qb::CifarVersion::k10, "train", first_three).fingerprint() != train.fingerprint());
  // Records 0..5 have distinct pixels; test record 0 is record 10.
  CHECK(train.content_hash(1) != train.content_hash(2));
  CHECK(train.content_hash(1) == qb::Cifar(qb::CifarVersion::k10, "train", at_root(root)).content_hash(1));
  CHECK_THROWS_AS(train.content_hash(6), std::out_of_range);
}

TEST_CASE("Cifar limit keeps the first examples") {
  qb::CifarOptions options = at_root(make_cifar10("cifar10_limit"));
  options.limit = 3;
  qb::Cifar train(qb::CifarVersion::k10, "train", options);
  CHECK(train.size() == 3);
  CHECK(all_labels(train) == std::vector<int64_t>{3, 0, 6});
  CHECK(train.describe() == "cifar-10 train (first 3 of 6 images, 10 classes) at " + options.root);
  CHECK_THROWS_AS(train.image(3), std::out_of_range);
  CHECK_THROWS_AS(train.label(-1), std::out_of_range);
  CHECK_THROWS_AS(train.write_image(0, at::empty({1, 32, 32})), std::invalid_argument);

  options.limit = 0;
  CHECK(qb::Cifar(qb::CifarVersion::k10, "train", options).size() == 0);
  options.limit = 100;
  CHECK(qb::Cifar(qb::CifarVersion::k10, "train", options).size() == 6);
}

TEST_CASE("Cifar rejects bad splits and options") {
  qb::CifarOptions options = at_root(make_cifar10("cifar10_options"));
  REQUIRE_THROWS_WITH(qb::Cifar(qb::CifarVersion::k10, "val", options),
                      "cifar-10: unknown split 'val' (expected 'train' or 'test')");

  qb::CifarOptions coarse = options;
  coarse.label = "coarse";
  REQUIRE_THROWS_WITH(qb::Cifar(qb::CifarVersion::k10, "test", coarse),
                      "cifar-10: unknown label 'coarse' (expected 'fine')");
  coarse.label = "medium";
  REQUIRE_THROWS_WITH(qb::Cifar(qb::CifarVersion::k100, "test", coarse),
                      "cifar-100: unknown label 'medium' (expected 'fine' or 'coarse')");

  qb::CifarOptions zero_std = options;
  zero_std.stddev[2] = 0;
  REQUIRE_THROWS_WITH(
      qb::Cifar(qb::CifarVersion::k10, "test", zero_std),
      Catch::Contains("stddev must be positive") && Catch::Contains("for channel 2"));

  qb::CifarOptions negative = options;
  negative.limit = -1;
  REQUIRE_THROWS_AS(qb::Cifar(qb::CifarVersion::k10, "test", negative), qb::DataError);
}

TEST_CASE("Cifar names the file and the fault for missing or malformed files") {
  std::string root = make_cifar10("cifar10_errors");
  fs::path dir(root);
  auto load = [&](const std::string& split) {
    return qb::Cifar(qb::CifarVersion::k10, split, at_root(root));
  };

  SECTION("missing root") {
    std::string missing = (dir / "nowhere").string();
    REQUIRE_THROWS_WITH(qb::Cifar(qb::CifarVersion::k10, "test", at_root(missing)),
                        "cifar-10: root directory " + missing + " does not exist");
  }
  SECTION("missing batch file") {
    fs::remove(dir / "data_batch_4.bin");
    REQUIRE_THROWS_AS(load("train"), qb::DataError);
    REQUIRE_THROWS_WITH(load("train"),
                        Catch::Contains((dir / "data_batch_4.bin").string() + " is missing"));
  }
  SECTION("a short last record") {
    Bytes bytes = records(0, {{1}, {2}});
    bytes.resize(bytes.size() + 100, 7);
    write_file(dir / "test_batch.bin", bytes);
    REQUIRE_THROWS_WITH(load("test"), Catch::Contains((dir / "test_batch.bin").string() +
                                                      ": record 2 is short: 100 of 3073 bytes"));
  }
  SECTION("an empty batch file") {
    write_file(dir / "test_batch.bin", {});
    REQUIRE_THROWS_WITH(load("test"),
                        Catch::Contains((dir / "test_batch.bin").string() + ": empty file"));
  }
  SECTION("a label outside the classes") {
    write_file(dir / "data_batch_2.bin", records(0, {{1}, {10}}));
    REQUIRE_THROWS_WITH(load("train"), (dir / "data_batch_2.bin").string() +
                                           ": record 1 has label 10, outside [0, 10)");
  }
  SECTION("missing meta file") {
    fs::remove(dir / "batches.meta.txt");
    REQUIRE_THROWS_WITH(load("test"),
                        "cifar-10: " + (dir / "batches.meta.txt").string() + " is missing");
  }
  SECTION("meta file with too few names") {
    write_text(dir / "batches.meta.txt", names("class", 9));
    REQUIRE_THROWS_WITH(load("test"),
                        (dir / "batches.meta.txt").string() + ": has 9 class names, expected 10");
  }
  SECTION("meta file with a blank line between names") {
    write_text(dir / "batches.meta.txt", "a\nb\n\nc\nd\ne\nf\ng\nh\ni\nj\n");
    REQUIRE_THROWS_WITH(load("test"),
                        Catch::Contains((dir / "batches.meta.txt").string() + ": line 3 is blank"));
  }
}

TEST_CASE("Cifar checks both label bytes and the chosen meta file of CIFAR-100") {
  std::string root = make_cifar100("cifar100_errors");
  fs::path dir(root);
  qb::CifarOptions coarse = at_root(root);
  coarse.label = "coarse";

  SECTION("coarse label out of range, even when fine labels are used") {
    write_file(dir / "train.bin", records(0, {{0, 0}, {0, 1}, {20, 2}}));
    REQUIRE_THROWS_WITH(
        qb::Cifar(qb::CifarVersion::k100, "train", at_root(root)),
        (dir / "train.bin").string() + ": record 2 has coarse label 20, outside [0, 20)");
  }
  SECTION("fine label out of range") {
    write_file(dir / "test.bin", records(0, {{0, 100}}));
    REQUIRE_THROWS_WITH(
        qb::Cifar(qb::CifarVersion::k100, "test", coarse),
        (dir / "test.bin").string() + ": record 0 has fine label 100, outside [0, 100)");
  }
  SECTION("a record cut short") {
    write_file(dir / "test.bin", Bytes(3000));
    REQUIRE_THROWS_WITH(
        qb::Cifar(qb::CifarVersion::k100, "test", coarse),
        Catch::Contains((dir / "test.bin").string() + ": record 0 is short: 3000 of 3074 bytes"));
  }
  SECTION("the coarse names file is read only for coarse labels") {
    write_text(dir / "coarse_label_names.txt", names("coarse", 100));
    CHECK(qb::Cifar(qb::CifarVersion::k100, "test", at_root(root)).num_classes() == 100);
    REQUIRE_THROWS_WITH(
        qb::Cifar(qb::CifarVersion::k100, "test", coarse),
        (dir / "coarse_label_names.txt").string() + ": has 100 class names, expected 20");
  }
  SECTION("missing fine names file") {
    fs::remove(dir / "fine_label_names.txt");
    REQUIRE_THROWS_WITH(qb::Cifar(qb::CifarVersion::k100, "test", at_root(root)),
                        Catch::Contains((dir / "fine_label_names.txt").string() + " is missing"));
  }
}
