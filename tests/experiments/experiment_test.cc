// Reading experiment files: what every section gives, and every error before work starts.

#include "experiments/experiment.h"

#include <filesystem>
#include <string>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

const char* kMinimal = R"(name = "tiny"
[model]
architecture = "fmnist_resnet8"
num_classes = 10
checkpoint = "models/checkpoints/fmnist_resnet8.pt"
[data]
kind = "fashion_mnist"
)";

/// Reads `text` (written to a scratch file) as an experiment.
Experiment read(const std::string& text, const std::string& name = "experiment") {
  std::string path = (test::scratch_dir(name) / "experiment.toml").string();
  test::write_file(path, text);
  Config config = Config::from_file(path);
  return read_experiment(config, path);
}

/// The message read() throws, with the scratch path cut to "experiment.toml".
std::string error_of(const std::string& text) {
  try {
    read(text, "errors");
  } catch (const ConfigError& e) {
    std::string message = e.what();
    size_t at = message.find("experiment.toml");
    return at == std::string::npos ? message : message.substr(at);
  }
  return "";
}

TEST_CASE("an experiment takes its defaults from the minimal file") {
  Experiment e = read(kMinimal);
  CHECK(e.name == "tiny");
  CHECK(e.model.architectures == std::vector<std::string>{"fmnist_resnet8"});
  CHECK(e.model.checkpoint.find("models/checkpoints/fmnist_resnet8.pt") != std::string::npos);
  CHECK(e.file_sha256.size() == 64);
  CHECK(e.evaluation.split == "test");
  CHECK(e.evaluation.accuracy);
  CHECK(e.calibration.split == "train");
  CHECK(e.calibration.samples == std::vector<int64_t>{256});
  CHECK(e.calibration.seeds == std::vector<uint64_t>{0});
  CHECK(e.sweep.variants == std::vector<std::string>{"fp32", "graph"});
  CHECK(e.sweep.threads == std::vector<int64_t>{1});
  CHECK(e.mappings.size() == 1);
  CHECK(e.mappings.count("global") == 1);
  CHECK(e.data == nlohmann::json{{"kind", "fashion_mnist"}});
  CHECK(e.output_dir.size() >= std::string("results/tiny").size());
  CHECK(e.output_dir.substr(e.output_dir.size() - 12) == "results/tiny");
}

TEST_CASE("an experiment reads its sweep lists, mappings and exclude rules") {
  Experiment e = read(std::string(kMinimal) + R"(
[calibration]
samples = [0, 64]
seeds = [3, 4]
subset = "stratified"
[sweep]
variants = ["fp32", "eager", "graph"]
observers = ["minmax", "histogram"]
mappings = ["global", "float_fc"]
threads = [1, 2]
batch_sizes = [1, 8]
exclude = [{ variant = "eager", observer = ["histogram"] }]
[mappings]
float_fc = "tests/fixtures/experiments/fp32_fc.toml"
)");
  CHECK(e.calibration.seeds == std::vector<uint64_t>{3, 4});
  CHECK(e.calibration.subset == "stratified");
  CHECK(e.sweep.batch_sizes == std::vector<int64_t>{1, 8});
  REQUIRE(e.sweep.exclude.size() == 1);
  CHECK(e.sweep.exclude[0] ==
        nlohmann::json{{"variant", "eager"}, {"observer", nlohmann::json::array({"histogram"})}});
  REQUIRE(e.mappings.count("float_fc") == 1);
  CHECK(e.mappings.at("float_fc").module_names().size() == 1);
}

/// A file where a TorchScript model would be; reading an experiment only checks that it exists.
std::string torchscript_file() {
  std::string path = (test::scratch_dir("torchscript") / "my_net.pt").string();
  test::write_file(path, "a TorchScript archive");
  return path;
}

/// An experiment whose [model] is `model` followed by the torchscript key naming `path`.
std::string torchscript_experiment(const std::string& path, const std::string& model = "") {
  return "name = \"ts\"\n[model]\n" + model + "torchscript = \"" + path +
         "\"\n[data]\nkind = \"fashion_mnist\"\n";
}

TEST_CASE("a TorchScript model is named by its file's stem, or by model.name") {
  const std::string path = torchscript_file();
  Experiment e = read(torchscript_experiment(path));
  CHECK(e.model.torchscript == path);
  CHECK(e.model.architectures == std::vector<std::string>{"my_net"});
  CHECK(e.model.checkpoint.empty());
  CHECK(e.evaluation.accuracy);  // the file holds trained weights
  CHECK(read(torchscript_experiment(path, "name = \"baseline\"\n")).model.architectures ==
        std::vector<std::string>{"baseline"});
  // Relative to the repository root, like every path in an experiment file (any file will do:
  // reading only checks that it exists, the sweep imports it).
  Experiment relative = read(torchscript_experiment("models/checkpoints/fmnist_resnet8.pt"));
  CHECK(relative.model.torchscript ==
        std::filesystem::absolute("models/checkpoints/fmnist_resnet8.pt").lexically_normal().string());
  CHECK(relative.model.architectures == std::vector<std::string>{"fmnist_resnet8"});
}

