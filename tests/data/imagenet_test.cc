// ImageNet on tiny generated trees in the folder, LOC and devkit layouts.

#include "data/imagenet.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "data/transforms.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

/// A 40x30 picture that differs per `k`, written by OpenCV (JPEG or PNG from the extension).
void write_picture(const fs::path& path, int k) {
  fs::create_directories(path.parent_path());
  cv::Mat image(30, 40, CV_8UC3, cv::Scalar(20 * k, 100, 200 - 15 * k));
  cv::circle(image, cv::Point(10 + 3 * k, 15), 8, cv::Scalar(255, 255 - 20 * k, 0), -1);
  REQUIRE(cv::imwrite(path.string(), image));
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

/// Keeps the first `keep` bytes of a file, as an interrupted copy would.
void truncate_file(const fs::path& path, uintmax_t keep) { fs::resize_file(path, keep); }

std::vector<int64_t> all_labels(const qb::Dataset& dataset) {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < dataset.size(); ++i) labels.push_back(dataset.label(i));
  return labels;
}

std::vector<std::string> all_files(const qb::ImageNet& dataset, const fs::path& dir) {
  std::vector<std::string> files;
  for (int64_t i = 0; i < dataset.size(); ++i) {
    files.push_back(fs::relative(dataset.path(i), dir).string());
  }
  return files;
}

/// Folder layout: classes n10..., n02..., n01... (ImageFolder sorts them n01, n02, n10), two or
/// three images each in mixed extensions and case, one in a nested folder, and a stray text file.
fs::path make_folder_tree(const std::string& name) {
  fs::path val = qb::test::scratch_dir(name) / "val";
  write_picture(val / "n10000000" / "b.JPEG", 0);
  write_picture(val / "n10000000" / "a.jpg", 1);
  write_picture(val / "n02000000" / "x.png", 2);
  write_picture(val / "n02000000" / "sub" / "a.jpeg", 3);
  write_picture(val / "n02000000" / "y.JPG", 4);
  write_picture(val / "n01000000" / "z.JPEG", 5);
  write_picture(val / "n01000000" / "c.jpeg", 6);
  write_text(val / "n01000000" / "notes.txt", "not an image");
  return val.parent_path();
}

/// Flat validation images ILSVRC2012_val_00000001..4 with the LOC and devkit label files.
/// Synsets (sorted): n01 tench, n02 goldfish, n03 shark; devkit ids order them n03, n01, n02.
fs::path make_flat_tree(const std::string& name) {
  fs::path root = qb::test::scratch_dir(name);
  for (int i = 1; i <= 4; ++i) {
    write_picture(root / "val" / ("ILSVRC2012_val_0000000" + std::to_string(i) + ".JPEG"), i);
  }
  write_text(root / "LOC_synset_mapping.txt",
             "n01000000 tench, Tinca tinca\nn02000000 goldfish\nn03000000 great white shark\n");
  write_text(root / "LOC_val_solution.csv",
             "ImageId,PredictionString\n"
             "ILSVRC2012_val_00000003,n01000000 1 2 30 20 n01000000 3 4 20 10 \n"
             "ILSVRC2012_val_00000001,n03000000 0 0 40 30 \n"
             "ILSVRC2012_val_00000004,n02000000 5 5 10 10 \n"
             "ILSVRC2012_val_00000002,n03000000 1 1 2 2 \n"
             "ILSVRC2012_val_00000099,n02000000 1 1 2 2 \n");
  write_text(root / "ILSVRC2012_wnids.txt", "n03000000\nn01000000\nn02000000\n");
  // Ids 1..3 are n03, n01, n02, so the labels are 2, 2, 0, 1.
  write_text(root / "ILSVRC2012_validation_ground_truth.txt", "1\n1\n2\n3\n");
  return root;
}

qb::ImageNetOptions options_for(const fs::path& root, qb::ImageNetLayout layout) {
  qb::ImageNetOptions options;
  options.root = root.string();
  options.layout = layout;
  return options;
}

/// What torchvision would give: the file decoded as RGB through the evaluation pipeline.
at::Tensor expected_image(const std::string& path, uint64_t seed) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return qb::imagenet_eval_pipeline()(rgb, seed);
}

}  // namespace

