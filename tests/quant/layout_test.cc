#include "quant/layout.h"

#include <ATen/ATen.h>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/interpreter.h"
#include "quant/prepare.h"
#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("channels-last fp32 model computes the same logits") {
  GraphModule gm = build_model("resnet18", {});
  GraphModule nhwc = to_channels_last(gm);
  CHECK(nhwc.graph.node("x_channels_last").target == "contiguous");
  CHECK(nhwc.graph.node("conv1").inputs == std::vector<std::string>{"x_channels_last"});
  CHECK(nhwc.module("conv1").tensor("weight").is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(gm.module("conv1").tensor("weight").is_contiguous());  // the input model is untouched
  at::Tensor x = at::randn({2, 3, 64, 64});
  double diff = (Interpreter(nhwc).run(x) - Interpreter(gm).run(x)).abs().max().item<double>();
  CHECK(diff < 1e-4);
}

TEST_CASE("channels-last int8 model computes the same int8 logits") {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  GraphModule prepared = prepare(build_model("fmnist_resnet8", {}), mapping);
  at::manual_seed(3);
  at::Tensor x = at::randn({4, 1, 28, 28});
  bool done = false;
  calibrate(
      prepared,
      [&]() -> std::optional<at::Tensor> {
        if (done) return std::nullopt;
        done = true;
        return x;
      },
      {});
  GraphModule converted = convert(prepared, {"onednn", false});
  GraphModule channels_last = to_channels_last(converted);
  // The layout changes on the quantized input, a quarter of the bytes.
  const std::string quantize = converted.graph.users("x").at(0);
  CHECK(converted.graph.node(quantize).target == "quantize_per_tensor");
  CHECK(channels_last.graph.users(quantize) == std::vector<std::string>{quantize + "_channels_last"});
  CHECK(channels_last.graph.node(quantize + "_channels_last").target == "contiguous");
  at::Tensor nchw = Interpreter(converted).run(x);
  at::Tensor nhwc = Interpreter(channels_last).run(x);
  CHECK(at::equal(nchw, nhwc));
}

}  // namespace
}  // namespace qb
