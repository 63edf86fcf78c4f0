#include "models/torchscript_export.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/import.h>

#include "tests/catch.h"

#include <cstdlib>
#include <string>

#include "models/checkpoint.h"
#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/eager.h"
#include "quant/interpreter.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "tests/test_util.h"

namespace {

using Catch::Matchers::Contains;

qb::GraphModule fmnist_model() {
  qb::ZooOptions options;
  options.num_classes = 10;
  options.seed = 3;
  return qb::build_model("fmnist_resnet8", options);
}

// Seeded inputs shaped for fmnist_resnet8: a batch of `n` 1x28x28 images.
at::Tensor images(int64_t n, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({n, 1, 28, 28}, generator);
}

qb::GraphModule int8_model(const qb::GraphModule& model) {
  qb::QConfigMapping mapping;
  mapping.set_global(qb::default_qconfig("onednn"));
  qb::GraphModule prepared = qb::prepare(model, mapping);
  qb::calibrate(prepared, qb::tensor_batches(images(16, 1), 4), {});
  return qb::convert(prepared, {});
}

// The exported file, loaded back by LibTorch's TorchScript loader, run on `x`.
at::Tensor run_exported(const std::string& path, const at::Tensor& x) {
  torch::jit::Module module = torch::jit::load(path);
  return module.forward({x}).toTensor();
}

// The same, in Python: Debian's python3-torch with no quantbench code.
at::Tensor run_in_python(const std::string& path, const at::Tensor& x) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  qb::write_state_dict(dir + "/input.pt", {{"tensor", x}});
  const std::string script = qb::test::source_path("tests/models/run_exported.py").string();
  const std::string command =
      "/usr/bin/python3 " + script + " " + path + " " + dir + "/input.pt " + dir + "/output.pt";
  REQUIRE(std::system(command.c_str()) == 0);
  return qb::read_state_dict(dir + "/output.pt").at(0).second;
}

TEST_CASE("an int8 model exports as TorchScript that computes our logits bit for bit") {
  at::NoGradGuard no_grad;
  qb::GraphModule converted = int8_model(fmnist_model());
  const std::string path = (qb::test::scratch_dir("export_int8") / "int8.pt").string();
  qb::export_torchscript(converted, path);

  at::Tensor x = images(3, 7);
  at::Tensor ours = qb::Interpreter(converted).run(x);
  CHECK(at::equal(run_exported(path, x), ours));
  CHECK(at::equal(run_in_python(path, x), ours));

  const std::string source = qb::torchscript_source(converted);
  CHECK_THAT(source, Contains("def forward(self, x: Tensor):"));
  CHECK_THAT(source, Contains("quantized.conv2d_relu(") && Contains("self.conv1_packed_params") &&
                         Contains("quantized.add_relu(") && Contains("quantized.linear(") &&
                         Contains("torch.quantize_per_tensor(x, "));
}

TEST_CASE("an fp32 model exports as TorchScript that computes our logits bit for bit") {
  at::NoGradGuard no_grad;
  qb::GraphModule model = fmnist_model();
  const std::string path = (qb::test::scratch_dir("export_fp32") / "fp32.pt").string();
  qb::export_torchscript(model, path);
  at::Tensor x = images(2, 8);
  at::Tensor ours = qb::Interpreter(model).run(x);
  CHECK(at::equal(run_exported(path, x), ours));
  CHECK(at::equal(run_in_python(path, x), ours));
  CHECK_THAT(qb::torchscript_source(model),
             Contains("torch.batch_norm(conv1, self.bn1_weight, self.bn1_bias"));
}

TEST_CASE("an eager-mode int8 model exports too") {
  at::NoGradGuard no_grad;
  qb::ZooOptions options;
  options.num_classes = 10;
  options.seed = 4;
  options.quantizable = true;
  qb::GraphModule model = qb::build_model("fmnist_resnet8", options);
  qb::GraphModule fused = qb::fuse_modules(model, qb::fuse_model_groups("fmnist_resnet8"));
  qb::QConfigMapping mapping;
  mapping.set_global(qb::default_qconfig("onednn"));
  qb::GraphModule prepared = qb::prepare_eager(fused, mapping);
  at::Tensor data = images(8, 2);
  qb::Interpreter(prepared).run(data);
  qb::GraphModule converted = qb::convert_eager(prepared, {});
  const std::string path = (qb::test::scratch_dir("export_eager") / "eager.pt").string();
  qb::export_torchscript(converted, path);
  at::Tensor x = images(2, 9);
  CHECK(at::equal(run_exported(path, x), qb::Interpreter(converted).run(x)));
}

TEST_CASE("a model with observers is refused, naming the node") {
  qb::QConfigMapping mapping;
  mapping.set_global(qb::default_qconfig("onednn"));
  qb::GraphModule prepared = qb::prepare(fmnist_model(), mapping);
  const std::string path = (qb::test::scratch_dir("export_prepared") / "prepared.pt").string();
  CHECK_THROWS_WITH(qb::export_torchscript(prepared, path),
                    Contains("node 'activation_post_process_0'") &&
                        Contains("observers are exported only after convert"));
  CHECK_FALSE(std::filesystem::exists(path));
}

}  // namespace
