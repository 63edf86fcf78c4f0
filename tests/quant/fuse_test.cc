#include "quant/fuse.h"

#include <ATen/ATen.h>

#include "models/zoo.h"
#include "quant/interpreter.h"
#include "quant/modules.h"
#include "quant/qconfig.h"
#include "tests/catch.h"

namespace qb {
namespace {

// A zoo model whose BatchNorms have non-trivial statistics, so folding is tested.
GraphModule model_with_batch_norm_stats(const std::string& architecture) {
  ZooOptions options;
  options.num_classes = 10;
  GraphModule gm = build_model(architecture, options);
  at::manual_seed(11);
  for (const auto& [path, module] : gm.modules()) {
    if (module->kind() != "BatchNorm2d") continue;
    module->tensor("weight").uniform_(0.5, 1.5);
    module->tensor("bias").normal_(0, 0.1);
    module->tensor("running_mean").normal_(0, 0.1);
    module->tensor("running_var").uniform_(0.5, 2.0);
  }
  return gm;
}

int count_kind(const GraphModule& gm, const std::string& kind) {
  int n = 0;
  for (const auto& node : gm.graph.nodes()) {
    if (node.op == NodeOp::kCallModule && gm.module(node.target).kind() == kind) ++n;
  }
  return n;
}

QConfigMapping global_mapping() {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  return mapping;
}

TEST_CASE("fusion folds every BatchNorm of ResNet-18 and keeps its outputs") {
  GraphModule gm = model_with_batch_norm_stats("resnet18");
  GraphModule fused = fuse(gm, global_mapping());
  CHECK(count_kind(fused, "BatchNorm2d") == 0);
  CHECK(count_kind(fused, "ConvReLU2d") == 9);  // conv1 and every block's conv1
  CHECK(count_kind(fused, "Conv2d") == 11);     // every conv2 and the 3 downsample convs
  CHECK(fused.module("conv1").kind() == "ConvReLU2d");
  CHECK(fused.module("layer1.0.conv2").tensors().size() == 2);  // folding adds a bias
  CHECK_FALSE(fused.has_module("bn1"));
  CHECK(fused.has_module("layer1.0.relu"));  // still used after the add
  CHECK(gm.module("conv1").kind() == "Conv2d");  // the input model is untouched

  at::Tensor x = at::randn({2, 3, 64, 64});
  at::Tensor expected = Interpreter(gm).run(x);
  at::Tensor got = Interpreter(fused).run(x);
  double max_diff = (got - expected).abs().max().item<double>();
  INFO("max abs difference " << max_diff);
  CHECK(max_diff < 1e-5);
}

TEST_CASE("fusion of MobileNetV2 folds BatchNorm and leaves ReLU6 alone") {
  GraphModule gm = model_with_batch_norm_stats("mobilenet_v2");
  GraphModule fused = fuse(gm, global_mapping());
  CHECK(count_kind(fused, "BatchNorm2d") == 0);
  CHECK(count_kind(fused, "ReLU6") == 35);
  CHECK(count_kind(fused, "ConvReLU2d") == 0);
  at::Tensor x = at::randn({1, 3, 64, 64});
  double max_diff = (Interpreter(fused).run(x) - Interpreter(gm).run(x)).abs().max().item<double>();
  INFO("max abs difference " << max_diff);
  CHECK(max_diff < 1e-5);
}

TEST_CASE("a None qconfig keeps its pattern unfused") {
  GraphModule gm = model_with_batch_norm_stats("resnet18");
  QConfigMapping mapping = global_mapping();
  mapping.set_module_name("layer1.0.conv1", std::nullopt);
  GraphModule fused = fuse(gm, mapping);
  CHECK(fused.module("layer1.0.conv1").kind() == "Conv2d");
  CHECK(fused.has_module("layer1.0.bn1"));
  CHECK(fused.module("layer1.1.conv1").kind() == "ConvReLU2d");
}

TEST_CASE("linear followed by relu becomes LinearReLU") {
  GraphModule gm;
  gm.add_module("fc", std::make_shared<Linear>(4, 3));
  gm.add_module("relu", std::make_shared<ReLU>());
  auto x = gm.graph.placeholder("x");
  gm.graph.output({gm.graph.call_module("relu", {gm.graph.call_module("fc", {x})})});
  at::manual_seed(2);
  gm.module("fc").tensor("weight").normal_();
  GraphModule fused = fuse(gm, global_mapping());
  CHECK(fused.module("fc").kind() == "LinearReLU");
  CHECK(fused.graph.nodes().size() == 3);
  at::Tensor input = at::randn({5, 4});
  CHECK(at::equal(Interpreter(fused).run(input), Interpreter(gm).run(input)));
}

TEST_CASE("fold_batch_norm matches the formula of fuse_conv_bn_weights") {
  at::Tensor w = at::ones({2, 1, 1, 1});
  auto [weight, bias] = fold_batch_norm(w, at::Tensor(), at::tensor({1.0f, 0.0f}),
                                        at::tensor({3.0f, 0.0f}), 1.0, at::tensor({2.0f, 1.0f}),
                                        at::tensor({0.5f, 0.25f}));
  CHECK(weight.flatten()[0].item<float>() == Approx(2.0 / 2.0));  // 1 * 2 / sqrt(3 + 1)
  CHECK(weight.flatten()[1].item<float>() == Approx(1.0));        // 1 * 1 / sqrt(0 + 1)
  CHECK(bias[0].item<float>() == Approx((0 - 1) * 0.5 * 2 + 0.5));
  CHECK(bias[1].item<float>() == Approx(0.25));
}

}  // namespace
}  // namespace qb
