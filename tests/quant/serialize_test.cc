#include "quant/serialize.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/checkpoint.h"
#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/eager.h"
#include "quant/fuse.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/modules.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/quantized_modules.h"
#include "quant/quantized_ops.h"
#include "quant/stubs.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

using Catch::Matchers::Contains;
using Json = nlohmann::ordered_json;

using test::read_file;
using test::write_file;

/// The message of the SerializationError `action` throws; any other outcome fails the test.
std::string serialization_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const SerializationError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected a SerializationError, got: " << e.what());
  }
  FAIL("expected a SerializationError, nothing was thrown");
  return "";
}

/// Runs two seeded random batches of `shape` through the observers of `prepared`.
void calibrate_on_random(const GraphModule& prepared, const std::vector<int64_t>& shape) {
  at::manual_seed(5);
  int batches = 2;
  calibrate(prepared,
            [&]() -> std::optional<at::Tensor> {
              if (batches-- == 0) return std::nullopt;
              return at::randn(shape);
            },
            {});
}

/// A converted `architecture` for `engine`, calibrated on two random batches of `shape`.
GraphModule converted_model(const std::string& architecture, const std::string& engine,
                            const std::vector<int64_t>& shape) {
  QConfigMapping mapping;
  mapping.set_global(default_qconfig(engine));
  GraphModule prepared = prepare(build_model(architecture, {}), mapping);
  calibrate_on_random(prepared, shape);
  return convert(prepared, {engine, false});
}

/// `architecture` through eager mode for onednn: torchvision's quantizable form, fused
/// as its fuse_model() does, prepared, calibrated on two random batches of `shape`.
GraphModule eager_converted_model(const std::string& architecture,
                                  const std::vector<int64_t>& shape) {
  ZooOptions options;
  options.quantizable = true;
  GraphModule fused =
      fuse_modules(build_model(architecture, options), fuse_model_groups(architecture));
  GraphModule prepared =
      prepare_eager(fused, QConfigMapping().set_global(default_qconfig("onednn")));
  calibrate_on_random(prepared, shape);
  return convert_eager(prepared, {"onednn", false});
}

/// Checks that `loaded` is `original` again: modules, configs, graph, tensors, outputs.
void check_same_model(const GraphModule& original, const GraphModule& loaded,
                      const at::Tensor& input) {
  CHECK(loaded.str() == original.str());
  REQUIRE(loaded.modules().size() == original.modules().size());
  for (size_t i = 0; i < original.modules().size(); ++i) {
    const auto& [path, module] = original.modules()[i];
    INFO("module " << path);
    CHECK(loaded.modules()[i].first == path);
    CHECK(loaded.modules()[i].second->kind() == module->kind());
    CHECK((loaded.modules()[i].second->config() == module->config()));  // no printer for configs
    CHECK(loaded.modules()[i].second->training() == module->training());
  }
  REQUIRE(loaded.graph.nodes().size() == original.graph.nodes().size());
  for (size_t i = 0; i < original.graph.nodes().size(); ++i) {
    const Node& a = original.graph.nodes()[i];
    const Node& b = loaded.graph.nodes()[i];
    INFO("node " << a.name);
    CHECK((b.name == a.name && b.op == a.op && b.target == a.target && b.inputs == a.inputs &&
           b.attrs == a.attrs));
  }
  const NamedTensors before = original.state_dict();
  const NamedTensors after = loaded.state_dict();
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    INFO("tensor " << before[i].first);
    CHECK(after[i].first == before[i].first);
    CHECK(at::equal(after[i].second, before[i].second));  // quantized: qparams and integers
  }
  at::NoGradGuard no_grad;
  CHECK(at::equal(Interpreter(loaded).run(input), Interpreter(original).run(input)));
}

/// A saved model taken apart, so a test can damage one part and put it back together.
struct SavedParts {
  Json record;
  StateDict state;
};

SavedParts split(const std::string& bytes) {
  std::istringstream in(bytes);
  caffe2::serialize::PyTorchStreamReader reader(&in);
  auto [data, size] = reader.getRecord("model.json");
  return {Json::parse(std::string(static_cast<const char*>(data.get()), size)),
          parse_state_dict(bytes, "test")};
}

