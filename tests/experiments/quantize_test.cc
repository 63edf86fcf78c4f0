#include "experiments/quantize.h"

#include <ATen/ATen.h>

#include "tests/catch.h"

#include <cstdlib>
#include <filesystem>
#include <string>

#include "models/checkpoint.h"
#include "tests/test_util.h"

namespace {

using Catch::Matchers::Contains;
using qb::QuantizeOptions;

void run(const std::string& command) {
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
}

// A scripted TinyNet (tests/experiments/tiny_torchscript_net.py) and 24 seeded 1x28x28
// calibration images saved as torch.save(tensor): what a user hands to quantize.
struct Files {
  std::string dir, model, calibration, eval_input;
};

const Files& files() {
  static const Files f = [] {
    Files made;
    made.dir = qb::test::scratch_dir("quantize").string();
    made.model = made.dir + "/tiny.pt";
    made.calibration = made.dir + "/calibration.pt";
    made.eval_input = made.dir + "/eval_input.pt";
    run("/usr/bin/python3 " + qb::test::source_path("tests/experiments/tiny_torchscript_net.py").string() +
        " " + made.model);
    run("/usr/bin/python3 -c \"import torch; torch.manual_seed(1); "
        "torch.save(torch.randn(24, 1, 28, 28), '" + made.calibration + "'); "
        "torch.save({'tensor': torch.randn(3, 1, 28, 28)}, '" + made.eval_input + "'); "
        "torch.save({'images': torch.randn(2, 1, 28, 28)}, '" + made.dir + "/dict.pt')\"");
    return made;
  }();
  return f;
}

QuantizeOptions options(const std::string& output_name) {
  QuantizeOptions o;
  o.model = files().model;
  o.calibration = files().calibration;
  o.output = files().dir + "/" + output_name;
  o.calibration_batch_size = 10;
  return o;
}

void no_progress(int64_t, int64_t) {}

TEST_CASE("the command line: flags, values and what is required") {
  QuantizeOptions o = qb::parse_quantize_arguments(
      {"--model", "a.pt", "--calibration=c.pt", "--output", "o.pt", "--calibration-batch-size",
       "8", "--engine", "qnnpack", "--observer", "minmax", "--weights", "per_tensor",
       "--mapping", "m.toml"});
  CHECK(o.model == "a.pt");
  CHECK(o.calibration == "c.pt");
  CHECK(o.output == "o.pt");
  CHECK(o.calibration_batch_size == 8);
  CHECK(o.engine == "qnnpack");
  CHECK(o.observer == "minmax");
  CHECK(o.weights == "per_tensor");
  CHECK(o.mapping == "m.toml");

  CHECK_THROWS_WITH(qb::parse_quantize_arguments({"--model", "a.pt", "--calibration", "c.pt"}),
                    "--output is required");
  CHECK_THROWS_WITH(qb::parse_quantize_arguments({"--model"}), "--model needs a value");
  CHECK_THROWS_WITH(qb::parse_quantize_arguments({"--modle", "a.pt"}), "unknown argument '--modle'");
  for (const char* bad : {"0", "-3", "8x", "99999999999999999999"}) {
    CHECK_THROWS_WITH(qb::parse_quantize_arguments({"--calibration-batch-size", bad}),
                      Contains("--calibration-batch-size: '" + std::string(bad) + "'"));
  }
}

TEST_CASE("quantize turns a TorchScript model into an int8 TorchScript model PyTorch runs") {
  QuantizeOptions o = options("int8.pt");
  int64_t last_done = -1, calls = 0;
  qb::QuantizeReport report = qb::quantize(o, [&](int64_t done, int64_t total) {
    CHECK(total == 24);
    CHECK(done > last_done);
    last_done = done;
    ++calls;
  });
  CHECK(calls == 4);  // 0, then after each of the batches of 10, 10 and 4
  CHECK(last_done == 24);
  CHECK(report.calibration_examples == 24);
  CHECK(report.calibration_batches == 3);
  CHECK(report.precisions.int8 > 0);
  CHECK(report.precisions.fp32 == 0);
  REQUIRE_FALSE(report.layer_sqnr.empty());
  CHECK(report.layer_sqnr.front().name == "conv");
  for (const auto& layer : report.layer_sqnr) CHECK(layer.sqnr_db > 15.0);
  CHECK(report.output_bytes > 0);
  CHECK(report.output_bytes < report.input_bytes);

  const std::string text = qb::format_report(o, report);
  CHECK_THAT(text, Contains("calibrated on 24 examples in 3 batches of up to 10") &&
                       Contains(" int8, 0 fp32") && Contains("torch.jit.load(\"" + o.output + "\")"));

  // PyTorch runs the file on its own, and its output is close to the fp32 model's.
  const std::string out = files().dir + "/python_logits.pt";
  run("/usr/bin/python3 -c \"import torch; torch.backends.quantized.engine = 'onednn'; "
      "x = torch.load('" + files().eval_input + "')['tensor']; "
      "q = torch.jit.load('" + o.output + "')(x); f = torch.jit.load('" + o.model + "')(x); "
      "sqnr = 10 * torch.log10(f.pow(2).sum() / (f - q).pow(2).sum()); "
      "assert sqnr > 15, sqnr; print('sqnr', float(sqnr))\"");
}

TEST_CASE("bad input is an error naming the flag or file, before any work and writing nothing") {
  auto fails_with = [](QuantizeOptions o, const std::string& message) {
    INFO(message);
    CHECK_THROWS_WITH(qb::quantize(o, no_progress), Contains(message));
    CHECK_FALSE(std::filesystem::exists(o.output));
  };
  QuantizeOptions o = options("never.pt");
  o.model = files().dir + "/missing.pt";
  fails_with(o, "--model " + o.model + ": no such file");

  o = options("never.pt");
  o.calibration = files().dir + "/dict.pt";
  fails_with(o, "--calibration " + o.calibration + ": holds a dict (images), not a tensor");

  o = options("never.pt");
  o.calibration = files().model;  // a TorchScript archive is no torch.save'd tensor
  fails_with(o, "--calibration " + o.calibration + ": not a tensor saved with torch.save");

  o = options("never.pt");
  o.engine = "fbgemm";
  fails_with(o, "--engine: ");

  o = options("never.pt");
  o.observer = "median";
  fails_with(o, "--observer: unknown activation observer 'median'");

  o = options("never.pt");
  o.output = files().dir + "/no/such/folder/int8.pt";
  fails_with(o, "does not exist");

  o = options("never.pt");
  o.mapping = files().dir + "/global.toml";
  qb::test::write_file(o.mapping, "[global]\nqconfig = \"onednn\"\n");
  fails_with(o, "--mapping " + o.mapping + ": has a [global] qconfig");
}

TEST_CASE("a mapping file leaves the layers it names in fp32") {
  QuantizeOptions o = options("partly_int8.pt");
  o.mapping = files().dir + "/fc_float.toml";
  qb::test::write_file(o.mapping, "[[module_name]]\nname = \"fc\"\nqconfig = \"none\"\n");
  qb::QuantizeReport report = qb::quantize(o, no_progress);
  CHECK(report.precisions.fp32 == 1);
}

}  // namespace
