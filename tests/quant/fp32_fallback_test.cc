#include "quant/fp32_fallback.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/fuse.h"
#include "quant/inspect.h"
#include "quant/interpreter.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "tests/catch.h"

namespace qb {
namespace {

QConfigMapping onednn_mapping() {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  return mapping;
}

const QuantizedLayer& layer_named(const std::vector<QuantizedLayer>& layers, const std::string& name) {
  auto it = std::find_if(layers.begin(), layers.end(), [&](const QuantizedLayer& l) { return l.name() == name; });
  REQUIRE(it != layers.end());
  return *it;
}

Precision precision_of(const GraphModule& converted, const std::string& node) {
  for (const NodePrecision& n : node_precisions(converted)) {
    if (n.name == node) return n.precision;
  }
  FAIL("no compute node " << node);
  return Precision::kFp32;
}

// fmnist_resnet8 prepared for onednn and calibrated on seeded images.
struct Calibrated {
  GraphModule model;
  GraphModule prepared;
  at::Tensor images;
};

Calibrated calibrated_resnet8(const QConfigMapping& mapping) {
  ZooOptions zoo;
  zoo.num_classes = 10;
  zoo.seed = 4;
  Calibrated c{build_model("fmnist_resnet8", zoo), GraphModule(), at::Tensor()};
  c.prepared = prepare(c.model, mapping);
  at::manual_seed(5);
  c.images = at::randn({8, 1, 28, 28});
  calibrate(c.prepared, tensor_batches(c.images, 4), {});
  return c;
}

TEST_CASE("quantized_layers lists prepare's quantized nodes with the modules fusion merged into them") {
  Calibrated c = calibrated_resnet8(onednn_mapping());
  const std::vector<QuantizedLayer> layers = quantized_layers(c.model, c.prepared);
  // Every node with a qconfig is in exactly one layer, in graph order.
  size_t nodes = 0;
  for (const QuantizedLayer& layer : layers) nodes += layer.nodes.size();
  CHECK(nodes == c.prepared.qconfigs.size());
  CHECK(layers.front().name() == "conv1");

  // conv1 -> bn1 -> relu became one ConvReLU2d; a mapping must name all three modules.
  const QuantizedLayer& stem = layer_named(layers, "conv1");
  CHECK(stem.kind == "ConvReLU2d");
  CHECK(stem.module_paths == std::vector<std::string>{"conv1", "bn1", "relu"});
  // The block's second conv keeps its BatchNorm only: its relu follows the residual add.
  CHECK(layer_named(layers, "layer1_0_conv2").module_paths ==
        std::vector<std::string>{"layer1.0.conv2", "layer1.0.bn2"});
  // add and the relu convert fuses into it (add_relu) are one layer, which no mapping can name.
  const QuantizedLayer& add = layer_named(layers, "add");
  CHECK(add.nodes == std::vector<std::string>{"add", "layer1_0_relu_1"});
  CHECK(add.module_paths.empty());
  CHECK(layer_named(layers, "fc").module_paths == std::vector<std::string>{"fc"});
}

TEST_CASE("without_quantization_of runs chosen layers in fp32 with the calibration it has") {
  Calibrated c = calibrated_resnet8(onednn_mapping());
  const std::vector<QuantizedLayer> layers = quantized_layers(c.model, c.prepared);
  const std::vector<QuantizedLayer> chosen = {layer_named(layers, "layer2_0_conv1"), layer_named(layers, "add")};
  const GraphModule partial = convert(without_quantization_of(c.prepared, chosen), {});
  CHECK(precision_of(partial, "layer2_0_conv1") == Precision::kFp32);
  CHECK(precision_of(partial, "add") == Precision::kFp32);
  CHECK(precision_of(partial, "layer2_0_conv2") == Precision::kInt8);
  CHECK(c.prepared.qconfigs.count("layer2_0_conv1") == 1);  // the input is left untouched

  // A layer in fp32 only removes quantization error: closer to fp32 than every layer in int8.
  at::NoGradGuard no_grad;
  const at::Tensor reference = Interpreter(fuse(c.model, onednn_mapping())).run(c.images);
  const double all_int8 = sqnr_db(reference, Interpreter(convert(c.prepared, {})).run(c.images));
  const double fc_only = sqnr_db(reference, Interpreter(convert(with_only_quantized(c.prepared, {layers.back()}), {}))
                                                .run(c.images));
  CHECK(fc_only > all_int8);
  // Every layer out of quantization is the fp32 model, exactly.
  const at::Tensor none = Interpreter(convert(without_quantization_of(c.prepared, layers), {})).run(c.images);
  CHECK(at::equal(none, reference));

  QuantizedLayer unknown;
  unknown.nodes = {"no_such_node"};
  CHECK_THROWS_WITH(without_quantization_of(c.prepared, {unknown}), Catch::Contains("'no_such_node'"));
}

TEST_CASE("with_fp32_layers keeps the layers in fp32 when a model is prepared from scratch") {
  Calibrated c = calibrated_resnet8(onednn_mapping());
  const std::vector<QuantizedLayer> layers = quantized_layers(c.model, c.prepared);
  const QConfigMapping mapping = with_fp32_layers(onednn_mapping(), {layer_named(layers, "conv1")});
  CHECK(mapping.module_names().size() == 3);

  GraphModule prepared = prepare(c.model, mapping);
  calibrate(prepared, tensor_batches(c.images, 4), {});
  const GraphModule converted = convert(prepared, {});
  for (const char* node : {"conv1", "bn1", "relu"}) CHECK(precision_of(converted, node) == Precision::kFp32);
  CHECK(precision_of(converted, "layer1_0_conv1") == Precision::kInt8);

  CHECK_THROWS_WITH(with_fp32_layers(onednn_mapping(), {layer_named(layers, "add")}),
                    Catch::Contains("'add'") && Catch::Contains("function call"));
}

}  // namespace
}  // namespace qb
