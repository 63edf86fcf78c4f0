#pragma once
// Supervised training of a zoo model on CPU: SGD with momentum, weight decay
// and a learning-rate schedule, seeded so the same config gives the same model.

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "quant/graph_module.h"

namespace qb {

struct TrainOptions {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  double learning_rate = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  /// "cosine" (per epoch, to 0), "step" (x gamma every step_epochs) or "constant".
  std::string schedule = "cosine";
  int64_t step_epochs = 1;
  double gamma = 0.1;
  /// Random horizontal flips of training images.
  bool horizontal_flip = false;
  /// Seeds the shuffling and augmentation; weights are seeded by the zoo builder.
  uint64_t seed = 0;
  /// Stop after this many batches per epoch (0: all); for quick checks and tests.
  int64_t max_batches_per_epoch = 0;
  /// Show a progress bar per epoch.
  bool show_progress = true;
};

struct EpochStats {
  int64_t epoch = 0;  // 1-based
  double learning_rate = 0.0;
  double train_loss = 0.0;
  double train_top1_percent = 0.0;
  double test_top1_percent = 0.0;  // < 0 when no test set was given
  double seconds = 0.0;
};

/// The learning rate of a 0-based epoch under `options`' schedule.
double scheduled_learning_rate(const TrainOptions& options, int64_t epoch);

/// Trains `gm` in place and returns per-epoch statistics; `test` (may be null) is
/// evaluated after each epoch. Leaves `gm` in eval mode with gradients off.
std::vector<EpochStats> train_classifier(GraphModule& gm, const Dataset& train,
                                         const Dataset* test, const TrainOptions& options);

}  // namespace qb