TEST_CASE("TorchScript model errors: the zoo's keys, a missing file, model.name, eager mode") {
  const std::string path = torchscript_file();
  const std::string conflict =
      "not with model.torchscript: the TorchScript file holds the whole model, its layers and "
      "weights";
  CHECK(error_of(torchscript_experiment(path, "architecture = \"fmnist_resnet8\"\n")) ==
        "experiment.toml:3: 'model.architecture': " + conflict);
  CHECK(error_of(torchscript_experiment(path, "architectures = [\"resnet18\"]\n")) ==
        "experiment.toml:3: 'model.architectures': " + conflict);
  CHECK(error_of(torchscript_experiment(path, "checkpoint = \"w.pt\"\n")) ==
        "experiment.toml:3: 'model.checkpoint': " + conflict);
  CHECK(error_of(torchscript_experiment(path, "num_classes = 10\n")) ==
        "experiment.toml:3: 'model.num_classes': " + conflict);
  CHECK(error_of(torchscript_experiment("models/no_such_net.pt"))
            .find("experiment.toml:3: 'model.torchscript': no file at ") == 0);
  CHECK(error_of(torchscript_experiment(path, "name = \"\"\n")) ==
        "experiment.toml:3: 'model.name': must not be empty");
  CHECK(error_of("name = \"x\"\n[model]\nname = \"mine\"\narchitecture = \"resnet18\"\n") ==
        "experiment.toml:3: 'model.name': names a model.torchscript model; a zoo model is named "
        "by its architecture");
  CHECK(error_of(torchscript_experiment(path) + "[sweep]\nvariants = [\"fp32\", \"eager\"]\n") ==
        "experiment.toml:7: 'sweep.variants': eager mode fuses the module groups a zoo model "
        "declares (fuse_model_groups in models/zoo.h), which a model.torchscript model does not "
        "have: use fp32 and graph");
}

TEST_CASE("sequential calibration takes one seed") {
  Experiment e = read(std::string(kMinimal) + "[calibration]\nsubset = \"sequential\"\n");
  CHECK(e.calibration.subset == "sequential");
  CHECK(e.calibration.seeds == std::vector<uint64_t>{0});
  CHECK(read(std::string(kMinimal) + "[calibration]\nsubset = \"sequential\"\nseeds = [4]\n")
            .calibration.seeds == std::vector<uint64_t>{4});
  CHECK(error_of(std::string(kMinimal) +
                 "[calibration]\nsubset = \"sequential\"\nseeds = [0, 1]\n") ==
        "experiment.toml:10: 'calibration.seeds': subset = \"sequential\" takes the first "
        "examples whatever the seed, so every seed would calibrate alike: give one seed");
}

TEST_CASE("every integer is range-checked where it is read: nothing is cut to 32 bits") {
  const std::string m = kMinimal;
  // Once cut to 1 by a static_cast<int>, and recorded as 4294967297.
  CHECK(error_of(m + "[sweep]\nthreads = [4294967297]\n") ==
        "experiment.toml:9: 'sweep.threads': value 4294967297 is out of range [1, 1024]");
  CHECK(error_of(m + "[latency]\nrepetitions = 4294967297\n") ==
        "experiment.toml:9: 'latency.repetitions': 4294967297 is out of range [1, 100000]");
  // Once failed every point with "latency threads must be >= 1".
  CHECK(error_of(m + "[sweep]\nthreads = [2147483648]\n") ==
        "experiment.toml:9: 'sweep.threads': value 2147483648 is out of range [1, 1024]");
  CHECK(error_of(m + "[calibration]\nseeds = [-1]\n") ==
        "experiment.toml:9: 'calibration.seeds': value -1 is out of range [0, 9223372036854775807]");
  CHECK(error_of(m + "[evaluation]\nworkers = 4294967297\n") ==
        "experiment.toml:9: 'evaluation.workers': 4294967297 is out of range [1, 1024]");
  CHECK(error_of(m + "[sweep]\nbatch_sizes = []\n") == "experiment.toml:9: 'sweep.batch_sizes': must not be empty");
}

TEST_CASE("a path too long for the file system is a missing file, not a library exception") {
  // Found by experiments/fuzz/experiment_fuzzer.cc: std::filesystem threw "File name too long".
  const std::string name(5000, 'g');
  const std::string text = "name = \"tiny\"\n[model]\narchitecture = \"fmnist_resnet8\"\ncheckpoint = \"" + name +
                           ".pt\"\n[data]\nkind = \"fashion_mnist\"\n";
  CHECK_THAT(error_of(text), Catch::StartsWith("experiment.toml:4: 'model.checkpoint': no file at ") &&
                                 Catch::Contains(name));
}

