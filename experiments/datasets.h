#pragma once
// Opens the dataset a config section describes ([data] kind, root, ...).

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

}  // namespace qb
