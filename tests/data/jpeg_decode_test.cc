// Decoding part of a JPEG: every decoded pixel must equal a full decode's (cv::imdecode, as the
// loaders used before), for every chroma subsampling, progressive files, photographs, and regions
// anywhere in the image, including its edges.

#include "data/jpeg_decode.h"

// <cstdio> first: jpeglib.h uses FILE and size_t without including their headers.
#include <cstdio>
#include <jpeglib.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace {

/// Smooth colour regions and noise, so every block carries detail in all three components.
cv::Mat test_image(int height, int width, uint32_t seed) {
  cv::Mat image(height, width, CV_8UC3);
  cv::theRNG().state = seed;
  cv::randn(image, cv::Scalar(120, 110, 100), cv::Scalar(60, 60, 60));
  cv::GaussianBlur(image, image, cv::Size(0, 0), 1.5);
  cv::Mat noise(height, width, CV_8UC3);
  cv::randu(noise, 0, 40);
  return image + noise;
}

/// An RGB image as a JPEG with the luma sampling factors (h, v) against 1x1 chroma; OpenCV 4.6's
/// encoder offers only 4:2:0, so libjpeg is driven directly.
std::vector<uint8_t> encode(const cv::Mat& rgb, int quality, int h, int v, bool progressive) {
  jpeg_compress_struct info;
  jpeg_error_mgr errors;
  info.err = jpeg_std_error(&errors);
  jpeg_create_compress(&info);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = static_cast<JDIMENSION>(rgb.cols);
  info.image_height = static_cast<JDIMENSION>(rgb.rows);
  info.input_components = 3;
  info.in_color_space = JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, quality, TRUE);
  info.comp_info[0].h_samp_factor = h;
  info.comp_info[0].v_samp_factor = v;
  if (progressive) jpeg_simple_progression(&info);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb.ptr<uint8_t>(static_cast<int>(info.next_scanline)));
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::vector<uint8_t> bytes(buffer, buffer + size);
  std::free(buffer);
  return bytes;
}

/// The reference: the whole file through cv::imdecode, as RGB.
cv::Mat full_decode(const std::vector<uint8_t>& bytes) {
  const cv::Mat bgr = cv::imdecode(
      cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data())),
      cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  REQUIRE_FALSE(bgr.empty());
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

qb::ImagePart decode_box(const std::vector<uint8_t>& bytes, const qb::CropBox& box) {
  std::optional<qb::ImagePart> part = qb::decode_jpeg_part(
      bytes.data(), bytes.size(), [&box](int, int) { return std::optional<qb::CropBox>(box); },
      "test.jpg");
  REQUIRE(part);
  return *part;
}

/// Whether `part` covers `wanted` and holds exactly the full decode's pixels where it lies.
bool matches(const qb::ImagePart& part, const cv::Mat& full, const qb::CropBox& wanted) {
  const qb::CropBox& box = part.box;
  if (part.height != full.rows || part.width != full.cols) return false;
  if (box.top > wanted.top || box.left > wanted.left ||
      box.top + box.height < wanted.top + wanted.height ||
      box.left + box.width < wanted.left + wanted.width) {
    return false;
  }
  if (part.pixels.rows != box.height || part.pixels.cols != box.width) return false;
  const cv::Mat expected = full(cv::Rect(box.left, box.top, box.width, box.height));
  return cv::norm(part.pixels, expected, cv::NORM_INF) == 0;
}

/// Random boxes, a third of them touching an edge of the image, plus the whole image.
std::vector<qb::CropBox> random_boxes(int height, int width, int count, std::mt19937& random) {
  std::vector<qb::CropBox> boxes = {{0, 0, height, width}};
  for (int i = 0; i < count; ++i) {
    qb::CropBox box;
    box.height = 1 + static_cast<int>(random() % height);
    box.width = 1 + static_cast<int>(random() % width);
    box.top = static_cast<int>(random() % (height - box.height + 1));
    box.left = static_cast<int>(random() % (width - box.width + 1));
    switch (i % 6) {
      case 0:
        box.top = 0;
        break;
      case 1:
        box.left = width - box.width;
        break;
      case 2:
        box.top = height - box.height;
        break;
      default:
        break;
    }
    boxes.push_back(box);
  }
  return boxes;
}

void check_regions(const std::vector<uint8_t>& bytes, int count, std::mt19937& random) {
  const cv::Mat full = full_decode(bytes);
  for (const qb::CropBox& box : random_boxes(full.rows, full.cols, count, random)) {
    INFO("box top " << box.top << " left " << box.left << " height " << box.height << " width "
                    << box.width);
    CHECK(matches(decode_box(bytes, box), full, box));
  }
}

}  // namespace

