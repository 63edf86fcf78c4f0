#pragma once
// Top-1 / top-5 accuracy and mean cross-entropy of a classifier over a dataset.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "data/dataset.h"

namespace qb {

/// Counts from which the accuracy figures derive; add batches with `accumulate`.
struct AccuracyCounts {
  int64_t examples = 0;
  int64_t top1_correct = 0;
  int64_t top5_correct = 0;
  double loss_sum = 0.0;

  /// Percentages (0-100), as papers and PyTorch's tutorials report them.
  double top1_percent() const;
  double top5_percent() const;
  double mean_loss() const;
};

/// Adds one batch: logits (N, classes) and int64 labels (N). Top-5 is top-min(5, classes).
void accumulate(AccuracyCounts& counts, const at::Tensor& logits, const at::Tensor& labels);

/// A model as evaluation sees it: a batch of images in, logits out.
using Classifier = std::function<at::Tensor(const at::Tensor&)>;

struct AccuracyOptions {
  int64_t batch_size = 256;
  /// Evaluate the first `limit` examples only; 0 means the whole dataset.
  int64_t limit = 0;
  /// Label for the progress display; empty means none.
  std::string progress_label;
  /// Loader threads decoding batches ahead of the model (the order of examples never changes).
  int workers = 1;
};

/// Runs `classifier` over the dataset in order, without autograd.
AccuracyCounts evaluate_accuracy(const Classifier& classifier, const Dataset& dataset,
                                 const AccuracyOptions& options);

}  // namespace qb