/// The container serialize_model writes: the state dict's archive plus model.json.
std::string join(const SavedParts& parts) {
  std::istringstream in(serialize_state_dict(parts.state));
  caffe2::serialize::PyTorchStreamReader reader(&in);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* bytes, size_t n) {
    out.append(static_cast<const char*>(bytes), n);
    return n;
  });
  for (const std::string& name : reader.getAllRecords()) {
    if (name == "version") continue;
    auto [data, size] = reader.getRecord(name);
    writer.writeRecord(name, data.get(), size);
  }
  const std::string json = parts.record.dump();
  writer.writeRecord("model.json", json.data(), json.size());
  writer.writeEndOfFile();
  return out;
}

/// Rewrites the saved model at `path` after `damage` has changed its parts.
void damage_file(const std::string& path, const std::function<void(SavedParts&)>& damage) {
  SavedParts parts = split(read_file(path));
  damage(parts);
  write_file(path, join(parts));
}

Json& module_entry(Json& record, const std::string& path) {
  for (Json& entry : record["modules"]) {
    if (entry["path"] == path) return entry;
  }
  throw std::out_of_range("no module " + path);
}

TEST_CASE("a converted fmnist_resnet8 reloads bit-identical on onednn and qnnpack") {
  const std::string dir = test::scratch_dir("serialize_fmnist").string();
  for (const std::string engine : {"onednn", "qnnpack"}) {
    INFO("engine " << engine);
    GraphModule original = converted_model("fmnist_resnet8", engine, {2, 1, 28, 28});
    const std::string path = dir + "/" + engine + ".qbm";
    save_model(original, path);
    // Loading must select the file's engine, whatever is current.
    select_engine(engine == "onednn" ? "qnnpack" : "onednn");
    GraphModule loaded = load_model(path);
    CHECK(current_engine() == engine);
    CHECK(dynamic_cast<const QuantizedConv2d&>(loaded.module("conv1")).engine() == engine);
    CHECK(dynamic_cast<const QuantizedLinear&>(loaded.module("fc")).engine() == engine);
    check_same_model(original, loaded, at::randn({3, 1, 28, 28}));
  }
  select_engine("onednn");
}

TEST_CASE("a converted resnet18 reloads bit-identical on onednn and qnnpack") {
  for (const std::string engine : {"onednn", "qnnpack"}) {
    INFO("engine " << engine);
    GraphModule original = converted_model("resnet18", engine, {2, 3, 32, 32});
    GraphModule loaded = parse_model(serialize_model(original), "resnet18");
    check_same_model(original, loaded, at::randn({1, 3, 32, 32}));
  }
  select_engine("onednn");
}

TEST_CASE("eager-converted resnet18 and mobilenet_v2 reload bit-identical, channels-last too") {
  const std::string dir = test::scratch_dir("serialize_eager").string();
  for (const std::string architecture : {"resnet18", "mobilenet_v2"}) {
    INFO("architecture " << architecture);
    GraphModule original = eager_converted_model(architecture, {2, 3, 64, 64});
    REQUIRE(original.module("quant").kind() == "Quantize");
    REQUIRE(original.module("dequant").kind() == "DeQuantize");
    const std::string path = dir + "/" + architecture + ".qbm";
    save_model(original, path);
    select_engine("qnnpack");  // loading selects the file's engine again
    GraphModule loaded = load_model(path);
    CHECK(current_engine() == "onednn");
    const at::Tensor x = at::randn({2, 3, 64, 64});
    check_same_model(original, loaded, x);

    GraphModule channels_last = to_channels_last(original);
    check_same_model(channels_last,
                     parse_model(serialize_model(channels_last), architecture + " channels-last"),
                     x);
  }
}

