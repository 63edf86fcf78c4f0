#include "quant/prepare.h"

#include <ATen/ATen.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "models/zoo.h"
#include "quant/interpreter.h"
#include "quant/qconfig.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

QConfigMapping onednn_mapping() {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  return mapping;
}

// "observer observed first-sharer" per observer node, as in the fixtures
// written by make_prepare_fixtures.py from prepare_fx.
std::vector<std::string> observer_lines(const GraphModule& prepared) {
  std::map<const Module*, std::string> first_with;
  std::vector<std::string> lines;
  for (const Node& node : prepared.graph.nodes()) {
    if (!is_observer_node(prepared, node)) continue;
    const Module* module = &prepared.module(node.target);
    auto owner = first_with.emplace(module, node.name).first->second;
    lines.push_back(node.name + " " + node.inputs.at(0) + " " + owner);
  }
  return lines;
}

std::vector<std::string> fixture_lines(const std::string& model) {
  std::ifstream in(test::source_path("tests/fixtures/prepare/" + model + ".observers"));
  REQUIRE(in);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

TEST_CASE("observer placement equals prepare_fx's for ResNet-18 and MobileNetV2") {
  for (const std::string model : {"resnet18", "mobilenet_v2"}) {
    DYNAMIC_SECTION(model) {
      GraphModule prepared = prepare(build_model(model, {}), onednn_mapping());
      std::vector<std::string> expected = fixture_lines(model);
      std::vector<std::string> got = observer_lines(prepared);
      CHECK(got.size() == expected.size());
      for (size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
        INFO("observer #" << i);
        CHECK(got[i] == expected[i]);
      }
      REQUIRE_NOTHROW(lint(prepared));
    }
  }
}

TEST_CASE("ResNet-18 gets 33 observer nodes over 30 observers, printed as FX does") {
  GraphModule prepared = prepare(build_model("resnet18", {}), onednn_mapping());
  std::set<const Module*> distinct;
  int nodes = 0;
  for (const Node& node : prepared.graph.nodes()) {
    if (!is_observer_node(prepared, node)) continue;
    ++nodes;
    distinct.insert(&prepared.module(node.target));
  }
  CHECK(nodes == 33);
  CHECK(distinct.size() == 30);
  CHECK(prepared.module("activation_post_process_0").kind() == "HistogramObserver");
  std::string text = prepared.graph.str();
  CHECK_THAT(text, Catch::Contains("%activation_post_process_0 : [#users=1] = "
                                   "call_module[target=activation_post_process_0](args = (%x,), "
                                   "kwargs = {})"));
  CHECK_THAT(text, Catch::Contains("%conv1 : [#users=1] = call_module[target=conv1](args = "
                                   "(%activation_post_process_0,), kwargs = {})"));
}

TEST_CASE("a prepared model computes what the fused model computes") {
  GraphModule model = build_model("resnet18", {});
  GraphModule prepared = prepare(model, onednn_mapping());
  at::Tensor x = at::randn({1, 3, 64, 64});
  double diff = (Interpreter(prepared).run(x) - Interpreter(model).run(x)).abs().max().item<double>();
  CHECK(diff < 1e-4);
}

TEST_CASE("None entries leave their nodes unobserved") {
  GraphModule model = build_model("resnet18", {});
  QConfigMapping mapping = onednn_mapping();
  mapping.set_module_name("fc", std::nullopt);
  GraphModule prepared = prepare(model, mapping);
  std::vector<std::string> lines = observer_lines(prepared);
  CHECK(lines.size() == 32);
  CHECK(lines.back() == "activation_post_process_31 flatten activation_post_process_29");
  CHECK(prepared.graph.users("fc") == std::vector<std::string>{"output"});
}

}  // namespace
}  // namespace qb
