#include "eval/accuracy.h"

#include <ATen/ATen.h>

#include <cmath>

#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("top-1, top-5 and loss on hand-computed logits") {
  // Six classes. Row 0: label 2 is the arg-max. Row 1: label 0 ranks 5th.
  // Row 2: label 1 ranks last (6th).
  at::Tensor logits = at::tensor({0.0f, 1.0f, 9.0f, 2.0f, 3.0f, 4.0f,  //
                                  2.5f, 6.0f, 5.0f, 4.0f, 3.0f, 2.0f,  //
                                  6.0f, 0.0f, 5.0f, 4.0f, 3.0f, 2.0f})
                          .reshape({3, 6});
  at::Tensor labels = at::tensor({2, 0, 1}, at::kLong);
  AccuracyCounts counts;
  accumulate(counts, logits, labels);
  CHECK(counts.examples == 3);
  CHECK(counts.top1_correct == 1);
  CHECK(counts.top5_correct == 2);
  CHECK(counts.top1_percent() == Approx(100.0 / 3));
  CHECK(counts.top5_percent() == Approx(200.0 / 3));

  double expected_loss = 0.0;
  auto rows = logits.accessor<float, 2>();
  int64_t label_of[3] = {2, 0, 1};
  for (int r = 0; r < 3; ++r) {
    double sum = 0.0;
    for (int c = 0; c < 6; ++c) sum += std::exp(rows[r][c]);
    expected_loss += std::log(sum) - rows[r][label_of[r]];
  }
  CHECK(counts.mean_loss() == Approx(expected_loss / 3).epsilon(1e-6));
}

TEST_CASE("top-5 with fewer than five classes counts every example") {
  AccuracyCounts counts;
  accumulate(counts, at::tensor({0.1f, 0.9f, 0.8f, 0.2f}).reshape({2, 2}),
             at::tensor({0, 0}, at::kLong));
  CHECK(counts.top1_correct == 1);
  CHECK(counts.top5_correct == 2);
}

TEST_CASE("empty counts report zero, not NaN") {
  AccuracyCounts counts;
  CHECK(counts.top1_percent() == 0.0);
  CHECK(counts.mean_loss() == 0.0);
}

TEST_CASE("accumulate rejects mismatched shapes") {
  AccuracyCounts counts;
  CHECK_THROWS(accumulate(counts, at::zeros({2, 3}), at::zeros({3}, at::kLong)));
}

/// Example i is a 1x1x1 image holding i, labelled i mod 3.
class Counting : public Dataset {
 public:
  int64_t size() const override { return 10; }
  int64_t num_classes() const override { return 3; }
  at::Tensor image(int64_t index) const override {
    return at::full({1, 1, 1}, static_cast<float>(index));
  }
  int64_t label(int64_t index) const override { return index % 3; }
  std::string describe() const override { return "counting"; }
  uint64_t fingerprint() const override { return 10; }
  uint64_t content_hash(int64_t index) const override { return static_cast<uint64_t>(index); }
};

TEST_CASE("evaluate_accuracy visits every example in order, whatever the workers") {
  // Predicts class 0 always: right for examples 0, 3, 6, 9; the images must arrive in order
  // for the classifier's check of their values to hold.
  int64_t next = 0;
  Classifier constant = [&](const at::Tensor& images) {
    for (int64_t i = 0; i < images.size(0); ++i) CHECK(images[i].item<float>() == next++);
    at::Tensor logits = at::zeros({images.size(0), 3});
    logits.select(1, 0).fill_(1.0f);
    return logits;
  };
  for (int workers : {1, 2}) {
    next = 0;
    AccuracyOptions options;
    options.batch_size = 4;
    options.workers = workers;
    AccuracyCounts counts = evaluate_accuracy(constant, Counting(), options);
    CHECK(counts.examples == 10);
    CHECK(counts.top1_correct == 4);
    CHECK(counts.top5_correct == 10);
    options.limit = 5;
    next = 0;
    CHECK(evaluate_accuracy(constant, Counting(), options).top1_correct == 2);
  }
}

}  // namespace
}  // namespace qb
