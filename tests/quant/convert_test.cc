#include "quant/convert.h"

#include <ATen/ATen.h>

#include <cmath>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/interpreter.h"
#include "quant/modules.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/quantized_modules.h"
#include "quant/quantized_ops.h"
#include "tests/catch.h"

namespace qb {
namespace {

// Signal-to-quantization-noise ratio in dB, as torch.ao.ns's compute_sqnr.
double sqnr_db(const at::Tensor& reference, const at::Tensor& test) {
  double signal = reference.norm().item<double>();
  double noise = (reference - test).norm().item<double>();
  return 20.0 * std::log10(signal / noise);
}

// Freshly initialised deep models compute vanishing activations in eval mode
// (running statistics 0 / 1). One training-mode pass with momentum 1 gives every
// BatchNorm the statistics of real activations, as a trained model has.
GraphModule with_realistic_batch_norm(GraphModule gm, const at::Tensor& batch) {
  for (const auto& [path, module] : gm.modules()) {
    const auto* bn = dynamic_cast<const BatchNorm2d*>(module.get());
    if (!bn) continue;
    auto refreshed = std::make_shared<BatchNorm2d>(bn->num_features(), bn->eps(), /*momentum=*/1.0);
    for (const auto& slot : bn->tensors()) refreshed->set_tensor(slot.name, slot.tensor.clone());
    gm.replace_module(path, refreshed);
  }
  gm.train(true);
  {
    at::NoGradGuard no_grad;
    Interpreter(gm).run(batch);
  }
  gm.train(false);
  return gm;
}

QConfigMapping mapping_for(const std::string& engine) {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig(engine));
  return mapping;
}

// Calibrates on `batches` random batches of the given shape; returns them too.
std::vector<at::Tensor> calibrate_random(const GraphModule& prepared, std::vector<int64_t> shape,
                                         int batches) {
  at::manual_seed(21);
  std::vector<at::Tensor> data;
  for (int i = 0; i < batches; ++i) data.push_back(at::randn(shape));
  calibrate(prepared, batches_of(data), {});
  return data;
}

int count_nodes(const GraphModule& gm, const std::string& target_or_kind) {
  int n = 0;
  for (const Node& node : gm.graph.nodes()) {
    if (node.op == NodeOp::kCallFunction && node.target == target_or_kind) ++n;
    if (node.op == NodeOp::kCallModule && gm.module(node.target).kind() == target_or_kind) ++n;
  }
  return n;
}

TEST_CASE("converted ResNet-18 runs on int8 kernels and stays close to fp32") {
  at::manual_seed(5);
  GraphModule model = with_realistic_batch_norm(build_model("resnet18", {}), at::randn({8, 3, 64, 64}));
  GraphModule prepared = prepare(model, mapping_for("onednn"));
  std::vector<at::Tensor> data = calibrate_random(prepared, {2, 3, 64, 64}, 4);
  GraphModule converted = convert(prepared, {"onednn", false});

  CHECK(count_nodes(converted, "QuantizedConvReLU2d") == 9);
  CHECK(count_nodes(converted, "QuantizedConv2d") == 11);
  CHECK(count_nodes(converted, "QuantizedLinear") == 1);
  CHECK(count_nodes(converted, "quantized_add_relu") == 8);
  CHECK(count_nodes(converted, "quantize_per_tensor") == 1);
  CHECK(count_nodes(converted, "dequantize") == 1);
  CHECK(converted.graph.node(converted.graph.outputs()[0]).target == "dequantize");
  CHECK(converted.module("fc").tensor("weight").qscheme() == at::kPerChannelAffine);

  at::Tensor reference = Interpreter(model).run(data[0]);
  at::Tensor int8 = Interpreter(converted).run(data[0]);
  double sqnr = sqnr_db(reference, int8);
  INFO("ResNet-18 int8 SQNR " << sqnr << " dB");
  CHECK(sqnr > 15.0);
  WARN("ResNet-18 onednn int8 logits SQNR: " << sqnr << " dB");
}

TEST_CASE("converted MobileNetV2 runs and stays close to fp32") {
  at::manual_seed(5);
  GraphModule model =
      with_realistic_batch_norm(build_model("mobilenet_v2", {}), at::randn({8, 3, 64, 64}));
  GraphModule prepared = prepare(model, mapping_for("onednn"));
  std::vector<at::Tensor> data = calibrate_random(prepared, {2, 3, 64, 64}, 4);
  GraphModule converted = convert(prepared, {"onednn", false});
  CHECK(count_nodes(converted, "quantized_add") == 10);
  CHECK(count_nodes(converted, "dequantize") == 1);
  double sqnr = sqnr_db(Interpreter(model).run(data[0]), Interpreter(converted).run(data[0]));
  WARN("MobileNetV2 onednn int8 logits SQNR: " << sqnr << " dB");
  // Random weights and inputs are hard on MobileNetV2: PyTorch's own prepare_fx /
  // convert_fx gives 5.9 dB on this kind of setup (21.1 dB for ResNet-18); we give 5.5 dB
  // with VNNI and 2.8 dB without (AVX2 saturates u8 x s8 pairs at 16 bits), so the floor
  // holds on either. Parity with PyTorch is fx_parity_test's: this checks it runs.
  CHECK(sqnr > 2.0);
}

TEST_CASE("printing a converted model shows scales and zero points") {
  GraphModule prepared = prepare(build_model("fmnist_resnet8", {}), mapping_for("onednn"));
  calibrate_random(prepared, {4, 1, 28, 28}, 2);
  GraphModule converted = convert(prepared, {"onednn", false});
  std::string text = converted.str();
  CHECK_THAT(text, Catch::Contains("(conv1): QuantizedConvReLU2d(1, 16, kernel_size=(3, 3), "
                                   "stride=(1, 1), scale="));
  CHECK_THAT(text, Catch::Contains("call_function[target=torch.quantize_per_tensor](args = (%x,), "
                                   "kwargs = {scale: "));
  CHECK_THAT(text, Catch::Contains("qscheme=torch.per_channel_affine)"));
}

TEST_CASE("an uncalibrated observer is an error naming it, unless allowed") {
  GraphModule prepared = prepare(build_model("fmnist_resnet8", {}), mapping_for("onednn"));
  CHECK_THROWS_WITH(convert(prepared, {"onednn", false}),
                    Catch::StartsWith("observer 'activation_post_process_0' (after 'x') has seen "
                                      "no data"));
  GraphModule converted = convert(prepared, {"onednn", true});
  CHECK(dynamic_cast<const QuantizedConv2d*>(&converted.module("conv1")) != nullptr);
}

TEST_CASE("a missing engine fails with the list of available ones") {
  GraphModule prepared = prepare(build_model("fmnist_resnet8", {}), mapping_for("onednn"));
  calibrate_random(prepared, {4, 1, 28, 28}, 1);
  std::vector<std::string> engines = available_engines();
  bool has_fbgemm = std::find(engines.begin(), engines.end(), "fbgemm") != engines.end();
  if (!has_fbgemm) {
    CHECK_THROWS_WITH(convert(prepared, {"fbgemm", false}),
                      Catch::Contains("quantized engine 'fbgemm' is not available") &&
                          Catch::Contains("onednn"));
  }
  CHECK_THROWS_WITH(convert(prepared, {"tpu", false}), Catch::Contains("available: "));
}

TEST_CASE("qnnpack converts with per-tensor weights") {
  GraphModule prepared = prepare(build_model("fmnist_resnet8", {}), mapping_for("qnnpack"));
  std::vector<at::Tensor> data = calibrate_random(prepared, {4, 1, 28, 28}, 2);
  GraphModule converted = convert(prepared, {"qnnpack", false});
  CHECK(converted.module("fc").tensor("weight").qscheme() == at::kPerTensorAffine);
  at::Tensor out = Interpreter(converted).run(data[0]);
  CHECK(out.sizes() == std::vector<int64_t>{4, 1000});
  select_engine("onednn");
}

TEST_CASE("a module skipped with None runs fp32 between dequantize and quantize") {
  GraphModule model = build_model("fmnist_resnet8", {});
  QConfigMapping mapping = mapping_for("onednn");
  mapping.set_module_name("layer2.0.conv1", std::nullopt);
  GraphModule prepared = prepare(model, mapping);
  std::vector<at::Tensor> data = calibrate_random(prepared, {4, 1, 28, 28}, 2);
  GraphModule converted = convert(prepared, {"onednn", false});
  CHECK(converted.module("layer2.0.conv1").kind() == "Conv2d");
  // Its BatchNorm, no longer folded, is quantized with the ReLU after it, as in prepare_fx.
  CHECK(converted.module("layer2.0.bn1").kind() == "QuantizedBNReLU2d");
  const Node& conv = converted.graph.node("layer2_0_conv1");
  CHECK(converted.graph.node(conv.inputs[0]).target == "dequantize");
  CHECK(count_nodes(converted, "dequantize") == 2);
  CHECK(count_nodes(converted, "quantize_per_tensor") == 2);
  double sqnr = sqnr_db(Interpreter(model).run(data[0]), Interpreter(converted).run(data[0]));
  CHECK(sqnr > 15.0);
}

}  // namespace
}  // namespace qb
