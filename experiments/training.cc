#include "experiments/training.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "data/batches.h"
#include "eval/accuracy.h"
#include "eval/progress.h"
#include "quant/interpreter.h"

namespace qb {

double scheduled_learning_rate(const TrainOptions& options, int64_t epoch) {
  if (options.schedule == "constant") return options.learning_rate;
  if (options.schedule == "step") {
    if (options.step_epochs < 1) throw std::invalid_argument("step_epochs must be >= 1");
    return options.learning_rate * std::pow(options.gamma, epoch / options.step_epochs);
  }
  if (options.schedule == "cosine") {
    return options.learning_rate * 0.5 *
           (1.0 + std::cos(M_PI * static_cast<double>(epoch) / static_cast<double>(options.epochs)));
  }
  throw std::invalid_argument("unknown learning-rate schedule '" + options.schedule +
                              "' (known: cosine, step, constant)");
}

namespace {

// Flips each image of the batch left-right with probability 1/2, from a generator
// seeded per (seed, epoch, batch) so the augmentation does not depend on timing.
at::Tensor random_horizontal_flip(const at::Tensor& images, uint64_t seed, int64_t epoch,
                                  int64_t batch) {
  at::Generator generator =
      at::detail::createCPUGenerator(seed * 1000003ULL + static_cast<uint64_t>(epoch) * 10007ULL +
                                     static_cast<uint64_t>(batch));
  at::Tensor flip = at::bernoulli(at::full({images.size(0), 1, 1, 1}, 0.5), generator).to(at::kBool);
  return at::where(flip, images.flip({3}), images);
}

void set_requires_grad(const GraphModule& gm, bool on) {
  for (auto& [name, parameter] : gm.parameters()) parameter.requires_grad_(on);
}

}  // namespace

std::vector<EpochStats> train_classifier(GraphModule& gm, const Dataset& train,
                                         const Dataset* test, const TrainOptions& options) {
  if (options.epochs < 1) throw std::invalid_argument("epochs must be >= 1");
  if (options.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
  scheduled_learning_rate(options, 0);  // rejects an unknown schedule before any work
  if (train.size() == 0) throw std::invalid_argument(train.describe() + ": no examples to train on");
  {
    // Labels must index the model's logits: otherwise every batch fails in the loss. In eval
    // mode, so that BatchNorm's statistics do not see this image.
    at::NoGradGuard no_grad;
    gm.train(false);
    const at::Tensor logits = Interpreter(gm).run(train.image(0).unsqueeze(0));
    if (logits.dim() != 2 || logits.size(1) < train.num_classes()) {
      throw std::invalid_argument("the model gives " + std::to_string(logits.size(-1)) + " logits, but " +
                                  train.describe() + " has " + std::to_string(train.num_classes()) + " classes");
    }
  }

  std::vector<at::Tensor> parameters;
  for (auto& [name, parameter] : gm.parameters()) parameters.push_back(parameter);
  set_requires_grad(gm, true);
  torch::optim::SGD optimizer(parameters, torch::optim::SGDOptions(options.learning_rate)
                                              .momentum(options.momentum)
                                              .weight_decay(options.weight_decay)
                                              .nesterov(options.nesterov));
  Interpreter interpreter(gm);
  std::vector<EpochStats> history;

  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    EpochStats stats;
    stats.epoch = epoch + 1;
    stats.learning_rate = scheduled_learning_rate(options, epoch);
    static_cast<torch::optim::SGDOptions&>(optimizer.param_groups()[0].options())
        .lr(stats.learning_rate);

    gm.train(true);
    Batches batches(train, epoch_order(train.size(), /*shuffle=*/true, options.seed, epoch),
                    options.batch_size, /*drop_last=*/true);
    int64_t num_batches = batches.size();
    if (options.max_batches_per_epoch > 0) {
      num_batches = std::min(num_batches, options.max_batches_per_epoch);
    }
    Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                      num_batches * options.batch_size);
    AccuracyCounts counts;
    for (int64_t i = 0; i < num_batches; ++i) {
      Batch batch = batches.batch(i);
      at::Tensor images = batch.images;
      if (options.horizontal_flip) {
        images = random_horizontal_flip(images, options.seed, epoch, i);
      }
      optimizer.zero_grad();
      at::Tensor logits = interpreter.run(images);
      at::Tensor loss = at::cross_entropy_loss(logits, batch.labels);
      loss.backward();
      optimizer.step();
      {
        at::NoGradGuard no_grad;
        accumulate(counts, logits.detach(), batch.labels);
      }
      if (options.show_progress && (i % 10 == 0 || i + 1 == num_batches)) {
        char detail[64];
        std::snprintf(detail, sizeof detail, "loss %.4f", counts.mean_loss());
        progress.update(counts.examples, detail);
      }
    }
    gm.train(false);
    stats.train_loss = counts.mean_loss();
    stats.train_top1_percent = counts.top1_percent();
    stats.test_top1_percent = -1.0;
    if (test) {
      set_requires_grad(gm, false);
      AccuracyOptions eval_options;
      stats.test_top1_percent =
          evaluate_accuracy([&](const at::Tensor& x) { return interpreter.run(x); }, *test,
                            eval_options)
              .top1_percent();
      set_requires_grad(gm, true);
    }
    stats.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.show_progress) {
      char detail[160];
      std::snprintf(detail, sizeof detail, "lr %.4f  loss %.4f  train top-1 %.2f%%  test top-1 %.2f%%",
                    stats.learning_rate, stats.train_loss, stats.train_top1_percent,
                    stats.test_top1_percent);
      progress.finish(detail);
    }
    history.push_back(stats);
  }
  set_requires_grad(gm, false);
  return history;
}

}  // namespace qb
