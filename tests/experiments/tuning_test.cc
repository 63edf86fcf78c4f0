// Accuracy-aware quantization: the budget, the greedy fallback search, and per-layer sensitivity
// on a model with one layer made sensitive on purpose.

#include "experiments/tuning.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/inspect.h"
#include "quant/interpreter.h"
#include "quant/prepare.h"
#include "tests/catch.h"

namespace qb {
namespace {

QuantizedLayer layer(const std::string& name, bool has_paths = true) {
  QuantizedLayer l;
  l.nodes = {name};
  l.kind = has_paths ? "Conv2d" : "add";
  if (has_paths) l.module_paths = {name};
  return l;
}

TEST_CASE("accuracy_floor reads the budget in points or as a fraction of fp32's top-1") {
  CHECK(accuracy_floor(90.0, 0.5, std::nullopt) == Approx(89.5));
  CHECK(accuracy_floor(90.0, std::nullopt, 0.01) == Approx(89.1));
  CHECK_THROWS_AS(accuracy_floor(90.0, 0.5, 0.01), std::invalid_argument);
  CHECK_THROWS_AS(accuracy_floor(90.0, std::nullopt, std::nullopt), std::invalid_argument);
}

TEST_CASE("the greedy fallback adds layers in rank order until the floor is met") {
  // Keeping a in fp32 regains 4 points, b 6, c 1; the add cannot be named by a mapping.
  const std::vector<QuantizedLayer> candidates = {layer("a"), layer("add", false), layer("b"), layer("c")};
  std::vector<size_t> evaluated_sizes;
  auto top1 = [&](const std::vector<QuantizedLayer>& fp32) {
    evaluated_sizes.push_back(fp32.size());
    double score = 80;
    for (const QuantizedLayer& l : fp32) score += l.name() == "a" ? 4 : l.name() == "b" ? 6 : 1;
    return score;
  };

  FallbackResult met = search_fallback(candidates, 90.0, top1, 0);
  CHECK(met.met);
  REQUIRE(met.fp32_layers.size() == 2);
  CHECK(met.fp32_layers[0].name() == "a");
  CHECK(met.fp32_layers[1].name() == "b");
  REQUIRE(met.steps.size() == 3);
  CHECK(met.steps[0].added_layer.empty());
  CHECK(met.steps[0].top1_percent == 80);
  CHECK(met.steps[2].added_layer == "b");
  CHECK(met.steps[2].fp32_layers == 2);
  CHECK(met.steps[2].top1_percent == 90);
  CHECK(evaluated_sizes == std::vector<size_t>{0, 1, 2});

  // Already within budget: nothing falls back.
  FallbackResult nothing = search_fallback(candidates, 80.0, top1, 0);
  CHECK(nothing.met);
  CHECK(nothing.fp32_layers.empty());
  CHECK(nothing.steps.size() == 1);

  // Capped, or out of candidates: the search says it did not reach the floor.
  FallbackResult capped = search_fallback(candidates, 90.0, top1, 1);
  CHECK_FALSE(capped.met);
  CHECK(capped.fp32_layers.size() == 1);
  FallbackResult exhausted = search_fallback(candidates, 95.0, top1, 0);
  CHECK_FALSE(exhausted.met);
  CHECK(exhausted.fp32_layers.size() == 3);
  CHECK(exhausted.steps.back().top1_percent == 91);
}

TEST_CASE("ranked orders by top-1 regained beyond noise, then by the damage a layer does alone") {
  auto layer_with = [](const std::string& name, int64_t index, double fp32_only_top1, double int8_only_db) {
    LayerSensitivity s;
    s.layer = name;
    s.index = index;
    s.fp32_only = {fp32_only_top1, 1.0};
    s.int8_only = {50.0, int8_only_db};
    return s;
  };
  // All int8: 50% on 100 examples, so gains up to one standard error (5 points) are noise.
  const std::vector<LayerSensitivity> order =
      ranked({layer_with("noise_a", 0, 54.0, 30.0), layer_with("big", 1, 80.0, 40.0), layer_with("damaging", 2, 53.0, 5.0),
              layer_with("medium", 3, 60.0, 35.0), layer_with("noise_b", 4, 51.0, 30.0)},
             {50.0, 1.0}, 100);
  std::vector<std::string> names;
  for (const LayerSensitivity& s : order) names.push_back(s.layer);
  CHECK(names == std::vector<std::string>{"big", "medium", "damaging", "noise_a", "noise_b"});
}

TEST_CASE("LayerSensitivity survives JSON, infinite SQNR included") {
  LayerSensitivity s;
  s.layer = "layer1_0_conv1";
  s.kind = "ConvReLU2d";
  s.index = 3;
  s.module_paths = {"layer1.0.conv1", "layer1.0.bn1"};
  s.fp32_only = {91.5, std::numeric_limits<double>::infinity()};
  s.int8_only = {90.25, 31.5};
  const LayerSensitivity back = LayerSensitivity::from_json(nlohmann::json::parse(s.to_json().dump()));
  CHECK(back.layer == s.layer);
  CHECK(back.kind == s.kind);
  CHECK(back.index == 3);
  CHECK(back.module_paths == s.module_paths);
  CHECK(std::isinf(back.fp32_only.sqnr_db));
  CHECK(back.int8_only.top1_percent == 90.25);
  CHECK_THROWS_AS(LayerSensitivity::from_json({{"layer", "x"}}), std::invalid_argument);
}

TEST_CASE("sensitivity ranks first the one layer made sensitive on purpose") {
  // fmnist_resnet8 with onednn's defaults, except that layer2.0.conv1 gets ternary weights
  // (quant range [-1, 1]): the only layer whose quantization wrecks the model.
  const QConfigMapping mapping = parse_qconfig_mapping(R"(
[global]
qconfig = "onednn"
[[module_name]]
name = "layer2.0.conv1"
qconfig.activation = { observer = "histogram", dtype = "quint8", qscheme = "per_tensor_affine", reduce_range = false }
qconfig.weight = { observer = "minmax", dtype = "qint8", qscheme = "per_tensor_symmetric", quant_min = -1, quant_max = 1 }
)",
                                                       "sensitive.toml");
  ZooOptions zoo;
  zoo.num_classes = 10;
  zoo.seed = 7;
  const GraphModule model = build_model("fmnist_resnet8", zoo);
  GraphModule prepared = prepare(model, mapping);
  at::manual_seed(8);
  const at::Tensor images = at::randn({64, 1, 28, 28});
  calibrate(prepared, tensor_batches(images.slice(0, 0, 32), 16), {});

