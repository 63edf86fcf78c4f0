// Latency in a fresh process: the probe loads the saved model, computes its output SQNR
// against fp32 under its own ISA, and reports what it measured; a deliberately damaged int8
// model shows up by its SQNR; the probe's errors reach the caller.

#include "eval/isolated_latency.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "eval/onednn_isa.h"
#include "models/checkpoint.h"
#include "models/torchscript_export.h"
#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/quantized_modules.h"
#include "quant/serialize.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

struct Files {
  std::string fp32, int8, damaged, input, int8_torchscript, fp32_torchscript;
};

// fmnist_resnet8 with seeded weights, in fp32, int8 and int8 with one conv's weights replaced
// by noise; all saved, with an input batch.
const Files& files() {
  static const Files f = [] {
    const std::string dir = test::scratch_dir("isolated_latency").string();
    ZooOptions zoo;
    zoo.num_classes = 10;
    zoo.in_channels = 1;
    GraphModule fp32 = build_model("fmnist_resnet8", zoo);
    at::manual_seed(0);
    const at::Tensor images = at::randn({8, 1, 28, 28});
    QConfigMapping mapping;
    mapping.set_global(default_qconfig("onednn"));
    GraphModule prepared = prepare(fp32, mapping);
    bool given = false;
    calibrate(prepared, [&]() -> std::optional<at::Tensor> {
      if (given) return std::nullopt;
      given = true;
      return images;
    }, {});
    GraphModule int8 = convert(prepared, {});
    GraphModule damaged = int8;
    for (const auto& [path, module] : int8.modules()) {
      const auto* conv = dynamic_cast<const QuantizedConv2d*>(module.get());
      if (!conv) continue;
      const at::Tensor noise = at::quantize_per_tensor(at::randn(conv->tensor("weight").sizes()), 0.05, 0, at::kQInt8);
      damaged.replace_module(path, std::make_shared<QuantizedConv2d>(
                                       conv->options(), conv->relu(), noise, conv->tensor("bias"),
                                       conv->scale(), conv->zero_point()));
      break;
    }
    Files out{dir + "/fp32.qbm",        dir + "/int8.qbm",          dir + "/damaged.qbm",
              dir + "/input.pt",        dir + "/int8_torchscript.pt", dir + "/fp32_torchscript.pt"};
    save_model(fp32, out.fp32);
    save_model(int8, out.int8);
    export_torchscript(int8, out.int8_torchscript);
    export_torchscript(fp32, out.fp32_torchscript);
    save_model(damaged, out.damaged);
    write_state_dict(out.input, {{"input", images}});
    return out;
  }();
  return f;
}

ProbeRequest request(const std::string& model) {
  ProbeRequest r;
  r.name = "fmnist_resnet8";
  r.model = model;
  r.input = files().input;
  r.latency.threads = 1;
  r.latency.min_time_s = 0.01;
  r.latency.warmup_s = 0;
  r.latency.repetitions = 3;
  r.engine = "onednn";
  r.reference_model = files().fp32;
  r.sqnr_input = files().input;
  return r;
}

TEST_CASE("the probe times the saved model in its own process and computes its output SQNR") {
  const std::string probe = find_latency_probe("");
  ProbeResult result = run_probe(probe, request(files().int8));
  CHECK(result.timing.repetitions_ms.size() == 3);
  REQUIRE(result.timing.usage.size() == 3);
  for (const RepetitionUsage& usage : result.timing.usage) CHECK(usage.threads == 1);
  CHECK(result.timing.median_ms > 0);
  REQUIRE(result.output_sqnr_db);
  CHECK(*result.output_sqnr_db > 15);
  CHECK(result.timing.google_benchmark["benchmarks"].size() >= 3);
  CHECK(is_onednn_isa(result.onednn_isa));

  // The damaged model runs just as fast, and its SQNR gives it away.
  ProbeResult damaged = run_probe(probe, request(files().damaged));
  REQUIRE(damaged.output_sqnr_db);
  CHECK(*damaged.output_sqnr_db < 15);
}

TEST_CASE("the probe times an exported model under LibTorch's TorchScript executor") {
  const std::string probe = find_latency_probe("");
  const ProbeResult ours = run_probe(probe, request(files().int8));
  ProbeRequest r = request(files().int8_torchscript);
  r.runtime = "torchscript";
  const ProbeResult frozen = run_probe(probe, r);
  CHECK(frozen.timing.repetitions_ms.size() == 3);
  CHECK(frozen.timing.median_ms > 0);
  // The export computes our interpreter's bits, so the SQNR is the same number.
  REQUIRE(frozen.output_sqnr_db);
  CHECK(*frozen.output_sqnr_db == *ours.output_sqnr_db);

  ProbeRequest fp32 = request(files().fp32_torchscript);
  fp32.runtime = "torchscript";
  fp32.engine = "";  // fp32 goes through torch.jit.optimize_for_inference
  fp32.reference_model = fp32.sqnr_input = "";
  CHECK(run_probe(probe, fp32).timing.median_ms > 0);

  r.runtime = "onnx";
  CHECK_THROWS_WITH(run_probe(probe, r), Catch::Contains("unknown runtime 'onnx'"));
}

TEST_CASE("the probe's ISA cap is its own: this process cannot change oneDNN's any more") {
  if (!cpu_has_isa("avx2")) {
    WARN("this CPU lacks AVX2: nothing to cap");
    return;
  }
  const std::string ours = effective_onednn_isa();  // fixed for this process from now on
  ProbeRequest r = request(files().int8);
  r.isa = "avx2";
  CHECK(run_probe(find_latency_probe(""), r).onednn_isa == "avx2");
  CHECK(effective_onednn_isa() == ours);
}

TEST_CASE("the probe's errors name what went wrong") {
  ProbeRequest r = request(files().int8 + ".missing");
  CHECK_THROWS_WITH(run_probe(find_latency_probe(""), r),
                    Catch::Contains("the latency probe exited with status 1") &&
                        Catch::Contains(".missing"));
  CHECK_THROWS_WITH(run_probe("/nonexistent/latency_probe", request(files().int8)),
                    Catch::Contains("cannot start the latency probe /nonexistent/latency_probe"));
}

}  // namespace
}  // namespace qb
