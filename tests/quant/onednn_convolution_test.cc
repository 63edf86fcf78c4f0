// The oneDNN convolution kernel: int8 gives the same bits as LibTorch's quantized::conv2d on
// the onednn engine, for every kind of convolution the zoo and torchvision use, input and
// output zero points zero or not, relu or not, weights per tensor or per channel, either
// input layout, at one or two threads, and inside whole converted models; fp32 computes
// what at::conv2d computes. Bad input gets a clear error.

#include "quant/onednn_convolution.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <stdexcept>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/prepare.h"
#include "quant/quantized_modules.h"
#include "quant/quantized_ops.h"
#include "tests/catch.h"

namespace qb {
namespace {

struct Shape {
  int64_t in, out, kernel, stride, padding, dilation, groups;
};

// Plain, strided 7x7 stem, depthwise, grouped and dilated, 1x1.
const Shape kShapes[] = {{8, 16, 3, 1, 1, 1, 1},  {3, 8, 7, 2, 3, 1, 1},   {16, 16, 3, 2, 1, 1, 16},
                         {16, 32, 3, 1, 2, 2, 4}, {32, 64, 1, 1, 0, 1, 1}, {64, 64, 3, 1, 1, 1, 1}};

Conv2dOptions options_of(const Shape& s) {
  Conv2dOptions o;
  o.in_channels = s.in;
  o.out_channels = s.out;
  o.kernel_size = s.kernel;
  o.stride = s.stride;
  o.padding = s.padding;
  o.dilation = s.dilation;
  o.groups = s.groups;
  return o;
}

at::Tensor quantized_weight(const Shape& s, bool per_channel) {
  at::Tensor w = at::randn({s.out, s.in / s.groups, s.kernel, s.kernel}) * 0.2;
  if (!per_channel) return at::quantize_per_tensor(w, 0.004, 0, at::kQInt8);
  at::Tensor scales = at::rand({s.out}, at::kDouble) * 0.004 + 0.001;
  return at::quantize_per_channel(w, scales, at::zeros({s.out}, at::kLong), 0, at::kQInt8);
}

TEST_CASE("int8 convolution gives LibTorch's bits") {
  select_engine("onednn");
  at::manual_seed(0);
  int cases = 0;
  for (const Shape& shape : kShapes) {
    for (bool per_channel : {false, true}) {
      const at::Tensor weight = quantized_weight(shape, per_channel);
      const at::Tensor bias = at::randn({shape.out});
      for (bool relu : {false, true}) {
        for (int64_t output_zero_point : {0, 77}) {
          // A scale of its own per case: LibTorch 1.13's onednn convolution reuses the
          // primitive of an earlier one with the same shapes and scales even when the output
          // zero point differs, and then gives the earlier zero point (see docs/quantization.md).
          const double scale = 0.05 + 0.001 * cases;
          QuantizedConv2d conv(options_of(shape), relu, weight, bias, scale, output_zero_point);
          for (int64_t input_zero_point : {0, 131}) {
            for (bool channels_last : {false, true}) {
              at::Tensor x = at::quantize_per_tensor(at::randn({2, shape.in, 12, 12}), 0.03,
                                                     input_zero_point, at::kQUInt8);
              if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
              INFO("in " << shape.in << " out " << shape.out << " k " << shape.kernel << " groups "
                         << shape.groups << " per channel " << per_channel << " relu " << relu
                         << " zero points " << input_zero_point << "/" << output_zero_point
                         << " channels last " << channels_last);
              const at::Tensor want = conv.forward_libtorch(x);
              const at::Tensor got = conv.forward({x});
              CHECK(got.is_contiguous(at::MemoryFormat::ChannelsLast));
              CHECK(got.q_scale() == want.q_scale());
              CHECK(got.q_zero_point() == want.q_zero_point());
              CHECK(at::equal(got.int_repr(), want.int_repr()));
              ++cases;
            }
          }
        }
      }
    }
  }
  CHECK(cases == 6 * 2 * 2 * 2 * 2 * 2);
}

TEST_CASE("int8 convolution gives the same bits at one and two threads") {
  select_engine("onednn");
  at::manual_seed(1);
  const Shape shape{64, 64, 3, 1, 1, 1, 1};
  auto conv = OneDnnConvolution::int8(options_of(shape), true, quantized_weight(shape, true),
                                      at::randn({64}), 0.05, 3);
  const at::Tensor x = at::quantize_per_tensor(at::randn({1, 64, 28, 28}), 0.03, 0, at::kQUInt8);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = conv->run(x);
  at::set_num_threads(2);
  const at::Tensor two = conv->run(x);
  at::set_num_threads(threads);
  CHECK(at::equal(one.int_repr(), two.int_repr()));
  CHECK(!conv->implementation().empty());
}

TEST_CASE("every int8 convolution of converted models gives LibTorch's bits") {
  select_engine("onednn");
  for (const std::string model : {"resnet18", "mobilenet_v2"}) {
    INFO(model);
    ZooOptions zoo;
    zoo.num_classes = 10;
    QConfigMapping mapping;
    mapping.set_global(default_qconfig("onednn"));
    GraphModule prepared = prepare(build_model(model, zoo), mapping);
    at::manual_seed(2);
    int batches = 0;
    calibrate(
        prepared,
        [&]() -> std::optional<at::Tensor> {
          if (batches++ == 2) return std::nullopt;
          return at::randn({2, 3, 64, 64});
        },
        {});
    const GraphModule converted = to_channels_last(convert(prepared, {"onednn", false}));
    std::map<std::string, at::Tensor> values;
    int convs = 0;
    Interpreter(converted).run({at::randn({2, 3, 64, 64})}, [&](const Node& node, const at::Tensor& value) {
      values[node.name] = value;
      if (node.op != NodeOp::kCallModule) return;
      const auto* conv = dynamic_cast<const QuantizedConv2d*>(&converted.module(node.target));
      if (!conv) return;
      INFO(node.name);
      CHECK(at::equal(value.int_repr(), conv->forward_libtorch(values.at(node.inputs.at(0))).int_repr()));
      ++convs;
    });
    CHECK(convs == (model == "resnet18" ? 20 : 52));
  }
}

TEST_CASE("fp32 convolution computes what at::conv2d computes") {
  at::manual_seed(3);
  for (const Shape& shape : kShapes) {
    for (bool relu : {false, true}) {
      const at::Tensor weight = at::randn({shape.out, shape.in / shape.groups, shape.kernel, shape.kernel});
      const at::Tensor bias = at::randn({shape.out});
      auto conv = OneDnnConvolution::fp32(options_of(shape), relu, weight, bias);
      const at::Tensor x = at::randn({2, shape.in, 12, 12});
      at::Tensor want = at::conv2d(x, weight, bias, {shape.stride, shape.stride},
                                   {shape.padding, shape.padding}, {shape.dilation, shape.dilation},
                                   shape.groups);
      if (relu) want = at::relu(want);
      const at::Tensor got = conv->run(x);
      INFO("in " << shape.in << " groups " << shape.groups << " relu " << relu);
      CHECK(got.is_contiguous(at::MemoryFormat::ChannelsLast));
      CHECK(at::allclose(got, want, 1e-4, 1e-4));
    }
  }
}

TEST_CASE("a convolution says what is wrong with its input") {
  select_engine("onednn");
  const Shape shape{8, 16, 3, 1, 1, 1, 1};
  auto int8 = OneDnnConvolution::int8(options_of(shape), false, quantized_weight(shape, false),
                                      at::Tensor(), 0.05, 0);
  auto fp32 = OneDnnConvolution::fp32(options_of(shape), false, at::randn({16, 8, 3, 3}), at::Tensor());
  const at::Tensor four_channels = at::quantize_per_tensor(at::randn({1, 4, 5, 5}), 0.1, 0, at::kQUInt8);
  CHECK_THROWS_WITH(int8->run(four_channels), "int8 convolution expects 8 input channels, got 4");
  CHECK_THROWS_WITH(int8->run(at::randn({1, 8, 5, 5})),
                    "int8 convolution takes a 4-D QUInt8 input, got 4-D Float");
  CHECK_THROWS_WITH(fp32->run(at::randn({8, 5, 5})), "fp32 convolution takes a 4-D Float input, got 3-D Float");
  CHECK_THROWS_AS(OneDnnConvolution::int8(options_of(shape), false, at::randn({16, 8, 3, 3}),
                                          at::Tensor(), 0.05, 0),
                  std::invalid_argument);
}

}  // namespace
}  // namespace qb
