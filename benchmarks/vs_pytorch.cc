// quantbench's runtimes against PyTorch's deployable forms of the same models, in one
// process, repetitions interleaved at random so that a machine that speeds up or slows
// down mid-run moves both sides alike:
//   bazel run //benchmarks:vs_pytorch [-- --benchmark_filter=resnet18_224 ...]
//
// tools/pytorch_latency.py --export builds each row with PyTorch (seeded weights, PyTorch FX
// calibrated on 8 seeded images); this program imports the same fp32 TorchScript file,
// quantizes it with quantbench on the same images, and times batch 1 at 1 and 2 threads:
//   int8  quantbench (our interpreter, channels-last)   vs  PyTorch FX scripted and frozen
//   int8  quantbench exported to TorchScript and frozen (the "torchscript" runtime)
//   fp32  quantbench deployment form (quant/fp32_deploy.h) vs torch.jit.optimize_for_inference
// and ends with a table of medians, their ratios, and whether the int8 outputs are the same
// bits as PyTorch's (they must be: the comparison is only fair between equal models).
// Set QB_VS_PYTORCH_DIR to reuse an export; otherwise it runs the script into a temporary
// directory (Debian's /usr/bin/python3 with python3-torch).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/checkpoint.h"
#include "models/torchscript_export.h"
#include "models/torchscript_import.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/fp32_deploy.h"
#include "quant/interpreter.h"
#include "quant/layout.h"
#include "quant/prepare.h"
#include "quant/quantized_ops.h"