TEST_CASE("ImageNet folder layout follows ImageFolder's order") {
  fs::path root = make_folder_tree("imagenet_folder");
  qb::ImageNet dataset(options_for(root, qb::ImageNetLayout::kFolder));

  CHECK(dataset.size() == 7);
  CHECK(dataset.num_classes() == 3);
  CHECK(dataset.class_names() == std::vector<std::string>{"n01000000", "n02000000", "n10000000"});
  CHECK(all_labels(dataset) == std::vector<int64_t>{0, 0, 1, 1, 1, 2, 2});
  // Files sorted by directory, then name: "n02000000" comes before "n02000000/sub".
  CHECK(all_files(dataset, root / "val") ==
        std::vector<std::string>{"n01000000/c.jpeg", "n01000000/z.JPEG", "n02000000/x.png",
                                 "n02000000/y.JPG", "n02000000/sub/a.jpeg", "n10000000/a.jpg",
                                 "n10000000/b.JPEG"});
  CHECK(dataset.describe() == "imagenet val (7 images, 3 classes) at " + root.string());
  CHECK(dataset.skipped().empty());
  CHECK_FALSE(dataset.from_cache());
  CHECK(dataset.cache_file().empty());

  for (int64_t i : {0, 2, 6}) {
    at::Tensor image = dataset.image(i);
    CHECK(image.sizes() == at::IntArrayRef{3, 224, 224});
    CHECK(at::equal(image, expected_image(dataset.path(i), i)));
  }
  CHECK_THROWS_AS(dataset.label(7), std::out_of_range);
}

TEST_CASE("ImageNet limit, seed and fingerprint") {
  fs::path root = make_folder_tree("imagenet_limit");
  qb::ImageNetOptions options = options_for(root, qb::ImageNetLayout::kFolder);
  qb::ImageNet all(options);
  options.limit = 3;
  qb::ImageNet first(options);
  CHECK(first.size() == 3);
  CHECK(first.describe() == "imagenet val (first 3 of 7 images, 3 classes) at " + root.string());
  CHECK(first.fingerprint() != all.fingerprint());
  CHECK(qb::ImageNet(options).fingerprint() == first.fingerprint());

  // A random pipeline sees seed i by default and a different stream once a seed is given.
  qb::Compose random;
  random.add(std::make_shared<qb::RandomCrop>(16));
  options.pipeline = random;
  qb::ImageNet unseeded(options);
  options.seed = 7;
  qb::ImageNet seeded(options);
  CHECK(unseeded.image(1).sizes() == at::IntArrayRef{3, 16, 16});
  CHECK(at::equal(unseeded.image(1), unseeded.image(1)));
  bool any_differs = false;
  for (int64_t i = 0; i < 3; ++i) any_differs |= !at::equal(unseeded.image(i), seeded.image(i));
  CHECK(any_differs);
}

TEST_CASE("ImageNet flat validation with LOC files") {
  fs::path root = make_flat_tree("imagenet_loc");
  qb::ImageNet dataset(options_for(root, qb::ImageNetLayout::kLocVal));
  CHECK(dataset.size() == 4);
  CHECK(dataset.num_classes() == 3);
  CHECK(all_labels(dataset) == std::vector<int64_t>{2, 2, 0, 1});
  CHECK(fs::path(dataset.path(0)).filename() == "ILSVRC2012_val_00000001.JPEG");
  CHECK(at::equal(dataset.image(3), expected_image(dataset.path(3), 3)));

  SECTION("a wnid missing from the synset mapping") {
    write_text(root / "LOC_val_solution.csv",
               "ImageId,PredictionString\nILSVRC2012_val_00000001,n09999999 0 0 1 1\n");
    REQUIRE_THROWS_WITH(qb::ImageNet(options_for(root, qb::ImageNetLayout::kLocVal)),
                        Contains("LOC_val_solution.csv: line 2") && Contains("n09999999"));
  }
  SECTION("an image without a row") {
    write_text(root / "LOC_val_solution.csv",
               "ImageId,PredictionString\nILSVRC2012_val_00000001,n01000000 0 0 1 1\n");
    REQUIRE_THROWS_WITH(qb::ImageNet(options_for(root, qb::ImageNetLayout::kLocVal)),
                        Contains("ILSVRC2012_val_00000002.JPEG: no label in"));
  }
}

TEST_CASE("ImageNet flat validation with the devkit ground truth") {
  fs::path root = make_flat_tree("imagenet_devkit");
  qb::ImageNet dataset(options_for(root, qb::ImageNetLayout::kDevkitVal));
  CHECK(all_labels(dataset) == std::vector<int64_t>{2, 2, 0, 1});

  write_text(root / "ILSVRC2012_validation_ground_truth.txt", "1\n4\n2\n3\n");
  REQUIRE_THROWS_WITH(qb::ImageNet(options_for(root, qb::ImageNetLayout::kDevkitVal)),
                      Contains("ILSVRC2012_validation_ground_truth.txt: line 2") &&
                          Contains("'4' is outside [1, 3]"));
}

