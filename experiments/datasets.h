#pragma once
// Opens the dataset a config section describes ([data] kind, root, ...).

#include <functional>
#include <memory>
#include <string>

#include "data/dataset.h"
#include "experiments/config.h"

namespace qb {

/// The `split` of the dataset described under `section` (e.g. "data").
/// Kinds: fashion_mnist, cifar10, cifar100, imagenet, synthetic (keys shape, size, num_classes,
/// seed: random images for latency-only sweeps); keys: kind, root, mean, std, limit,
/// transforms (torchvision-style names, see data/transform_spec.h), seed (of random transforms),
/// label (CIFAR-100), layout, images_dir, labels_file, synset_mapping, devkit_wnids,
/// cache_dir, skip_corrupt (ImageNet). ImageNet's transforms default to Resize(256),
/// CenterCrop(224) and its mean/std to ImageNet's; the others normalise only, unless given
/// transforms.
std::unique_ptr<Dataset> open_dataset(Config& config, const std::string& section,
                                      const std::string& split);

/// Opens the data set read_dataset read the keys of.
using DatasetOpener = std::function<std::unique_ptr<Dataset>()>;
/// Reads and checks the keys under `section` now and opens nothing: the files are read when
/// the opener is called (so a file's every key can be checked before any data is loaded).
DatasetOpener read_dataset(Config& config, const std::string& section, const std::string& split);

}  // namespace qb
