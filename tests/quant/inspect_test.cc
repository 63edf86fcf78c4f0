#include "quant/inspect.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/eager.h"
#include "quant/fuse.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/modules.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/quantized_modules.h"
#include "quant/quantized_ops.h"
#include "quant/stubs.h"
#include "tests/catch.h"

namespace qb {
namespace {

QConfigMapping onednn_mapping() {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  return mapping;
}

// A float model, the same model converted to int8 with `mapping`, and the seeded
// batches it was calibrated on (layer_sqnr reuses them).
struct Quantized {
  GraphModule fused;
  GraphModule converted;
  std::vector<at::Tensor> batches;
};

Quantized quantize_resnet18(const QConfigMapping& mapping) {
  GraphModule model = build_model("resnet18", {});
  GraphModule prepared = prepare(model, mapping);
  at::manual_seed(3);
  std::vector<at::Tensor> batches = {at::randn({1, 3, 64, 64}), at::randn({1, 3, 64, 64})};
  calibrate(prepared, batches_of(batches), {});
  return {fuse(model, mapping), convert(prepared, {"onednn", false}), batches};
}

// The same through eager mode: torchvision's quantizable ResNet-18, fused as its
// fuse_model() does; `fused` is the model prepare_eager was given.
Quantized quantize_resnet18_eager(const QConfigMapping& mapping) {
  ZooOptions options;
  options.quantizable = true;
  GraphModule fused =
      fuse_modules(build_model("resnet18", options), fuse_model_groups("resnet18"));
  GraphModule prepared = prepare_eager(fused, mapping);
  at::manual_seed(3);
  std::vector<at::Tensor> batches = {at::randn({1, 3, 64, 64}), at::randn({1, 3, 64, 64})};
  {
    at::NoGradGuard no_grad;
    Interpreter interpreter(prepared);
    for (const at::Tensor& batch : batches) interpreter.run(batch);
  }
  return {fused, convert_eager(prepared, {"onednn", false}), batches};
}

std::map<std::string, int> count_kinds(const std::vector<NodePrecision>& nodes) {
  std::map<std::string, int> counts;
  for (const NodePrecision& node : nodes) ++counts[node.kind];
  return counts;
}

std::vector<std::string> names(const std::vector<LayerSqnr>& layers) {
  std::vector<std::string> result;
  for (const LayerSqnr& layer : layers) result.push_back(layer.name);
  return result;
}

TEST_CASE("every compute node of the converted ResNet-18 runs in int8") {
  Quantized q = quantize_resnet18(onednn_mapping());
  std::vector<NodePrecision> nodes = node_precisions(q.converted);

  // 20 convs after fusion (conv1, 16 in the blocks, 3 downsamples), 8 add_relu,
  // fc, maxpool, avgpool and flatten; quantize_per_tensor and dequantize are not listed.
  CHECK(count_kinds(nodes) == std::map<std::string, int>{{"QuantizedConvReLU2d", 9},
                                                        {"QuantizedConv2d", 11},
                                                        {"quantized_add_relu", 8},
                                                        {"QuantizedLinear", 1},
                                                        {"MaxPool2d", 1},
                                                        {"AdaptiveAvgPool2d", 1},
                                                        {"flatten", 1}});
  PrecisionCounts counts = count_precisions(nodes);
  CHECK(counts.int8 == 32);
  CHECK(counts.fp32 == 0);

  REQUIRE(nodes.size() == 32);
  CHECK(nodes.front().name == "conv1");
  CHECK(nodes.front().op == "call_module");
  CHECK(nodes.front().target == "conv1");
  CHECK(nodes[4].name == "add_relu");
  CHECK(nodes[4].op == "call_function");
  CHECK(nodes[4].target == "torch.ops.quantized.add_relu");
  CHECK(nodes[30].target == "torch.flatten");
  CHECK(nodes.back().name == "fc");
  CHECK(nodes.back().target == "fc");

  // Channels-last adds a layout conversion at the input, which is bookkeeping.
  std::vector<NodePrecision> channels_last = node_precisions(to_channels_last(q.converted));
  CHECK(channels_last.size() == 32);
  CHECK(count_precisions(channels_last).int8 == 32);
}

TEST_CASE("a layer skipped with None shows as fp32, its BatchNorm and ReLU as int8") {
  QConfigMapping mapping = onednn_mapping();
  mapping.set_module_name("layer2.0.conv1", std::nullopt);
  Quantized q = quantize_resnet18(mapping);
  std::vector<NodePrecision> nodes = node_precisions(q.converted);

  std::vector<std::string> fp32;
  for (const NodePrecision& node : nodes) {
    if (node.precision == Precision::kFp32) fp32.push_back(node.name + " " + node.kind);
  }
  // Left unfused, the conv runs alone in fp32; its BatchNorm and the ReLU after it are
  // quantized as one BNReLU2d, as in prepare_fx.
  CHECK(fp32 == std::vector<std::string>{"layer2_0_conv1 Conv2d"});
  PrecisionCounts counts = count_precisions(nodes);
  CHECK(counts.int8 == 32);
  CHECK(counts.fp32 == 1);
}

TEST_CASE("layer SQNR of ResNet-18 against its fused float model") {
  Quantized q = quantize_resnet18(onednn_mapping());
  std::vector<LayerSqnr> layers = layer_sqnr(q.fused, q.converted, q.batches);

  // Every compute node but the add_relu ones, which convert names itself.
  std::vector<std::string> expected;
  for (const NodePrecision& node : node_precisions(q.converted)) {
    if (node.kind != "quantized_add_relu") expected.push_back(node.name);
  }
  CHECK(expected.size() == 24);
  CHECK(names(layers) == expected);
  for (const LayerSqnr& layer : layers) {
    INFO(layer.name << ": " << layer.sqnr_db << " dB");
    CHECK(std::isfinite(layer.sqnr_db));
    // int8 with calibrated ranges: 38 dB at conv1 drifting to 29 dB at layer4 here.
    CHECK(layer.sqnr_db > 25.0);
    CHECK(layer.sqnr_db < 45.0);
  }

  SECTION("memory layout does not matter") {
    std::vector<LayerSqnr> channels_last =
        layer_sqnr(q.fused, to_channels_last(q.converted), q.batches);
    REQUIRE(names(channels_last) == expected);
    for (size_t i = 0; i < layers.size(); ++i) {
      CHECK(channels_last[i].sqnr_db == Approx(layers[i].sqnr_db).margin(1e-6));
    }
  }

  SECTION("a model compared with itself agrees exactly everywhere") {
    std::vector<LayerSqnr> itself = layer_sqnr(q.converted, q.converted, q.batches);
    CHECK(itself.size() == 32);  // add_relu nodes match too now
    for (const LayerSqnr& layer : itself) {
      CHECK(layer.sqnr_db == std::numeric_limits<double>::infinity());
    }
    for (const LayerSqnr& layer : layer_sqnr(q.fused, q.fused, {q.batches[0]})) {
      CHECK(layer.sqnr_db == std::numeric_limits<double>::infinity());
    }
  }
}

TEST_CASE("every compute node of the eager-converted ResNet-18 runs in int8") {
  Quantized q = quantize_resnet18_eager(onednn_mapping());
  std::vector<NodePrecision> nodes = node_precisions(q.converted);

  // As in graph mode, with the 8 add_relu as QFunctional modules; Quantize (quant) and
  // DeQuantize (dequant) only move values between domains and are not listed.
  CHECK(count_kinds(nodes) == std::map<std::string, int>{{"QuantizedConvReLU2d", 9},
                                                        {"QuantizedConv2d", 11},
                                                        {"QFunctional", 8},
                                                        {"QuantizedLinear", 1},
                                                        {"MaxPool2d", 1},
                                                        {"AdaptiveAvgPool2d", 1},
                                                        {"flatten", 1}});
  PrecisionCounts counts = count_precisions(nodes);
  CHECK(counts.int8 == 32);
  CHECK(counts.fp32 == 0);
  REQUIRE(nodes.size() == 32);
  CHECK(nodes.front().name == "conv1");
  CHECK(nodes[4].name == "layer1_0_add_relu");
  CHECK(nodes.back().name == "fc");

  std::vector<NodePrecision> channels_last = node_precisions(to_channels_last(q.converted));
  CHECK(count_precisions(channels_last).int8 == 32);
  CHECK(count_precisions(channels_last).fp32 == 0);

  SECTION("fc left fp32 runs behind a dequantize") {
    QConfigMapping mapping = onednn_mapping();
    mapping.set_module_name("fc", std::nullopt);
    std::vector<NodePrecision> partial = node_precisions(quantize_resnet18_eager(mapping).converted);
    std::vector<std::string> fp32;
    for (const NodePrecision& node : partial) {
      if (node.precision == Precision::kFp32) fp32.push_back(node.name + " " + node.kind);
    }
    CHECK(fp32 == std::vector<std::string>{"fc Linear"});
    CHECK(count_precisions(partial).int8 == 31);
  }
}

TEST_CASE("eager mode's int8 BatchNorm and QFunctional are int8 kernels, DeQuantize ends int8") {
  // quant -> conv -> bn -> cat(bn, bn) -> dequant -> relu
  GraphModule model;
  model.add_module("quant", std::make_shared<QuantStub>());
  model.add_module("conv", std::make_shared<Conv2d>(Conv2dOptions{3, 4, 3, 1, 1, 1, 1, true}));
  model.add_module("bn", std::make_shared<BatchNorm2d>(4));
  model.add_module("cat", std::make_shared<FloatFunctional>("cat", 1));
  model.add_module("dequant", std::make_shared<DeQuantStub>());
  model.add_module("relu", std::make_shared<ReLU>());
  at::manual_seed(4);
  model.module("conv").tensor("weight").normal_();
  Graph& g = model.graph;
  std::string bn =
      g.call_module("bn", {g.call_module("conv", {g.call_module("quant", {g.placeholder("x")})})});
  std::string out = g.call_module("dequant", {g.call_module("cat", {bn, bn})});
  g.output({g.call_module("relu", {out})});

  // Stubs are bookkeeping before conversion too.
  CHECK(node_precisions(model).size() == 4);

  GraphModule prepared = prepare_eager(model, onednn_mapping());
  {
    at::NoGradGuard no_grad;
    Interpreter(prepared).run(at::randn({2, 3, 8, 8}));
  }
  GraphModule converted = convert_eager(prepared, {"onednn", false});
  std::vector<std::string> listed;
  for (const NodePrecision& node : node_precisions(converted)) {
    listed.push_back(node.name + " " + node.kind + " " + to_string(node.precision));
  }
  CHECK(listed == std::vector<std::string>{"conv QuantizedConv2d int8",
                                           "bn QuantizedBatchNorm2d int8",
                                           "cat QFunctional int8", "relu ReLU fp32"});
}

// x -> fc, in fp32 and hand-converted to int8 at scale 0.5 around zero point 128,
// with an identity weight that quantizes exactly: only the activations round.
struct TinyLinear {
  GraphModule reference;
  GraphModule converted;
};

TinyLinear tiny_linear(const at::Tensor& reference_weight) {
  select_engine("onednn");
  TinyLinear tiny;
  auto fc = std::make_shared<Linear>(2, 2);
  fc->set_tensor("weight", reference_weight.clone());
  fc->set_tensor("bias", at::zeros({2}));
  tiny.reference.add_module("fc", fc);
  Graph& reference = tiny.reference.graph;
  reference.output({reference.call_module("fc", {reference.placeholder("x")})});

  at::Tensor weight = at::quantize_per_tensor(at::eye(2), 1.0 / 64, 0, at::kQInt8);
  tiny.converted.add_module(
      "fc", std::make_shared<QuantizedLinear>(false, weight, at::zeros({2}), 0.5, 128));
  Graph& g = tiny.converted.graph;
  std::string x = g.call_function(
      "quantize_per_tensor", {g.placeholder("x")},
      {{"scale", 0.5}, {"zero_point", int64_t{128}}, {"dtype", std::string("quint8")}});
  g.output({g.call_function("dequantize", {g.call_module("fc", {x})})});
  return tiny;
}

TEST_CASE("layer SQNR by hand: one Linear, two batches") {
  TinyLinear tiny = tiny_linear(at::eye(2));
  std::vector<at::Tensor> batches = {at::tensor({1.0f, 0.3f}).view({1, 2}),
                                     at::tensor({-1.2f, 2.0f}).view({1, 2})};
  // int8 computes [1, 0.5] and [-1, 2]: signal 1 + 0.09 + 1.44 + 4 = 6.53,
  // noise 0.2^2 * 2 = 0.08.
  std::vector<LayerSqnr> layers = layer_sqnr(tiny.reference, tiny.converted, batches);
  REQUIRE(names(layers) == std::vector<std::string>{"fc"});
  CHECK(layers[0].sqnr_db == Approx(10.0 * std::log10(6.53 / 0.08)).epsilon(1e-6));  // 19.118 dB

  std::vector<NodePrecision> nodes = node_precisions(tiny.converted);
  REQUIRE(nodes.size() == 1);
  CHECK(nodes[0].kind == "QuantizedLinear");
  CHECK(nodes[0].precision == Precision::kInt8);

  SECTION("exactly representable values give infinity") {
    std::vector<LayerSqnr> exact =
        layer_sqnr(tiny.reference, tiny.converted, {at::tensor({1.5f, -0.5f}).view({1, 2})});
    CHECK(exact[0].sqnr_db == std::numeric_limits<double>::infinity());
  }
  SECTION("an all-zero reference gives -infinity, or infinity when both are zero") {
    TinyLinear zero = tiny_linear(at::zeros({2, 2}));
    CHECK(layer_sqnr(zero.reference, zero.converted, {batches[0]})[0].sqnr_db ==
          -std::numeric_limits<double>::infinity());
    CHECK(layer_sqnr(zero.reference, zero.converted, {at::zeros({1, 2})})[0].sqnr_db ==
          std::numeric_limits<double>::infinity());
  }
}

TEST_CASE("layer SQNR of the eager-converted ResNet-18 against the model prepare_eager got") {
  Quantized q = quantize_resnet18_eager(onednn_mapping());
  std::vector<LayerSqnr> layers = layer_sqnr(q.fused, q.converted, q.batches);

  // Every compute node lines up by name, the QFunctional add_relu ones included.
  std::vector<std::string> expected;
  std::map<std::string, std::string> kinds;
  for (const NodePrecision& node : node_precisions(q.converted)) {
    expected.push_back(node.name);
    kinds[node.name] = node.kind;
  }
  CHECK(expected.size() == 32);
  CHECK(names(layers) == expected);
  int convs = 0;
  for (const LayerSqnr& layer : layers) {
    INFO(layer.name << " (" << kinds[layer.name] << "): " << layer.sqnr_db << " dB");
    CHECK(std::isfinite(layer.sqnr_db));
    // As in graph mode: 38 dB at conv1 drifting to 29 dB at layer4 here.
    CHECK(layer.sqnr_db > 25.0);
    CHECK(layer.sqnr_db < 45.0);
    if (kinds[layer.name].rfind("QuantizedConv", 0) == 0) ++convs;
  }
  CHECK(convs == 20);

  std::vector<LayerSqnr> channels_last =
      layer_sqnr(q.fused, to_channels_last(q.converted), q.batches);
  REQUIRE(names(channels_last) == expected);
  for (size_t i = 0; i < layers.size(); ++i) {
    CHECK(channels_last[i].sqnr_db == Approx(layers[i].sqnr_db).margin(1e-6));
  }
}

TEST_CASE("layer SQNR names a node whose shapes differ") {
  TinyLinear tiny = tiny_linear(at::eye(2));
  tiny.reference.replace_module("fc", std::make_shared<Linear>(2, 3));
  CHECK_THROWS_WITH(layer_sqnr(tiny.reference, tiny.converted, {at::ones({1, 2})}),
                    "node 'fc': the reference computes shape [1, 3], the converted model [1, 2]");
}

}  // namespace
}  // namespace qb
