#include "quant/bias_correction.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/fuse.h"
#include "quant/interpreter.h"
#include "quant/modules.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/quantized_modules.h"
#include "tests/catch.h"

namespace qb {
namespace {

// MobileNetV2 for 32x32 inputs quantized with per-tensor weights, the classic case of biased
// error, calibrated on seeded random images that also serve as the correction's batches.
struct Calibrated {
  GraphModule fused;     // the fp32 model prepare fused: correct_bias's reference
  GraphModule prepared;  // calibrated
  std::vector<at::Tensor> batches;
};

// Freshly initialised BatchNorms (weight 1, bias 0, mean 0, var 1) let activations fade with
// depth and give every channel the same scale after folding, unlike a trained model. This gives
// each BatchNorm the statistics of its input on `data` and random affine parameters, so values
// keep their size through the network and folded weight ranges vary across channels.
void make_batch_norms_trained_like(GraphModule& model, const at::Tensor& data) {
  std::map<std::string, BatchNorm2d*> batch_norm_of_input;
  for (const Node& node : model.graph.nodes()) {
    if (node.op != NodeOp::kCallModule) continue;
    auto* bn = dynamic_cast<BatchNorm2d*>(&model.module(node.target));
    if (!bn) continue;
    batch_norm_of_input[node.inputs.at(0)] = bn;
    bn->set_tensor("weight", at::exp(at::randn({bn->num_features()})));
    bn->set_tensor("bias", 0.5 * at::randn({bn->num_features()}));
  }
  // Set from the hook, each BatchNorm is normalised before it runs on the same pass.
  at::NoGradGuard no_grad;
  Interpreter(model).run({data}, [&](const Node& node, const at::Tensor& value) {
    auto it = batch_norm_of_input.find(node.name);
    if (it == batch_norm_of_input.end()) return;
    it->second->set_tensor("running_mean", value.mean({0, 2, 3}));
    it->second->set_tensor("running_var", value.var({0, 2, 3}, /*unbiased=*/false));
  });
}

Calibrated calibrated_mobilenet_v2() {
  ZooOptions zoo;
  zoo.num_classes = 10;
  GraphModule model = build_model("mobilenet_v2", zoo);
  QConfigMapping mapping;
  mapping.set_global(configured_qconfig("onednn", "minmax", "per_tensor"));
  at::manual_seed(11);
  at::Tensor data = at::randn({16, 3, 32, 32});
  make_batch_norms_trained_like(model, data);
  GraphModule prepared = prepare(model, mapping);
  calibrate(prepared, tensor_batches(data, 8), {});
  return {fuse(model, mapping), std::move(prepared), data.split(8)};
}

// Per-channel means (over all dims but 1) of the named nodes' outputs on `batches`, which
// are all the same size.
std::map<std::string, at::Tensor> channel_means(const GraphModule& model,
                                                const std::vector<std::string>& nodes,
                                                const std::vector<at::Tensor>& batches) {
  std::map<std::string, at::Tensor> sums;
  at::NoGradGuard no_grad;
  Interpreter interpreter(model);
  for (const at::Tensor& batch : batches) {
    interpreter.run({batch}, [&](const Node& node, const at::Tensor& value) {
      if (std::find(nodes.begin(), nodes.end(), node.name) == nodes.end()) return;
      at::Tensor v = (value.is_quantized() ? value.dequantize() : value).to(at::kDouble);
      std::vector<int64_t> dims = {0};
      for (int64_t d = 2; d < v.dim(); ++d) dims.push_back(d);
      at::Tensor mean = v.mean(dims);
      sums[node.name] = sums.count(node.name) ? sums[node.name] + mean : mean;
    });
  }
  for (auto& entry : sums) entry.second = entry.second / static_cast<double>(batches.size());
  return sums;
}

// Mean over channels of |E[y_fp32 - y_int8]| for each node, in `nodes`' order.
std::vector<double> mean_abs_errors(const std::map<std::string, at::Tensor>& fp32,
                                    const std::map<std::string, at::Tensor>& int8,
                                    const std::vector<std::string>& nodes) {
  std::vector<double> errors;
  for (const std::string& node : nodes) {
    errors.push_back((fp32.at(node) - int8.at(node)).abs().mean().item<double>());
  }
  return errors;
}

double sum(const std::vector<double>& values) {
  double total = 0.0;
  for (double v : values) total += v;
  return total;
}

TEST_CASE("bias correction removes most of MobileNetV2's per-channel output shift") {
  Calibrated c = calibrated_mobilenet_v2();
  std::vector<CorrectedLayer> layers;
  std::vector<std::pair<size_t, size_t>> progress;
  BiasCorrectionOptions options;
  options.on_layer = [&](size_t done, size_t total) { progress.emplace_back(done, total); };
  GraphModule corrected = correct_bias(c.prepared, c.fused, c.batches, options, &layers);

  // Every conv (52, each given a bias by BatchNorm folding) and the classifier, in graph order.
  REQUIRE(layers.size() == 53);
  CHECK(layers.front().node == "features_0_0");
  CHECK(layers[1].node == "features_1_conv_0_0");
  CHECK(layers.back().node == "classifier_1");
  REQUIRE(progress.size() == 53);
  CHECK(progress.front() == std::make_pair(size_t{1}, size_t{53}));
  CHECK(progress.back() == std::make_pair(size_t{53}, size_t{53}));

  // Measured here independently of correct_bias: the int8 models of the uncorrected and the
  // corrected graph against the fp32 one, on the calibration batches.
  std::vector<std::string> nodes;
  for (const CorrectedLayer& layer : layers) nodes.push_back(layer.node);
  std::map<std::string, at::Tensor> fp32 = channel_means(c.fused, nodes, c.batches);
  std::map<std::string, at::Tensor> int8_before =
      channel_means(convert(c.prepared, options.convert), nodes, c.batches);
  std::map<std::string, at::Tensor> int8_after =
      channel_means(convert(corrected, options.convert), nodes, c.batches);
  std::vector<double> before = mean_abs_errors(fp32, int8_before, nodes);
  std::vector<double> after = mean_abs_errors(fp32, int8_after, nodes);

  // 24.4 before and 1.5 after in aggregate here, and every layer at least 2.3x better; the
  // classifier's 0.28 drops to 0.005.
  INFO("aggregate: " << sum(before) << " before, " << sum(after) << " after");
  CHECK(sum(after) < sum(before) / 4.0);
  CHECK(after.back() < before.back() / 4.0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    INFO(nodes[i] << ": " << before[i] << " before, " << after[i] << " after");
    CHECK(after[i] < before[i]);
    // Later corrections cannot reach back, so the figure reported is the final model's.
    CHECK(layers[i].mean_abs_shift_after == Approx(after[i]).epsilon(1e-3).margin(1e-9));
  }

  // The first layer has no predecessor to correct: its shift is the plain mean error, added to
  // its bias as it is.
  CHECK(layers[0].mean_abs_shift_before == Approx(before[0]).epsilon(1e-3).margin(1e-9));
  at::Tensor moved = corrected.module("features.0.0").tensor("bias").to(at::kDouble) -
                     c.prepared.module("features.0.0").tensor("bias").to(at::kDouble);
  at::Tensor expected = fp32.at("features_0_0") - int8_before.at("features_0_0");
  CHECK(at::allclose(moved, expected, /*rtol=*/1e-3, /*atol=*/1e-6));
}

// Scales and zero points of every quantize_per_tensor node and int8 conv / linear output.
std::map<std::string, std::pair<double, int64_t>> activation_qparams(const GraphModule& converted) {
  std::map<std::string, std::pair<double, int64_t>> qparams;
  for (const Node& node : converted.graph.nodes()) {
    if (node.op == NodeOp::kCallFunction && node.target == "quantize_per_tensor") {
      qparams[node.name] = {node.float_attr("scale", 0.0), node.int_attr("zero_point", -1)};
    } else if (node.op == NodeOp::kCallModule) {
      const Module& module = converted.module(node.target);
      if (auto* conv = dynamic_cast<const QuantizedConv2d*>(&module)) {
        qparams[node.name] = {conv->scale(), conv->zero_point()};
      } else if (auto* linear = dynamic_cast<const QuantizedLinear*>(&module)) {
        qparams[node.name] = {linear->scale(), linear->zero_point()};
      }
    }
  }
  return qparams;
}

TEST_CASE("bias correction leaves the prepared model and the activation qparams as they were") {
  Calibrated c = calibrated_mobilenet_v2();
  const std::vector<std::string> paths = {"features.0.0", "features.2.conv.1.0", "classifier.1"};
  std::map<std::string, std::shared_ptr<Module>> modules;
  std::map<std::string, at::Tensor> biases;
  for (const std::string& path : paths) {
    modules[path] = c.prepared.module_ptr(path);
    biases[path] = c.prepared.module(path).tensor("bias").clone();
  }
  GraphModule converted = convert(c.prepared, ConvertOptions());

  GraphModule corrected = correct_bias(c.prepared, c.fused, c.batches, BiasCorrectionOptions());

  for (const std::string& path : paths) {
    INFO(path);
    CHECK(c.prepared.module_ptr(path) == modules[path]);
    CHECK(at::equal(c.prepared.module(path).tensor("bias"), biases[path]));
    CHECK(corrected.module_ptr(path) != modules[path]);
    CHECK_FALSE(at::equal(corrected.module(path).tensor("bias"), biases[path]));
    // Only the bias moves.
    CHECK(at::equal(corrected.module(path).tensor("weight"), c.prepared.module(path).tensor("weight")));
  }
  CHECK(corrected.graph.str() == c.prepared.graph.str());

  std::map<std::string, std::pair<double, int64_t>> original = activation_qparams(converted);
  CHECK(original.size() == 54);  // the input's quantize, 52 convs and the classifier
  CHECK(activation_qparams(convert(corrected, ConvertOptions())) == original);
  // And converting the original again still gives them: its observers saw no more data.
  CHECK(activation_qparams(convert(c.prepared, ConvertOptions())) == original);
}

// x -> fc, prepared and calibrated on one batch.
struct TinyLinear {
  GraphModule fused;
  GraphModule prepared;
  std::vector<at::Tensor> batches;
};

TinyLinear tiny_linear(bool bias) {
  TinyLinear tiny;
  auto fc = std::make_shared<Linear>(4, 3, bias);
  at::manual_seed(5);
  fc->tensor("weight").normal_();
  tiny.fused.add_module("fc", fc);
  Graph& g = tiny.fused.graph;
  g.output({g.call_module("fc", {g.placeholder("x")})});
  QConfigMapping mapping;
  mapping.set_global(configured_qconfig("onednn", "minmax", "per_tensor"));
  tiny.prepared = prepare(tiny.fused, mapping);
  tiny.batches = {at::randn({8, 4})};
  calibrate(tiny.prepared, tensor_batches(tiny.batches[0], 8), {});
  return tiny;
}

TEST_CASE("bias correction rejects no batches and a reference without the layer") {
  TinyLinear tiny = tiny_linear(true);
  CHECK_THROWS_AS(correct_bias(tiny.prepared, tiny.fused, {}, BiasCorrectionOptions()),
                  std::invalid_argument);

  GraphModule other;
  other.add_module("linear", std::make_shared<Linear>(4, 3));
  other.graph.output({other.graph.call_module("linear", {other.graph.placeholder("x")})});
  CHECK_THROWS_AS(correct_bias(tiny.prepared, other, tiny.batches, BiasCorrectionOptions()),
                  GraphError);
  CHECK_THROWS_WITH(correct_bias(tiny.prepared, other, tiny.batches, BiasCorrectionOptions()),
                    Catch::Contains("node 'fc'"));

  std::vector<CorrectedLayer> layers;
  correct_bias(tiny.prepared, tiny.fused, tiny.batches, BiasCorrectionOptions(), &layers);
  REQUIRE(layers.size() == 1);
  CHECK(layers[0].node == "fc");
}

TEST_CASE("bias correction leaves a layer without a bias alone") {
  TinyLinear tiny = tiny_linear(false);
  std::vector<CorrectedLayer> layers = {{"stale", 1.0, 1.0}};
  size_t calls = 0;
  BiasCorrectionOptions options;
  options.on_layer = [&](size_t, size_t) { ++calls; };
  GraphModule corrected = correct_bias(tiny.prepared, tiny.fused, tiny.batches, options, &layers);
  CHECK(layers.empty());
  CHECK(calls == 0);
  CHECK(corrected.module_ptr("fc") == tiny.prepared.module_ptr("fc"));
}

}  // namespace
}  // namespace qb