  // Labels: what the fp32 model says, so fp32 scores 100%.
  at::Tensor fp32_logits;
  {
    at::NoGradGuard no_grad;
    fp32_logits = Interpreter(model).run(images);
  }
  const at::Tensor labels = fp32_logits.argmax(1);
  const ScoreFn score = [&](const GraphModule& converted) {
    at::NoGradGuard no_grad;
    const at::Tensor logits = Interpreter(converted).run(images);
    ModelScore s;
    s.top1_percent = 100.0 * logits.argmax(1).eq(labels).sum().item<double>() / static_cast<double>(labels.size(0));
    s.sqnr_db = sqnr_db(fp32_logits, logits);
    return s;
  };

  std::vector<std::string> progress;
  SensitivityOptions options;
  options.on_layer = [&](const LayerSensitivity& s, size_t done, size_t total) {
    progress.push_back(s.layer + " " + std::to_string(done) + "/" + std::to_string(total));
  };
  const std::vector<QuantizedLayer> quantized = quantized_layers(model, prepared);
  const std::vector<LayerSensitivity> layers = layer_sensitivity(prepared, quantized, score, options);
  REQUIRE(layers.size() == quantized.size());
  REQUIRE(progress.size() == layers.size());
  CHECK(progress.back() == layers.back().layer + " " + std::to_string(layers.size()) + "/" +
                               std::to_string(layers.size()));
  for (size_t i = 0; i < layers.size(); ++i) {
    CHECK(layers[i].layer == quantized[i].name());
    CHECK(layers[i].index == static_cast<int64_t>(i));
  }

  const ModelScore int8 = score(convert(prepared, {}));
  const std::vector<LayerSensitivity> order = ranked(layers, int8, labels.size(0));
  CHECK(order.front().layer == "layer2_0_conv1");
  CHECK(order.front().module_paths == std::vector<std::string>{"layer2.0.conv1", "layer2.0.bn1"});
  // Alone in int8 it is also the worst layer by SQNR.
  const auto worst_alone = std::min_element(layers.begin(), layers.end(), [](const auto& a, const auto& b) {
    return a.int8_only.sqnr_db < b.int8_only.sqnr_db;
  });
  CHECK(worst_alone->layer == "layer2_0_conv1");

  // Resuming: layers measured before are reused, not measured again.
  SensitivityOptions resume;
  for (size_t i = 0; i + 1 < layers.size(); ++i) resume.done[layers[i].layer] = layers[i];
  size_t measured = 0;
  resume.on_layer = [&](const LayerSensitivity&, size_t, size_t) { ++measured; };
  const std::vector<LayerSensitivity> resumed = layer_sensitivity(prepared, quantized, score, resume);
  CHECK(measured == 1);
  REQUIRE(resumed.size() == layers.size());
  CHECK(resumed.back().fp32_only.top1_percent == layers.back().fp32_only.top1_percent);

  const std::string table = sensitivity_table(order, int8, {100.0, INFINITY});
  CHECK(table.find("| 1 | layer2_0_conv1 | ConvReLU2d |") != std::string::npos);
  CHECK(table.find("| | fp32 | | 100.00 | inf |") != std::string::npos);
}

}  // namespace
}  // namespace qb
