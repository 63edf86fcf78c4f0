// Transforms named as torchvision writes them: what each name builds, and every error.

#include "data/transform_spec.h"

#include <ATen/ATen.h>

#include <opencv2/core.hpp>
#include <stdexcept>
#include <string>

#include "tests/catch.h"

namespace {

/// A 40x60 RGB image whose every pixel differs, so any geometric change shows.
cv::Mat gradient() {
  cv::Mat image(40, 60, CV_8UC3);
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(3 * x + y),
                                            static_cast<uint8_t>(5 * y), static_cast<uint8_t>(x ^ y));
    }
  }
  return image;
}

/// Whether two transforms give identical images for the same seed, over several seeds.
bool same_output(const qb::ImageTransform& a, const qb::ImageTransform& b) {
  const cv::Mat image = gradient();
  for (uint64_t seed = 0; seed < 8; ++seed) {
    qb::TransformRng rng_a(seed);
    qb::TransformRng rng_b(seed);
    cv::Mat out_a = a.apply(image, rng_a);
    cv::Mat out_b = b.apply(image, rng_b);
    if (out_a.size() != out_b.size() || cv::norm(out_a, out_b, cv::NORM_INF) != 0) return false;
  }
  return true;
}

std::string error_of(const std::string& spec) {
  try {
    qb::parse_transform(spec);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("parse_transform builds what the name and arguments say") {
  CHECK(same_output(*qb::parse_transform("Resize(24)"), qb::Resize(24)));
  CHECK(same_output(*qb::parse_transform(" Resize ( size = 24 ) "), qb::Resize(24)));
  CHECK(same_output(*qb::parse_transform("CenterCrop(30)"), qb::CenterCrop(30)));
  CHECK(same_output(*qb::parse_transform("RandomCrop(32, padding=4)"), qb::RandomCrop(32, 4)));
  CHECK(same_output(*qb::parse_transform("RandomCrop(32)"), qb::RandomCrop(32, 0)));
  CHECK(same_output(*qb::parse_transform("RandomHorizontalFlip()"), qb::RandomHorizontalFlip(0.5)));
  CHECK(same_output(*qb::parse_transform("RandomHorizontalFlip(p=1)"), qb::RandomHorizontalFlip(1)));
  CHECK(same_output(*qb::parse_transform("RandomResizedCrop(16)"), qb::RandomResizedCrop(16)));
  CHECK(same_output(*qb::parse_transform("RandomResizedCrop(16, scale=(0.5, 1.0), ratio=(1, 2))"),
                    qb::RandomResizedCrop(16, {0.5, 1.0}, {1.0, 2.0})));
  // Different arguments really give different images (the comparison can fail).
  CHECK_FALSE(same_output(*qb::parse_transform("Resize(25)"), qb::Resize(24)));
}

TEST_CASE("parse_transform says what is wrong with a spec") {
  CHECK(error_of("Rezise(24)") ==
        "unknown transform 'Rezise' (known: Resize, CenterCrop, RandomResizedCrop, RandomCrop, "
        "RandomHorizontalFlip)");
  CHECK(error_of("Resize()") == "Resize needs argument 'size'");
  CHECK(error_of("Resize(24, 3)") == "Resize takes at most 1 arguments");
  CHECK(error_of("Resize(24.5)") == "Resize: 'size' must be an integer");
  CHECK(error_of("Resize(sise=24)") == "Resize has no argument 'sise'");
  CHECK(error_of("RandomCrop(32, size=4)") == "RandomCrop got 'size' twice");
  CHECK(error_of("RandomCrop(padding=4, 32)") ==
        "has a positional argument after a keyword argument (at character 22)");
  CHECK(error_of("Resize(24") == "expects ',' or ')' (at character 10)");
  CHECK(error_of("Resize(24) x") == "has text after the closing parenthesis (at character 12)");
  CHECK(error_of("Resize(abc=)") == "expects a number (at character 12)");
  CHECK(error_of("RandomResizedCrop(16, scale=0.5)") ==
        "RandomResizedCrop: 'scale' must be a pair (lo, hi)");
  CHECK(error_of("RandomHorizontalFlip(2)") == "RandomHorizontalFlip: p must be in [0, 1]");
  CHECK(error_of("Resize(0)") == "Resize: size must be positive");
  CHECK(error_of("") == "expects a name (at character 1)");
}

TEST_CASE("parse_pipeline chains the steps, then ToTensor and Normalize") {
  const cv::Mat image = gradient();
  qb::Compose parsed = qb::parse_pipeline({"Resize(24)", "CenterCrop(20)"},
                                          qb::imagenet_normalization());
  qb::Compose built;
  built.add(std::make_shared<qb::Resize>(24)).add(std::make_shared<qb::CenterCrop>(20));
  built.normalize_with(qb::imagenet_normalization());
  at::Tensor got = parsed(image, 3);
  CHECK(got.sizes() == at::IntArrayRef{3, 20, 20});
  CHECK(got.equal(built(image, 3)));
  CHECK(qb::parse_pipeline({}, std::nullopt)(image, 0).equal(qb::to_tensor(image)));
  CHECK_THROWS_WITH(qb::parse_pipeline({"Resize(24)", "CenterCrop(x)"}, std::nullopt),
                    "transform 2 (\"CenterCrop(x)\"): expects '=' (at character 13)");
}
