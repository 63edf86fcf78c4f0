// The fp32 deployment form: BatchNorm folded, convs on oneDNN with prepacked weights and
// fused relu, channels-last input; the same outputs as the model as built, at any batch size,
// and it survives a save and load.

#include "quant/fp32_deploy.h"

#include <ATen/ATen.h>

#include "models/zoo.h"
#include "quant/interpreter.h"
#include "quant/onednn_conv.h"
#include "quant/serialize.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

TEST_CASE("the deployment form computes what the model as built computes") {
  ZooOptions zoo;
  zoo.num_classes = 10;
  GraphModule built = build_model("resnet18", zoo);
  GraphModule deploy = to_fp32_deploy(built);
  int convs = 0, fused = 0;
  for (const auto& [path, module] : deploy.modules()) {
    CHECK(module->kind() != "BatchNorm2d");
    CHECK(module->kind() != "Conv2d");
    if (const auto* conv = dynamic_cast<const OneDnnConv2d*>(module.get())) {
      ++convs;
      fused += conv->relu();
    }
  }
  CHECK(convs == 20);
  CHECK(fused == 9);  // conv1 and each block's first conv; the second ones feed the add
  CHECK(deploy.module("conv1").repr() ==
        "OneDnnConv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), relu=True)");

  at::NoGradGuard no_grad;
  for (int64_t batch : {1, 3}) {
    at::manual_seed(batch);
    const at::Tensor x = at::randn({batch, 3, 64, 64});
    const at::Tensor expected = Interpreter(built).run(x);
    Interpreter interpreter(deploy);
    CHECK(at::allclose(interpreter.run(x), expected, 1e-4, 1e-4));
    CHECK(at::allclose(interpreter.run(x), expected, 1e-4, 1e-4));  // packed once per shape
  }

  const std::string path = test::scratch_dir("fp32_deploy").string() + "/deploy.qbm";
  save_model(deploy, path);
  GraphModule loaded = load_model(path);
  const at::Tensor x = at::randn({2, 3, 64, 64});
  CHECK(at::equal(Interpreter(loaded).run(x), Interpreter(deploy).run(x)));
}

TEST_CASE("a weight changed after packing is packed again") {
  Conv2dOptions options{2, 3, 3, 1, 1, 1, 1, true};
  OneDnnConv2d conv(options, false);
  at::manual_seed(0);
  conv.set_tensor("weight", at::randn({3, 2, 3, 3}));
  const at::Tensor x = at::randn({1, 2, 5, 5});
  const at::Tensor before = conv.forward({x});
  CHECK(at::allclose(before, at::conv2d(x, conv.tensor("weight"), conv.tensor("bias"), 1, 1), 1e-5, 1e-6));
  at::Tensor weight = conv.tensor("weight");
  weight.mul_(2);  // in place, as loading a state dict does
  CHECK(at::allclose(conv.forward({x}), before * 2, 1e-5, 1e-6));
}

}  // namespace
}  // namespace qb
