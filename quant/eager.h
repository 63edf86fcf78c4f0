#pragma once
// Eager-mode post-training static quantization, as torch.ao.quantization's
// fuse_modules, prepare and convert do it in PyTorch 1.13, on our graph IR: the
// baseline graph mode (prepare.h, convert.h) is measured against. The model itself
// says where int8 starts and ends (QuantStub, DeQuantStub) and which functional ops
// run quantized (FloatFunctional): see quant/stubs.h and ZooOptions::quantizable.
//
//   GraphModule fused = fuse_modules(model, fuse_model_groups("resnet18"));
//   GraphModule prepared = prepare_eager(fused, QConfigMapping().set_global(qconfig));
//   ... run calibration batches through `prepared` ...
//   GraphModule int8 = convert_eager(prepared, ConvertOptions{});
//
// What eager mode does, and where we differ from PyTorch:
// - A module's qconfig is QConfigMapping::qconfig_for(path, kind), with the kind after
//   fusion (an object_type entry for Conv2d does not reach a ConvReLU2d, as in eager
//   mode). That is FX's precedence; PyTorch's eager propagate_qconfig_ differs only in
//   letting a module's object_type entry beat an enclosing module's module_name entry
//   (and it has no module_name_regex entries, which apply here as in FX).
// - Observers watch module outputs only. A prepared module P gets its observer at
//   `P.activation_post_process`, registered right after P (PyTorch's state_dict
//   order), and a call_module node after each call of P (PyTorch's forward hook).
// - convert_eager swaps modules in place, keeping their paths: QuantStub -> Quantize,
//   DeQuantStub -> DeQuantize, Conv2d/ConvReLU2d -> QuantizedConv2d(ReLU2d),
//   Linear/LinearReLU -> QuantizedLinear(ReLU), BatchNorm2d -> QuantizedBatchNorm2d,
//   FloatFunctional -> QFunctional. PyTorch also swaps ReLU6 (observed, though its
//   qparams go unused) and Dropout (not observed) for nnq.ReLU6 and nnq.Dropout, which
//   compute the same on int8 tensors; we keep the fp32 modules, which run on int8
//   tensors unchanged.
// - Everything else runs on whatever arrives, as in PyTorch. ReLU, ReLU6, MaxPool2d,
//   AdaptiveAvgPool2d, Dropout, Identity, flatten, relu and adaptive_avg_pool2d take
//   int8 tensors directly. Any other op fed an int8 value gets a `dequantize` node in
//   front and runs in fp32 (PyTorch fails there instead); its output stays fp32,
//   because eager mode observes no value that is not a module output, so there are no
//   qparams to quantize it with. A quantized module fed such an fp32 value is an error
//   naming both nodes (PyTorch fails there too, with a kernel dispatch error).
// - fuse_modules rejects a group whose modules are not a chain of single-use nodes
//   (PyTorch swaps modules by name without looking at the dataflow, so fusing a
//   module that runs twice, like the plain BasicBlock's relu, silently changes the
//   model). Fused-away modules leave the graph instead of becoming nn.Identity.

#include <string>
#include <vector>

#include "quant/convert.h"
#include "quant/graph_module.h"
#include "quant/qconfig_mapping.h"

namespace qb {

/// torch.ao.quantization.fuse_modules in eval mode, on a copy (`model` is untouched):
/// each group, a list of module paths in dataflow order, becomes one module at the
/// first path. Supported: [Conv2d, BatchNorm2d], [Conv2d, BatchNorm2d, ReLU],
/// [Conv2d, ReLU] -> ConvReLU2d, [Linear, ReLU] -> LinearReLU; BatchNorm is folded into
/// the conv's weights. Any other group throws std::invalid_argument naming the group
/// and the module at fault: an unknown path, an unsupported pattern, a module called
/// other than exactly once, a module not fed by the previous one alone, training mode.
GraphModule fuse_modules(const GraphModule& model,
                         const std::vector<std::vector<std::string>>& groups);

/// torch.ao.quantization.prepare with its default mappings, on a copy: every module
/// with a qconfig in `mapping` (resolved by QConfigMapping::qconfig_for with the
/// module's path and kind, std::nullopt leaving it fp32) has it recorded in `qconfigs`
/// under each of its nodes; those of the kinds PyTorch observes (QuantStub, Conv2d,
/// ConvReLU2d, Linear, LinearReLU, BatchNorm2d, ReLU6, FloatFunctional) get an output
/// observer built from the qconfig's activation spec.
GraphModule prepare_eager(const GraphModule& model, const QConfigMapping& mapping);

/// The paths of the modules prepare_eager observed, in registration order (PyTorch:
/// the modules that have an activation_post_process).
std::vector<std::string> observed_modules(const GraphModule& prepared);

/// torch.ao.quantization.convert on a prepared and calibrated copy (`prepared` is
/// untouched); selects and prepacks for `options.engine`. An observer that saw no data
/// throws GraphError naming its node, unless `options.allow_uncalibrated` (then it gives
/// scale 1, zero point 0, as PyTorch does).
GraphModule convert_eager(const GraphModule& prepared, const ConvertOptions& options);

}  // namespace qb