namespace qb {
namespace {

const std::vector<std::string> kRows = {"resnet18_224", "resnet18_28", "mobilenet_v2_224",
                                        "quickstart_28"};
const std::vector<int> kThreads = {1, 2};
constexpr int64_t kCalibrationBatch = 4;  // as tools/pytorch_latency.py calibrates FX

// One row's models, each side ready to run on `input`.
struct Row {
  at::Tensor input;
  GraphModule int8_graph;
  GraphModule fp32_graph;
  std::unique_ptr<Interpreter> int8;
  std::unique_ptr<Interpreter> fp32;
  // LibTorch's int8 convolutions on onednn cache one primitive per weight, built for one
  // thread count (a later count fails on MobileNetV2), so each count loads its own copy.
  struct TorchScript {
    torch::jit::Module int8_torchscript;  // ours, exported and frozen
    torch::jit::Module pytorch_int8;      // PyTorch FX, scripted and frozen
    torch::jit::Module pytorch_fp32;      // torch.jit.optimize_for_inference
  };
  std::map<int, TorchScript> by_threads;
  bool same_bits = false;
  bool torchscript_same_bits = false;
};

at::Tensor saved(const std::string& path) { return read_state_dict(path).at(0).second; }

std::string export_dir() {
  if (const char* dir = std::getenv("QB_VS_PYTORCH_DIR")) return dir;
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  const std::string root = workspace ? workspace : ".";
  const std::string dir = (std::filesystem::temp_directory_path() / "quantbench_vs_pytorch").string();
  const std::string command =
      "/usr/bin/python3 " + root + "/tools/pytorch_latency.py --export " + dir;
  std::fprintf(stderr, "exporting PyTorch's models: %s\n", command.c_str());
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("failed: " + command);
  }
  return dir;
}

Row load_row(const std::string& dir) {
  // Calibrate on one thread, as the export does: fp32 kernels sum in a different order on
  // two, which moves a histogram bin edge now and then and with it a scale.
  at::set_num_threads(1);
  Row row;
  row.input = saved(dir + "/input.pt");
  const GraphModule fp32 = import_torchscript(dir + "/fp32_scripted.pt");
  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  GraphModule prepared = prepare(fp32, mapping);
  calibrate(prepared, tensor_batches(saved(dir + "/calibration.pt"), kCalibrationBatch), {});
  row.int8_graph = to_channels_last(convert(prepared, {"onednn", false}));
  row.fp32_graph = to_fp32_deploy(fp32);
  row.int8 = std::make_unique<Interpreter>(row.int8_graph);
  row.fp32 = std::make_unique<Interpreter>(row.fp32_graph);

  const std::string exported = dir + "/quantbench_int8.pt";
  export_torchscript(row.int8_graph, exported);
  row.same_bits = row.torchscript_same_bits = true;
  for (int threads : kThreads) {
    at::set_num_threads(threads);
    Row::TorchScript& ts = row.by_threads[threads];
    ts.int8_torchscript = torch::jit::freeze(torch::jit::load(exported));
    ts.pytorch_int8 = torch::jit::load(dir + "/int8_frozen.pt");
    torch::jit::Module pytorch_fp32 = torch::jit::load(dir + "/fp32_scripted.pt");
    ts.pytorch_fp32 = torch::jit::optimize_for_inference(pytorch_fp32);
    c10::InferenceMode inference;
    const at::Tensor ours = row.int8->run(row.input);
    row.same_bits &= at::equal(ours, ts.pytorch_int8.forward({row.input}).toTensor());
    row.torchscript_same_bits &= at::equal(ours, ts.int8_torchscript.forward({row.input}).toTensor());
  }
  return row;
}

std::map<std::string, Row>& rows() {
  static std::map<std::string, Row> loaded;
  return loaded;
}

using RunFn = std::function<void(Row&, Row::TorchScript&)>;

void time_side(benchmark::State& state, Row& row, int threads, const RunFn& run) {
  at::set_num_threads(threads);
  c10::InferenceMode inference;
  Row::TorchScript& ts = row.by_threads.at(threads);
  for (auto _ : state) run(row, ts);
}

const std::vector<std::pair<std::string, RunFn>>& sides() {
  static const std::vector<std::pair<std::string, RunFn>> all = {
      {"int8/quantbench", [](Row& r, Row::TorchScript&) { benchmark::DoNotOptimize(r.int8->run(r.input)); }},
      {"int8/quantbench-torchscript",
       [](Row& r, Row::TorchScript& ts) { benchmark::DoNotOptimize(ts.int8_torchscript.forward({r.input})); }},
      {"int8/pytorch-frozen",
       [](Row& r, Row::TorchScript& ts) { benchmark::DoNotOptimize(ts.pytorch_int8.forward({r.input})); }},
      {"fp32/quantbench", [](Row& r, Row::TorchScript&) { benchmark::DoNotOptimize(r.fp32->run(r.input)); }},
      {"fp32/pytorch-optimized",
       [](Row& r, Row::TorchScript& ts) { benchmark::DoNotOptimize(ts.pytorch_fp32.forward({r.input})); }},
  };
  return all;
}

std::string benchmark_name(const std::string& row, const std::string& side, int threads) {
  return row + "/" + side + "/threads:" + std::to_string(threads);
}

// The console output, and each benchmark's median kept for the closing table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
        medians_[run.run_name.function_name] = run.GetAdjustedRealTime();
      }
    }
  }

  void print_table() const {
    std::printf("\n%-18s %-4s %7s %-28s %11s %11s %7s  %s\n", "row", "", "threads", "ours",
                "ours ms", "pytorch ms", "ratio", "int8 outputs");
    for (const auto& [name, row] : rows()) {
      for (int threads : kThreads) {
        print_line(name, "int8", threads, "quantbench", "pytorch-frozen",
                   row.same_bits ? "same bits" : "DIFFERENT");
        print_line(name, "int8", threads, "quantbench-torchscript", "pytorch-frozen",
                   row.torchscript_same_bits ? "same bits" : "DIFFERENT");
        print_line(name, "fp32", threads, "quantbench", "pytorch-optimized", "");
      }
    }
  }

 private:
  void print_line(const std::string& row, const std::string& precision, int threads,
                  const std::string& ours, const std::string& theirs, const char* note) const {
    auto a = medians_.find(benchmark_name(row, precision + "/" + ours, threads));
    auto b = medians_.find(benchmark_name(row, precision + "/" + theirs, threads));
    if (a == medians_.end() || b == medians_.end()) return;
    std::printf("%-18s %-4s %7d %-28s %11.3f %11.3f %7.3f  %s\n", row.c_str(), precision.c_str(),
                threads, ours.c_str(), a->second, b->second, a->second / b->second, note);
  }

  std::map<std::string, double> medians_;
};

