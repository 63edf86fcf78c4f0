#pragma once
// Importing a user's TorchScript file (torch.jit.script or torch.jit.trace, then
// torch.jit.save) as an fp32 GraphModule: the graph torch.fx.symbolic_trace gives for
// the same nn.Module.
//
// torch.nn layers become call_module nodes at FX's module paths ("layer1.0.conv1"),
// with their parameters and buffers under their state_dict names; everything else a
// forward does (the user's own modules, Sequential, functional calls) is walked through
// and becomes call_function nodes, named as FX names them ("add", "add_1", "flatten").
// Control flow that depends only on constants or module attributes (`if self.training`,
// `if self.downsample is not None`) is decided at import; control flow on tensor values
// cannot be represented and is an error. So is any op or layer without a mapping: the
// message names the TorchScript op or layer class, the module path and the source line
// TorchScript recorded, before any computation runs. Sizes read from tensors
// (`x.size()`) stay symbolic, so a traced file runs at any batch size.
// docs/bring_your_own_model.md lists what imports.

#include <stdexcept>
#include <string>

#include "quant/graph_module.h"

namespace qb {

/// A TorchScript file that cannot be read or represented; the message starts with the file.
struct ImportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The fp32 GraphModule of the TorchScript model at `path`, in eval mode.
GraphModule import_torchscript(const std::string& path);

}  // namespace qb
