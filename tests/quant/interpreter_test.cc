#include "quant/interpreter.h"

#include <ATen/ATen.h>
#include "tests/catch.h"

#include "quant/modules.h"

namespace qb {
namespace {

// A residual block with every fp32 layer kind: conv-bn-relu, maxpool, add, pool, flatten, linear.
GraphModule residual_module() {
  GraphModule gm;
  gm.add_module("conv", std::make_shared<Conv2d>(Conv2dOptions{3, 8, 3, 1, 1, 1, 1, false}));
  gm.add_module("bn", std::make_shared<BatchNorm2d>(8));
  gm.add_module("relu", std::make_shared<ReLU>());
  gm.add_module("pool", std::make_shared<MaxPool2d>(2, 2));
  gm.add_module("conv2", std::make_shared<Conv2d>(Conv2dOptions{8, 8, 3, 1, 1, 1, 2, true}));
  gm.add_module("relu6", std::make_shared<ReLU6>());
  gm.add_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  gm.add_module("drop", std::make_shared<Dropout>(0.5));
  gm.add_module("fc", std::make_shared<Linear>(8, 5));
  auto& g = gm.graph;
  auto x = g.placeholder("x");
  auto h = g.call_module("relu", {g.call_module("bn", {g.call_module("conv", {x})})});
  h = g.call_module("pool", {h});
  auto branch = g.call_module("relu6", {g.call_module("conv2", {h})});
  auto sum = g.call_function("add", {h, branch});
  auto flat = g.call_function("flatten", {g.call_module("avgpool", {sum})}, {{"start_dim", int64_t{1}}});
  g.output({g.call_module("fc", {g.call_module("drop", {flat})})});

  at::manual_seed(7);
  for (auto& [name, tensor] : gm.state_dict()) {
    if (tensor.is_floating_point()) tensor.copy_(at::randn(tensor.sizes()) * 0.5);
  }
  gm.module("bn").tensor("running_var").abs_().add_(0.5);
  return gm;
}

TEST_CASE("interpreter equals direct ATen calls") {
  GraphModule gm = residual_module();
  at::Tensor x = at::randn({2, 3, 8, 8});
  at::Tensor got = Interpreter(gm).run(x);

  auto t = [&](const char* module, const char* name) { return gm.module(module).tensor(name); };
  at::Tensor h = at::conv2d(x, t("conv", "weight"), {}, 1, 1);
  h = at::batch_norm(h, t("bn", "weight"), t("bn", "bias"), t("bn", "running_mean"),
                     t("bn", "running_var"), false, 0.1, 1e-5, false);
  h = at::max_pool2d(at::relu(h), {2, 2}, {2, 2});
  at::Tensor branch =
      at::hardtanh(at::conv2d(h, t("conv2", "weight"), t("conv2", "bias"), 1, 1, 1, 2), 0, 6);
  at::Tensor pooled = at::adaptive_avg_pool2d(h + branch, {1, 1}).flatten(1);
  at::Tensor expected = at::linear(pooled, t("fc", "weight"), t("fc", "bias"));

  REQUIRE(got.sizes() == expected.sizes());
  CHECK(at::equal(got, expected));
}

TEST_CASE("interpreter compiles one step per computing node") {
  GraphModule gm = residual_module();
  CHECK(Interpreter(gm).num_steps() == gm.graph.nodes().size() - 2);
}

TEST_CASE("training mode reaches BatchNorm and Dropout") {
  GraphModule gm = residual_module();
  at::Tensor x = at::randn({4, 3, 8, 8});
  Interpreter interpreter(gm);
  at::Tensor eval_out = interpreter.run(x);
  gm.train(true);
  at::Tensor train_out = interpreter.run(x);
  CHECK_FALSE(at::allclose(eval_out, train_out));
  CHECK(gm.module("bn").tensor("num_batches_tracked").item<int64_t>() == 1);
  gm.train(false);
  CHECK_FALSE(at::equal(interpreter.run(x), eval_out));  // running stats moved
}

TEST_CASE("interpreter errors name the node") {
  GraphModule gm = residual_module();
  Interpreter interpreter(gm);
  CHECK_THROWS_WITH(interpreter.run(at::randn({2, 5, 8, 8})),
                    Catch::StartsWith("node 'conv' (call_module conv): "));
  CHECK_THROWS_WITH(interpreter.run(std::vector<at::Tensor>{}),
                    "the graph takes 1 inputs, got 0");
}

TEST_CASE("multiple outputs and values kept for the output") {
  GraphModule gm;
  gm.add_module("relu", std::make_shared<ReLU>());
  auto x = gm.graph.placeholder("x");
  auto y = gm.graph.placeholder("y");
  auto r = gm.graph.call_module("relu", {x});
  auto s = gm.graph.call_function("add", {r, y});
  auto c = gm.graph.call_function("cat", {r, s}, {{"dim", int64_t{1}}});
  gm.graph.output({r, c});
  at::Tensor a = at::randn({2, 3});
  at::Tensor b = at::randn({2, 3});
  auto outs = Interpreter(gm).run(std::vector<at::Tensor>{a, b});
  REQUIRE(outs.size() == 2);
  CHECK(at::equal(outs[0], at::relu(a)));
  CHECK(at::equal(outs[1], at::cat({at::relu(a), at::relu(a) + b}, 1)));
}

}  // namespace
}  // namespace qb

namespace qb {
namespace {

TEST_CASE("a hook sees every computed value in graph order, and kept values stay intact") {
  GraphModule gm;
  auto& g = gm.graph;
  auto x = g.placeholder("x");
  auto r = g.call_function("relu", {x});
  g.output({g.call_function("add", {r, x})});  // r's last use: add may write into it

  std::vector<std::string> seen;
  std::vector<at::Tensor> kept;
  at::Tensor input = at::tensor({-1.0f, 2.0f});
  at::Tensor out = Interpreter(gm).run({input}, [&](const Node& node, const at::Tensor& value) {
    seen.push_back(node.name);
    kept.push_back(value);
  })[0];
  CHECK(seen == std::vector<std::string>{"relu", "add"});
  CHECK(at::equal(kept[0], at::tensor({0.0f, 2.0f})));
  CHECK(at::equal(kept[1], at::tensor({-1.0f, 4.0f})));
  CHECK(at::equal(out, kept[1]));
}

}  // namespace
}  // namespace qb
