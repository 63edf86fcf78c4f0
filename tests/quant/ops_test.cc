#include "quant/ops.h"

#include <ATen/ATen.h>

#include "tests/catch.h"

#include <functional>
#include <map>
#include <set>

#include "quant/modules.h"
#include "quant/onednn_conv.h"
#include "quant/quantized_modules.h"
#include "quant/stubs.h"

namespace {

using qb::Domain;
using qb::Observation;
using qb::OpForm;
using qb::OpSpec;

const qb::ModuleConfig kNoConfig;

qb::ModuleArgs no_args(const std::string& kind) {
  return qb::ModuleArgs(kind, kNoConfig, [](const std::string&) { return at::Tensor(); });
}

// One instance of every layer kind the registry knows. A new layer entry without a sample
// here fails the completeness test below, so each one is built, rebuilt and exported.
std::map<std::string, std::function<std::shared_ptr<qb::Module>()>> layer_samples() {
  qb::Conv2dOptions conv{4, 6, 3, 2, 1, 1, 2, true};
  auto qweight = [](std::vector<int64_t> shape) {
    return at::quantize_per_tensor(at::randn(shape), 0.05, 0, at::kQInt8);
  };
  auto conv_relu = [conv] {
    auto m = std::make_shared<qb::Conv2d>(conv);
    m->fuse_relu();
    return m;
  };
  auto linear_relu = [] {
    auto m = std::make_shared<qb::Linear>(5, 3);
    m->fuse_relu();
    return m;
  };
  return {
      {"Conv2d", [conv] { return std::make_shared<qb::Conv2d>(conv); }},
      {"ConvReLU2d", conv_relu},
      {"OneDnnConv2d", [conv] { return std::make_shared<qb::OneDnnConv2d>(conv, true); }},
      {"Linear", [] { return std::make_shared<qb::Linear>(5, 3, false); }},
      {"LinearReLU", linear_relu},
      {"BatchNorm2d", [] { return std::make_shared<qb::BatchNorm2d>(6, 1e-3, 0.01); }},
      {"BNReLU2d",
       [] {
         auto m = std::make_shared<qb::BatchNorm2d>(6);
         m->fuse_relu();
         return m;
       }},
      {"ReLU", [] { return std::make_shared<qb::ReLU>(); }},
      {"ReLU6", [] { return std::make_shared<qb::ReLU6>(); }},
      {"MaxPool2d", [] { return std::make_shared<qb::MaxPool2d>(3, 2, 1, true); }},
      {"AvgPool2d", [] { return std::make_shared<qb::AvgPool2d>(2, 2, 0, false, true); }},
      {"Hardswish", [] { return qb::op("Hardswish").make(no_args("Hardswish")); }},
      {"Hardsigmoid", [] { return qb::op("Hardsigmoid").make(no_args("Hardsigmoid")); }},
      {"Sigmoid", [] { return qb::op("Sigmoid").make(no_args("Sigmoid")); }},
      {"SiLU", [] { return qb::op("SiLU").make(no_args("SiLU")); }},
      {"GELU", [] { return qb::op("GELU").make(no_args("GELU")); }},
      {"Tanh", [] { return qb::op("Tanh").make(no_args("Tanh")); }},
      {"QuantizedHardswish", [] { return std::make_shared<qb::QuantizedHardswish>(0.02, 3); }},
      {"AdaptiveAvgPool2d", [] { return std::make_shared<qb::AdaptiveAvgPool2d>(2, 3); }},
      {"Dropout", [] { return std::make_shared<qb::Dropout>(0.25); }},
      {"Flatten", [] { return std::make_shared<qb::Flatten>(1, -1); }},
      {"Identity", [] { return std::make_shared<qb::Identity>(); }},
      {"QuantStub", [] { return std::make_shared<qb::QuantStub>(); }},
      {"DeQuantStub", [] { return std::make_shared<qb::DeQuantStub>(); }},
      {"FloatFunctional", [] { return std::make_shared<qb::FloatFunctional>("cat", 1); }},
      {"QuantizedConv2d",
       [conv, qweight] {
         return std::make_shared<qb::QuantizedConv2d>(conv, false, qweight({6, 2, 3, 3}),
                                                      at::zeros({6}), 0.1, 3);
       }},
      {"QuantizedConvReLU2d",
       [conv, qweight] {
         return std::make_shared<qb::QuantizedConv2d>(conv, true, qweight({6, 2, 3, 3}),
                                                      at::zeros({6}), 0.1, 0);
       }},
      {"QuantizedLinear",
       [qweight] {
         return std::make_shared<qb::QuantizedLinear>(false, qweight({3, 5}), at::zeros({3}), 0.2, 7);
       }},
      {"QuantizedLinearReLU",
       [qweight] {
         return std::make_shared<qb::QuantizedLinear>(true, qweight({3, 5}), at::zeros({3}), 0.2, 0);
       }},
      {"QuantizedBatchNorm2d",
       [] { return std::make_shared<qb::QuantizedBatchNorm2d>(qb::BatchNorm2d(6), 0.3, 2); }},
      {"QuantizedBNReLU2d",
       [] {
         qb::BatchNorm2d bn(6);
         bn.fuse_relu();
         return std::make_shared<qb::QuantizedBatchNorm2d>(bn, 0.3, 0);
       }},
      {"Quantize", [] { return std::make_shared<qb::Quantize>(0.5, 4, qb::QDtype::kQUInt8); }},
      {"DeQuantize", [] { return std::make_shared<qb::DeQuantize>(); }},
      {"QFunctional", [] { return std::make_shared<qb::QFunctional>("add_relu", 0, 0.4, 1); }},
  };
}

// A stand-in export context: names inputs x0, x1, ... and attributes by their suffix.
class FakeContext : public qb::TorchScriptContext {
 public:
  FakeContext(const qb::Node& node, const qb::Module* module) : node_(node), module_(module) {}
  const qb::Node& node() const override { return node_; }
  const qb::Module& module() const override { return *module_; }
  std::string input(size_t i) const override { return "x" + std::to_string(i); }
  std::string input_list() const override { return "[x0, x1]"; }
  std::string tensor(const std::string& name) override { return "self." + name; }
  std::string object(const std::string& suffix, const c10::IValue&) override {
    return "self." + suffix;
  }

