#pragma once
// Exporting a GraphModule (fp32, fused, or converted to int8 in graph or eager mode) as
// a TorchScript file that PyTorch loads with torch.jit.load and runs with no quantbench
// code, computing what our interpreter computes, bit for bit.
//
// The file holds one module whose forward is TorchScript source generated from the
// graph, one statement per node, calling the ATen and quantized ops our layers call
// (torch.conv2d, quantized.conv2d_relu, quantized.add, ...) with every constant written
// out (scales with 17 significant digits, so they read back exactly). Parameters and
// buffers are attributes named after their state_dict keys with dots as underscores
// ("layer1_0_conv1_weight"); int8 convolutions and linears keep the engine's prepacked
// weights as attributes ("conv1_packed_params"), which torch.jit.load prepacks again for
// the engine selected when loading: select the same engine first
// (torch.backends.quantized.engine = "onednn"). `print(torch.jit.load(path).code)` shows
// the generated forward.

#include <stdexcept>
#include <string>

#include "quant/graph_module.h"

namespace qb {

/// A model that cannot be exported (an observer, a layer without a TorchScript form) or
/// a file that cannot be written; the message names the node or the path.
struct ExportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The TorchScript source of `model`'s forward, as export_torchscript writes it.
std::string torchscript_source(const GraphModule& model);

/// Writes `model` as a TorchScript file at `path` (atomically: a temporary file, then rename).
void export_torchscript(const GraphModule& model, const std::string& path);

}  // namespace qb
