#include "quant/eager.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include "tests/catch.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/zoo.h"
#include "quant/convert.h"
#include "quant/interpreter.h"
#include "quant/modules.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/qconfig_mapping.h"
#include "quant/stubs.h"
#include "tests/test_util.h"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using qb::GraphModule;
using qb::ZooOptions;
using Groups = std::vector<std::vector<std::string>>;

// ---------------------------------------------------------------------------
// The reference files of tests/fixtures/make_eager_fixtures.py.

std::vector<std::string> fixture_lines(const std::string& name) {
  std::string path = qb::test::source_path("tests/fixtures/eager/" + name).string();
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Groups fixture_groups(const std::string& model) {
  Groups groups;
  for (const std::string& line : fixture_lines(model + ".groups")) {
    std::istringstream in(line);
    std::vector<std::string> group;
    for (std::string path; in >> path;) group.push_back(path);
    groups.push_back(group);
  }
  return groups;
}

// PyTorch's eager-mode results on this CPU: int8 logits depend on its kernels, so the script
// writes them at test time (under the test's ISA cap, which it inherits).
const std::string& logits_dir() {
  static const std::string dir = [] {
    std::string out = qb::test::scratch_dir("eager_logits").string();
    std::string script = qb::test::source_path("tests/fixtures/make_eager_fixtures.py").string();
    std::string command = "/usr/bin/python3 " + script + " --logits " + out + " > /dev/null";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
    return out;
  }();
  return dir;
}

// A <name>.logits file: "input N C H W", "fp32 v v ...", "int8 v v ..." (PyTorch's
// eager-mode result), as label -> values.
std::map<std::string, std::vector<double>> fixture_logits(const std::string& name) {
  std::map<std::string, std::vector<double>> values;
  std::ifstream file(logits_dir() + "/" + name + ".logits");
  if (!file) throw std::runtime_error("cannot open " + logits_dir() + "/" + name + ".logits");
  for (std::string line; std::getline(file, line);) {
    std::istringstream in(line);
    std::string label;
    in >> label;
    for (double v; in >> v;) values[label].push_back(v);
  }
  return values;
}

// ---------------------------------------------------------------------------
// Models and measurements.

ZooOptions quantizable(ZooOptions options = {}) {
  options.quantizable = true;
  return options;
}

std::vector<std::string> state_dict_keys(const GraphModule& gm) {
  std::vector<std::string> keys;
  for (const auto& entry : gm.state_dict()) keys.push_back(entry.first);
  return keys;
}

// Copies every tensor of `from` into the tensor of the same name in `to`.
void copy_weights(const GraphModule& from, const GraphModule& to) {
  auto source = from.state_dict();
  auto target = to.state_dict();
  REQUIRE(state_dict_keys(from) == state_dict_keys(to));
  for (size_t i = 0; i < source.size(); ++i) target[i].second.copy_(source[i].second);
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// make_eager_fixtures.py's (and make_zoo_fixtures.py's) deterministic_fill, draw for draw
// from the global generator, which Python's torch.manual_seed seeds too. Weights scaled by
// 1/sqrt(fan_in) and BatchNorm near the identity keep activations of order one through
// deep nets; the zoo's own initialisation (BatchNorm at mean 0, variance 1) shrinks
// MobileNetV2's activations to ~1e-9, below any usable int8 scale.
void deterministic_fill(const GraphModule& gm) {
  at::NoGradGuard no_grad;
  for (const auto& [key, tensor] : gm.state_dict()) {
    if (!tensor.is_floating_point()) continue;
    at::Tensor value;
    if (tensor.dim() >= 2) {
      value = at::randn(tensor.sizes()) * (1 / std::sqrt(static_cast<double>(tensor[0].numel())));
    } else if (ends_with(key, ".weight")) {
      value = at::randn(tensor.sizes()) * 0.1 + 1;
    } else if (ends_with(key, ".running_var")) {
      value = at::rand(tensor.sizes()) + 0.5;
    } else {
      value = at::randn(tensor.sizes()) * 0.1;
    }
    tensor.copy_(value);
  }
}

at::Tensor run(const GraphModule& gm, const at::Tensor& input) {
  at::NoGradGuard no_grad;
  return qb::Interpreter(gm).run(input);
}

// Random images; the fixed seed makes every run see the same batches.
std::vector<at::Tensor> random_batches(int count, std::vector<int64_t> shape, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  std::vector<at::Tensor> batches;
  for (int i = 0; i < count; ++i) batches.push_back(at::randn(shape, generator));
  return batches;
}

void calibrate(const GraphModule& prepared, const std::vector<at::Tensor>& batches) {
  at::NoGradGuard no_grad;
  qb::Interpreter interpreter(prepared);
  for (const auto& batch : batches) interpreter.run(batch);
}

// Signal-to-quantization-noise ratio of `approx` against `reference`, in dB.
double sqnr_db(const at::Tensor& reference, const at::Tensor& approx) {
  at::Tensor ref = reference.to(at::kDouble);
  at::Tensor noise = ref - approx.dequantize().to(at::kDouble);
  return 10.0 * std::log10(ref.pow(2).sum().item<double>() / noise.pow(2).sum().item<double>());
}

qb::QConfigMapping onednn_mapping() {
  return qb::QConfigMapping().set_global(qb::default_qconfig("onednn"));
}

// The eager-ready model with every group of torchvision's fuse_model fused.
GraphModule fused_quantizable(const std::string& architecture, ZooOptions options = {}) {
  return qb::fuse_modules(qb::build_model(architecture, quantizable(options)),
                          qb::fuse_model_groups(architecture));
}

// quant -> conv_a -> add(conv_a, conv_a) -> [conv_b] -> dequant: an `add` the model does
// not declare quantizable (no FloatFunctional), for the fp32 fallback.
GraphModule plain_add_model(bool conv_after) {
  qb::Conv2dOptions conv;
  conv.in_channels = 3;
  conv.out_channels = 3;
  conv.kernel_size = 3;
  conv.padding = 1;
  GraphModule gm;
  gm.add_module("quant", std::make_shared<qb::QuantStub>());
  gm.add_module("conv_a", std::make_shared<qb::Conv2d>(conv));
  if (conv_after) gm.add_module("conv_b", std::make_shared<qb::Conv2d>(conv));
  gm.add_module("dequant", std::make_shared<qb::DeQuantStub>());
  at::manual_seed(2);
  deterministic_fill(gm);
  std::string x = gm.graph.call_module("quant", {gm.graph.placeholder("x")});
  x = gm.graph.call_module("conv_a", {x});
  x = gm.graph.call_function("add", {x, x});
  if (conv_after) x = gm.graph.call_module("conv_b", {x});
  gm.graph.output({gm.graph.call_module("dequant", {x})});
  return gm;
}

// ---------------------------------------------------------------------------
// Eager-ready zoo models.

TEST_CASE("quantizable zoo models have torchvision's quantizable state_dict keys", "[eager]") {
  for (const char* architecture : {"resnet18", "resnet50", "mobilenet_v2"}) {
    INFO(architecture);
    GraphModule gm = qb::build_model(architecture, quantizable());
    CHECK(state_dict_keys(gm) == fixture_lines(std::string(architecture) + ".keys"));
  }
}

TEST_CASE("fuse_model_groups are the groups torchvision's fuse_model fuses", "[eager]") {
  for (const char* architecture : {"resnet18", "resnet50", "mobilenet_v2"}) {
    INFO(architecture);
    CHECK(qb::fuse_model_groups(architecture) == fixture_groups(architecture));
  }
  CHECK_THROWS_WITH(qb::fuse_model_groups("vgg16"), Contains("unknown architecture 'vgg16'"));
}

TEST_CASE("quantizable models carry stubs and FloatFunctionals in torchvision's places",
          "[eager]") {
  GraphModule resnet = qb::resnet18(quantizable());
  const auto& nodes = resnet.graph.nodes();
  CHECK(nodes[1].target == "quant");
  CHECK(nodes[nodes.size() - 2].target == "dequant");
  CHECK(resnet.modules().back().first == "dequant");
  CHECK(resnet.module("quant").repr() == "QuantStub()");
  CHECK(resnet.module("layer1.0.add_relu").kind() == "FloatFunctional");
  CHECK(resnet.graph.node("layer1_0_add_relu").inputs ==
        std::vector<std::string>{"layer1_0_bn2", "maxpool"});
  CHECK(resnet.graph.node("layer2_0_add_relu").inputs ==
        std::vector<std::string>{"layer2_0_bn2", "layer2_0_downsample_1"});

  GraphModule mobilenet = qb::mobilenet_v2(quantizable());
  CHECK(mobilenet.module("features.0.2").kind() == "ReLU");
  CHECK(mobilenet.graph.node("features_3_skip_add").inputs ==
        std::vector<std::string>{"features_2_conv_3", "features_3_conv_3"});
  CHECK_FALSE(mobilenet.has_module("features.2.skip_add"));  // no residual there

  GraphModule bottleneck = qb::resnet50(quantizable());
  CHECK(bottleneck.graph.node("layer1_0_relu1").inputs == std::vector<std::string>{"layer1_0_bn1"});
  CHECK(bottleneck.module("layer1.0.skip_add_relu").kind() == "FloatFunctional");
}

TEST_CASE("eager-ready fp32 models compute what the plain models compute", "[eager]") {
  struct Case {
    const char* architecture;
    std::vector<int64_t> input;
  };
  const Case cases[] = {{"resnet18", {2, 3, 64, 64}},
                        {"resnet50", {1, 3, 64, 64}},
                        {"mobilenet_v2", {2, 3, 64, 64}},
                        {"fmnist_resnet8", {2, 1, 28, 28}}};
  for (const Case& c : cases) {
    INFO(c.architecture);
    GraphModule plain = qb::build_model(c.architecture, {});
    GraphModule eager = qb::build_model(c.architecture, quantizable({1000, {}, 7}));
    copy_weights(plain, eager);
    // _replace_relu's ReLU6 -> ReLU is the one intended change; make the plain model match.
    for (const auto& [path, module] : plain.modules()) {
      if (module->kind() == "ReLU6") plain.replace_module(path, std::make_shared<qb::ReLU>());
    }
    at::Tensor x = at::randn(c.input);
    CHECK((run(plain, x) - run(eager, x)).abs().max().item<double>() < 1e-5);
  }
}

// ---------------------------------------------------------------------------
// fuse_modules.

TEST_CASE("fuse_modules fuses torchvision's groups without changing the logits", "[eager]") {
  GraphModule model = qb::resnet18(quantizable());
  GraphModule fused = qb::fuse_modules(model, qb::fuse_model_groups("resnet18"));
  CHECK(fused.module("conv1").kind() == "ConvReLU2d");
  CHECK(fused.module("layer1.0.conv2").kind() == "Conv2d");
  CHECK(fused.module("layer1.0.conv2").tensors().size() == 2);  // the folded bias
  CHECK(fused.module("fc").kind() == "Linear");
  CHECK_FALSE(fused.has_module("bn1"));
  CHECK_FALSE(fused.graph.contains("layer1_0_bn1"));
  CHECK(model.module("conv1").kind() == "Conv2d");  // the input is untouched

  at::Tensor x = at::randn({2, 3, 64, 64});
  at::Tensor expected = run(model, x);
  CHECK((run(fused, x) - expected).abs().max().item<double>() <
        1e-4 * expected.abs().max().item<double>());

  // [linear, relu] on a head whose fc feeds a relu.
  GraphModule head;
  head.add_module("fc", std::make_shared<qb::Linear>(4, 3));
  head.add_module("relu", std::make_shared<qb::ReLU>());
  head.module("fc").tensor("weight").normal_();
  std::string y = head.graph.call_module("fc", {head.graph.placeholder("x")});
  head.graph.output({head.graph.call_module("relu", {y})});
  GraphModule fused_head = qb::fuse_modules(head, {{"fc", "relu"}});
  CHECK(fused_head.module("fc").kind() == "LinearReLU");
  at::Tensor v = at::randn({5, 4});
  CHECK(run(fused_head, v).equal(run(head, v)));
}

TEST_CASE("fuse_modules names the group and module it cannot fuse", "[eager]") {
  GraphModule model = qb::resnet18(quantizable());
  CHECK_THROWS_WITH(qb::fuse_modules(model, {{"conv1", "bn1", "maxpool"}}),
                    Contains("group [conv1, bn1, maxpool]") &&
                        Contains("(Conv2d, BatchNorm2d, MaxPool2d) is not a supported pattern"));
  CHECK_THROWS_WITH(qb::fuse_modules(model, {{"conv1", "relu"}}),
                    Contains("module 'relu' does not take the output of 'conv1'"));
  CHECK_THROWS_WITH(qb::fuse_modules(model, {{"conv9", "bn1"}}), Contains("no module 'conv9'"));
  CHECK_THROWS_WITH(qb::fuse_modules(model, {{"conv1", "bn1"}, {"conv1", "bn1"}}),
                    Contains("module 'bn1' is not called by any node (fused already?)"));

  // The plain BasicBlock calls its relu twice: fusing it would drop the second call.
  GraphModule plain = qb::resnet18({});
  CHECK_THROWS_WITH(
      qb::fuse_modules(plain, {{"layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu"}}),
      Contains("module 'layer1.0.relu' is called by 2 nodes (layer1_0_relu, layer1_0_relu_1)"));

  // A conv whose output something else reads too.
  GraphModule branch;
  qb::Conv2dOptions options;
  options.in_channels = options.out_channels = 2;
  branch.add_module("conv", std::make_shared<qb::Conv2d>(options));
  branch.add_module("bn", std::make_shared<qb::BatchNorm2d>(2));
  std::string c = branch.graph.call_module("conv", {branch.graph.placeholder("x")});
  std::string b = branch.graph.call_module("bn", {c});
  branch.graph.output({branch.graph.call_function("add", {c, b})});
  CHECK_THROWS_WITH(qb::fuse_modules(branch, {{"conv", "bn"}}),
                    Contains("the output of module 'conv' is also read by 'add'"));

  branch.train(true);
  CHECK_THROWS_WITH(qb::fuse_modules(branch, {{"conv", "bn"}}),
                    Contains("module 'conv' is in training mode"));
}

// ---------------------------------------------------------------------------
// prepare_eager.

TEST_CASE("prepare_eager observes the module outputs PyTorch's eager prepare observes", "[eager]") {
  GraphModule prepared = qb::prepare_eager(fused_quantizable("resnet18"), onednn_mapping());
  CHECK(qb::observed_modules(prepared) == fixture_lines("resnet18.observed"));
  // PyTorch's forward hook: the observer node follows its module's node.
  CHECK(prepared.graph.node("conv1_activation_post_process").inputs ==
        std::vector<std::string>{"conv1"});
  CHECK(prepared.graph.node("maxpool").inputs ==
        std::vector<std::string>{"conv1_activation_post_process"});
  // And its state sits right after the module's, as the activation_post_process child's.
  std::vector<std::string> keys = state_dict_keys(prepared);
  CHECK(keys[2].rfind("conv1.activation_post_process.", 0) == 0);
  CHECK(prepared.qconfigs.at("layer1_0_conv1") == qb::default_qconfig("onednn"));

  // torchvision registers skip_add in every inverted residual, and PyTorch observes it even
  // where forward() never calls it; our models register only the called ones.
  GraphModule mobilenet = qb::prepare_eager(fused_quantizable("mobilenet_v2"), onednn_mapping());
  std::vector<std::string> expected;
  for (const std::string& path : fixture_lines("mobilenet_v2.observed")) {
    bool unused_skip_add =
        path.find(".skip_add") != std::string::npos && !mobilenet.has_module(path);
    if (!unused_skip_add) expected.push_back(path);
  }
  CHECK(expected.size() == fixture_lines("mobilenet_v2.observed").size() - 7);
  CHECK(qb::observed_modules(mobilenet) == expected);
}

TEST_CASE("prepare_eager leaves modules whose qconfig is None in fp32", "[eager]") {
  qb::QConfigMapping mapping = onednn_mapping();
  mapping.set_module_name("fc", std::nullopt).set_module_name("layer4.1", std::nullopt);
  GraphModule prepared = qb::prepare_eager(fused_quantizable("resnet18"), mapping);
  std::vector<std::string> observed = qb::observed_modules(prepared);
  std::set<std::string> observed_set(observed.begin(), observed.end());
  CHECK(observed_set.count("layer4.0.conv1") == 1);
  CHECK(observed_set.count("layer4.1.conv1") == 0);
  CHECK(observed_set.count("layer4.1.add_relu") == 0);
  CHECK(observed_set.count("fc") == 0);
  CHECK(prepared.qconfigs.count("fc") == 0);

  // layer4.1 and fc then run in fp32 behind a dequantize; only the int8 part needs data.
  calibrate(prepared, random_batches(2, {2, 3, 64, 64}, 1));
  GraphModule converted = qb::convert_eager(prepared, {});
  CHECK(converted.module("layer4.0.conv1").kind() == "QuantizedConvReLU2d");
  CHECK(converted.module("layer4.1.conv1").kind() == "ConvReLU2d");
  CHECK(converted.module("layer4.1.add_relu").kind() == "FloatFunctional");
  CHECK(converted.module("fc").kind() == "Linear");
  CHECK(converted.graph.node("layer4_1_conv1").inputs.at(0).rfind("dequantize", 0) == 0);
  at::Tensor x = at::randn({2, 3, 64, 64});
  CHECK(sqnr_db(run(fused_quantizable("resnet18"), x), run(converted, x)) > 15.0);
}

// ---------------------------------------------------------------------------
// convert_eager.

TEST_CASE("convert_eager reproduces PyTorch's eager post-training quantization", "[eager]") {
  for (const char* architecture : {"resnet18", "mobilenet_v2"}) {
    INFO(architecture);
    std::map<std::string, std::vector<double>> reference = fixture_logits(architecture);
    std::vector<int64_t> input_shape(reference["input"].begin(), reference["input"].end());
    std::vector<int64_t> batch_shape = input_shape;
    batch_shape[0] = 4;
    auto torch_logits = [&](const char* label) {
      return at::tensor(reference.at(label), at::kDouble).reshape({input_shape[0], -1});
    };

    // The fixture's draws, in its order: weights, two calibration batches, the input.
    at::manual_seed(0);
    GraphModule model = qb::build_model(architecture, quantizable({10, {}, 0}));
    deterministic_fill(model);
    std::vector<at::Tensor> batches = {at::randn(batch_shape), at::randn(batch_shape)};
    at::Tensor x = at::randn(input_shape);
    at::Tensor fp32 = run(model, x);
    CHECK((fp32 - torch_logits("fp32")).abs().max().item<double>() < 1e-4);

    GraphModule prepared = qb::prepare_eager(
        qb::fuse_modules(model, qb::fuse_model_groups(architecture)), onednn_mapping());
    calibrate(prepared, batches);
    GraphModule converted = qb::convert_eager(prepared, {});
    at::Tensor int8 = run(converted, x);
    REQUIRE_FALSE(int8.is_quantized());

    double sqnr = sqnr_db(fp32, int8);
    double torch_sqnr = sqnr_db(torch_logits("fp32"), torch_logits("int8"));
    double versus_torch = (int8 - torch_logits("int8")).abs().max().item<double>();
    WARN(architecture << " eager-mode int8 logits: SQNR " << sqnr << " dB vs fp32 (PyTorch's "
                      << torch_sqnr << " dB); max |ours - PyTorch's| = " << versus_torch);
    CHECK(sqnr > 15.0);
    // Same observers, same kernels: the same int8 logits, to the float32 printed.
    CHECK(versus_torch < 1e-6);

    CHECK(converted.module("quant").kind() == "Quantize");
    CHECK_THAT(converted.module("quant").repr(), StartsWith("Quantize(scale=tensor(["));
    CHECK(converted.module("dequant").kind() == "DeQuantize");
    CHECK(converted.graph.str().find("dequantize") == std::string::npos);  // int8 throughout
    for (const auto& entry : converted.modules()) {
      CHECK(entry.first.find("activation_post_process") == std::string::npos);
    }
  }
}

TEST_CASE("convert_eager swaps each prepared module for its quantized counterpart", "[eager]") {
  GraphModule prepared = qb::prepare_eager(fused_quantizable("resnet18"), onednn_mapping());
  calibrate(prepared, random_batches(1, {2, 3, 64, 64}, 5));
  GraphModule converted = qb::convert_eager(prepared, {});
  CHECK(converted.module("conv1").kind() == "QuantizedConvReLU2d");
  CHECK(converted.module("layer1.0.conv2").kind() == "QuantizedConv2d");
  CHECK(converted.module("layer1.0.add_relu").kind() == "QFunctional");
  CHECK(converted.module("fc").kind() == "QuantizedLinear");
  CHECK(converted.module("maxpool").kind() == "MaxPool2d");
  // QFunctional keeps its output qparams in the state_dict, as PyTorch's does.
  std::vector<std::string> keys = state_dict_keys(converted);
  CHECK(std::find(keys.begin(), keys.end(), "layer1.0.add_relu.scale") != keys.end());
}

TEST_CASE("convert_eager quantizes unfused BatchNorm and every FloatFunctional method", "[eager]") {
  // quant -> conv -> bn -> mul(bn, bn) -> cat(mul, bn) -> add(cat, cat) -> add_relu -> dequant
  qb::Conv2dOptions options;
  options.in_channels = 3;
  options.out_channels = 4;
  options.kernel_size = 3;
  GraphModule model;
  model.add_module("quant", std::make_shared<qb::QuantStub>());
  model.add_module("conv", std::make_shared<qb::Conv2d>(options));
  model.add_module("bn", std::make_shared<qb::BatchNorm2d>(4));
  for (const char* method : {"mul", "cat", "add", "add_relu"}) {
    model.add_module(method, std::make_shared<qb::FloatFunctional>(method, 1));
  }
  model.add_module("dequant", std::make_shared<qb::DeQuantStub>());
  at::manual_seed(8);
  deterministic_fill(model);
  qb::Graph& g = model.graph;
  std::string bn =
      g.call_module("bn", {g.call_module("conv", {g.call_module("quant", {g.placeholder("x")})})});
  std::string product = g.call_module("mul", {bn, bn});
  std::string joined = g.call_module("cat", {product, bn});
  std::string sum = g.call_module("add", {joined, joined});
  g.output({g.call_module("dequant", {g.call_module("add_relu", {sum, sum})})});

  GraphModule prepared = qb::prepare_eager(model, onednn_mapping());
  CHECK(qb::observed_modules(prepared) ==
        std::vector<std::string>{"quant", "conv", "bn", "mul", "cat", "add", "add_relu"});
  calibrate(prepared, random_batches(2, {2, 3, 8, 8}, 6));
  GraphModule converted = qb::convert_eager(prepared, {});
  CHECK(converted.module("bn").kind() == "QuantizedBatchNorm2d");
  CHECK(converted.module("cat").kind() == "QFunctional");

  // make_eager_fixtures.py's Chain, through PyTorch's eager prepare and convert.
  std::map<std::string, std::vector<double>> reference = fixture_logits("chain");
  at::Tensor x = random_batches(1, {1, 3, 6, 6}, 7)[0];
  at::Tensor fp32 = run(model, x);
  at::Tensor int8 = run(converted, x);
  at::Tensor torch_fp32 = at::tensor(reference.at("fp32"), at::kDouble).reshape(fp32.sizes());
  at::Tensor torch_int8 = at::tensor(reference.at("int8"), at::kDouble).reshape(fp32.sizes());
  CHECK((fp32 - torch_fp32).abs().max().item<double>() < 1e-5);
  CHECK((int8 - torch_int8).abs().max().item<double>() < 1e-6);
}

TEST_CASE("convert_eager names an uncalibrated observer unless allowed", "[eager]") {
  GraphModule prepared =
      qb::prepare_eager(fused_quantizable("fmnist_resnet8", {10, {}, 0}), onednn_mapping());
  CHECK_THROWS_WITH(qb::convert_eager(prepared, {}),
                    Contains("observer 'quant_activation_post_process' (after 'quant') has seen "
                             "no data"));
  qb::ConvertOptions options;
  options.allow_uncalibrated = true;
  GraphModule converted = qb::convert_eager(prepared, options);
  CHECK(converted.module("quant").repr() ==
        "Quantize(scale=tensor([1.]), zero_point=tensor([0]), dtype=torch.quint8)");
}

TEST_CASE("convert_eager runs undeclared functional ops in fp32", "[eager]") {
  // A plain `add` on int8 values: dequantized in front, fp32 behind.
  GraphModule model = plain_add_model(false);
  GraphModule prepared = qb::prepare_eager(model, onednn_mapping());
  calibrate(prepared, random_batches(2, {2, 3, 8, 8}, 3));
  GraphModule converted = qb::convert_eager(prepared, {});
  CHECK(converted.graph.node("add").inputs == std::vector<std::string>{"dequantize", "dequantize"});
  at::Tensor x = random_batches(1, {2, 3, 8, 8}, 4)[0];
  CHECK(sqnr_db(run(model, x), run(converted, x)) > 20.0);

  // ...and a quantized module behind it has nothing to quantize that fp32 value with.
  GraphModule blocked = plain_add_model(true);
  GraphModule prepared_blocked = qb::prepare_eager(blocked, onednn_mapping());
  calibrate(prepared_blocked, random_batches(2, {2, 3, 8, 8}, 3));
  CHECK_THROWS_WITH(qb::convert_eager(prepared_blocked, {}),
                    Contains("node 'conv_b' (QuantizedConv2d) needs a quantized input, but "
                             "'add' is fp32 there"));
}

TEST_CASE("eager and graph mode quantize fmnist_resnet8 alike", "[eager]") {
  GraphModule plain = qb::fmnist_resnet8({10, {}, 3});
  GraphModule eager_model = qb::fmnist_resnet8(quantizable({10, {}, 4}));
  copy_weights(plain, eager_model);
  eager_model = qb::fuse_modules(eager_model, qb::fuse_model_groups("fmnist_resnet8"));
  std::vector<at::Tensor> batches = random_batches(4, {8, 1, 28, 28}, 21);
  at::Tensor x = random_batches(1, {16, 1, 28, 28}, 22)[0];
  at::Tensor expected = run(plain, x);

  GraphModule graph_prepared = qb::prepare(plain, onednn_mapping());
  calibrate(graph_prepared, batches);
  at::Tensor graph_logits = run(qb::convert(graph_prepared, {}), x);

  GraphModule eager_prepared = qb::prepare_eager(eager_model, onednn_mapping());
  calibrate(eager_prepared, batches);
  at::Tensor eager_logits = run(qb::convert_eager(eager_prepared, {}), x);

  double graph_sqnr = sqnr_db(expected, graph_logits);
  double eager_sqnr = sqnr_db(expected, eager_logits);
  double between = sqnr_db(graph_logits, eager_logits);
  WARN("fmnist_resnet8 int8 logits: graph mode " << graph_sqnr << " dB, eager mode " << eager_sqnr
                                                 << " dB vs fp32; eager vs graph " << between
                                                 << " dB");
  CHECK(graph_sqnr > 20.0);
  CHECK(eager_sqnr > 20.0);
  CHECK(between > 20.0);
}

}  // namespace
