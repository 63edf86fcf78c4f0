#include "quant/equalization.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "models/zoo.h"
#include "quant/fuse.h"
#include "quant/interpreter.h"
#include "quant/modules.h"
#include "quant/qconfig.h"
#include "tests/catch.h"

namespace qb {
namespace {

const Module& module_of(const GraphModule& gm, const std::string& node) {
  return gm.module(gm.graph.node(node).target);
}

int64_t groups_of(const Module& module) {
  const auto* conv = dynamic_cast<const Conv2d*>(&module);
  return conv ? conv->options().groups : 1;
}

// max |w| per output channel, written out channel by channel (not as equalize computes it).
std::vector<double> output_ranges(const Module& layer) {
  at::Tensor w = layer.tensor("weight").to(at::kDouble).contiguous();
  std::vector<double> ranges;
  for (int64_t o = 0; o < w.size(0); ++o) ranges.push_back(w[o].abs().max().item<double>());
  return ranges;
}

// max |w| over the weights reading each input channel: weight [o][j] of a conv with g groups
// reads input channel (o / (out / g)) * (in / g) + j.
std::vector<double> input_ranges(const Module& layer) {
  at::Tensor w = layer.tensor("weight").to(at::kDouble).contiguous();
  const int64_t groups = groups_of(layer);
  const int64_t out = w.size(0), per_group = w.size(1), rest = w.numel() / (out * per_group);
  std::vector<double> ranges(per_group * groups, 0.0);
  const double* data = w.data_ptr<double>();
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t j = 0; j < per_group; ++j) {
      double& range = ranges[(o / (out / groups)) * per_group + j];
      for (int64_t k = 0; k < rest; ++k) {
        range = std::max(range, std::abs(data[(o * per_group + j) * rest + k]));
      }
    }
  }
  return ranges;
}

// Largest |r1_i - r2_i| / max(r1_i, r2_i) of a pair's channels.
double imbalance(const GraphModule& gm, const EqualizedPair& pair) {
  std::vector<double> r1 = output_ranges(module_of(gm, pair.first));
  std::vector<double> r2 = input_ranges(module_of(gm, pair.second));
  REQUIRE(r1.size() == r2.size());
  double worst = 0;
  for (size_t i = 0; i < r1.size(); ++i) {
    worst = std::max(worst, std::abs(r1[i] - r2[i]) / std::max(r1[i], r2[i]));
  }
  return worst;
}

// max |got - expected| relative to max |expected|.
double relative_drift(const GraphModule& got, const GraphModule& expected, const at::Tensor& x) {
  at::Tensor reference = Interpreter(expected).run(x);
  return (Interpreter(got).run(x) - reference).abs().max().item<double>() /
         reference.abs().max().item<double>();
}

int count_kind(const GraphModule& gm, const std::string& kind) {
  int n = 0;
  for (const Node& node : gm.graph.nodes()) {
    if (node.op == NodeOp::kCallModule && gm.module(node.target).kind() == kind) ++n;
  }
  return n;
}

GraphModule fused_zoo_model(const std::string& architecture) {
  ZooOptions options;
  options.num_classes = 10;
  options.seed = 5;
  GraphModule gm = build_model(architecture, options);
  at::manual_seed(11);
  for (const auto& [path, module] : gm.modules()) {
    if (module->kind() != "BatchNorm2d") continue;
    module->tensor("weight").uniform_(0.5, 1.5);
    module->tensor("bias").normal_(0, 0.1);
    module->tensor("running_mean").normal_(0, 0.1);
    module->tensor("running_var").uniform_(0.5, 2.0);
  }
  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  return fuse(gm, mapping);
}

enum class Between { kReluModule, kReluFunction, kFusedRelu, kNothing };

