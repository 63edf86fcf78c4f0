// Image transforms: hand-computed geometry and values, seeded determinism, and agreement with
// torchvision's outputs from tests/fixtures/make_transform_fixtures.py on photographs and
// synthetic images.

#include "data/transforms.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace {

std::string fixture(const std::string& name) {
  return qb::test::source_path("tests/fixtures/transforms/" + name).string();
}

/// A fixture image decoded to RGB, as the data loaders hand images to the transforms.
cv::Mat read_rgb(const std::string& name) {
  const cv::Mat bgr = cv::imread(fixture(name), cv::IMREAD_COLOR);
  if (bgr.empty()) throw std::runtime_error("cannot read fixture " + name);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

/// A height x width image whose pixel (y, x) holds y * width + x in every channel.
cv::Mat numbered(int height, int width, int channels) {
  cv::Mat image(height, width, CV_8UC(channels));
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c)
        image.ptr<uint8_t>(y)[x * channels + c] = static_cast<uint8_t>(y * width + x);
    }
  }
  return image;
}

/// How closely our values (in 8-bit levels) follow torchvision's.
struct Agreement {
  double within_one = 0;  // fraction of values at most one level apart
  double max_difference = 0;
};

Agreement compare_levels(const at::Tensor& ours, const at::Tensor& reference) {
  const at::Tensor difference = (ours.to(at::kDouble) - reference.to(at::kDouble)).abs();
  // 1e-3 absorbs float rounding when normalised values are mapped back to levels.
  return {difference.le(1.0 + 1e-3).to(at::kDouble).mean().item<double>(),
          difference.max().item<double>()};
}

/// An RGB uint8 image as an HWC tensor, for comparisons.
at::Tensor levels_of(const cv::Mat& image) {
  return at::from_blob(image.data, {image.rows, image.cols, image.channels()}, at::kByte).clone();
}

}  // namespace

TEST_CASE("resized_size keeps the shorter side and truncates the longer like torchvision") {
  CHECK(qb::resized_size(300, 451, 256) ==
        std::array<int, 2>{256, 384});  // 256 * 451 / 300 = 384.85
  CHECK(qb::resized_size(389, 241, 256) ==
        std::array<int, 2>{413, 256});  // 256 * 389 / 241 = 413.21
  CHECK(qb::resized_size(100, 100, 50) == std::array<int, 2>{50, 50});
  CHECK(qb::resized_size(20, 30, 40) == std::array<int, 2>{40, 60});  // enlarging too

  qb::TransformRng rng(0);
  const cv::Mat landscape =
      qb::Resize(256).apply(cv::Mat(300, 451, CV_8UC3, cv::Scalar::all(7)), rng);
  CHECK(landscape.rows == 256);
  CHECK(landscape.cols == 384);
  const cv::Mat portrait =
      qb::Resize(256).apply(cv::Mat(389, 241, CV_8UC1, cv::Scalar::all(7)), rng);
  CHECK(portrait.rows == 413);
  CHECK(portrait.cols == 256);
  // Weights sum to one, so a flat image stays flat whichever way it is resampled.
  CHECK(cv::countNonZero(portrait != 7) == 0);
}