TEST_CASE("an unfused BatchNorm and every QFunctional method round-trip") {
  // quant -> conv -> bn -> mul(bn, bn) -> cat(mul, bn) -> add(cat, cat) -> add_relu -> dequant
  GraphModule model;
  model.add_module("quant", std::make_shared<QuantStub>());
  model.add_module("conv", std::make_shared<Conv2d>(Conv2dOptions{3, 4, 3, 1, 1, 1, 1, true}));
  model.add_module("bn", std::make_shared<BatchNorm2d>(4, 1e-3, 0.3));
  for (const char* method : {"mul", "cat", "add", "add_relu"}) {
    model.add_module(method, std::make_shared<FloatFunctional>(method, 1));
  }
  model.add_module("dequant", std::make_shared<DeQuantStub>());
  at::manual_seed(8);
  for (const auto& [key, tensor] : model.state_dict()) {
    if (tensor.is_floating_point()) tensor.uniform_(0.5, 1.5);
  }
  Graph& g = model.graph;
  std::string bn =
      g.call_module("bn", {g.call_module("conv", {g.call_module("quant", {g.placeholder("x")})})});
  std::string joined = g.call_module("cat", {g.call_module("mul", {bn, bn}), bn});
  std::string sum = g.call_module("add", {joined, joined});
  g.output({g.call_module("dequant", {g.call_module("add_relu", {sum, sum})})});
  GraphModule prepared =
      prepare_eager(model, QConfigMapping().set_global(default_qconfig("onednn")));
  calibrate_on_random(prepared, {2, 3, 8, 8});
  GraphModule converted = convert_eager(prepared, {"onednn", false});
  REQUIRE(converted.module("bn").kind() == "QuantizedBatchNorm2d");
  REQUIRE(converted.module("cat").kind() == "QFunctional");

  const std::string bytes = serialize_model(converted);
  check_same_model(converted, parse_model(bytes, "chain"), at::randn({2, 3, 8, 8}));

  SavedParts parts = split(bytes);
  const Json& cat = module_entry(parts.record, "cat")["config"];
  CHECK(cat["method"] == Json{{"string", "cat"}});
  CHECK(cat["dim"] == Json{{"int", 1}});
  CHECK(cat["scale"].contains("float"));
  CHECK(cat["zero_point"].contains("int"));
  CHECK(module_entry(parts.record, "quant")["config"]["dtype"] == Json{{"string", "quint8"}});
  module_entry(parts.record, "mul")["config"]["method"]["string"] = "sub";
  CHECK_THAT(serialization_error([&] { parse_model(join(parts), "chain"); }),
             Contains("chain: module 'mul' (QFunctional): cannot be rebuilt: QFunctional has no "
                      "method 'sub'"));
}

TEST_CASE("fp32 zoo models round-trip, plain and quantizable") {
  for (const std::string& architecture : zoo_architectures()) {
    INFO("architecture " << architecture);
    ZooOptions options;
    options.num_classes = 10;
    GraphModule original = build_model(architecture, options);
    const int64_t channels = architecture == "fmnist_resnet8" ? 1 : 3;
    check_same_model(original, parse_model(serialize_model(original), architecture),
                     at::randn({1, channels, 32, 32}));
  }
  ZooOptions quantizable;
  quantizable.quantizable = true;
  GraphModule original = build_model("fmnist_resnet8", quantizable);
  check_same_model(original, parse_model(serialize_model(original), "quantizable"),
                   at::randn({2, 1, 28, 28}));
}

