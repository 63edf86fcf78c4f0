#include "models/zoo.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>

#include "quant/modules.h"
#include "quant/stubs.h"

namespace qb {

namespace {

// ---------------------------------------------------------------------------
// Building blocks shared by every architecture.

// The path of child `name` of the module at `prefix`.
std::string child(const std::string& prefix, const std::string& name) {
  return prefix + "." + name;
}

// A bias-free convolution with "same" padding: every conv in the zoo feeds a
// BatchNorm, whose shift makes a conv bias redundant (torchvision omits it too).
std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                             int64_t groups = 1) {
  Conv2dOptions options;
  options.in_channels = in;
  options.out_channels = out;
  options.kernel_size = kernel;
  options.stride = stride;
  options.padding = (kernel - 1) / 2;
  options.groups = groups;
  options.bias = false;
  return std::make_shared<Conv2d>(options);
}

// Registers `module` at `path` and calls it on `input`; returns the new node's
// name. Only for layers whose registration order equals their call order.
std::string add_and_call(GraphModule& gm, const std::string& path,
                         std::shared_ptr<Module> module, const std::string& input) {
  gm.add_module(path, std::move(module));
  return gm.graph.call_module(path, {input});
}

// nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu"), which
// both ResNet and MobileNetV2 apply to every conv: N(0, 2 / fan_out).
void kaiming_normal_fan_out(const at::Tensor& weight, at::Generator& generator) {
  const double fan_out = static_cast<double>(weight.numel() / weight.size(1));
  weight.normal_(0.0, std::sqrt(2.0 / fan_out), generator);
}

// torch.flatten(x, 1): what every classifier head does before its Linear.
std::string flatten(GraphModule& gm, const std::string& input) {
  return gm.graph.call_function("flatten", {input}, {{"start_dim", int64_t{1}}});
}

// The quantizable models' forward() starts with self.quant(x); the stub itself is
// registered later, by register_stubs_and_dequantize.
std::string call_quant(GraphModule& gm, const std::string& x) {
  return gm.graph.call_module("quant", {x});
}

// QuantizableResNet and QuantizableMobileNetV2 add `quant` and `dequant` after the float
// model's modules, so they come last in the state_dict order; forward() ends with
// self.dequant(x).
std::string register_stubs_and_dequantize(GraphModule& gm, const std::string& x) {
  gm.add_module("quant", std::make_shared<QuantStub>());
  return add_and_call(gm, "dequant", std::make_shared<DeQuantStub>(), x);
}

// ---------------------------------------------------------------------------
// ResNet (torchvision/models/resnet.py). Each block registers its modules in
// __init__ order (the state_dict order), then adds nodes in forward() order.

// The downsample branch on the identity path (1x1 conv + BN), when a block
// changes resolution or width.
void register_downsample(GraphModule& gm, const std::string& block, int64_t in, int64_t out,
                         int64_t stride) {
  gm.add_module(child(block, "downsample.0"), conv(in, out, 1, stride));
  gm.add_module(child(block, "downsample.1"), std::make_shared<BatchNorm2d>(out));
}

// The identity path's value: the block input, or its downsampled form.
std::string identity(Graph& graph, const std::string& block, const std::string& x,
                     bool downsample) {
  if (!downsample) return x;
  std::string out = graph.call_module(child(block, "downsample.0"), {x});
  return graph.call_module(child(block, "downsample.1"), {out});
}

// One residual block as ResNet._make_layer lays it out.
struct ResNetBlock {
  std::string path;  // "layer2.0"
  int64_t in;        // input channels
  int64_t planes;
  int64_t stride;
  bool downsample;
};

// torchvision's BasicBlock: two 3x3 convs. Its single `relu` module runs twice,
// so FX names the second call `<block>_relu_1`. QuantizableBasicBlock joins the
// residual with its FloatFunctional `add_relu` instead of operator.add and relu.
std::string basic_block(GraphModule& gm, const ResNetBlock& b, const std::string& x,
                        bool quantizable) {
  const std::string& block = b.path;
  gm.add_module(child(block, "conv1"), conv(b.in, b.planes, 3, b.stride));
  gm.add_module(child(block, "bn1"), std::make_shared<BatchNorm2d>(b.planes));
  gm.add_module(child(block, "relu"), std::make_shared<ReLU>());
  gm.add_module(child(block, "conv2"), conv(b.planes, b.planes, 3, 1));
  gm.add_module(child(block, "bn2"), std::make_shared<BatchNorm2d>(b.planes));
  if (b.downsample) register_downsample(gm, block, b.in, b.planes, b.stride);
  if (quantizable) {
    gm.add_module(child(block, "add_relu"), std::make_shared<FloatFunctional>("add_relu"));
  }

  Graph& graph = gm.graph;
  auto call = [&](const char* name, std::vector<std::string> inputs) {
    return graph.call_module(child(block, name), std::move(inputs));
  };
  std::string out = call("relu", {call("bn1", {call("conv1", {x})})});
  out = call("bn2", {call("conv2", {out})});
  std::string shortcut = identity(graph, block, x, b.downsample);
  if (quantizable) return call("add_relu", {out, shortcut});
  return call("relu", {graph.call_function("add", {out, shortcut})});
}

// torchvision's Bottleneck: 1x1 down to `planes`, 3x3 (carrying the stride, as
// in ResNet v1.5), 1x1 up to 4 * planes; one `relu` module called three times.
// QuantizableBottleneck calls its own `relu1` and `relu2` and joins the residual
// with the FloatFunctional `skip_add_relu` (its inherited `relu` goes unused).
std::string bottleneck(GraphModule& gm, const ResNetBlock& b, const std::string& x,
                       bool quantizable) {
  const std::string& block = b.path;
  const int64_t out_channels = 4 * b.planes;
  gm.add_module(child(block, "conv1"), conv(b.in, b.planes, 1, 1));
  gm.add_module(child(block, "bn1"), std::make_shared<BatchNorm2d>(b.planes));
  gm.add_module(child(block, "conv2"), conv(b.planes, b.planes, 3, b.stride));
  gm.add_module(child(block, "bn2"), std::make_shared<BatchNorm2d>(b.planes));
  gm.add_module(child(block, "conv3"), conv(b.planes, out_channels, 1, 1));
  gm.add_module(child(block, "bn3"), std::make_shared<BatchNorm2d>(out_channels));
  if (!quantizable) gm.add_module(child(block, "relu"), std::make_shared<ReLU>());
  if (b.downsample) register_downsample(gm, block, b.in, out_channels, b.stride);
  if (quantizable) {
    gm.add_module(child(block, "skip_add_relu"), std::make_shared<FloatFunctional>("add_relu"));
    gm.add_module(child(block, "relu1"), std::make_shared<ReLU>());
    gm.add_module(child(block, "relu2"), std::make_shared<ReLU>());
  }

  Graph& graph = gm.graph;
  auto call = [&](const char* name, std::vector<std::string> inputs) {
    return graph.call_module(child(block, name), std::move(inputs));
  };
  std::string out = call(quantizable ? "relu1" : "relu", {call("bn1", {call("conv1", {x})})});
  out = call(quantizable ? "relu2" : "relu", {call("bn2", {call("conv2", {out})})});
  out = call("bn3", {call("conv3", {out})});
  std::string shortcut = identity(graph, block, x, b.downsample);
  if (quantizable) return call("skip_add_relu", {out, shortcut});
  return call("relu", {graph.call_function("add", {out, shortcut})});
}

enum class Block { kBasic, kBottleneck };

// How the image reaches the first stage.
enum class Stem {
  kImageNet,    // conv1 7x7 stride 2, bn1, relu, maxpool 3x3 stride 2
  kSmallImage,  // conv1 3x3 stride 1, bn1, relu: 32x32 and 28x28 inputs keep their resolution
};

struct ResNetSpec {
  Block block;
  Stem stem;
  std::vector<int64_t> blocks_per_stage;
  std::vector<int64_t> stage_widths;  // `planes` of each stage; the first is the stem's width
  int64_t default_in_channels;
};

// The zoo's ResNets by architecture name.
const std::map<std::string, ResNetSpec>& resnet_specs() {
  static const std::map<std::string, ResNetSpec> specs = {
      {"resnet18", {Block::kBasic, Stem::kImageNet, {2, 2, 2, 2}, {64, 128, 256, 512}, 3}},
      {"resnet34", {Block::kBasic, Stem::kImageNet, {3, 4, 6, 3}, {64, 128, 256, 512}, 3}},
      {"resnet50", {Block::kBottleneck, Stem::kImageNet, {3, 4, 6, 3}, {64, 128, 256, 512}, 3}},
      {"cifar_resnet18", {Block::kBasic, Stem::kSmallImage, {2, 2, 2, 2}, {64, 128, 256, 512}, 3}},
      {"fmnist_resnet8", {Block::kBasic, Stem::kSmallImage, {1, 1, 1}, {16, 32, 64}, 1}},
  };
  return specs;
}

// ResNet._make_layer for every stage: only a stage's first block changes stride or width.
std::vector<ResNetBlock> resnet_blocks(const ResNetSpec& spec) {
  const int64_t expansion = spec.block == Block::kBottleneck ? 4 : 1;
  std::vector<ResNetBlock> blocks;
  int64_t channels = spec.stage_widths.front();
  for (size_t stage = 0; stage < spec.stage_widths.size(); ++stage) {
    const int64_t planes = spec.stage_widths[stage];
    for (int64_t index = 0; index < spec.blocks_per_stage[stage]; ++index) {
      const int64_t stride = stage > 0 && index == 0 ? 2 : 1;
      blocks.push_back({"layer" + std::to_string(stage + 1) + "." + std::to_string(index),
                        channels, planes, stride, stride != 1 || channels != planes * expansion});
      channels = planes * expansion;
    }
  }
  return blocks;
}

// torchvision's ResNet.__init__ loop over self.modules(); Linear keeps
// nn.Linear's default, kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// and BatchNorm's constructor values (weight 1, bias 0) are already torchvision's.
void init_resnet(const GraphModule& gm, at::Generator& generator) {
  for (const auto& entry : gm.modules()) {
    const Module* module = entry.second.get();
    if (dynamic_cast<const Conv2d*>(module)) {
      kaiming_normal_fan_out(module->tensor("weight"), generator);
    } else if (dynamic_cast<const Linear*>(module)) {
      const at::Tensor& weight = module->tensor("weight");
      const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
      weight.uniform_(-bound, bound, generator);
      module->tensor("bias").uniform_(-bound, bound, generator);
    }
  }
}

GraphModule build_resnet(const ResNetSpec& spec, const ZooOptions& options) {
  const int64_t expansion = spec.block == Block::kBottleneck ? 4 : 1;
  const int64_t stem_width = spec.stage_widths.front();
  const int64_t in_channels = options.in_channels.value_or(spec.default_in_channels);

  GraphModule gm;
  std::string x = gm.graph.placeholder("x");
  if (options.quantizable) x = call_quant(gm, x);
  const bool imagenet = spec.stem == Stem::kImageNet;
  x = add_and_call(gm, "conv1", conv(in_channels, stem_width, imagenet ? 7 : 3, imagenet ? 2 : 1),
                   x);
  x = add_and_call(gm, "bn1", std::make_shared<BatchNorm2d>(stem_width), x);
  x = add_and_call(gm, "relu", std::make_shared<ReLU>(), x);
  if (imagenet) x = add_and_call(gm, "maxpool", std::make_shared<MaxPool2d>(3, 2, 1), x);

  for (const ResNetBlock& block : resnet_blocks(spec)) {
    x = spec.block == Block::kBasic ? basic_block(gm, block, x, options.quantizable)
                                    : bottleneck(gm, block, x, options.quantizable);
  }

  const int64_t channels = spec.stage_widths.back() * expansion;
  x = add_and_call(gm, "avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1), x);
  x = flatten(gm, x);
  x = add_and_call(gm, "fc", std::make_shared<Linear>(channels, options.num_classes), x);
  if (options.quantizable) x = register_stubs_and_dequantize(gm, x);
  gm.graph.output({x});

  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  init_resnet(gm, generator);
  gm.train(false);
  return gm;
}

// ---------------------------------------------------------------------------
// MobileNetV2 (torchvision/models/mobilenetv2.py, torchvision 0.14 layout).

// Conv2dNormActivation(in, out, kernel, stride, groups, activation=ReLU6):
// children .0 conv, .1 BatchNorm, .2 ReLU6 (ReLU in the quantizable form).
std::string conv_bn_activation(GraphModule& gm, const std::string& prefix, const std::string& x,
                               int64_t in, int64_t out, int64_t kernel, int64_t stride,
                               bool quantizable, int64_t groups = 1) {
  std::string y = add_and_call(gm, child(prefix, "0"), conv(in, out, kernel, stride, groups), x);
  y = add_and_call(gm, child(prefix, "1"), std::make_shared<BatchNorm2d>(out), y);
  std::shared_ptr<Module> activation;
  if (quantizable) {
    activation = std::make_shared<ReLU>();
  } else {
    activation = std::make_shared<ReLU6>();
  }
  return add_and_call(gm, child(prefix, "2"), std::move(activation), y);
}

// One InvertedResidual of MobileNetV2's features.
struct InvertedResidualBlock {
  std::string path;  // "features.3"
  int64_t in;
  int64_t out;
  int64_t stride;
  int64_t expand_ratio;

  // Conv2dNormActivation layers before the linear projection: expansion (if any), depthwise.
  int64_t activation_layers() const { return expand_ratio != 1 ? 2 : 1; }
  bool residual() const { return stride == 1 && in == out; }
};

constexpr int64_t kMobileNetStemWidth = 32;
constexpr int64_t kMobileNetLastWidth = 1280;

// features.1 to features.17, from torchvision's inverted_residual_setting.
std::vector<InvertedResidualBlock> mobilenet_v2_blocks() {
  // Expansion t, channels c, repeats n, stride s of the first repeat.
  struct Stage {
    int64_t t, c, n, s;
  };
  const Stage stages[] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                          {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  std::vector<InvertedResidualBlock> blocks;
  int64_t channels = kMobileNetStemWidth;
  for (const Stage& stage : stages) {
    for (int64_t repeat = 0; repeat < stage.n; ++repeat) {
      blocks.push_back({"features." + std::to_string(blocks.size() + 1), channels, stage.c,
                        repeat == 0 ? stage.s : 1, stage.t});
      channels = stage.c;
    }
  }
  return blocks;
}

// InvertedResidual: optional 1x1 expansion, 3x3 depthwise, linear 1x1
// projection, numbered conv.0, conv.1, ... in that order; the residual add
// joins only when the block keeps stride and width (x + conv(x), in that order),
// through the FloatFunctional `skip_add` in QuantizableInvertedResidual.
std::string inverted_residual(GraphModule& gm, const InvertedResidualBlock& b,
                              const std::string& x, bool quantizable) {
  const int64_t hidden = b.in * b.expand_ratio;
  int64_t layer = 0;
  auto next_layer = [&] { return child(b.path, "conv." + std::to_string(layer++)); };

  std::string y = x;
  if (b.expand_ratio != 1) {
    y = conv_bn_activation(gm, next_layer(), y, b.in, hidden, 1, 1, quantizable);
  }
  y = conv_bn_activation(gm, next_layer(), y, hidden, hidden, 3, b.stride, quantizable, hidden);
  y = add_and_call(gm, next_layer(), conv(hidden, b.out, 1, 1), y);
  y = add_and_call(gm, next_layer(), std::make_shared<BatchNorm2d>(b.out), y);
  if (!b.residual()) return y;
  if (!quantizable) return gm.graph.call_function("add", {x, y});
  gm.add_module(child(b.path, "skip_add"), std::make_shared<FloatFunctional>("add"));
  return gm.graph.call_module(child(b.path, "skip_add"), {x, y});
}

// MobileNetV2.__init__'s loop over self.modules(). BatchNorm's constructor
// values (weight 1, bias 0) and the zero Linear bias are already torchvision's;
// no conv here has a bias to zero.
void init_mobilenet_v2(const GraphModule& gm, at::Generator& generator) {
  for (const auto& entry : gm.modules()) {
    const Module* module = entry.second.get();
    if (dynamic_cast<const Conv2d*>(module)) {
      kaiming_normal_fan_out(module->tensor("weight"), generator);
    } else if (dynamic_cast<const Linear*>(module)) {
      module->tensor("weight").normal_(0.0, 0.01, generator);
    }
  }
}

}  // namespace

GraphModule resnet18(const ZooOptions& options) {
  return build_resnet(resnet_specs().at("resnet18"), options);
}

GraphModule resnet34(const ZooOptions& options) {
  return build_resnet(resnet_specs().at("resnet34"), options);
}

GraphModule resnet50(const ZooOptions& options) {
  return build_resnet(resnet_specs().at("resnet50"), options);
}

GraphModule cifar_resnet18(const ZooOptions& options) {
  return build_resnet(resnet_specs().at("cifar_resnet18"), options);
}

GraphModule fmnist_resnet8(const ZooOptions& options) {
  return build_resnet(resnet_specs().at("fmnist_resnet8"), options);
}

GraphModule mobilenet_v2(const ZooOptions& options) {
  const bool quantizable = options.quantizable;
  GraphModule gm;
  std::string x = gm.graph.placeholder("x");
  if (quantizable) x = call_quant(gm, x);
  x = conv_bn_activation(gm, "features.0", x, options.in_channels.value_or(3),
                         kMobileNetStemWidth, 3, 2, quantizable);
  const std::vector<InvertedResidualBlock> blocks = mobilenet_v2_blocks();
  for (const InvertedResidualBlock& block : blocks) {
    x = inverted_residual(gm, block, x, quantizable);
  }
  x = conv_bn_activation(gm, "features." + std::to_string(blocks.size() + 1), x,
                         blocks.back().out, kMobileNetLastWidth, 1, 1, quantizable);

  // forward() pools functionally, so FX records call_function nodes here.
  x = gm.graph.call_function("adaptive_avg_pool2d", {x},
                             {{"output_size", std::vector<int64_t>{1, 1}}});
  x = flatten(gm, x);
  x = add_and_call(gm, "classifier.0", std::make_shared<Dropout>(0.2), x);
  x = add_and_call(gm, "classifier.1",
                   std::make_shared<Linear>(kMobileNetLastWidth, options.num_classes), x);
  if (quantizable) x = register_stubs_and_dequantize(gm, x);
  gm.graph.output({x});

  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  init_mobilenet_v2(gm, generator);
  gm.train(false);
  return gm;
}

namespace {

using Builder = GraphModule (*)(const ZooOptions&);

const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> table = {
      {"cifar_resnet18", cifar_resnet18}, {"fmnist_resnet8", fmnist_resnet8},
      {"mobilenet_v2", mobilenet_v2},     {"resnet18", resnet18},
      {"resnet34", resnet34},             {"resnet50", resnet50},
  };
  return table;
}

[[noreturn]] void unknown_architecture(const std::string& architecture) {
  std::string known;
  for (const auto& name : zoo_architectures()) known += (known.empty() ? "" : ", ") + name;
  throw std::invalid_argument("unknown architecture '" + architecture + "'; known: " + known);
}

// The modules of Conv2dNormActivation `prefix`: conv, BatchNorm, activation.
std::vector<std::string> conv_bn_activation_group(const std::string& prefix) {
  return {child(prefix, "0"), child(prefix, "1"), child(prefix, "2")};
}

// QuantizableResNet.fuse_model: the stem, then each block's fuse_model.
std::vector<std::vector<std::string>> resnet_fuse_groups(const ResNetSpec& spec) {
  std::vector<std::vector<std::string>> groups = {{"conv1", "bn1", "relu"}};
  for (const ResNetBlock& block : resnet_blocks(spec)) {
    auto in_block = [&](std::initializer_list<const char*> names) {
      std::vector<std::string> group;
      for (const char* name : names) group.push_back(child(block.path, name));
      groups.push_back(std::move(group));
    };
    if (spec.block == Block::kBasic) {
      in_block({"conv1", "bn1", "relu"});
      in_block({"conv2", "bn2"});
    } else {
      in_block({"conv1", "bn1", "relu1"});
      in_block({"conv2", "bn2", "relu2"});
      in_block({"conv3", "bn3"});
    }
    if (block.downsample) in_block({"downsample.0", "downsample.1"});
  }
  return groups;
}

// QuantizableMobileNetV2.fuse_model walks self.modules() in pre-order: an inverted
// residual's own fuse_model (its projection conv-bn) runs before the walk reaches the
// Conv2dNormActivation layers inside it.
std::vector<std::vector<std::string>> mobilenet_v2_fuse_groups() {
  std::vector<std::vector<std::string>> groups = {conv_bn_activation_group("features.0")};
  const std::vector<InvertedResidualBlock> blocks = mobilenet_v2_blocks();
  for (const InvertedResidualBlock& block : blocks) {
    auto layer = [&](int64_t index) { return child(block.path, "conv." + std::to_string(index)); };
    const int64_t projection = block.activation_layers();
    groups.push_back({layer(projection), layer(projection + 1)});
    for (int64_t index = 0; index < projection; ++index) {
      groups.push_back(conv_bn_activation_group(layer(index)));
    }
  }
  groups.push_back(conv_bn_activation_group("features." + std::to_string(blocks.size() + 1)));
  return groups;
}

}  // namespace

GraphModule build_model(const std::string& architecture, const ZooOptions& options) {
  auto it = builders().find(architecture);
  if (it == builders().end()) unknown_architecture(architecture);
  return it->second(options);
}

std::vector<std::string> zoo_architectures() {
  std::vector<std::string> names;
  for (const auto& entry : builders()) names.push_back(entry.first);
  return names;
}

std::vector<std::vector<std::string>> fuse_model_groups(const std::string& architecture) {
  if (architecture == "mobilenet_v2") return mobilenet_v2_fuse_groups();
  auto it = resnet_specs().find(architecture);
  if (it == resnet_specs().end()) unknown_architecture(architecture);
  return resnet_fuse_groups(it->second);
}

}  // namespace qb