TEST_CASE("CenterCrop rounds half offsets to even and pads small images with zeros") {
  CHECK(qb::center_crop_offsets(5, 7, 2, 2) == std::array<int, 2>{2, 2});   // 1.5 -> 2, 2.5 -> 2
  CHECK(qb::center_crop_offsets(9, 11, 2, 2) == std::array<int, 2>{4, 4});  // 3.5 -> 4, 4.5 -> 4
  CHECK(qb::center_crop_offsets(6, 6, 2, 2) == std::array<int, 2>{2, 2});

  qb::TransformRng rng(0);
  const cv::Mat image = numbered(5, 7, 1);
  const cv::Mat cropped = qb::CenterCrop(2).apply(image, rng);
  REQUIRE(cropped.size() == cv::Size(2, 2));
  CHECK(cropped.at<uint8_t>(0, 0) == 2 * 7 + 2);
  CHECK(cropped.at<uint8_t>(1, 1) == 3 * 7 + 3);

  // 3 extra pixels each way: 1 before, 2 after, as torchvision pads.
  const cv::Mat padded = qb::CenterCrop(6).apply(numbered(3, 3, 3) + cv::Scalar::all(1), rng);
  REQUIRE(padded.size() == cv::Size(6, 6));
  CHECK(padded.at<cv::Vec3b>(0, 0) == cv::Vec3b(0, 0, 0));
  CHECK(padded.at<cv::Vec3b>(1, 1) == cv::Vec3b(1, 1, 1));
  CHECK(padded.at<cv::Vec3b>(3, 3) == cv::Vec3b(9, 9, 9));
  CHECK(padded.at<cv::Vec3b>(4, 4) == cv::Vec3b(0, 0, 0));
}

TEST_CASE("to_tensor and normalize give CHW floats like ToTensor and Normalize") {
  cv::Mat image(1, 2, CV_8UC3);
  image.at<cv::Vec3b>(0, 0) = cv::Vec3b(0, 51, 255);
  image.at<cv::Vec3b>(0, 1) = cv::Vec3b(102, 153, 204);
  const at::Tensor tensor = qb::to_tensor(image);
  REQUIRE(tensor.sizes() == at::IntArrayRef({3, 1, 2}));
  CHECK(tensor.scalar_type() == at::kFloat);
  CHECK(tensor[0][0][0].item<float>() == 0.0f);
  CHECK(tensor[1][0][0].item<float>() == 51.0f / 255.0f);
  CHECK(tensor[2][0][0].item<float>() == 1.0f);
  CHECK(tensor[0][0][1].item<float>() == 102.0f / 255.0f);

  const at::Tensor normalized =
      qb::normalize(at::full({2, 1, 1}, 0.5f), {{0.5, 0.25}, {0.25, 0.5}});
  CHECK(normalized[0][0][0].item<float>() == 0.0f);
  CHECK(normalized[1][0][0].item<float>() == Approx(0.5));
  CHECK_THROWS_AS(qb::normalize(tensor, {{0.5}, {0.5}}), std::invalid_argument);
}

TEST_CASE("RandomHorizontalFlip mirrors with probability p") {
  const cv::Mat image = numbered(2, 3, 3);
  qb::TransformRng rng(1);
  const cv::Mat flipped = qb::RandomHorizontalFlip(1.0).apply(image, rng);
  CHECK(flipped.at<cv::Vec3b>(0, 0) == image.at<cv::Vec3b>(0, 2));
  CHECK(flipped.at<cv::Vec3b>(1, 2) == image.at<cv::Vec3b>(1, 0));
  CHECK(cv::countNonZero(qb::RandomHorizontalFlip(0.0).apply(image, rng).reshape(1) !=
                         image.reshape(1)) == 0);

  int flips = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    qb::TransformRng draw(seed);
    flips += qb::RandomHorizontalFlip(0.5).apply(image, draw).at<cv::Vec3b>(0, 0) !=
             image.at<cv::Vec3b>(0, 0);
  }
  CHECK(flips > 60);
  CHECK(flips < 140);
}