// conv1 (3 -> 8, every other output channel 100x larger) -> activation -> conv2 (8 -> 8 in
// `groups` groups).
GraphModule unbalanced_convs(Between between, int64_t groups) {
  GraphModule gm;
  auto conv1 = std::make_shared<Conv2d>(Conv2dOptions{3, 8, 3, 1, 1});
  auto conv2 = std::make_shared<Conv2d>(Conv2dOptions{8, 8, 3, 1, 1, 1, groups});
  at::manual_seed(3);
  conv1->tensor("weight").normal_();
  conv1->tensor("bias").normal_();
  conv2->tensor("weight").normal_();
  conv2->tensor("bias").normal_();
  conv1->tensor("weight").slice(0, 0, 8, 2).mul_(100);
  conv1->tensor("bias").slice(0, 0, 8, 2).mul_(100);
  if (between == Between::kFusedRelu) conv1->fuse_relu();
  gm.add_module("conv1", conv1);
  gm.add_module("conv2", conv2);
  std::string y = gm.graph.call_module("conv1", {gm.graph.placeholder("x")});
  if (between == Between::kReluModule) {
    gm.add_module("relu", std::make_shared<ReLU>());
    y = gm.graph.call_module("relu", {y});
  } else if (between == Between::kReluFunction) {
    y = gm.graph.call_function("relu", {y});
  }
  gm.graph.output({gm.graph.call_module("conv2", {y})});
  return gm;
}

TEST_CASE("equalize balances conv -> relu -> conv and keeps the output") {
  for (Between between :
       {Between::kReluModule, Between::kReluFunction, Between::kFusedRelu, Between::kNothing}) {
    for (int64_t groups : {1, 2, 8}) {
      CAPTURE(static_cast<int>(between), groups);
      GraphModule gm = unbalanced_convs(between, groups);
      EqualizedPair before;
      before.first = "conv1";
      before.second = "conv2";
      CHECK(imbalance(gm, before) > 0.9);

      std::vector<EqualizedPair> pairs;
      GraphModule equalized = equalize(gm, {}, &pairs);
      REQUIRE(pairs.size() == 1);
      CHECK(pairs[0].first == "conv1");
      CHECK(pairs[0].second == "conv2");
      CHECK(pairs[0].activation == (between == Between::kReluModule     ? "relu"
                                    : between == Between::kReluFunction ? "relu"
                                                                        : ""));
      CHECK_FALSE(pairs[0].replaced_relu6);
      CHECK(pairs[0].max_scale > 3);
      CHECK(imbalance(equalized, pairs[0]) < 1e-5);

      at::Tensor x = at::randn({2, 3, 8, 8});
      double drift = relative_drift(equalized, gm, x);
      INFO("relative output drift " << drift);
      CHECK(drift < 1e-5);
      // A second run finds nothing left to move.
      std::vector<EqualizedPair> again;
      equalize(equalized, {}, &again);
      REQUIRE(again.size() == 1);
      CHECK(again[0].max_scale < 1 + 1e-5);
    }
  }
}

TEST_CASE("equalize balances linear -> relu -> linear") {
  GraphModule gm;
  auto fc1 = std::make_shared<Linear>(5, 7);
  auto fc2 = std::make_shared<Linear>(7, 3);
  at::manual_seed(4);
  fc1->tensor("weight").normal_();
  fc1->tensor("weight").slice(0, 0, 3).mul_(50);
  fc2->tensor("weight").normal_();
  gm.add_module("fc1", fc1);
  gm.add_module("relu", std::make_shared<ReLU>());
  gm.add_module("fc2", fc2);
  std::string y = gm.graph.call_module("fc1", {gm.graph.placeholder("x")});
  gm.graph.output({gm.graph.call_module("fc2", {gm.graph.call_module("relu", {y})})});

  std::vector<EqualizedPair> pairs;
  GraphModule equalized = equalize(gm, {}, &pairs);
  REQUIRE(pairs.size() == 1);
  CHECK(imbalance(gm, pairs[0]) > 0.9);
  CHECK(imbalance(equalized, pairs[0]) < 1e-5);
  CHECK(relative_drift(equalized, gm, at::randn({4, 5})) < 1e-5);
}

