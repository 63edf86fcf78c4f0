#include "quant/graph.h"

#include "tests/catch.h"

#include "quant/graph_module.h"
#include "quant/modules.h"

namespace qb {
namespace {

// conv -> relu (module called twice, as torchvision's blocks do) -> add -> flatten.
GraphModule small_module() {
  GraphModule gm;
  gm.add_module("features.conv", std::make_shared<Conv2d>(Conv2dOptions{3, 4, 3, 1, 1}));
  gm.add_module("relu", std::make_shared<ReLU>());
  auto x = gm.graph.placeholder("x");
  auto conv = gm.graph.call_module("features.conv", {x});
  auto relu = gm.graph.call_module("relu", {conv});
  auto relu2 = gm.graph.call_module("relu", {relu});
  auto sum = gm.graph.call_function("add", {relu, relu2});
  auto flat = gm.graph.call_function("flatten", {sum}, {{"start_dim", int64_t{1}}});
  gm.graph.output({flat});
  return gm;
}

TEST_CASE("graph names nodes as torch.fx does") {
  GraphModule gm = small_module();
  std::vector<std::string> names;
  for (const auto& node : gm.graph.nodes()) names.push_back(node.name);
  CHECK(names == std::vector<std::string>{"x", "features_conv", "relu", "relu_1", "add",
                                          "flatten", "output"});
  CHECK(gm.graph.users("relu") == std::vector<std::string>{"relu_1", "add"});
  CHECK(gm.graph.inputs() == std::vector<std::string>{"x"});
  CHECK(gm.graph.outputs() == std::vector<std::string>{"flatten"});
}

TEST_CASE("module nodes are named as torch.fx names them: snake case, then legal characters") {
  Graph graph;
  auto x = graph.placeholder("x");
  CHECK(graph.call_module("Mixed_7c.branch_pool.conv", {x}) == "mixed_7c_branch_pool_conv");
  CHECK(graph.call_module("block.camelCase.ALL_CAPS", {x}) == "block_camel_case_all_caps");
  CHECK(graph.call_module("features-1.0", {x}) == "features_1_0");
  CHECK(graph.call_module("0.conv", {x}) == "_0_conv");
}

TEST_CASE("graph prints like print(gm.graph)") {
  GraphModule gm = small_module();
  CHECK(gm.graph.str() ==
        "graph():\n"
        "    %x : [#users=1] = placeholder[target=x]\n"
        "    %features_conv : [#users=1] = call_module[target=features.conv](args = "
        "(%x,), kwargs = {})\n"
        "    %relu : [#users=2] = call_module[target=relu](args = (%features_conv,), kwargs = {})\n"
        "    %relu_1 : [#users=1] = call_module[target=relu](args = (%relu,), kwargs = {})\n"
        "    %add : [#users=1] = call_function[target=operator.add](args = (%relu, %relu_1), "
        "kwargs = {})\n"
        "    %flatten : [#users=1] = call_function[target=torch.flatten](args = (%add,), kwargs = "
        "{start_dim: 1})\n"
        "    return flatten\n");
}

TEST_CASE("graph module prints its modules with PyTorch's reprs") {
  GraphModule gm = small_module();
  std::string text = gm.str();
  CHECK_THAT(text, Catch::StartsWith("GraphModule(\n"
                                     "  (features.conv): Conv2d(3, 4, kernel_size=(3, 3), "
                                     "stride=(1, 1), padding=(1, 1))\n"
                                     "  (relu): ReLU()\n"
                                     ")\n"));
}

TEST_CASE("state_dict follows registration order and aliases the modules") {
  GraphModule gm;
  gm.add_module("conv", std::make_shared<Conv2d>(Conv2dOptions{1, 2, 3, 1, 0, 1, 1, false}));
  gm.add_module("bn", std::make_shared<BatchNorm2d>(2));
  gm.add_module("fc", std::make_shared<Linear>(8, 3));
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : gm.state_dict()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                         "bn.running_var", "bn.num_batches_tracked", "fc.weight",
                                         "fc.bias"});
  CHECK(gm.parameters().size() == 5);
  gm.state_dict()[0].second.fill_(2.0);
  CHECK(gm.module("conv").tensor("weight").sum().item<float>() == 2.0f * 18);
}

TEST_CASE("deep_copy shares nothing with the original") {
  GraphModule gm = small_module();
  GraphModule copy = gm.deep_copy();
  copy.module("features.conv").tensor("weight").fill_(1.0);
  CHECK(gm.module("features.conv").tensor("weight").abs().sum().item<float>() == 0.0f);
  Node extra;
  extra.name = "extra";
  extra.op = NodeOp::kCallFunction;
  extra.target = "relu";
  extra.inputs = {"x"};
  copy.graph.insert_before("output", extra);
  CHECK_FALSE(gm.graph.contains("extra"));
}

TEST_CASE("graph editing keeps names unique and order topological") {
  GraphModule gm = small_module();
  Node node;
  node.name = "relu";
  node.op = NodeOp::kCallFunction;
  node.target = "relu";
  node.inputs = {"add"};
  std::string inserted = gm.graph.insert_after("add", node);
  CHECK(inserted == "relu_2");
  gm.graph.replace_all_uses("add", inserted);
  CHECK(gm.graph.node("flatten").inputs == std::vector<std::string>{"relu_2"});
  CHECK(gm.graph.node("relu_2").inputs == std::vector<std::string>{"add"});
  REQUIRE_NOTHROW(lint(gm));
  CHECK_THROWS_WITH(gm.graph.erase("add"), Catch::Contains("still used by 'relu_2'"));
  gm.graph.replace_all_uses("relu_2", "add");
  gm.graph.erase("relu_2");
  REQUIRE_NOTHROW(lint(gm));
}

TEST_CASE("lint names the offending node") {
  SECTION("use before definition") {
    GraphModule gm = small_module();
    gm.graph.node("relu").inputs = {"add"};
    CHECK_THROWS_WITH(lint(gm), "node 'relu' reads 'add', which is not defined before it");
  }
  SECTION("unknown function") {
    GraphModule gm = small_module();
    gm.graph.node("add").target = "frobnicate";
    CHECK_THROWS_WITH(lint(gm), "node 'add' calls unknown function 'frobnicate'");
  }
  SECTION("unregistered module") {
    GraphModule gm = small_module();
    gm.graph.node("relu").target = "missing.relu";
    CHECK_THROWS_WITH(lint(gm), "node 'relu' calls module 'missing.relu', which is not registered");
  }
  SECTION("no output") {
    Graph graph;
    graph.placeholder("x");
    CHECK_THROWS_WITH(lint(graph), "the graph has no output node");
  }
  SECTION("placeholder after computation") {
    Graph graph;
    auto x = graph.placeholder("x");
    graph.call_function("relu", {x});
    graph.placeholder("y");
    graph.output({"relu"});
    CHECK_THROWS_WITH(lint(graph), "placeholder 'y' comes after a computing node");
  }
  SECTION("appending after the output") {
    GraphModule gm = small_module();
    CHECK_THROWS_WITH(gm.graph.call_function("relu", {"x"}),
                      Catch::Contains("after the output node"));
  }
  SECTION("missing node lookup") {
    GraphModule gm = small_module();
    CHECK_THROWS_WITH(gm.graph.node("nope"), "no node named 'nope' in the graph");
    CHECK_THROWS_WITH(gm.module("nope"), "no module at path 'nope'");
  }
}

}  // namespace
}  // namespace qb