TEST_CASE("RandomCrop pads with zeros and crops anywhere in the padded image") {
  const cv::Mat image(32, 32, CV_8UC3, cv::Scalar::all(200));
  const qb::RandomCrop crop(32, 4);
  std::set<std::vector<int>> shifts;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    qb::TransformRng rng(seed);
    const cv::Mat out = crop.apply(image, rng);
    REQUIRE(out.size() == cv::Size(32, 32));
    // The image part is a rectangle of 200s; everything else is zero padding.
    cv::Mat inside = out.reshape(1) == 200;
    cv::Mat zeros = out.reshape(1) == 0;
    CHECK(cv::countNonZero(inside) + cv::countNonZero(zeros) == 32 * 32 * 3);
    const cv::Rect box = cv::boundingRect(inside);
    CHECK(cv::countNonZero(inside) == box.area());
    CHECK(box.height >= 28);
    CHECK(box.width >= 28 * 3);
    shifts.insert({box.y, box.x, box.height, box.width});
  }
  CHECK(shifts.size() > 20);
  qb::TransformRng rng(0);
  CHECK_THROWS_AS(qb::RandomCrop(40).apply(image, rng), std::invalid_argument);
}

TEST_CASE("RandomResizedCrop samples boxes within the scale and ratio bounds") {
  const qb::RandomResizedCrop transform(224);
  std::set<std::vector<int>> boxes;
  for (uint64_t seed = 0; seed < 500; ++seed) {
    qb::TransformRng rng(seed);
    const qb::CropBox box = transform.sample(300, 451, rng);
    CHECK(box.top >= 0);
    CHECK(box.left >= 0);
    CHECK(box.top + box.height <= 300);
    CHECK(box.left + box.width <= 451);
    // Rounding each side to whole pixels moves area and ratio slightly past the bounds.
    const double area = static_cast<double>(box.height) * box.width / (300.0 * 451.0);
    CHECK(area >= 0.08 * 0.97);
    CHECK(area <= 1.0);
    const double ratio = static_cast<double>(box.width) / box.height;
    CHECK(ratio >= 0.75 * 0.97);
    CHECK(ratio <= 4.0 / 3.0 * 1.03);
    boxes.insert({box.top, box.left, box.height, box.width});
  }
  CHECK(boxes.size() > 400);

  // A 10x1000 strip fits no 3/4..4/3 crop of 90%+ of its area: the fallback takes the centred
  // 10 x round(10 * 4/3) crop.
  qb::TransformRng rng(3);
  const qb::CropBox fallback = qb::RandomResizedCrop(8, {0.9, 1.0}).sample(10, 1000, rng);
  CHECK(fallback.top == 0);
  CHECK(fallback.height == 10);
  CHECK(fallback.width == 13);
  CHECK(fallback.left == (1000 - 13) / 2);

  const cv::Mat out = transform.apply(cv::Mat(300, 451, CV_8UC3, cv::Scalar::all(9)), rng);
  CHECK(out.size() == cv::Size(224, 224));
}

TEST_CASE("pipelines are deterministic per seed and differ across seeds") {
  cv::Mat image(32, 32, CV_8UC3);
  cv::randu(image, 0, 256);
  const qb::Compose train = qb::cifar_train_pipeline();
  const at::Tensor first = train(image, 42);
  REQUIRE(first.sizes() == at::IntArrayRef({3, 32, 32}));
  CHECK(at::equal(first, train(image, 42)));
  int different = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) different += !at::equal(first, train(image, seed));
  CHECK(different >= 18);

  // The test pipeline is ToTensor + Normalize alone.
  const at::Tensor test = qb::cifar_test_pipeline()(image, 0);
  const at::Tensor mean = at::tensor(std::vector<float>{0.4914f, 0.4822f, 0.4465f}).view({3, 1, 1});
  const at::Tensor std = at::tensor(std::vector<float>{0.2023f, 0.1994f, 0.2010f}).view({3, 1, 1});
  CHECK(at::allclose(test, (qb::to_tensor(image) - mean) / std));
}