TEST_CASE("equalize of MobileNetV2 pairs its ReLU6 chains only when asked to replace ReLU6") {
  GraphModule fused = fused_zoo_model("mobilenet_v2");
  at::Tensor x = at::randn({1, 3, 64, 64});

  // ReLU6 is not positively homogeneous, so only the two projections feeding the next
  // conv without a residual add pair up: features.1 -> features.2, features.17 -> features.18.
  std::vector<EqualizedPair> pairs;
  GraphModule kept = equalize(fused, {}, &pairs);
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0].first == "features_1_conv_1");
  CHECK(pairs[0].second == "features_2_conv_0_0");
  CHECK(pairs[1].first == "features_17_conv_2");
  CHECK(pairs[1].second == "features_18_0");
  for (const EqualizedPair& pair : pairs) CHECK(pair.activation.empty());
  CHECK(count_kind(kept, "ReLU6") == 35);
  double drift = relative_drift(kept, fused, x);
  INFO("relative output drift without ReLU6 replacement " << drift);
  CHECK(drift < 1e-5);

  // Every block then has its expand -> dw (stem -> dw in features.1) and dw -> project pairs,
  // 2 * 17, plus the two above; features.18's ReLU6 feeds the pooling and stays.
  EqualizationOptions replace;
  replace.replace_relu6 = true;
  replace.max_iterations = 20;
  pairs.clear();
  GraphModule equalized = equalize(fused, replace, &pairs);
  REQUIRE(pairs.size() == 36);
  int replaced = 0, depthwise_first = 0, depthwise_second = 0;
  GraphModule relu_only = fused;  // the reference: the same ReLU6 replaced, nothing rescaled
  for (const EqualizedPair& pair : pairs) {
    const Module& first = module_of(fused, pair.first);
    const Module& second = module_of(fused, pair.second);
    depthwise_first += groups_of(first) > 1 && groups_of(first) == first.tensor("weight").size(0);
    depthwise_second += groups_of(second) > 1;
    if (!pair.replaced_relu6) continue;
    ++replaced;
    CHECK(module_of(fused, pair.activation).kind() == "ReLU6");
    CHECK(module_of(equalized, pair.activation).kind() == "ReLU");
    relu_only.replace_module(fused.graph.node(pair.activation).target, std::make_shared<ReLU>());
  }
  CHECK(replaced == 34);
  CHECK(depthwise_first == 17);
  CHECK(depthwise_second == 17);
  CHECK(count_kind(equalized, "ReLU6") == 1);
  CHECK(module_of(equalized, "features_18_2").kind() == "ReLU6");
  CHECK(count_kind(fused, "ReLU6") == 35);  // the input is untouched

  // Pairs sharing a layer (stem -> dw -> project -> expand -> dw -> project) converge over the
  // passes: nearly in 20, completely (to float rounding) in the default 100.
  replace.max_iterations = 100;
  GraphModule converged = equalize(fused, replace);
  double worst_before = 0, worst_after = 0, worst_converged = 0;
  for (const EqualizedPair& pair : pairs) {
    worst_before = std::max(worst_before, imbalance(fused, pair));
    worst_after = std::max(worst_after, imbalance(equalized, pair));
    worst_converged = std::max(worst_converged, imbalance(converged, pair));
  }
  INFO("worst channel imbalance before " << worst_before << ", after 20 passes " << worst_after
                                         << ", after 100 " << worst_converged);
  CHECK(worst_before > 0.9);
  CHECK(worst_after < 1e-2);
  CHECK(worst_converged < 1e-5);

  drift = relative_drift(equalized, relu_only, x);
  INFO("relative output drift after ReLU6 replacement " << drift);
  CHECK(drift < 1e-5);
}

TEST_CASE("equalize of ResNet-18 pairs each BasicBlock's convs and leaves its input alone") {
  GraphModule fused = fused_zoo_model("resnet18");
  at::Tensor weight_before = fused.module("layer1.0.conv1").tensor("weight").clone();
  std::vector<EqualizedPair> pairs;
  GraphModule equalized = equalize(fused, {}, &pairs);

  std::vector<std::string> blocks;
  for (const char* layer : {"layer1", "layer2", "layer3", "layer4"}) {
    for (const char* block : {"_0", "_1"}) blocks.push_back(std::string(layer) + block);
  }
  REQUIRE(pairs.size() == blocks.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    CHECK(pairs[i].first == blocks[i] + "_conv1");
    CHECK(pairs[i].second == blocks[i] + "_conv2");
    CHECK(pairs[i].activation.empty());  // the relu is fused into conv1
    CHECK(module_of(equalized, pairs[i].first).kind() == "ConvReLU2d");
    CHECK(imbalance(equalized, pairs[i]) < 1e-5);
  }
  CHECK(at::equal(fused.module("layer1.0.conv1").tensor("weight"), weight_before));
  CHECK_FALSE(at::equal(equalized.module("layer1.0.conv1").tensor("weight"), weight_before));
  CHECK(&equalized.module("fc") == &fused.module("fc"));  // untouched modules stay shared

  double drift = relative_drift(equalized, fused, at::randn({2, 3, 64, 64}));
  INFO("relative output drift " << drift);
  CHECK(drift < 1e-5);
}

