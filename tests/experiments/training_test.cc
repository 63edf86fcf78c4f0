#include "experiments/training.h"

#include <ATen/ATen.h>

#include <cmath>

#include "data/fashion_mnist.h"
#include "models/zoo.h"
#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("learning-rate schedules") {
  TrainOptions options;
  options.learning_rate = 0.1;
  options.epochs = 4;
  options.schedule = "cosine";
  CHECK(scheduled_learning_rate(options, 0) == Approx(0.1));
  CHECK(scheduled_learning_rate(options, 2) == Approx(0.05));
  options.schedule = "step";
  options.step_epochs = 2;
  options.gamma = 0.5;
  CHECK(scheduled_learning_rate(options, 1) == Approx(0.1));
  CHECK(scheduled_learning_rate(options, 3) == Approx(0.05));
  options.schedule = "linear";
  CHECK_THROWS_WITH(scheduled_learning_rate(options, 0),
                    "unknown learning-rate schedule 'linear' (known: cosine, step, constant)");
  // Once a SIGFPE (a division by zero), nothing printed.
  options.schedule = "step";
  options.step_epochs = 0;
  CHECK_THROWS_WITH(scheduled_learning_rate(options, 3), "step_epochs must be >= 1");
}

TEST_CASE("a data set with more classes than the model has logits is an error before training") {
  FashionMnistOptions data;
  data.limit = 64;
  FashionMnist train("train", data);
  ZooOptions zoo;
  zoo.num_classes = 5;
  GraphModule gm = fmnist_resnet8(zoo);
  TrainOptions options;
  options.epochs = 1;
  options.show_progress = false;
  // Once "Target 10 is out of bounds." and a 40-frame LibTorch backtrace.
  CHECK_THROWS_WITH(train_classifier(gm, train, nullptr, options),
                    "the model gives 5 logits, but " + train.describe() + " has 10 classes");
}

// Two short epochs on 1,024 real Fashion-MNIST images: the loss must fall, and
// the same seeds must give bit-identical weights.
TEST_CASE("a short training run lowers the loss and is reproducible") {
  FashionMnistOptions data;
  data.limit = 1024;
  FashionMnist train("train", data);
  TrainOptions options;
  options.epochs = 2;
  options.batch_size = 64;
  options.learning_rate = 0.05;
  options.schedule = "constant";
  options.horizontal_flip = true;
  options.seed = 3;
  options.show_progress = false;

  auto train_once = [&] {
    ZooOptions zoo;
    zoo.num_classes = 10;
    zoo.seed = 5;
    GraphModule gm = fmnist_resnet8(zoo);
    auto history = train_classifier(gm, train, nullptr, options);
    return std::make_pair(std::move(gm), history);
  };
  auto [gm, history] = train_once();
  REQUIRE(history.size() == 2);
  INFO("epoch losses " << history[0].train_loss << " -> " << history[1].train_loss);
  CHECK(history[1].train_loss < 0.8 * history[0].train_loss);
  CHECK(history[1].train_loss < std::log(10.0));  // better than guessing among 10 classes
  CHECK(history[0].test_top1_percent == -1.0);
  CHECK_FALSE(gm.module("fc").training());
  CHECK_FALSE(gm.module("fc").tensor("weight").requires_grad());

  auto [again, history_again] = train_once();
  CHECK(history_again[1].train_loss == history[1].train_loss);
  CHECK(at::equal(again.module("conv1").tensor("weight"), gm.module("conv1").tensor("weight")));
}

}  // namespace
}  // namespace qb