TEST_CASE("decoding a region gives a full decode's pixels for every subsampling") {
  std::mt19937 random(11);
  // (h, v) luma sampling: 4:4:4, 4:2:2, 4:2:0, 4:4:0 and 4:1:1.
  const std::vector<std::pair<int, int>> samplings = {{1, 1}, {2, 1}, {2, 2}, {1, 2}, {4, 1}};
  const std::vector<std::pair<int, int>> sizes = {{375, 500}, {500, 333}, {37, 61},  {16, 16},
                                                  {1, 9},     {9, 1},     {257, 129}};
  for (const auto& [h, v] : samplings) {
    for (const auto& [height, width] : sizes) {
      for (bool progressive : {false, true}) {
        for (int quality : {60, 95}) {
          INFO("sampling " << h << "x" << v << ", " << height << "x" << width << ", quality "
                           << quality << (progressive ? ", progressive" : ""));
          const cv::Mat image = test_image(height, width, random());
          check_regions(encode(image, quality, h, v, progressive), 12, random);
        }
      }
    }
  }
}

TEST_CASE("decoding a region matches OpenCV's own JPEGs and the photographs") {
  std::mt19937 random(5);
  for (bool progressive : {false, true}) {
    std::vector<uint8_t> bytes;
    const cv::Mat image = test_image(375, 500, random());
    cv::imencode(".jpg", image, bytes,
                 {cv::IMWRITE_JPEG_QUALITY, 90, cv::IMWRITE_JPEG_PROGRESSIVE, progressive});
    INFO((progressive ? "progressive" : "baseline"));
    check_regions(bytes, 60, random);
  }
  for (const char* name : {"chelsea.jpg", "coffee.jpg"}) {
    INFO(name);
    const std::string bytes = qb::test::read_file(
        qb::test::source_path(std::string("tests/fixtures/transforms/") + name));
    check_regions(std::vector<uint8_t>(bytes.begin(), bytes.end()), 60, random);
  }
}

TEST_CASE("the ImageNet pipeline on a decoded region equals it on the full image") {
  std::mt19937 random(3);
  const qb::Compose pipeline = qb::imagenet_eval_pipeline();
  const std::vector<std::pair<int, int>> sizes = {{375, 500}, {500, 375}, {256, 300},
                                                  {240, 240}, {333, 257}, {1000, 700}};
  for (const auto& [height, width] : sizes) {
    for (const auto& [h, v] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {2, 2}}) {
      INFO(height << "x" << width << ", sampling " << h << "x" << v);
      const std::vector<uint8_t> bytes =
          encode(test_image(height, width, random()), 90, h, v, false);
      const std::optional<qb::CropBox> region = pipeline.source_region(height, width);
      REQUIRE(region);
      const std::optional<qb::ImagePart> part = qb::decode_jpeg_part(
          bytes.data(), bytes.size(),
          [&pipeline](int rows, int cols) { return pipeline.source_region(rows, cols); }, "x.jpg");
      REQUIRE(part);
      CHECK(part->box.height < height);
      CHECK(at::equal(pipeline(*part, 0), pipeline(full_decode(bytes), 0)));
    }
  }
}

TEST_CASE("decode_jpeg_part leaves other images to the caller and names corrupt files") {
  const cv::Mat image = test_image(40, 50, 1);
  std::vector<uint8_t> png;
  cv::imencode(".png", image, png);
  CHECK_FALSE(qb::decode_jpeg_part(png.data(), png.size(), nullptr, "x.png"));

  cv::Mat grey;
  cv::cvtColor(image, grey, cv::COLOR_RGB2GRAY);
  std::vector<uint8_t> grey_jpeg;
  cv::imencode(".jpg", grey, grey_jpeg);
  CHECK_FALSE(qb::decode_jpeg_part(grey_jpeg.data(), grey_jpeg.size(), nullptr, "grey.jpg"));

  const std::string garbage("\xFF\xD8\xFF\xE0garbage, not a JPEG stream\xFF\xD9");
  CHECK_THROWS_WITH(qb::decode_jpeg_part(reinterpret_cast<const uint8_t*>(garbage.data()),
                                         garbage.size(), nullptr, "dir/bad.jpg"),
                    Catch::Matchers::Contains("dir/bad.jpg: cannot be decoded"));
  CHECK_THROWS_AS(qb::decode_jpeg_part(reinterpret_cast<const uint8_t*>(garbage.data()),
                                       garbage.size(), nullptr, "dir/bad.jpg"),
                  qb::DataError);
}
