#include "models/zoo.h"

#include <ATen/ATen.h>
#include "tests/catch.h"

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/ops.h"
#include "quant/interpreter.h"
#include "tests/test_util.h"

namespace {

using Catch::Matchers::Contains;
using qb::GraphModule;
using qb::ZooOptions;

// ---------------------------------------------------------------------------
// The reference files of tests/fixtures/make_zoo_fixtures.py.

/// One case of make_zoo_fixtures.py's CASES, with the options that build the same model.
struct ZooCase {
  const char* fixture;
  const char* architecture;
  ZooOptions options;
};

const ZooCase kCases[] = {
    {"resnet18", "resnet18", {}},
    {"resnet34", "resnet34", {}},
    {"resnet50", "resnet50", {}},
    {"mobilenet_v2", "mobilenet_v2", {}},
    {"resnet18_10classes", "resnet18", {10, {}, 0}},
    {"cifar_resnet18", "cifar_resnet18", {10, {}, 0}},
    {"fmnist_resnet8", "fmnist_resnet8", {10, {}, 0}},
};

std::string fixture_path(const std::string& name) {
  return qb::test::source_path("tests/fixtures/zoo/" + name).string();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// "input 2 3 224 224" -> {2, 3, 224, 224}.
std::vector<int64_t> header_shape(const std::string& line) {
  std::istringstream in(line);
  std::string label;
  in >> label;
  std::vector<int64_t> shape;
  for (int64_t d; in >> d;) shape.push_back(d);
  return shape;
}

/// What torchvision produced for one case.
struct Reference {
  std::vector<int64_t> input_shape;
  std::vector<std::string> state_dict;  // "key dtype [shape]"
  std::vector<std::string> modules;     // "path repr"
  std::vector<std::string> graph;       // "name op target input,input"
  at::Tensor logits;
};

Reference load_reference(const std::string& fixture) {
  Reference ref;
  std::vector<std::string> names = read_lines(fixture_path(fixture + ".names"));
  ref.input_shape = header_shape(names.at(0));
  std::vector<int64_t> logits_shape = header_shape(names.at(1));
  ref.state_dict.assign(names.begin() + 2, names.end());
  ref.modules = read_lines(fixture_path(fixture + ".modules"));
  ref.graph = read_lines(fixture_path(fixture + ".graph"));

  // Raw little-endian float32, which is this (x86-64) host's layout.
  ref.logits = at::empty(logits_shape, at::kFloat);
  const auto bytes = static_cast<std::streamsize>(ref.logits.numel() * sizeof(float));
  std::ifstream in(fixture_path(fixture + ".logits"), std::ios::binary);
  in.read(reinterpret_cast<char*>(ref.logits.data_ptr<float>()), bytes);
  if (in.gcount() != bytes) throw std::runtime_error("short logits file for " + fixture);
  return ref;
}

// ---------------------------------------------------------------------------
// The same descriptions of our model, line for line.

std::string dims(at::IntArrayRef sizes) {
  std::string s;
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? "," : "") + std::to_string(sizes[i]);
  return s;
}

std::vector<std::string> state_dict_lines(const GraphModule& gm) {
  std::vector<std::string> lines;
  for (const auto& [key, tensor] : gm.state_dict()) {
    const char* dtype = tensor.scalar_type() == at::kFloat  ? "float32"
                        : tensor.scalar_type() == at::kLong ? "int64"
                                                            : c10::toString(tensor.scalar_type());
    lines.push_back(key + " " + dtype + " [" + dims(tensor.sizes()) + "]");
  }
  return lines;
}

std::vector<std::string> module_lines(const GraphModule& gm) {
  std::vector<std::string> lines;
  for (const auto& [path, module] : gm.modules()) lines.push_back(path + " " + module->repr());
  return lines;
}

std::vector<std::string> graph_lines(const GraphModule& gm) {
  std::vector<std::string> lines;
  for (const qb::Node& node : gm.graph.nodes()) {
    std::string target = node.op == qb::NodeOp::kCallFunction
                             ? qb::op(node.target).display_name
                             : node.target;
    std::string line = node.name + " " + qb::to_string(node.op) + " " + target;
    for (size_t i = 0; i < node.inputs.size(); ++i) line += (i ? "," : " ") + node.inputs[i];
    lines.push_back(line);
  }
  return lines;
}

/// Fails with the first differing line, which says more than two long lists.
void check_same_lines(const std::string& what, const std::vector<std::string>& ours,
                      const std::vector<std::string>& torchvision) {
  size_t i = 0;
  while (i < ours.size() && i < torchvision.size() && ours[i] == torchvision[i]) ++i;
  if (i == ours.size() && i == torchvision.size()) return;
  FAIL_CHECK(what << " differ at line " << i + 1 << ":\n  ours:        "
                  << (i < ours.size() ? ours[i] : "<end>") << "\n  torchvision: "
                  << (i < torchvision.size() ? torchvision[i] : "<end>"));
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// make_zoo_fixtures.py's deterministic_fill, draw for draw from the global
/// generator (which Python's torch.manual_seed also seeds: same libtorch).
void deterministic_fill(const qb::NamedTensors& state) {
  for (const auto& entry : state) {
    const std::string& key = entry.first;
    const at::Tensor& tensor = entry.second;
    if (!tensor.is_floating_point()) continue;
    const auto shape = tensor.sizes();
    at::Tensor value;
    if (tensor.dim() >= 2) {
      const double fan_in = static_cast<double>(tensor[0].numel());
      value = at::randn(shape) * (1 / std::sqrt(fan_in));
    } else if (ends_with(key, ".weight")) {
      value = at::randn(shape) * 0.1 + 1;
    } else if (ends_with(key, ".running_var")) {
      value = at::rand(shape) + 0.5;
    } else {  // biases and running means
      value = at::randn(shape) * 0.1;
    }
    tensor.copy_(value);
  }
}

at::Tensor tensor_named(const GraphModule& gm, const std::string& key) {
  for (const auto& [name, tensor] : gm.state_dict()) {
    if (name == key) return tensor;
  }
  throw std::out_of_range("no state_dict entry " + key);
}

// ---------------------------------------------------------------------------

TEST_CASE("every zoo model matches torchvision's layout and logits", "[zoo]") {
  for (const ZooCase& c : kCases) {
    DYNAMIC_SECTION(c.fixture) {
      const Reference ref = load_reference(c.fixture);
      GraphModule gm = qb::build_model(c.architecture, c.options);

      check_same_lines("state_dict entries", state_dict_lines(gm), ref.state_dict);
      check_same_lines("leaf modules", module_lines(gm), ref.modules);
      check_same_lines("FX graph nodes", graph_lines(gm), ref.graph);
      CHECK_NOTHROW(qb::lint(gm));
      for (const auto& [path, module] : gm.modules()) CHECK_FALSE(module->training());

      at::manual_seed(0);  // make_zoo_fixtures.py's SEED
      deterministic_fill(gm.state_dict());
      const at::Tensor input = at::randn(ref.input_shape);
      const at::Tensor logits = qb::Interpreter(gm).run(input);

      REQUIRE(logits.sizes() == ref.logits.sizes());
      const double max_abs_diff = (logits - ref.logits).abs().max().item<double>();
      INFO(c.fixture << ": max |logits - torchvision| = " << max_abs_diff);
      CHECK(max_abs_diff < 1e-4);
    }
  }
}

TEST_CASE("the graphs print torch.fx's node lines", "[zoo]") {
  auto count = [](const std::string& text, const std::string& pattern) {
    size_t n = 0;
    for (size_t at = text.find(pattern); at != std::string::npos; at = text.find(pattern, at + 1)) {
      ++n;
    }
    return n;
  };
  const std::string add = "call_function[target=operator.add]";

  SECTION("resnet18: one relu module called twice per block") {
    const std::string text = qb::resnet18({}).graph.str();
    CHECK_THAT(text, Contains("    %layer1_0_relu_1 : [#users=2] = call_module[target=layer1.0.relu]"
                              "(args = (%add,), kwargs = {})\n"));
    CHECK_THAT(text, Contains("    %add : [#users=1] = call_function[target=operator.add]"
                              "(args = (%layer1_0_bn2, %maxpool), kwargs = {})\n"));
    CHECK_THAT(text, Contains("    %fc : [#users=1] = call_module[target=fc](args = (%flatten,), "
                              "kwargs = {})\n"));
    CHECK(count(text, add) == 8);
  }
  SECTION("resnet50: three relu calls per Bottleneck") {
    const std::string text = qb::resnet50({}).graph.str();
    CHECK_THAT(text, Contains("    %layer1_0_relu_2 : [#users=2] = call_module[target=layer1.0.relu]"
                              "(args = (%add,), kwargs = {})\n"));
    CHECK(count(text, add) == 16);
  }
  SECTION("mobilenet_v2: residual adds read the block input first") {
    const std::string text = qb::mobilenet_v2({}).graph.str();
    CHECK_THAT(text, Contains("    %add : [#users=1] = call_function[target=operator.add]"
                              "(args = (%features_2_conv_3, %features_3_conv_3), kwargs = {})\n"));
    CHECK_THAT(text, Contains("    %classifier_1 : [#users=1] = call_module[target=classifier.1]"
                              "(args = (%classifier_0,), kwargs = {})\n"));
    CHECK(count(text, add) == 10);
  }
}

TEST_CASE("initialisation is seeded and follows torchvision", "[zoo]") {
  for (const std::string& architecture : qb::zoo_architectures()) {
    DYNAMIC_SECTION(architecture << ": same seed, same weights; other seed, other weights") {
      const GraphModule a = qb::build_model(architecture, {1000, {}, 7});
      const GraphModule b = qb::build_model(architecture, {1000, {}, 7});
      const GraphModule other = qb::build_model(architecture, {1000, {}, 8});
      const auto state_a = a.state_dict();
      const auto state_b = b.state_dict();
      const auto state_other = other.state_dict();
      REQUIRE(state_a.size() == state_b.size());
      bool all_equal = true;
      for (size_t i = 0; i < state_a.size(); ++i) {
        all_equal = all_equal && at::equal(state_a[i].second, state_b[i].second);
      }
      CHECK(all_equal);
      // Entry 0 is the first conv's weight in every architecture.
      CHECK_FALSE(at::equal(state_a[0].second, state_other[0].second));
    }
  }

  SECTION("resnet18: kaiming_normal_ fan_out convs, default Linear, identity BatchNorm") {
    const GraphModule gm = qb::resnet18({});
    const at::Tensor conv1 = tensor_named(gm, "conv1.weight");
    const double expected_std = std::sqrt(2.0 / (64 * 7 * 7));
    CHECK(conv1.std().item<double>() == Approx(expected_std).epsilon(0.1));
    CHECK(std::abs(conv1.mean().item<double>()) < 0.1 * expected_std);

    const double bound = 1 / std::sqrt(512.0);
    const at::Tensor fc = tensor_named(gm, "fc.weight");
    CHECK(fc.abs().max().item<double>() <= bound);
    CHECK(fc.std().item<double>() == Approx(bound / std::sqrt(3.0)).epsilon(0.1));
    CHECK(tensor_named(gm, "fc.bias").abs().max().item<double>() <= bound);
    CHECK(tensor_named(gm, "fc.bias").abs().max().item<double>() > 0);

    CHECK(at::equal(tensor_named(gm, "layer1.0.bn1.weight"), at::ones({64})));
    CHECK(at::equal(tensor_named(gm, "layer1.0.bn1.bias"), at::zeros({64})));
    CHECK(at::equal(tensor_named(gm, "layer1.0.bn1.running_var"), at::ones({64})));
  }
  SECTION("mobilenet_v2: kaiming_normal_ fan_out convs, N(0, 0.01) classifier, zero bias") {
    const GraphModule gm = qb::mobilenet_v2({});
    const at::Tensor last_conv = tensor_named(gm, "features.18.0.weight");
    CHECK(last_conv.std().item<double>() == Approx(std::sqrt(2.0 / 1280)).epsilon(0.1));
    CHECK(tensor_named(gm, "classifier.1.weight").std().item<double>() ==
          Approx(0.01).epsilon(0.1));
    CHECK(at::equal(tensor_named(gm, "classifier.1.bias"), at::zeros({1000})));
  }
}

TEST_CASE("options change only the first conv and the last Linear", "[zoo]") {
  const std::map<std::string, std::string> changes = {
      {"conv1.weight float32 [64,3,7,7]", "conv1.weight float32 [64,1,7,7]"},
      {"fc.weight float32 [1000,512]", "fc.weight float32 [10,512]"},
      {"fc.bias float32 [1000]", "fc.bias float32 [10]"},
  };
  std::vector<std::string> expected = state_dict_lines(qb::resnet18({}));
  for (std::string& line : expected) {
    if (changes.count(line)) line = changes.at(line);
  }
  check_same_lines("state_dict entries", state_dict_lines(qb::resnet18({10, 1, 0})), expected);

  CHECK(tensor_named(qb::fmnist_resnet8({}), "conv1.weight").size(1) == 1);
  CHECK(tensor_named(qb::fmnist_resnet8({10, 3, 0}), "conv1.weight").size(1) == 3);
  CHECK(tensor_named(qb::mobilenet_v2({10, 4, 0}), "features.0.0.weight").size(1) == 4);
}

TEST_CASE("build_model rejects unknown names, listing the known ones", "[zoo]") {
  try {
    qb::build_model("resnet19", {});
    FAIL("no exception for an unknown architecture");
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Contains("resnet19"));
    for (const std::string& name : qb::zoo_architectures()) CHECK_THAT(message, Contains(name));
  }
  CHECK(qb::zoo_architectures() ==
        std::vector<std::string>{"cifar_resnet18", "fmnist_resnet8", "mobilenet_v2", "resnet18",
                                 "resnet34", "resnet50"});
}

}  // namespace
