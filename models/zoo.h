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
  /// Builds the model as torchvision.models.quantization does, ready for eager-mode
  /// quantization (quant/eager.h): a QuantStub `quant` after the input and a DeQuantStub
  /// `dequant` before the output (registered last, as QuantizableResNet and
  /// QuantizableMobileNetV2 add them after the float model's modules), residual sums in
  /// FloatFunctional modules (BasicBlock `add_relu`, Bottleneck `skip_add_relu` called as
  /// add_relu, with ReLUs `relu1`/`relu2`; MobileNetV2 `skip_add` called as add), and every
  /// ReLU6 replaced by ReLU (torchvision's _replace_relu). The state_dict is unchanged.
  /// FloatFunctionals are registered only where they are called (torchvision registers
  /// `skip_add` in every inverted residual, and Bottleneck keeps its unused `relu`), as
  /// an FX trace keeps only the modules it calls; none of them holds tensors.
  bool quantizable = false;
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

/// The module groups torchvision's fuse_model() hands to fuse_modules for `architecture`,
/// in the order it does (a ResNet's stem, then per block conv-bn(-relu) and its
/// downsample; MobileNetV2 per inverted residual its projection conv-bn before its
/// conv-bn-relu layers). Meant for the quantizable form; in the plain ResNets a block's
/// relu is called twice, which fuse_modules rejects. Unknown names throw like build_model.
std::vector<std::vector<std::string>> fuse_model_groups(const std::string& architecture);

}  // namespace qb
