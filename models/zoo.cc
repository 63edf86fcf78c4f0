#include "models/zoo.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>

#include "quant/modules.h"

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

// torchvision's BasicBlock: two 3x3 convs. Its single `relu` module runs twice,
// so FX names the second call `<block>_relu_1`.
std::string basic_block(GraphModule& gm, const std::string& block, const std::string& x,
                        int64_t in, int64_t planes, int64_t stride, bool downsample) {
  gm.add_module(child(block, "conv1"), conv(in, planes, 3, stride));
  gm.add_module(child(block, "bn1"), std::make_shared<BatchNorm2d>(planes));
  gm.add_module(child(block, "relu"), std::make_shared<ReLU>());
  gm.add_module(child(block, "conv2"), conv(planes, planes, 3, 1));
  gm.add_module(child(block, "bn2"), std::make_shared<BatchNorm2d>(planes));
  if (downsample) register_downsample(gm, block, in, planes, stride);

  Graph& graph = gm.graph;
  auto call = [&](const char* name, const std::string& input) {
    return graph.call_module(child(block, name), {input});
  };
  std::string out = call("relu", call("bn1", call("conv1", x)));
  out = call("bn2", call("conv2", out));
  out = graph.call_function("add", {out, identity(graph, block, x, downsample)});
  return call("relu", out);
}

