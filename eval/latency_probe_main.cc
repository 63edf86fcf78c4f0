// The process one latency measurement runs in (eval/isolated_latency.h):
//   latency_probe REQUEST.json RESULT.json
// loads the saved model under the request's runtime (quantbench's interpreter, or LibTorch's
// TorchScript executor on an exported model), times it through Google Benchmark, computes its
// output SQNR against the fp32 reference when asked, and writes what it measured. Errors go
// to stderr with exit status 1; the caller reports them.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "eval/isolated_latency.h"
#include "eval/onednn_isa.h"
#include "models/checkpoint.h"
#include "quant/inspect.h"
#include "quant/interpreter.h"
#include "quant/quantized_ops.h"
#include "quant/serialize.h"

namespace qb {
namespace {

at::Tensor input_tensor(const std::string& path) {
  StateDict tensors = read_state_dict(path);
  for (const auto& [name, tensor] : tensors) {
    if (name == "input") return tensor;
  }
  throw std::runtime_error(path + ": holds no tensor named 'input'");
}

// The model as the request's runtime runs it: one input to one output.
std::function<at::Tensor(const at::Tensor&)> load_runtime(const ProbeRequest& request) {
  if (request.runtime == "interpreter") {
    auto interpreter = std::make_shared<Interpreter>(load_model(request.model));
    return [interpreter](const at::Tensor& x) { return interpreter->run(x); };
  }
  if (request.runtime == "torchscript") {
    auto module = std::make_shared<torch::jit::Module>(torch::jit::load(request.model));
    module->eval();
    *module = request.engine.empty() ? torch::jit::optimize_for_inference(*module)
                                     : torch::jit::freeze(*module);
    return [module](const at::Tensor& x) { return module->forward({x}).toTensor(); };
  }
  throw std::runtime_error("unknown runtime '" + request.runtime + "'");
}

int probe_main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: latency_probe REQUEST.json RESULT.json\n");
    return 2;
  }
  // Before any parallel work: the point's threads only, no inter-op pool.
  at::set_num_interop_threads(1);
  std::ifstream in(argv[1]);
  if (!in) throw std::runtime_error(std::string(argv[1]) + ": cannot read the request");
  const ProbeRequest request = probe_request_from_json(nlohmann::json::parse(in));
  if (!request.engine.empty()) select_engine(request.engine);
  // The point's threads from the first kernel on: oneDNN sizes (and caches) its primitives for
  // the thread count they are first created at, and the SQNR run below creates them.
  at::set_num_threads(request.latency.threads);

  c10::InferenceMode no_autograd;
  const auto run = load_runtime(request);
  const at::Tensor input = input_tensor(request.input);

  ProbeResult result;
  // Timed first: LibTorch's oneDNN int8 convolutions reorder their packed weights for the
  // first input shape they see and keep that layout, so a batch of 16 run before a timed
  // batch of 1 doubles ResNet-18's int8 latency.
  result.timing = measure_latency(request.name, [&] { run(input); }, request.latency);
  // Asked after the model ran: by then oneDNN has fixed its ISA for this process.
  result.onednn_isa = effective_onednn_isa();
  if (!request.reference_model.empty()) {
    GraphModule reference = load_model(request.reference_model);
    const at::Tensor sqnr_input = input_tensor(request.sqnr_input);
    result.output_sqnr_db = sqnr_db(Interpreter(reference).run(sqnr_input), run(sqnr_input));
  }

  write_file_atomically(argv[2], to_json(result).dump());
  return 0;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  try {
    return qb::probe_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
