// Single-thread latency of ResNet-18 (224x224, batch 1) through the interpreter:
// fp32 as built (NCHW, LibTorch's default convolution path), fp32 in its deployment form
// (quant/fp32_deploy.h: BatchNorm folded, oneDNN convolutions with prepacked weights,
// channels-last; what the sweep's fp32 rows time), and int8 after graph-mode quantization on
// each available engine (channels-last). //benchmarks:vs_pytorch compares with PyTorch.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/fp32_deploy.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/prepare.h"
#include "quant/quantized_ops.h"

namespace qb {
namespace {

QConfigMapping mapping_for(const std::string& engine) {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig(engine));
  return mapping;
}

void run_model(benchmark::State& state, const GraphModule& gm) {
  at::set_num_threads(1);
  c10::InferenceMode no_autograd;
  Interpreter interpreter(gm);
  at::Tensor x = at::randn({1, 3, 224, 224});
  for (auto _ : state) benchmark::DoNotOptimize(interpreter.run(x));
}

void BM_ResNet18_fp32(benchmark::State& state) {
  run_model(state, build_model("resnet18", {}));
}

void BM_ResNet18_fp32_deploy(benchmark::State& state) {
  run_model(state, to_fp32_deploy(build_model("resnet18", {})));
}

void BM_ResNet18_int8(benchmark::State& state, const std::string& engine) {
  GraphModule prepared = prepare(build_model("resnet18", {}), mapping_for(engine));
  int batches = 0;
  calibrate(
      prepared,
      [&]() -> std::optional<at::Tensor> {
        if (batches++ == 2) return std::nullopt;
        return at::randn({2, 3, 224, 224});
      },
      {});
  run_model(state, to_channels_last(convert(prepared, {engine, false})));
}

void register_benchmarks() {
  benchmark::RegisterBenchmark("resnet18/fp32_as_built", BM_ResNet18_fp32)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("resnet18/fp32_deploy", BM_ResNet18_fp32_deploy)
      ->Unit(benchmark::kMillisecond);
  for (const std::string& engine : available_engines()) {
    benchmark::RegisterBenchmark(("resnet18/int8_" + engine).c_str(),
                                 [engine](benchmark::State& state) { BM_ResNet18_int8(state, engine); })
        ->Unit(benchmark::kMillisecond);
  }
}

const bool registered = (register_benchmarks(), true);

}  // namespace
}  // namespace qb