TEST_CASE("ImageNet caches its index outside the root and notices changes") {
  fs::path root = make_folder_tree("imagenet_cache");
  fs::path cache = qb::test::scratch_dir("imagenet_cache_dir") / "index";
  qb::ImageNetOptions options = options_for(root, qb::ImageNetLayout::kFolder);
  options.cache_dir = cache.string();

  qb::ImageNet built(options);
  CHECK_FALSE(built.from_cache());
  REQUIRE(fs::exists(built.cache_file()));
  CHECK(fs::path(built.cache_file()).parent_path() == cache);

  qb::ImageNet cached(options);
  CHECK(cached.from_cache());
  CHECK(cached.cache_file() == built.cache_file());
  CHECK(all_labels(cached) == all_labels(built));
  CHECK(cached.class_names() == built.class_names());
  CHECK(cached.fingerprint() == built.fingerprint());
  CHECK(cached.path(4) == built.path(4));

  // Another split is another cache file.
  fs::copy(root / "val", root / "train", fs::copy_options::recursive);
  options.split = "train";
  CHECK(qb::ImageNet(options).cache_file() != built.cache_file());
  options.split = "val";

  // Removing a file changes its class folder's listing, so the index is rebuilt.
  fs::remove(root / "val" / "n10000000" / "a.jpg");
  qb::ImageNet rebuilt(options);
  CHECK_FALSE(rebuilt.from_cache());
  CHECK(rebuilt.size() == 6);
  CHECK(qb::ImageNet(options).from_cache());

  options.cache_dir = (root / "cache").string();
  REQUIRE_THROWS_WITH(qb::ImageNet(options), Contains("lies inside the data root"));
}

TEST_CASE("ImageNet flat layout cache notices a removed image") {
  fs::path root = make_flat_tree("imagenet_flat_cache");
  qb::ImageNetOptions options = options_for(root, qb::ImageNetLayout::kLocVal);
  options.cache_dir = qb::test::scratch_dir("imagenet_flat_cache_dir").string();
  CHECK_FALSE(qb::ImageNet(options).from_cache());
  CHECK(qb::ImageNet(options).from_cache());
  fs::remove(root / "val" / "ILSVRC2012_val_00000004.JPEG");
  qb::ImageNet rebuilt(options);
  CHECK_FALSE(rebuilt.from_cache());
  CHECK(all_labels(rebuilt) == std::vector<int64_t>{2, 2, 0});
}

TEST_CASE("ImageNet rejects bad input, naming the file") {
  fs::path root = make_folder_tree("imagenet_bad");
  qb::ImageNetOptions options = options_for(root, qb::ImageNetLayout::kFolder);

  SECTION("a missing root") {
    options.root = (root / "nowhere").string();
    REQUIRE_THROWS_WITH(qb::ImageNet(options),
                        Contains("root directory " + options.root + " does not exist"));
  }
  SECTION("an empty class folder") {
    fs::create_directories(root / "val" / "n05000000");
    REQUIRE_THROWS_WITH(qb::ImageNet(options),
                        Contains("n05000000: class folder holds no .jpeg, .jpg or .png file"));
  }
  SECTION("a truncated JPEG") {
    fs::path file = root / "val" / "n01000000" / "c.jpeg";
    truncate_file(file, fs::file_size(file) / 2);
    qb::ImageNet dataset(options);
    REQUIRE_THROWS_WITH(dataset.image(0), Contains(file.string() + ": is a truncated JPEG"));
  }
  SECTION("a JPEG whose data does not decode") {
    fs::path file = root / "val" / "n01000000" / "c.jpeg";
    write_text(file, std::string("\xFF\xD8\xFF\xE0garbage, not a JPEG stream\xFF\xD9", 34));
    qb::ImageNet dataset(options);
    REQUIRE_THROWS_WITH(dataset.image(0), Contains(file.string() + ": cannot be decoded"));
  }
  SECTION("a file that is no image at all") {
    fs::path file = root / "val" / "n01000000" / "z.JPEG";
    write_text(file, "hello");
    qb::ImageNet dataset(options);
    REQUIRE_THROWS_WITH(dataset.image(1),
                        Contains(file.string() + ": is neither a JPEG nor a PNG"));
  }
}

TEST_CASE("ImageNet skip_corrupt drops and lists unreadable files") {
  fs::path root = make_folder_tree("imagenet_skip");
  fs::path truncated = root / "val" / "n01000000" / "c.jpeg";
  truncate_file(truncated, fs::file_size(truncated) / 2);
  truncate_file(root / "val" / "n02000000" / "x.png", 20);
  write_text(root / "val" / "n10000000" / "b.JPEG", "");

  qb::ImageNetOptions options = options_for(root, qb::ImageNetLayout::kFolder);
  options.skip_corrupt = true;
  options.cache_dir = qb::test::scratch_dir("imagenet_skip_cache").string();
  qb::ImageNet dataset(options);
  CHECK(dataset.size() == 4);
  CHECK(dataset.skipped() ==
        std::vector<std::string>{"n01000000/c.jpeg", "n02000000/x.png", "n10000000/b.JPEG"});
  CHECK(all_labels(dataset) == std::vector<int64_t>{0, 1, 1, 2});
  for (int64_t i = 0; i < dataset.size(); ++i) CHECK(dataset.image(i).size(0) == 3);

  qb::ImageNet cached(options);
  CHECK(cached.from_cache());
  CHECK(cached.skipped() == dataset.skipped());
  CHECK(all_labels(cached) == all_labels(dataset));
}