 private:
  const qb::Node& node_;
  const qb::Module* module_;
};

TEST_CASE("every registry entry is complete") {
  const auto samples = layer_samples();
  std::set<std::string> names;
  for (const OpSpec& spec : qb::all_ops()) {
    INFO(spec.name);
    CHECK(names.insert(spec.name).second);  // one entry per name
    CHECK(qb::find_op(spec.name) == &spec);
    CHECK(qb::find_op(spec.qconfig_kind) != nullptr);
    CHECK(static_cast<bool>(spec.torchscript));
    if (spec.form == OpForm::kFunction) {
      CHECK(static_cast<bool>(spec.function));
      CHECK_FALSE(spec.display_name.empty());
      CHECK_FALSE(spec.make);
      CHECK_FALSE(spec.eager_observed);
    } else {
      CHECK(static_cast<bool>(spec.make));
      CHECK(spec.display_name.empty());
      CHECK(samples.count(spec.name) == 1);
    }
    // What graph mode quantizes must have an int8 form, unless it runs on int8 as it is.
    if (spec.observation != Observation::kNone && !qb::runs_on_int8_as_is(spec)) {
      if (spec.form == OpForm::kFunction) {
        REQUIRE(qb::find_op(spec.int8_function) != nullptr);
        CHECK(qb::op(spec.int8_function).domain == Domain::kInt8);
      } else {
        CHECK(static_cast<bool>(spec.to_int8));
      }
    }
    if (qb::runs_on_int8_as_is(spec)) CHECK(spec.int8_function.empty());
  }
  for (const auto& [kind, sample] : samples) CHECK(names.count(kind) == 1);
}

TEST_CASE("every layer rebuilds from its config and tensors, and has a TorchScript form") {
  for (const auto& [kind, sample] : layer_samples()) {
    INFO(kind);
    std::shared_ptr<qb::Module> original = sample();
    REQUIRE(original->kind() == kind);
    const qb::ModuleConfig config = original->config();
    qb::ModuleArgs args(kind, config, [&](const std::string& name) { return original->tensor(name); });
    std::shared_ptr<qb::Module> rebuilt = qb::op(kind).make(args);
    CHECK(rebuilt->kind() == kind);
    CHECK(rebuilt->repr() == original->repr());
    REQUIRE(rebuilt->tensors().size() == original->tensors().size());
    for (size_t i = 0; i < rebuilt->tensors().size(); ++i) {
      CHECK(rebuilt->tensors()[i].name == original->tensors()[i].name);
    }

    qb::Node node;
    node.name = "n";
    node.op = qb::NodeOp::kCallModule;
    node.target = "m";
    node.inputs = {"a", "b"};
    FakeContext context(node, original.get());
    CHECK_FALSE(qb::op(kind).torchscript(context).empty());
  }
}

TEST_CASE("a missing or mistyped config entry is a ModuleArgsError naming it") {
  qb::ModuleConfig config = {{"p", int64_t{1}}};
  qb::ModuleArgs args("Dropout", config, [](const std::string&) { return at::Tensor(); });
  CHECK_THROWS_AS(qb::op("Dropout").make(args), qb::ModuleArgsError);
  CHECK_THROWS_WITH(args.get<double>("p"), "config entry 'p' has the wrong type");
  CHECK_THROWS_WITH(args.get<double>("q"), "config entry 'q' is missing");
  CHECK_THROWS_WITH(qb::op("Frobnicate"), "unknown op 'Frobnicate'");
}

TEST_CASE("the domains say which ops are int8 kernels and which only convert") {
  CHECK(qb::op("QuantizedConvReLU2d").domain == Domain::kInt8);
  CHECK(qb::op("quantized_add_relu").domain == Domain::kInt8);
  CHECK(qb::op("quantize_per_tensor").domain == Domain::kQuantize);
  CHECK(qb::op("DeQuantize").domain == Domain::kDequantize);
  CHECK(qb::op("contiguous").domain == Domain::kLayout);
  CHECK(qb::op("MaxPool2d").domain == Domain::kAny);
  CHECK(qb::op("Conv2d").domain == Domain::kFloat);
  CHECK(qb::op("ConvReLU2d").qconfig_kind == "Conv2d");
  CHECK(qb::op("add").int8_function == "quantized_add");
  CHECK(qb::op("flatten").observation == Observation::kShareInput);
  // The method and nn.Flatten run in fp32 in PyTorch 1.13 FX (quant/ops.cc says why).
  CHECK(qb::op("Tensor.flatten").observation == Observation::kNone);
  CHECK(qb::op("Flatten").observation == Observation::kNone);
  CHECK(qb::op("Dropout").observation == Observation::kNewObserver);
}

}  // namespace