TEST_CASE("a fused model and every fp32 module kind and attribute type round-trip") {
  GraphModule fused = fuse(build_model("fmnist_resnet8", {}),
                           QConfigMapping().set_global(default_qconfig("onednn")));
  CHECK(fused.module("conv1").kind() == "ConvReLU2d");
  check_same_model(fused, parse_model(serialize_model(fused), "fused"), at::randn({2, 1, 28, 28}));

  GraphModule gm;
  gm.add_module("conv", std::make_shared<Conv2d>(Conv2dOptions{3, 4, {1, 3}, {2, 1}, {0, 2}, 2, 1, true}));
  auto depthwise = std::make_shared<Conv2d>(Conv2dOptions{4, 4, 3, 1, 1, 1, 4, false});
  depthwise->fuse_relu();
  gm.add_module("depthwise", depthwise);
  gm.add_module("bn", std::make_shared<BatchNorm2d>(4, 1e-3, 0.3));
  gm.add_module("relu6", std::make_shared<ReLU6>());
  gm.add_module("pool", std::make_shared<MaxPool2d>(3, 2, 1));
  gm.add_module("drop", std::make_shared<Dropout>(0.25));
  gm.add_module("same", std::make_shared<Identity>());
  gm.add_module("avg", std::make_shared<AdaptiveAvgPool2d>(2, 1));
  auto hidden = std::make_shared<Linear>(8, 5);
  hidden->fuse_relu();
  gm.add_module("hidden", hidden);
  gm.add_module("head", std::make_shared<Linear>(5, 2, false));
  at::manual_seed(3);
  for (const auto& [key, tensor] : gm.state_dict()) {
    if (tensor.is_floating_point()) tensor.uniform_(0.5, 1.5);
  }
  gm.module("same").set_training(true);  // the flag round-trips; Identity ignores it

  Graph& g = gm.graph;
  std::string x = g.placeholder("x");
  for (const char* path : {"conv", "depthwise", "bn", "relu6", "pool", "drop", "same", "avg"}) {
    x = g.call_module(path, {x});
  }
  // flatten reads start_dim only; the other attributes stand for every Attr type.
  x = g.call_function("flatten", {x},
                      {{"start_dim", int64_t{1}},
                       {"sizes", std::vector<int64_t>{2, -1}},
                       {"label", std::string("héllo \"quoted\"")},
                       {"scale", 0.1 + 0.2},
                       {"limit", -std::numeric_limits<double>::infinity()}});
  x = g.call_module("head", {g.call_module("hidden", {x})});
  g.output({x});

  check_same_model(gm, parse_model(serialize_model(gm), "kitchen sink"), at::randn({2, 3, 16, 16}));
}

TEST_CASE("the file is a torch.save state dict with the model record beside it") {
  const std::string path = test::scratch_dir("serialize_container").string() + "/fp32.qbm";
  GraphModule model = build_model("fmnist_resnet8", {});
  save_model(model, path);
  StateDict state = read_state_dict(path);
  REQUIRE(state.size() == model.state_dict().size());
  CHECK(state.front().first == "conv1.weight");
  const Json record = split(read_file(path)).record;
  CHECK(record["format"] == "quantbench.GraphModule");
  CHECK(record["format_version"] == kModelFormatVersion);
  CHECK(record["engine"].is_null());  // nothing prepacked
}