TEST_CASE("a [data] kind of the wrong type is a ConfigError, not a JSON library exception") {
  // Found by experiments/fuzz/experiment_fuzzer.cc: "[json.exception.type_error.302] type must be
  // string, but is array", uncaught.
  CHECK(error_of("name = \"l\"\n[model]\narchitectures = [\"resnet34\"]\n[data]\nkind = []\n") ==
        "experiment.toml:5: 'data.kind' must be a string, got an array (or an array of the wrong element type)");
}

TEST_CASE("an output directory must be named") {
  // Once written to /default.
  CHECK(error_of(std::string(kMinimal) + "[output]\ndir = \"\"\n") ==
        "experiment.toml:9: 'output.dir': must name a directory (default: results/<name>)");
}

TEST_CASE("experiment errors name the file, line and key") {
  const std::string m = kMinimal;
  CHECK(error_of(R"(name = "a b")") ==
        "experiment.toml:1: 'name': use letters, digits, '_', '.' and '-' only (it names a "
        "folder)");
  CHECK(error_of(m + "[sweep]\nvariants = [\"fp32\", \"int4\"]\n") ==
        "experiment.toml:9: 'sweep.variants': unknown value 'int4' (known: fp32, fp32_as_built, "
        "eager, graph)");
  CHECK(error_of(m + "[sweep]\nengines = [\"tpu\"]\n") ==
        "experiment.toml:9: 'sweep.engines': unknown value 'tpu' (known: qnnpack, onednn)");
  CHECK(error_of(m + "[sweep]\nthreads = [1, 0]\n") ==
        "experiment.toml:9: 'sweep.threads': value 0 is out of range [1, 1024]");
  CHECK(error_of(m + "[sweep]\nobservers = [\"minmax\", \"minmax\"]\n") ==
        "experiment.toml:9: 'sweep.observers': lists a value twice");
  CHECK(error_of(m + "[sweep]\nmappings = [\"float_fc\"]\n") ==
        "experiment.toml:9: 'sweep.mappings': unknown value 'float_fc' (known: global)");
  CHECK(error_of(m + "[sweep]\nexclude = [{ obsrver = \"minmax\" }]\n") ==
        "experiment.toml:9: 'sweep.exclude': rule 1: unknown field 'obsrver' (known: model, "
        "variant, engine, observer, weights, mapping, samples, threads, batch_size, isa, runtime, "
                "correction)");
  CHECK(error_of(m + "[sweep]\nruntimes = [\"onnxruntime\"]\n") ==
        "experiment.toml:9: 'sweep.runtimes': unknown value 'onnxruntime' (known: interpreter, "
        "torchscript)");
  CHECK(error_of(m + "[sweep]\nisa = [\"avx512\"]\n") ==
        "experiment.toml:9: 'sweep.isa': unknown value 'avx512' (known: avx2, avx2_vnni, "
        "avx512_core, avx512_core_vnni, avx512_core_bf16, avx512_core_amx)");
  CHECK(error_of(m + "[latency]\nmin_cpu_per_thread = 1.5\n") ==
        "experiment.toml:9: 'latency.min_cpu_per_thread': must be between 0 and 1");
  CHECK(error_of(m + "[calibration]\nsamples = [-1]\n") ==
        "experiment.toml:9: 'calibration.samples': value -1 is out of range [0, 1099511627776]");
  CHECK(error_of(m + "[calibration]\nsubset = \"best\"\n") ==
        "experiment.toml:9: 'calibration.subset': unknown value 'best' (known: random, "
        "stratified, sequential)");
  CHECK(error_of(m + "[evaluation]\nsubset_seed = 3\n") ==
        "experiment.toml:9: 'evaluation.subset_seed': needs evaluation.limit (the subset's size)");
  CHECK(error_of(m + "[latency]\nrepetitions = 0\n") ==
        "experiment.toml:9: 'latency.repetitions': 0 is out of range [1, 100000]");
  CHECK(error_of(m + "[mappings]\nfloat_fc = \"no/such/file.toml\"\n") .find(
            "experiment.toml:9: 'mappings.float_fc': no qconfig mapping file at ") == 0);
  CHECK(error_of(R"(name = "x"
[model]
architecture = "resnet19"
)") == "experiment.toml:3: 'model.architecture': unknown value 'resnet19' (known: "
       "cifar_resnet18, fmnist_resnet8, mobilenet_v2, resnet18, resnet34, resnet50)");
  CHECK(error_of(R"(name = "x"
[model]
architecture = "resnet18"
checkpoint = "weights/resnet18-f37072fd.pth"
)").find("experiment.toml:4: 'model.checkpoint': no file at ") == 0);
  CHECK(error_of(R"(name = "x"
[model]
architecture = "resnet18"
[data]
kind = "imagenet"
)") == "experiment.toml:2: 'model': accuracy needs trained weights: set model.checkpoint, or "
       "set evaluation.accuracy = false for a latency-only sweep");
  CHECK(error_of(R"(name = "x"
[model]
architectures = ["resnet18", "resnet50"]
[data]
kind = "synthetic"
[evaluation]
accuracy = true
)") == "experiment.toml:7: 'evaluation.accuracy': synthetic images have no meaningful labels");
}

}  // namespace
}  // namespace qb
