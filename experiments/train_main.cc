// bazel run //experiments:train -- experiments/train_quickstart.toml
// Trains a zoo model as the TOML file says, then writes the checkpoint and a
// JSON sidecar recording what produced it.

#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "base/read_file.h"
#include "data/dataset.h"
#include "eval/environment.h"
#include "experiments/config.h"
#include "experiments/datasets.h"
#include "experiments/error_message.h"
#include "experiments/paths.h"
#include "experiments/training.h"
#include "models/checkpoint.h"
#include "models/zoo.h"

namespace qb {
namespace {

int train_main(const std::string& config_path) {
  Config config = Config::from_file(config_path);
  ZooOptions zoo;
  std::string architecture = config.get_string("model.architecture");
  zoo.num_classes = config.get_int("model.num_classes", kClassRange, zoo.num_classes);
  if (config.has("model.in_channels")) zoo.in_channels = config.get_int("model.in_channels", kChannelRange);
  zoo.seed = static_cast<uint64_t>(config.get_int("model.init_seed", kSeedRange, 0));

  TrainOptions options;
  options.epochs = config.get_int("train.epochs", {1, 100000});
  options.batch_size = config.get_int("train.batch_size", kBatchSizeRange, options.batch_size);
  options.learning_rate = config.get_double("train.learning_rate", options.learning_rate);
  options.momentum = config.get_double("train.momentum", options.momentum);
  options.weight_decay = config.get_double("train.weight_decay", options.weight_decay);
  options.nesterov = config.get_bool("train.nesterov", options.nesterov);
  options.schedule = config.get_string("train.schedule", options.schedule);
  options.step_epochs = config.get_int("train.step_epochs", {1, 100000}, options.step_epochs);
  options.gamma = config.get_double("train.gamma", options.gamma);
  options.horizontal_flip = config.get_bool("train.horizontal_flip", options.horizontal_flip);
  options.seed = static_cast<uint64_t>(config.get_int("train.seed", kSeedRange, 0));
  const int threads = static_cast<int>(config.get_int("train.threads", kThreadRange, 1));
  std::string checkpoint = resolve_config_path(config.get_string("output.checkpoint"));
  try {
    scheduled_learning_rate(options, 0);
  } catch (const std::invalid_argument& e) {
    throw config.error("train.schedule", e.what());
  }

  DatasetOpener open_train = read_dataset(config, "data", "train");
  DatasetOpener open_test = read_dataset(config, "data", "test");
  config.reject_unknown_keys();
  GraphModule gm = build_model(architecture, zoo);
  std::unique_ptr<Dataset> train = open_train();
  std::unique_ptr<Dataset> test = open_test();
  if (train->num_classes() > zoo.num_classes) {
    throw config.error("model.num_classes", std::to_string(zoo.num_classes) + " classes, but " + train->describe() +
                                                " has " + std::to_string(train->num_classes()));
  }

  at::set_num_threads(threads);
  std::cerr << "training " << architecture << " on " << train->describe() << "\n";
  auto start = std::chrono::steady_clock::now();
  std::vector<EpochStats> history = train_classifier(gm, *train, test.get(), options);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::filesystem::create_directories(std::filesystem::path(checkpoint).parent_path());
  write_state_dict(checkpoint, gm.state_dict());

  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : history) {
    epochs.push_back({{"epoch", e.epoch},
                      {"learning_rate", e.learning_rate},
                      {"train_loss", e.train_loss},
                      {"train_top1", e.train_top1_percent},
                      {"test_top1", e.test_top1_percent},
                      {"seconds", e.seconds}});
  }
  nlohmann::json sidecar = {
      {"checkpoint", std::filesystem::path(checkpoint).filename().string()},
      {"architecture", architecture},
      {"config_file", config_path},
      {"config", read_file(config_path).value_or("")},
      {"seed", options.seed},
      {"init_seed", zoo.seed},
      {"epochs", options.epochs},
      {"final_test_top1", history.back().test_top1_percent},
      {"wall_time_s", seconds},
      {"history", epochs},
      {"environment", to_json(capture_environment(workspace_dir()))}};
  write_file_atomically(checkpoint + ".json", sidecar.dump(2) + "\n");
  std::printf("wrote %s (test top-1 %.2f%%, %.0f s)\n", checkpoint.c_str(),
              history.back().test_top1_percent, seconds);
  return 0;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  const bool debug = qb::debug_requested(argc, argv);
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) != "--debug") files.push_back(argv[i]);
  }
  if (files.size() != 1) {
    std::fprintf(stderr, "usage: bazel run //experiments:train -- CONFIG.toml [--debug]\n");
    return 2;
  }
  const std::string config = files[0];
  try {
    return qb::train_main(qb::resolve_user_path(config));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", qb::error_message(e, debug).c_str());
    return 1;
  }
}