// Where our runtime's time goes: each step's wall time (from the end of the step before),
// summed by what the step runs, over `runs` runs after a warm-up.
void print_profile(const std::string& name, const std::string& precision, const GraphModule& gm,
                   const at::Tensor& input) {
  const Interpreter model(gm);
  c10::InferenceMode inference;
  at::set_num_threads(1);
  std::map<std::string, std::pair<double, int>> by_kind;
  const int runs = 50;
  for (int run = -5; run < runs; ++run) {
    auto last = std::chrono::steady_clock::now();
    model.run({input}, [&](const Node& node, const at::Tensor&) {
      auto now = std::chrono::steady_clock::now();
      if (run >= 0) {
        auto& [ms, count] = by_kind[node.op == NodeOp::kCallModule ? gm.module(node.target).kind() : node.target];
        ms += std::chrono::duration<double, std::milli>(now - last).count() / runs;
        count += run == 0;
      }
      last = std::chrono::steady_clock::now();
    });
  }
  std::vector<std::pair<double, std::string>> sorted;
  double total = 0;
  for (const auto& [kind, entry] : by_kind) {
    sorted.emplace_back(entry.first, kind + " x" + std::to_string(entry.second));
    total += entry.first;
  }
  std::sort(sorted.rbegin(), sorted.rend());
  std::printf("%s %s, 1 thread: %.3f ms in steps\n", name.c_str(), precision.c_str(), total);
  for (const auto& [ms, kind] : sorted) std::printf("  %8.3f ms  %s\n", ms, kind.c_str());
}

int run_main(int argc, char** argv) {
  // Defaults a user's own flags (later on the command line) override.
  std::vector<char*> args = {argv[0]};
  std::string defaults[] = {"--benchmark_repetitions=5", "--benchmark_enable_random_interleaving=true",
                            "--benchmark_min_time=0.3", "--benchmark_report_aggregates_only=true",
                            "--benchmark_color=false"};
  for (std::string& flag : defaults) args.push_back(flag.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;

  select_engine("onednn");
  const std::string dir = export_dir();
  for (const std::string& name : kRows) {
    std::fprintf(stderr, "loading %s\n", name.c_str());
    rows().emplace(name, load_row(dir + "/" + name));
  }
  if (const char* profile = std::getenv("QB_PROFILE")) {
    const Row& row = rows().at(profile);
    print_profile(profile, "int8", row.int8_graph, row.input);
    print_profile(profile, "fp32", row.fp32_graph, row.input);
    return 0;
  }
  for (auto& [name, row] : rows()) {
    for (const auto& [side, run] : sides()) {
      for (int threads : kThreads) {
        Row* r = &row;
        RunFn fn = run;
        benchmark::RegisterBenchmark(benchmark_name(name, side, threads).c_str(),
                                     [r, threads, fn](benchmark::State& state) {
                                       time_side(state, *r, threads, fn);
                                     })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_table();
  benchmark::Shutdown();
  return 0;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  // oneDNN 2.6.3's AMX int8 kernels for grouped and depthwise convolutions are wrong
  // (MobileNetV2); the cap has to be set before oneDNN first runs. A caller's own cap wins.
  if (!std::getenv("DNNL_MAX_CPU_ISA")) setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI", 0);
  try {
    return qb::run_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vs_pytorch: %s\n", e.what());
    return 1;
  }
}
