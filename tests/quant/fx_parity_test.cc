// Parity with PyTorch FX on torchvision models nobody here wrote: the same TorchScript
// file, calibrated on the same tensor in the same batches, must give PyTorch FX's
// activation qparams and PyTorch FX's int8 logits.
//
// tests/quant/torchscript_reference.py writes the files at test time with Debian's
// python3-torch (seeded weights, BatchNorm statistics from a few train-mode passes,
// 96x96 inputs). Both run with oneDNN capped at AVX512_CORE_VNNI (tests/catch_main.cc
// says why), so grouped and depthwise convolutions give the same verdict on any CPU.

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/jit/serialization/import.h>

#include "tests/catch.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "models/checkpoint.h"
#include "models/torchscript_export.h"
#include "models/torchscript_import.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/interpreter.h"
#include "quant/observers.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "tests/test_util.h"

namespace {

std::string reference_dir(const std::string& model) {
  std::string out = qb::test::scratch_dir("fx_parity_" + model).string();
  std::string script = qb::test::source_path("tests/quant/torchscript_reference.py").string();
  std::string command = "/usr/bin/python3 " + script + " " + model + " " + out + " > /dev/null";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
  return out;
}

at::Tensor saved(const std::string& path) { return qb::read_state_dict(path).at(0).second; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

double sqnr_db(const at::Tensor& reference, const at::Tensor& other) {
  double signal = reference.pow(2).sum().item<double>();
  double noise = (reference - other).pow(2).sum().item<double>();
  return 10 * std::log10(signal / noise);
}

// What must equal PyTorch FX's: the observers (names, placement, qparams) and the int8 logits.
struct Expect {
  bool same_observers = true;
  /// 0: the logits must be bit-identical; otherwise the largest difference allowed.
  double logit_tolerance = 0;
  /// Least SQNR of our int8 logits against the fp32 model's: a floor against garbage both
  /// sides would agree on (AMX depthwise int8 gives about 1 dB), not an accuracy bar. It is the
  /// sweep's broken_below_db, because the figure depends on the CPU: oneDNN's int8 kernels
  /// without VNNI (AVX2, AVX-512 without VNNI) add u8 x s8 products in pairs with 16-bit
  /// saturation, which takes efficientnet_b0 from 37 dB to 18 dB, for PyTorch FX as for us.
  double min_sqnr_db = 15;
  /// False for models PyTorch FX cannot trace: nothing to compare with but fp32.
  bool fx_reference = true;
};

void check_parity(const std::string& model, const std::string& dir, const std::string& form,
                  const Expect& expect = {}) {
  INFO(model << " " << form);
  at::NoGradGuard no_grad;
  qb::GraphModule imported = qb::import_torchscript(dir + "/" + form + ".pt");
  at::Tensor x = saved(dir + "/eval_input.pt");
  at::Tensor fp32_logits = saved(dir + "/fp32_logits.pt");
  CHECK(at::allclose(qb::Interpreter(imported).run(x), fp32_logits, 1e-4, 1e-4));

  qb::QConfigMapping mapping;
  mapping.set_global(qb::default_qconfig("onednn"));
  qb::GraphModule prepared = qb::prepare(imported, mapping);
  qb::calibrate(prepared, qb::tensor_batches(saved(dir + "/calibration.pt"), 4), {});

  // Every observer PyTorch placed, at the same place, with the same qparams.
  std::map<std::string, const qb::Node*> ours;
  for (const qb::Node& node : prepared.graph.nodes()) {
    if (qb::is_observer_node(prepared, node)) ours[node.name] = &node;
  }
  const bool compare_observers = expect.fx_reference && expect.same_observers;
  nlohmann::json fx = compare_observers ? read_json(dir + "/fx_observers.json") : nlohmann::json::array();
  if (compare_observers) CHECK(ours.size() == fx.size());
  double worst_scale = 0;
  for (const auto& want : fx) {
    const std::string name = want["name"];
    INFO(name);
    auto it = ours.find(name);
    REQUIRE(it != ours.end());
    CHECK(it->second->inputs.at(0) == want["input"].get<std::string>());
    qb::QParams q = dynamic_cast<const qb::Observer&>(prepared.module(it->second->target))
                        .calculate_qparams();
    double scale = q.scale.item<double>();
    double fx_scale = want["scale"];
    worst_scale = std::max(worst_scale, std::abs(scale - fx_scale) / fx_scale);
    CHECK(std::abs(scale - fx_scale) <= 1e-6 * fx_scale);
    CHECK(q.zero_point.item<int64_t>() == want["zero_point"].get<int64_t>());
  }

  qb::ConvertOptions options;
  options.engine = "onednn";
  qb::GraphModule converted = qb::convert(prepared, options);
  at::Tensor logits = qb::Interpreter(converted).run(x);
  const double sqnr = sqnr_db(fp32_logits, logits);
  CHECK(sqnr > expect.min_sqnr_db);
  // The figures the test log keeps for the record (bazel test --test_output=all).
  const std::string scales = compare_observers ? c10::str(worst_scale) : "not compared";
  std::string difference = "no FX reference";
  if (expect.fx_reference) {
    at::Tensor fx_logits = saved(dir + "/fx_int8_logits.pt");
    const double largest = (logits - fx_logits).abs().max().item<double>();
    difference = c10::str(largest);
    if (expect.logit_tolerance == 0) {
      CHECK(at::equal(logits, fx_logits));
    } else {
      CHECK(largest <= expect.logit_tolerance);
    }
  }
  std::printf("%s %s: largest relative scale difference %s, largest logit difference %s, "
              "SQNR against fp32 %.2f dB\n",
              model.c_str(), form.c_str(), scales.c_str(), difference.c_str(), sqnr);

  // The TorchScript export computes the same, run by LibTorch's own executor, and by
  // Python for the scripted file (the test's ISA cap reaches it through the environment).
  const std::string exported = dir + "/" + form + "_int8_export.pt";
  qb::export_torchscript(converted, exported);
  CHECK(at::equal(torch::jit::load(exported).forward({x}).toTensor(), logits));
  if (form == "scripted") {
    const std::string script = qb::test::source_path("tests/models/run_exported.py").string();
    const std::string out = dir + "/python_int8_logits.pt";
    const std::string command = "/usr/bin/python3 " + script + " " + exported + " " + dir +
                                "/eval_input.pt " + out;
    REQUIRE(std::system(command.c_str()) == 0);
    CHECK(at::equal(saved(out), logits));
  }
}

// Both files of `model`, against one set of PyTorch FX references.
void check_model(const std::string& model, const Expect& scripted = {}, const Expect& traced = {}) {
  const std::string dir = reference_dir(model);
  check_parity(model, dir, "scripted", scripted);
  check_parity(model, dir, "traced", traced);
}

TEST_CASE("resnet18 quantizes as PyTorch FX quantizes it, scripted and traced") { check_model("resnet18"); }

TEST_CASE("resnet50 quantizes as PyTorch FX quantizes it") { check_model("resnet50"); }

TEST_CASE("resnext50_32x4d (grouped convolutions) quantizes as PyTorch FX quantizes it") {
  check_model("resnext50_32x4d");
}

TEST_CASE("mobilenet_v2 (depthwise convolutions, ReLU6) quantizes as PyTorch FX quantizes it") {
  check_model("mobilenet_v2");
}

TEST_CASE("mobilenet_v3_large (hardswish, fixed-qparams hardsigmoid, squeeze-excitation mul)") {
  check_model("mobilenet_v3_large");
}

TEST_CASE("squeezenet1_1 (cat sharing one observer, ceil_mode max-pooling)") {
  check_model("squeezenet1_1");
}

TEST_CASE("mnasnet0_5 (mean over the spatial dimensions)") { check_model("mnasnet0_5"); }

TEST_CASE("googlenet (scripted forward returns a tuple with None aux logits)") {
  check_model("googlenet");
}

TEST_CASE("inception_v3 (1x7 and 7x1 kernels, functional pooling, named-tuple output)") {
  check_model("inception_v3");
}

TEST_CASE("regnet_x_400mf (x.flatten as a method: fp32 in FX; module names with dashes)") {
  check_model("regnet_x_400mf");
}

TEST_CASE("efficientnet_b0 (SiLU in fp32, fixed-qparams sigmoid, stochastic depth)") {
  // Tracing leaves no trace of eval-mode StochasticDepth, which FX keeps as a node with
  // an observer after it: one observer fewer per block, the same logits.
  check_model("efficientnet_b0", {}, {false});
}

TEST_CASE("densenet121 (standalone BatchNorm as BNReLU2d, cat of a growing list)") {
  check_model("densenet121");
}

// PyTorch FX cannot trace ShuffleNet (its channel shuffle unpacks x.size()); TorchScript
// holds it, and quantbench quantizes it: no FX reference, so the SQNR against fp32 is
// the measure, and the export must still agree with the interpreter.
TEST_CASE("shufflenet_v2_x1_0 (sizes from x.size(), chunk, transpose), which FX cannot trace") {
  const Expect no_fx{false, 0, 15, false};
  check_model("shufflenet_v2_x1_0", no_fx, no_fx);
}

}  // namespace