// torchvision's Bottleneck: 1x1 down to `planes`, 3x3 (carrying the stride, as
// in ResNet v1.5), 1x1 up to 4 * planes; one `relu` module called three times.
std::string bottleneck(GraphModule& gm, const std::string& block, const std::string& x,
                       int64_t in, int64_t planes, int64_t stride, bool downsample) {
  const int64_t out_channels = 4 * planes;
  gm.add_module(child(block, "conv1"), conv(in, planes, 1, 1));
  gm.add_module(child(block, "bn1"), std::make_shared<BatchNorm2d>(planes));
  gm.add_module(child(block, "conv2"), conv(planes, planes, 3, stride));
  gm.add_module(child(block, "bn2"), std::make_shared<BatchNorm2d>(planes));
  gm.add_module(child(block, "conv3"), conv(planes, out_channels, 1, 1));
  gm.add_module(child(block, "bn3"), std::make_shared<BatchNorm2d>(out_channels));
  gm.add_module(child(block, "relu"), std::make_shared<ReLU>());
  if (downsample) register_downsample(gm, block, in, out_channels, stride);

  Graph& graph = gm.graph;
  auto call = [&](const char* name, const std::string& input) {
    return graph.call_module(child(block, name), {input});
  };
  std::string out = call("relu", call("bn1", call("conv1", x)));
  out = call("relu", call("bn2", call("conv2", out)));
  out = call("bn3", call("conv3", out));
  out = graph.call_function("add", {out, identity(graph, block, x, downsample)});
  return call("relu", out);
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
  const bool imagenet = spec.stem == Stem::kImageNet;
  x = add_and_call(gm, "conv1", conv(in_channels, stem_width, imagenet ? 7 : 3, imagenet ? 2 : 1),
                   x);
  x = add_and_call(gm, "bn1", std::make_shared<BatchNorm2d>(stem_width), x);
  x = add_and_call(gm, "relu", std::make_shared<ReLU>(), x);
  if (imagenet) x = add_and_call(gm, "maxpool", std::make_shared<MaxPool2d>(3, 2, 1), x);

  // ResNet._make_layer: only a stage's first block changes stride or width.
  int64_t channels = stem_width;
  for (size_t stage = 0; stage < spec.stage_widths.size(); ++stage) {
    const int64_t planes = spec.stage_widths[stage];
    for (int64_t index = 0; index < spec.blocks_per_stage[stage]; ++index) {
      const int64_t stride = stage > 0 && index == 0 ? 2 : 1;
      const bool downsample = stride != 1 || channels != planes * expansion;
      const std::string block = "layer" + std::to_string(stage + 1) + "." + std::to_string(index);
      x = spec.block == Block::kBasic
              ? basic_block(gm, block, x, channels, planes, stride, downsample)
              : bottleneck(gm, block, x, channels, planes, stride, downsample);
      channels = planes * expansion;
    }
  }

  x = add_and_call(gm, "avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1), x);
  x = flatten(gm, x);
  x = add_and_call(gm, "fc", std::make_shared<Linear>(channels, options.num_classes), x);
  gm.graph.output({x});

  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  init_resnet(gm, generator);
  gm.train(false);
  return gm;
}

// ---------------------------------------------------------------------------
// MobileNetV2 (torchvision/models/mobilenetv2.py, torchvision 0.14 layout).

// Conv2dNormActivation(in, out, kernel, stride, groups, activation=ReLU6):
// children .0 conv, .1 BatchNorm, .2 ReLU6.
std::string conv_bn_relu6(GraphModule& gm, const std::string& prefix, const std::string& x,
                          int64_t in, int64_t out, int64_t kernel, int64_t stride,
                          int64_t groups = 1) {
  std::string y = add_and_call(gm, child(prefix, "0"), conv(in, out, kernel, stride, groups), x);
  y = add_and_call(gm, child(prefix, "1"), std::make_shared<BatchNorm2d>(out), y);
  return add_and_call(gm, child(prefix, "2"), std::make_shared<ReLU6>(), y);
}

// InvertedResidual: optional 1x1 expansion, 3x3 depthwise, linear 1x1
// projection, numbered conv.0, conv.1, ... in that order; the residual add
// joins only when the block keeps stride and width (x + conv(x), in that order).
std::string inverted_residual(GraphModule& gm, const std::string& block, const std::string& x,
                              int64_t in, int64_t out, int64_t stride, int64_t expand_ratio) {
  const int64_t hidden = in * expand_ratio;
  int64_t layer = 0;
  auto next_layer = [&] { return child(block, "conv." + std::to_string(layer++)); };

  std::string y = x;
  if (expand_ratio != 1) y = conv_bn_relu6(gm, next_layer(), y, in, hidden, 1, 1);
  y = conv_bn_relu6(gm, next_layer(), y, hidden, hidden, 3, stride, hidden);
  y = add_and_call(gm, next_layer(), conv(hidden, out, 1, 1), y);
  y = add_and_call(gm, next_layer(), std::make_shared<BatchNorm2d>(out), y);
  if (stride == 1 && in == out) return gm.graph.call_function("add", {x, y});
  return y;
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
  return build_resnet({Block::kBasic, Stem::kImageNet, {2, 2, 2, 2}, {64, 128, 256, 512}, 3},
                      options);
}

GraphModule resnet34(const ZooOptions& options) {
  return build_resnet({Block::kBasic, Stem::kImageNet, {3, 4, 6, 3}, {64, 128, 256, 512}, 3},
                      options);
}

GraphModule resnet50(const ZooOptions& options) {
  return build_resnet(
      {Block::kBottleneck, Stem::kImageNet, {3, 4, 6, 3}, {64, 128, 256, 512}, 3}, options);
}

GraphModule cifar_resnet18(const ZooOptions& options) {
  return build_resnet({Block::kBasic, Stem::kSmallImage, {2, 2, 2, 2}, {64, 128, 256, 512}, 3},
                      options);
}

GraphModule fmnist_resnet8(const ZooOptions& options) {
  return build_resnet({Block::kBasic, Stem::kSmallImage, {1, 1, 1}, {16, 32, 64}, 1}, options);
}

GraphModule mobilenet_v2(const ZooOptions& options) {
  // torchvision's inverted_residual_setting: expansion t, channels c, repeats n,
  // stride s of the first repeat.
  struct Stage {
    int64_t t, c, n, s;
  };
  const Stage stages[] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                          {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  const int64_t stem_width = 32;
  const int64_t last_width = 1280;

  GraphModule gm;
  int64_t feature = 0;
  auto next_feature = [&] { return "features." + std::to_string(feature++); };

  std::string x = gm.graph.placeholder("x");
  x = conv_bn_relu6(gm, next_feature(), x, options.in_channels.value_or(3), stem_width, 3, 2);
  int64_t channels = stem_width;
  for (const Stage& stage : stages) {
    for (int64_t repeat = 0; repeat < stage.n; ++repeat) {
      x = inverted_residual(gm, next_feature(), x, channels, stage.c, repeat == 0 ? stage.s : 1,
                            stage.t);
      channels = stage.c;
    }
  }
  x = conv_bn_relu6(gm, next_feature(), x, channels, last_width, 1, 1);

  // forward() pools functionally, so FX records call_function nodes here.
  x = gm.graph.call_function("adaptive_avg_pool2d", {x},
                             {{"output_size", std::vector<int64_t>{1, 1}}});
  x = flatten(gm, x);
  x = add_and_call(gm, "classifier.0", std::make_shared<Dropout>(0.2), x);
  x = add_and_call(gm, "classifier.1", std::make_shared<Linear>(last_width, options.num_classes),
                   x);
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

}  // namespace

GraphModule build_model(const std::string& architecture, const ZooOptions& options) {
  auto it = builders().find(architecture);
  if (it == builders().end()) {
    std::string known;
    for (const auto& name : zoo_architectures()) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument("unknown architecture '" + architecture + "'; known: " + known);
  }
  return it->second(options);
}

std::vector<std::string> zoo_architectures() {
  std::vector<std::string> names;
  for (const auto& entry : builders()) names.push_back(entry.first);
  return names;
}

}  // namespace qb