TEST_CASE("damaged or unloadable files fail with a SerializationError naming the file") {
  const std::string dir = test::scratch_dir("serialize_errors").string();
  const std::string path = dir + "/model.qbm";
  GraphModule fp32 = build_model("fmnist_resnet8", {});

  SECTION("a file from a newer format version") {
    save_model(fp32, path);
    damage_file(
        path, [](SavedParts& parts) { parts.record["format_version"] = kModelFormatVersion + 1; });
    std::string message = serialization_error([&] { load_model(path); });
    CHECK_THAT(message, Contains(path) && Contains("model format version 2") &&
                            Contains("this build reads versions up to 1"));
  }
  SECTION("a truncated file") {
    save_model(fp32, path);
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
    CHECK_THAT(serialization_error([&] { load_model(path); }),
               Contains(path + ": truncated or damaged file"));
    std::filesystem::resize_file(path, 0);
    CHECK_THAT(serialization_error([&] { load_model(path); }),
               Contains(path + ": the file is empty"));
  }
  SECTION("an unknown module kind") {
    save_model(fp32, path);
    damage_file(path, [](SavedParts& parts) {
      module_entry(parts.record, "layer1.0.bn1")["kind"] = "Frobnicator";
    });
    CHECK_THAT(serialization_error([&] { load_model(path); }),
               Contains(path + ": module 'layer1.0.bn1' (Frobnicator): unknown module kind"));
  }
  SECTION("a corrupt module config") {
    save_model(fp32, path);
    damage_file(path, [](SavedParts& parts) {
      module_entry(parts.record, "conv1")["config"]["stride"] = Json{{"float", 1.0}};
    });
    CHECK_THAT(
        serialization_error([&] { load_model(path); }),
        Contains(path + ": module 'conv1' (Conv2d): config entry 'stride' is not an int or a pair of ints"));
  }
  SECTION("a missing tensor") {
    save_model(fp32, path);
    damage_file(path, [](SavedParts& parts) {
      parts.state.erase(std::find_if(parts.state.begin(), parts.state.end(), [](const auto& entry) {
        return entry.first == "layer2.0.bn1.running_var";
      }));
    });
    CHECK_THAT(
        serialization_error([&] { load_model(path); }),
        Contains(
            path +
            ": module 'layer2.0.bn1' (BatchNorm2d): tensor 'layer2.0.bn1.running_var' is missing"));
  }
  SECTION("a tensor of the wrong shape, and one no module owns") {
    save_model(fp32, path);
    damage_file(path, [](SavedParts& parts) { parts.state[0].second = at::zeros({2}); });
    CHECK_THAT(
        serialization_error([&] { load_model(path); }),
        Contains(path + ": module 'conv1' (Conv2d): tensor 'conv1.weight' is [2] Float, but the "
                        "module's config makes it [16, 1, 3, 3] Float"));
    save_model(fp32, path);
    damage_file(path, [](SavedParts& parts) { parts.state.emplace_back("stray", at::zeros({1})); });
    CHECK_THAT(serialization_error([&] { load_model(path); }),
               Contains(path + ": tensor 'stray' belongs to no module"));
  }
  SECTION("an engine this LibTorch does not offer") {
    std::vector<std::string> available = available_engines();
    std::string missing;
    for (const std::string engine : {"fbgemm", "x86"}) {
      if (missing.empty() &&
          std::find(available.begin(), available.end(), engine) == available.end())
        missing = engine;
    }
    if (missing.empty()) {
      WARN("every engine is available in this LibTorch build; nothing to test");
      return;
    }
    save_model(converted_model("fmnist_resnet8", "onednn", {2, 1, 28, 28}), path);
    damage_file(path, [&](SavedParts& parts) { parts.record["engine"] = missing; });
    CHECK_THAT(serialization_error([&] { load_model(path); }),
               Contains(path + ": the model was converted for quantized engine '" + missing +
                        "', which this LibTorch build does not offer (available: ") &&
                   Contains("onednn"));
  }
  SECTION("a plain state dict, a garbled record, a missing file") {
    write_state_dict(path, fp32.state_dict());
    CHECK_THAT(serialization_error([&] { load_model(path); }),
               Contains(path + ": not a saved model: the archive has no record 'model.json'"));
    save_model(fp32, path);
    damage_file(path, [](SavedParts& parts) { parts.record.erase("graph"); });
    CHECK_THAT(serialization_error([&] { load_model(path); }),
               Contains(path + ": corrupt model.json: ") && Contains("graph"));
    CHECK_THAT(serialization_error([&] { load_model(dir + "/absent.qbm"); }),
               Contains(dir + "/absent.qbm: cannot open"));
  }
}

TEST_CASE("saving is atomic and refuses modules it could not load") {
  const std::filesystem::path dir = test::scratch_dir("serialize_atomic");
  const std::string path = (dir / "model.qbm").string();
  GraphModule fp32 = build_model("fmnist_resnet8", {});
  save_model(fp32, path);
  const std::string before = read_file(path);
  save_model(fp32, path);  // overwriting is fine
  CHECK(read_file(path) == before);

  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  GraphModule prepared = prepare(fp32, mapping);
  CHECK_THAT(
      serialization_error([&] { save_model(prepared, path); }),
      Contains(path + ": cannot save module 'activation_post_process_0': modules of kind '"));
  CHECK(read_file(path) == before);  // the old file is untouched
  CHECK(std::distance(std::filesystem::directory_iterator(dir),
                      std::filesystem::directory_iterator()) == 1);
}

}  // namespace
}  // namespace qb