TEST_CASE("Resize and the ImageNet evaluation pipeline match torchvision within one level") {
  std::ifstream manifest(fixture("inputs.tsv"));
  REQUIRE(manifest);
  const at::Tensor mean = at::tensor(std::vector<float>{0.485f, 0.456f, 0.406f}).view({3, 1, 1});
  const at::Tensor std = at::tensor(std::vector<float>{0.229f, 0.224f, 0.225f}).view({3, 1, 1});
  const qb::Compose pipeline = qb::imagenet_eval_pipeline();
  std::string line;
  int images = 0;
  while (std::getline(manifest, line)) {
    std::istringstream fields(line);
    std::string name, file;
    int width = 0, height = 0;
    double pixel_sum = 0, output_sum = 0;
    fields >> name >> file >> width >> height >> pixel_sum >> output_sum;
    INFO(name);
    const cv::Mat image = read_rgb(file);
    REQUIRE(image.size() == cv::Size(width, height));
    // Both sides must start from the same pixels (PIL and OpenCV share Debian's libjpeg).
    REQUIRE(cv::sum(image)[0] + cv::sum(image)[1] + cv::sum(image)[2] == pixel_sum);

    qb::TransformRng rng(0);
    const cv::Mat resized = qb::Resize(96).apply(image, rng);
    const cv::Mat expected_resized = read_rgb(name + "_resize96.png");
    REQUIRE(resized.size() == expected_resized.size());
    const Agreement resize = compare_levels(levels_of(resized), levels_of(expected_resized));

    const at::Tensor output = pipeline(image, 0);
    REQUIRE(output.sizes() == at::IntArrayRef({3, 224, 224}));
    const at::Tensor expected = levels_of(read_rgb(name + "_imagenet.png")).permute({2, 0, 1});
    const Agreement full = compare_levels((output * std + mean) * 255, expected);
    // Normalize itself, checked against torchvision's normalised output in aggregate.
    CHECK(output.to(at::kDouble).sum().item<double>() == Approx(output_sum).margin(1e-2));

    std::printf(
        "%-8s Resize(96): %.4f%% within one level, max diff %.0f | ImageNet eval: %.4f%% within "
        "one "
        "level, max diff %.2g levels\n",
        name.c_str(), 100 * resize.within_one, resize.max_difference, 100 * full.within_one,
        full.max_difference);
    CHECK(resize.within_one >= 0.99);
    CHECK(full.within_one >= 0.99);
    // Stricter than the target: the integer resampling is Pillow's own, so today it is bit-exact.
    CHECK(resize.max_difference == 0);
    CHECK(full.max_difference < 0.01);
    ++images;
  }
  CHECK(images == 4);
}

TEST_CASE("single-channel Resize and exact-size resampling match PIL") {
  std::vector<cv::Mat> channels;
  cv::split(read_rgb("shapes.png"), channels);
  qb::TransformRng rng(0);
  const cv::Mat red = qb::Resize(96).apply(channels[0], rng);
  const cv::Mat expected_red = cv::imread(fixture("shapes_red_resize96.png"), cv::IMREAD_UNCHANGED);
  REQUIRE(red.size() == expected_red.size());
  REQUIRE(expected_red.type() == CV_8UC1);
  CHECK(cv::countNonZero(red != expected_red) == 0);

  // F.resized_crop's crop then resize to (64, 80): different scales along the two axes.
  const cv::Mat chelsea = read_rgb("chelsea.jpg");
  const cv::Mat crop = chelsea(cv::Rect(51, 37, 263, 201));
  const cv::Mat resized = qb::resize_bilinear(crop, 64, 80);
  const cv::Mat expected = read_rgb("chelsea_resized_crop.png");
  REQUIRE(resized.size() == expected.size());
  CHECK(cv::countNonZero(resized.reshape(1) != expected.reshape(1)) == 0);
}

