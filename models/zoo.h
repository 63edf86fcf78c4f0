#pragma once
// The model zoo: fp32 GraphModules laid out exactly as torch.fx.symbolic_trace
// lays out the torchvision models (same node names and order, same module paths,
// modules registered in state_dict order), so torchvision checkpoints load by
// name and quantization passes see the graphs PyTorch's FX tooling would see.
//
// Weights are initialised as torchvision initialises them, from a generator
// seeded by ZooOptions::seed alone: the same seed always gives the same model.
// Every model is returned in eval mode.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quant/graph_module.h"

namespace qb {

/// What may vary between instances of one architecture.
struct ZooOptions {
  /// Outputs of the final Linear; nothing else depends on it.
  int64_t num_classes = 1000;
  /// Channels the first conv reads; unset means the architecture's own
  /// (1 for fmnist_resnet8, 3 for every other model).
  std::optional<int64_t> in_channels;
  /// Seeds the weight initialisation.
  uint64_t seed = 0;
};

/// torchvision.models.resnet18: BasicBlocks [2, 2, 2, 2].
GraphModule resnet18(const ZooOptions& options);
/// torchvision.models.resnet34: BasicBlocks [3, 4, 6, 3].
GraphModule resnet34(const ZooOptions& options);
/// torchvision.models.resnet50: Bottlenecks [3, 4, 6, 3].
GraphModule resnet50(const ZooOptions& options);
/// torchvision.models.mobilenet_v2 (width 1.0, torchvision 0.14 module layout).
GraphModule mobilenet_v2(const ZooOptions& options);
/// resnet18 for 32x32 images: conv1 is 3x3 stride 1 padding 1 and there is no maxpool.
GraphModule cifar_resnet18(const ZooOptions& options);
/// The quickstart model for 28x28 greyscale images: a small-image ResNet with one
/// BasicBlock per stage at widths 16, 32, 64 (torchvision names throughout).
GraphModule fmnist_resnet8(const ZooOptions& options);

/// The architecture called `architecture` (a name from zoo_architectures());
/// throws std::invalid_argument listing the known names for any other.
GraphModule build_model(const std::string& architecture, const ZooOptions& options);
/// The names build_model accepts, sorted.
std::vector<std::string> zoo_architectures();

}  // namespace qb