// No pair: equalize returns the same function with every module as it was.
void check_no_pair(const GraphModule& gm, const EqualizationOptions& options = {}) {
  std::vector<EqualizedPair> pairs;
  GraphModule equalized = equalize(gm, options, &pairs);
  CHECK(pairs.empty());
  for (const auto& [path, module] : gm.modules()) CHECK(&equalized.module(path) == module.get());
}

TEST_CASE("equalize skips values with other users, shared modules and clipping activations") {
  auto conv = [](int64_t in, int64_t out) {
    auto module = std::make_shared<Conv2d>(Conv2dOptions{in, out, 3, 1, 1});
    module->tensor("weight").normal_();
    return module;
  };
  at::manual_seed(6);
  SECTION("conv1's value is also a graph output") {
    GraphModule gm;
    gm.add_module("conv1", conv(3, 4));
    gm.add_module("conv2", conv(4, 4));
    std::string y = gm.graph.call_module("conv1", {gm.graph.placeholder("x")});
    gm.graph.output({gm.graph.call_module("conv2", {gm.graph.call_function("relu", {y})}), y});
    check_no_pair(gm);
  }
  SECTION("the relu's value feeds a residual add") {
    GraphModule gm;
    gm.add_module("conv1", conv(4, 4));
    gm.add_module("conv2", conv(4, 4));
    gm.add_module("relu", std::make_shared<ReLU>());
    std::string y = gm.graph.call_module("conv1", {gm.graph.placeholder("x")});
    y = gm.graph.call_module("relu", {y});
    gm.graph.output({gm.graph.call_function("add", {gm.graph.call_module("conv2", {y}), y})});
    check_no_pair(gm);
  }
  SECTION("the second conv's module is called twice") {
    GraphModule gm;
    gm.add_module("conv1", conv(4, 4));
    gm.add_module("conv2", conv(4, 4));
    std::string y = gm.graph.call_module("conv1", {gm.graph.placeholder("x")});
    y = gm.graph.call_module("conv2", {y});
    gm.graph.output({gm.graph.call_module("conv2", {y})});
    check_no_pair(gm);
  }
  SECTION("ReLU6, unless replaced, and then not when its module also runs elsewhere") {
    GraphModule gm;
    gm.add_module("conv1", conv(3, 4));
    gm.add_module("conv2", conv(4, 4));
    gm.add_module("act", std::make_shared<ReLU6>());
    std::string y = gm.graph.call_module("conv1", {gm.graph.placeholder("x")});
    y = gm.graph.call_module("conv2", {gm.graph.call_module("act", {y})});
    GraphModule once = gm;
    once.graph.output({y});
    check_no_pair(once);
    std::vector<EqualizedPair> pairs;
    EqualizationOptions replace;
    replace.replace_relu6 = true;
    GraphModule replaced = equalize(once, replace, &pairs);
    REQUIRE(pairs.size() == 1);
    CHECK(pairs[0].replaced_relu6);
    CHECK(replaced.module("act").kind() == "ReLU");

    gm.graph.output({gm.graph.call_module("act", {y})});
    check_no_pair(gm, replace);
  }
}

TEST_CASE("equalize rejects a pair whose channel counts disagree") {
  GraphModule gm;
  gm.add_module("conv1", std::make_shared<Conv2d>(Conv2dOptions{3, 4, 1}));
  gm.add_module("conv2", std::make_shared<Conv2d>(Conv2dOptions{5, 4, 1}));
  std::string y = gm.graph.call_module("conv1", {gm.graph.placeholder("x")});
  gm.graph.output({gm.graph.call_module("conv2", {y})});
  CHECK_THROWS_AS(equalize(gm), GraphError);
  CHECK_THROWS_WITH(equalize(gm), Catch::Contains("conv1") && Catch::Contains("conv2"));
}

}  // namespace
}  // namespace qb
