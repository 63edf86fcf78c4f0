#pragma once
// Leaving chosen layers of a quantized model in fp32: the layers a prepared graph quantizes,
// a calibrated prepared graph with some of them taken out of quantization (so per-layer
// sensitivity reuses one calibration), and the qconfig mapping entries that keep them in fp32
// when a model is prepared from scratch (so a tuned model is an ordinary sweep point).

#include <set>
#include <string>
#include <vector>

#include "quant/graph_module.h"
#include "quant/qconfig_mapping.h"

namespace qb {

/// One layer prepare quantizes: usually one node; an add with the relu that convert fuses
/// into it (add_relu) is one layer of two nodes.
struct QuantizedLayer {
  /// Nodes of the prepared graph, in graph order; the first names the layer.
  std::vector<std::string> nodes;
  /// The first node's module kind ("ConvReLU2d") or function name ("add").
  std::string kind;
  /// The module paths a `module_name` mapping entry must name to keep the layer in fp32: a
  /// call_module node's target plus the modules fusion merged into it (a conv's BatchNorm and
  /// ReLU). Empty for functions: a mapping cannot single out one call of a function.
  std::vector<std::string> module_paths;

  const std::string& name() const { return nodes.front(); }
};

/// The layers `prepared` quantizes (its nodes with a qconfig), in graph order. `model` is the
/// float model prepare() was given, before fusion: module paths fusion removed are read there.
std::vector<QuantizedLayer> quantized_layers(const GraphModule& model, const GraphModule& prepared);

/// `prepared` (calibrated) with the nodes of `fp32_layers` taken out of quantization: convert()
/// runs them in fp32 on dequantized inputs, and every other node as before, with the qparams
/// its observers already hold. Modules are shared with `prepared`, which is left untouched.
/// GraphError names a layer that is not a node of `prepared` with a qconfig.
GraphModule without_quantization_of(const GraphModule& prepared,
                                    const std::vector<QuantizedLayer>& fp32_layers);

/// `prepared` with only the nodes of `int8_layers` quantized (the same contract as above).
GraphModule with_only_quantized(const GraphModule& prepared,
                                const std::vector<QuantizedLayer>& int8_layers);

/// `mapping` plus a `module_name` entry of None for every module path of `fp32_layers`, in
/// their order: prepared with it, those layers stay unfused and in fp32. std::invalid_argument
/// names a layer without module paths.
QConfigMapping with_fp32_layers(QConfigMapping mapping, const std::vector<QuantizedLayer>& fp32_layers);

}  // namespace qb