TEST_CASE("resize_bilinear_region equals cropping the full resize") {
  cv::Mat image(97, 131, CV_8UC3);
  cv::randu(image, 0, 256);
  std::vector<cv::Mat> channels;
  cv::split(image, channels);
  std::mt19937 random(9);
  // Shrinking, enlarging and keeping each axis, on RGB and single-channel images.
  for (const cv::Mat& source : {image, channels[1]}) {
    for (const auto& [height, width] :
         std::vector<std::pair<int, int>>{{40, 60}, {97, 50}, {200, 131}, {150, 300}, {97, 131}}) {
      const cv::Mat full = qb::resize_bilinear(source, height, width);
      for (int i = 0; i < 20; ++i) {
        qb::CropBox region;
        region.height = 1 + static_cast<int>(random() % height);
        region.width = 1 + static_cast<int>(random() % width);
        region.top = static_cast<int>(random() % (height - region.height + 1));
        region.left = static_cast<int>(random() % (width - region.width + 1));
        INFO(height << "x" << width << " region " << region.top << "," << region.left << " "
                    << region.height << "x" << region.width);
        const cv::Mat expected =
            full(cv::Rect(region.left, region.top, region.width, region.height));
        const cv::Mat whole =
            qb::resize_bilinear_region(qb::whole_image(source), height, width, region);
        CHECK(cv::norm(whole, expected, cv::NORM_INF) == 0);
        // Only the source pixels resize_source_box names are needed.
        const qb::CropBox box =
            qb::resize_source_box(source.rows, source.cols, height, width, region);
        const qb::ImagePart part{source(cv::Rect(box.left, box.top, box.width, box.height)), box,
                                 source.rows, source.cols};
        CHECK(cv::norm(qb::resize_bilinear_region(part, height, width, region), expected,
                       cv::NORM_INF) == 0);
      }
    }
  }
  const qb::ImagePart too_small{image(cv::Rect(10, 10, 20, 20)), {10, 10, 20, 20}, 97, 131};
  CHECK_THROWS_AS(qb::resize_bilinear_region(too_small, 40, 60, {0, 0, 40, 60}),
                  std::invalid_argument);
}

TEST_CASE("Compose fuses Resize and CenterCrop, ToTensor and Normalize, with unchanged values") {
  cv::Mat image(375, 500, CV_8UC3);
  cv::randu(image, 0, 256);
  const qb::Compose pipeline = qb::imagenet_eval_pipeline();
  qb::TransformRng rng(0);
  const cv::Mat stepwise = qb::CenterCrop(224).apply(qb::Resize(256).apply(image, rng), rng);
  CHECK(cv::norm(pipeline.apply_image(image, 0), stepwise, cv::NORM_INF) == 0);
  CHECK(at::equal(pipeline(image, 0),
                  qb::normalize(qb::to_tensor(stepwise), qb::imagenet_normalization())));

  // Resize(256) of 375x500 is 256x341; the crop's rows 16..239 and columns 58..281 read these
  // source pixels.
  const std::optional<qb::CropBox> region = pipeline.source_region(375, 500);
  REQUIRE(region);
  const qb::CropBox read = qb::resize_source_box(375, 500, 256, 341, {16, 58, 224, 224});
  CHECK(std::vector<int>{region->top, region->left, region->height, region->width} ==
        std::vector<int>{read.top, read.left, read.height, read.width});
  CHECK(region->top > 0);
  CHECK(region->top + region->height < 375);
  CHECK(region->left > 0);
  CHECK(region->left + region->width < 500);

  // Random steps, or a crop that needs padding, read the whole image.
  CHECK_FALSE(qb::cifar_train_pipeline().source_region(32, 32));
  qb::Compose padded;
  padded.add(std::make_shared<qb::Resize>(100)).add(std::make_shared<qb::CenterCrop>(120));
  CHECK_FALSE(padded.source_region(375, 500));
  CHECK(padded(image, 0).sizes() == at::IntArrayRef({3, 120, 120}));

  // Normalize still needs one statistic per channel.
  qb::Compose grey_statistics;
  grey_statistics.normalize_with({{0.5}, {0.25}});
  CHECK_THROWS_AS(grey_statistics(image, 0), std::invalid_argument);
  CHECK_THROWS_AS(qb::Compose().normalize_with({{0.5, 0.5}, {0.25}}), std::invalid_argument);
}
