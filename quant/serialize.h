#pragma once
// Saving a GraphModule (fp32, fused or converted) to one versioned file and loading
// it back, so an int8 model can be deployed without calibrating it again.
//
// File format: the zip archive torch.save writes for a state dict (models/checkpoint.h),
// so every tensor, int8 weights with their qparams included, is stored as PyTorch stores
// it and torch.load(path) in Python returns the state dict; plus one record,
// `archive/model.json`, describing everything else:
//
//   {"format": "quantbench.GraphModule", "format_version": 1,
//    "engine": "onednn",  // what the int8 conv/linear modules were prepacked for; null if none
//    "modules": [{"path": "conv1", "kind": "QuantizedConvReLU2d", "training": false,
//                 "config": {"in_channels": {"int": 1}, "scale": {"float": 0.0123}, ...}}, ...],
//    "graph": [{"name": "x", "op": "placeholder", "target": "x", "inputs": [], "attrs": {}}, ...]}
//
// Modules come in registration order, nodes in graph order. A value (an Attr: node
// attributes and Module::config() entries) carries its type: {"int": 1}, {"float": 0.5}
// (non-finite floats as "inf", "-inf", "nan"), {"ints": [1, 2]}, {"string": "add"}. A
// module's tensors are the state dict's `<path>.<name>` entries.
//
// Loading selects the stored engine (it stays selected: the graph's int8 functions run
// on it too), then rebuilds each module through the constructor of its kind with the
// stored config, which prepacks int8 weights anew; the loaded model computes
// bit-identical outputs. A null engine leaves the current one selected. Only kinds from
// modules.h, quantized_modules.h and stubs.h can be saved (not observers), so fp32, fused,
// graph-mode and eager-mode converted models can; a module registered under several paths
// comes back as one copy per path. GraphModule::qconfigs, which steer prepare and convert
// only, are not stored.
//
// The version counts changes to this layout, not to the set of module kinds: a new kind
// leaves files with the old kinds readable as they were, and an older build that meets
// it fails with "unknown module kind" naming the module, which is the right message.

#include <cstdint>
#include <stdexcept>
#include <string>

#include "quant/graph_module.h"

namespace qb {

/// Any failure to save or load a model; the message starts with the file (or given origin).
struct SerializationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The format version this build writes; it reads every version up to this one.
inline constexpr int64_t kModelFormatVersion = 1;

/// Writes `model` to `path` atomically (a temporary file in the same folder, then rename).
void save_model(const GraphModule& model, const std::string& path);

/// Reads a file save_model wrote; selects its quantized engine before prepacking weights.
GraphModule load_model(const std::string& path);

/// The bytes save_model writes.
std::string serialize_model(const GraphModule& model);

/// Like load_model, from the file's bytes; `origin_for_errors` starts every error message.
GraphModule parse_model(const std::string& bytes, const std::string& origin_for_errors);

}  // namespace qb
