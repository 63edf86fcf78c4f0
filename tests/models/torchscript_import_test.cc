#include "models/torchscript_import.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/import.h>

#include "tests/catch.h"

#include <cstdlib>
#include <sstream>
#include <string>

#include "models/checkpoint.h"
#include "models/torchscript_export.h"
#include "models/zoo.h"
#include "quant/convert.h"
#include "quant/inspect.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/interpreter.h"
#include "tests/test_util.h"

namespace {

using Catch::Matchers::Contains;

// The files tests/models/torchscript_models.py writes, made once for all cases.
const std::string& model_dir() {
  static const std::string dir = [] {
    std::string out = qb::test::scratch_dir("torchscript_models").string();
    std::string script = qb::test::source_path("tests/models/torchscript_models.py").string();
    std::string command = "/usr/bin/python3 " + script + " " + out;
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
    return out;
  }();
  return dir;
}

std::string model_file(const std::string& name) { return model_dir() + "/" + name; }

at::Tensor saved_tensor(const std::string& name) {
  return qb::read_state_dict(model_file(name)).at(0).second;
}

// The first line where two printouts differ, both versions of it ("" when equal), so a
// failure shows the node at fault rather than two whole graphs.
std::string first_difference(const std::string& ours, const std::string& want) {
  std::istringstream a(ours), b(want);
  std::string line_a, line_b;
  for (int line = 1;; ++line) {
    bool more_a = static_cast<bool>(std::getline(a, line_a));
    bool more_b = static_cast<bool>(std::getline(b, line_b));
    if (!more_a && !more_b) return "";
    if (line_a != line_b || more_a != more_b) {
      return "line " + std::to_string(line) + ":\n  imported: " + (more_a ? line_a : "<end>") +
             "\n  zoo:      " + (more_b ? line_b : "<end>");
    }
  }
}

struct ZooCase {
  const char* name;
  qb::ZooOptions options;
};

const ZooCase kCases[] = {
    {"resnet18", {}},       {"resnet34", {}},
    {"resnet50", {}},       {"mobilenet_v2", {}},
    {"cifar_resnet18", {10, {}, 0}}, {"fmnist_resnet8", {10, {}, 0}},
};

// The imported model must be the zoo's model: the same graph (every node's name, op,
// target, inputs and constants), the same layers printed the same way, the same
// state_dict, and bit-identical logits; the TorchScript model itself agrees too.
void check_against_zoo(const ZooCase& c, const std::string& form) {
  INFO(c.name << " " << form);
  qb::GraphModule imported = qb::import_torchscript(model_file(std::string(c.name) + "." + form + ".pt"));
  qb::GraphModule zoo = qb::build_model(c.name, c.options);
  qb::load_state_dict_strict(zoo.state_dict(), qb::read_state_dict(model_file(std::string(c.name) + ".state.pt")),
                             "state");

  CHECK(first_difference(imported.graph.str(), zoo.graph.str()) == "");
  CHECK(first_difference(imported.str(), zoo.str()) == "");
  qb::NamedTensors ours = imported.state_dict();
  qb::NamedTensors want = zoo.state_dict();
  REQUIRE(ours.size() == want.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    CHECK(ours[i].first == want[i].first);
    CHECK(at::equal(ours[i].second, want[i].second));
  }

  at::Tensor x = saved_tensor(std::string(c.name) + ".input.pt");
  at::NoGradGuard no_grad;
  at::Tensor logits = qb::Interpreter(imported).run(x);
  CHECK(at::equal(logits, qb::Interpreter(zoo).run(x)));
  at::Tensor python = saved_tensor(std::string(c.name) + ".logits.pt");
  CHECK(at::allclose(logits, python, 1e-4, 1e-4));
}

TEST_CASE("a scripted zoo model imports as the zoo builds it") {
  for (const ZooCase& c : kCases) check_against_zoo(c, "scripted");
}

TEST_CASE("a traced zoo model imports as the zoo builds it and runs at another batch size") {
  for (const ZooCase& c : kCases) check_against_zoo(c, "traced");
}

// Quantizes `imported` (calibrated on `x`) with onednn's defaults and checks its TorchScript
// export computes what the interpreter computes.
qb::GraphModule quantize_and_export(const qb::GraphModule& imported, const at::Tensor& x,
                                    const std::string& name) {
  qb::QConfigMapping mapping;
  mapping.set_global(qb::default_qconfig("onednn"));
  qb::GraphModule prepared = qb::prepare(imported, mapping);
  qb::Interpreter(prepared).run(x);
  qb::GraphModule converted = qb::convert(prepared, {});
  at::Tensor int8 = qb::Interpreter(converted).run(x);
  const std::string exported = model_dir() + "/" + name + "_int8.pt";
  qb::export_torchscript(converted, exported);
  CHECK(at::equal(torch::jit::load(exported).forward({x}).toTensor(), int8));
  return converted;
}

TEST_CASE("a CNN in the functional style imports, quantizes and exports") {
  for (const char* form : {"scripted", "traced"}) {
    INFO(form);
    qb::GraphModule imported = qb::import_torchscript(model_file(std::string("functional.") + form + ".pt"));
    std::vector<std::string> functions;
    for (const qb::Node& node : imported.graph.nodes()) {
      if (node.op == qb::NodeOp::kCallFunction) functions.push_back(node.target);
    }
    CHECK(functions == std::vector<std::string>{"relu", "max_pool2d", "avg_pool2d", "tanh",
                                                "reshape", "dropout"});
    at::NoGradGuard no_grad;
    at::Tensor x = saved_tensor("functional.input.pt");
    CHECK(at::allclose(qb::Interpreter(imported).run(x), saved_tensor("functional.logits.pt"), 1e-5, 1e-6));

    qb::GraphModule converted = quantize_and_export(imported, x, std::string("functional_") + form);
    qb::PrecisionCounts counts = qb::count_precisions(qb::node_precisions(converted));
    CHECK(counts.fp32 == 0);
  }
}

TEST_CASE("non-square kernels, strides, paddings and dilations import; GELU stays fp32") {
  for (const char* form : {"scripted", "traced"}) {
    INFO(form);
    qb::GraphModule imported = qb::import_torchscript(model_file(std::string("factorized.") + form + ".pt"));
    const auto& tall = dynamic_cast<const qb::Conv2d&>(imported.module("tall")).options();
    CHECK(tall.kernel_size == qb::Size2(7, 1));
    CHECK(tall.stride == qb::Size2(2, 1));
    CHECK(tall.padding == qb::Size2(3, 0));
    CHECK(tall.dilation == qb::Size2(1, 2));
    CHECK(imported.module("tall").extra_repr() ==
          "8, 8, kernel_size=(7, 1), stride=(2, 1), padding=(3, 0), dilation=(1, 2)");
    at::NoGradGuard no_grad;
    at::Tensor x = saved_tensor("factorized.input.pt");
    CHECK(at::allclose(qb::Interpreter(imported).run(x), saved_tensor("factorized.logits.pt"), 1e-5, 1e-6));

    qb::GraphModule converted = quantize_and_export(imported, x, std::string("factorized_") + form);
    CHECK(converted.module("tall").kind() == "QuantizedConv2d");
    CHECK(converted.module("act").kind() == "GELU");
  }
}

TEST_CASE("nn.Flatten and x.flatten stay fp32 as in PyTorch FX, torch.flatten shares qparams") {
  for (const char* form : {"scripted", "traced"}) {
    INFO(form);
    at::NoGradGuard no_grad;
    qb::GraphModule sequential = qb::import_torchscript(model_file(std::string("sequential_flatten.") + form + ".pt"));
    CHECK(sequential.module("3").kind() == "Flatten");
    at::Tensor x = saved_tensor("sequential_flatten.input.pt");
    CHECK(at::allclose(qb::Interpreter(sequential).run(x), saved_tensor("sequential_flatten.logits.pt"), 1e-5, 1e-6));
    // The export names the parameters of module "0" as TorchScript identifiers.
    qb::GraphModule converted = quantize_and_export(sequential, x, std::string("sequential_flatten_") + form);
    CHECK(converted.module("3").kind() == "Flatten");
    CHECK(qb::count_precisions(qb::node_precisions(converted)).fp32 == 1);

    // The recorded source tells the method from the function: a scripted file its text, a
    // traced one the line of the file that made the call.
    qb::GraphModule two = qb::import_torchscript(model_file(std::string("two_flattens.") + form + ".pt"));
    std::vector<std::string> functions;
    for (const qb::Node& node : two.graph.nodes()) {
      if (node.op == qb::NodeOp::kCallFunction) functions.push_back(node.name + " " + node.target);
    }
    CHECK(functions == std::vector<std::string>{"flatten Tensor.flatten", "flatten_1 flatten", "add add"});
    at::Tensor y = saved_tensor("two_flattens.input.pt");
    CHECK(at::allclose(qb::Interpreter(two).run(y), saved_tensor("two_flattens.logits.pt"), 1e-5, 1e-6));
    qb::GraphModule two_int8 = quantize_and_export(two, y, std::string("two_flattens_") + form);
    CHECK(qb::count_precisions(qb::node_precisions(two_int8)).fp32 == 1);
  }
}

TEST_CASE("a traced layer the trace went around (nn.Identity) leaves no node") {
  qb::GraphModule imported = qb::import_torchscript(model_file("identity.traced.pt"));
  CHECK_FALSE(imported.has_module("skip"));
  at::NoGradGuard no_grad;
  at::Tensor logits = qb::Interpreter(imported).run(saved_tensor("identity.input.pt"));
  CHECK(at::allclose(logits, saved_tensor("identity.logits.pt"), 1e-5, 1e-6));
}

TEST_CASE("what a graph cannot hold is an error naming the op, the module and the line") {
  const std::string control_flow = model_file("control_flow.pt");
  CHECK_THROWS_WITH(qb::import_torchscript(control_flow),
                    Contains(control_flow) && Contains("the top-level module") &&
                        Contains("control flow that depends on a tensor's value") &&
                        Contains("prim::If") && Contains("torchscript_models.py:"));
  CHECK_THROWS_WITH(qb::import_torchscript(model_file("unsupported_op.pt")),
                    Contains("module 'block'") && Contains("aten::sin") &&
                        Contains("no mapping") && Contains("torchscript_models.py:"));
  CHECK_THROWS_WITH(qb::import_torchscript(model_file("unsupported_layer.pt")),
                    Contains("module 'act'") && Contains("layer type ELU") &&
                        Contains("torch.nn.modules.activation.ELU"));
  CHECK_THROWS_WITH(qb::import_torchscript(model_file("parameter_in_code.pt")),
                    Contains("tensor 'scale'") && Contains("outside a supported torch.nn layer"));
}

TEST_CASE("a file that is not TorchScript is an error naming it") {
  const std::string state = model_file("resnet18.state.pt");
  CHECK_THROWS_WITH(qb::import_torchscript(state),
                    Contains(state) && Contains("not a TorchScript file"));
  CHECK_THROWS_WITH(qb::import_torchscript(model_dir() + "/missing.pt"),
                    Contains("missing.pt") && Contains("not a TorchScript file"));
}

}  // namespace
