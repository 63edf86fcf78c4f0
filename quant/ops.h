#pragma once
// The op registry: everything quantbench knows about one operation, in one entry, in the
// spirit of PyTorch's backend_config and TFLite's operator_property. An entry says how
// the op computes in fp32, how graph-mode prepare observes it, what it lowers to in int8,
// what it computes on once converted (the trust checks' int8 count and eager mode's
// dequantize placement follow from that), how a saved model rebuilds it and how it reads
// as TorchScript. Prepare, convert, the eager baseline, inspect, serialize, the
// interpreter and the TorchScript export read it; none of them compares op names.
//
// Adding an op: one entry in ops.cc (and, for a layer, its class in modules.h or
// quantized_modules.h), plus a test; tests/quant/ops_test.cc checks every entry is complete.
// Patterns over several ops (conv-bn-relu fusion, add-relu) stay with the passes that
// match them (fuse.cc, prepare.cc, convert.cc, eager.cc).

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/graph_module.h"
#include "quant/module.h"
#include "quant/modules.h"
#include "quant/qconfig.h"

namespace c10 {
struct IValue;  // ATen/core/ivalue.h is heavy, and this header is widely included
}  // namespace c10

namespace qb {

/// A call_module layer or a call_function function.
enum class OpForm { kModule, kFunction };

/// How graph-mode prepare observes the op's output (backend_config's observation types).
enum class Observation {
  /// Not quantized by graph mode: it runs in fp32 (fed int8 if its Domain allows it).
  kNone,
  /// A new observer measures the output (conv, linear, add, cat, dropout).
  kNewObserver,
  /// The output keeps the input's qparams: PyTorch inserts an observer node that shares
  /// the input's observer (max-pool, average pool, flatten, relu, relu6). Quantized only
  /// when its input is.
  kShareInput,
  /// The output's qparams are fixed by the op's range, whatever the data: PyTorch's
  /// FixedQParamsObserver (hardsigmoid, sigmoid: scale 1/256, zero point 0). quantbench
  /// uses it whatever the qconfig's activation observer says, which is what PyTorch's
  /// get_default_qconfig_mapping sets up for these ops.
  kFixedQParams,
};

/// What the op computes on in a converted model.
enum class Domain {
  /// fp32 only; fed an int8 value it needs a dequantize in front.
  kFloat,
  /// Either: int8 in gives int8 out at the input's qparams, fp32 in gives fp32 out.
  kAny,
  /// A LibTorch int8 kernel: int8 in, int8 out.
  kInt8,
  /// The domain's borders and layout changes: bookkeeping, not compute nodes.
  kQuantize,
  kDequantize,
  kLayout,
  /// Eager mode's QuantStub and DeQuantStub: identities marking where int8 starts and ends.
  kStub,
};

/// A graph function: tensor inputs in order, and the node for its constant attrs.
using Function = std::function<at::Tensor(const std::vector<at::Tensor>&, const Node&)>;

/// A config entry that is missing or of the wrong type; callers add where the layer came from.
struct ModuleArgsError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// What a layer is rebuilt from: its config() entries and its tensors by name.
class ModuleArgs {
 public:
  ModuleArgs(std::string kind, const ModuleConfig& config,
             std::function<at::Tensor(const std::string&)> tensor)
      : kind_(std::move(kind)), config_(config), tensor_(std::move(tensor)) {}

  const std::string& kind() const { return kind_; }
  /// The config entry `key`, which must hold a T.
  template <typename T>
  T get(const std::string& key) const {
    for (const auto& [name, value] : config_) {
      if (name != key) continue;
      if (const T* typed = std::get_if<T>(&value)) return *typed;
      throw ModuleArgsError("config entry '" + key + "' has the wrong type");
    }
    throw ModuleArgsError("config entry '" + key + "' is missing");
  }
  /// The config entry `key`, or `fallback` when absent (entries added after files were saved).
  template <typename T>
  T get(const std::string& key, T fallback) const {
    for (const auto& [name, value] : config_) {
      if (name == key) return get<T>(key);
    }
    return fallback;
  }
  /// The 2-D size entry `key` (Size2::attr's forms).
  Size2 size2(const std::string& key) const {
    for (const auto& [name, value] : config_) {
      if (name != key) continue;
      if (auto size = Size2::from_attr(value)) return *size;
      throw ModuleArgsError("config entry '" + key + "' is not an int or a pair of ints");
    }
    throw ModuleArgsError("config entry '" + key + "' is missing");
  }
  /// The stored tensor `name` (a layer built from its config alone gets its tensors later).
  at::Tensor tensor(const std::string& name) const { return tensor_(name); }

 private:
  std::string kind_;
  const ModuleConfig& config_;
  std::function<at::Tensor(const std::string&)> tensor_;
};

/// Output qparams of a converted op, from its observer.
struct OutputQParams {
  double scale = 1.0;
  int64_t zero_point = 0;
  QDtype dtype = QDtype::kQUInt8;
};

/// Builds a layer from its arguments (the default kind()-to-class mapping for saving,
/// loading and importing).
using ModuleFactory = std::function<std::shared_ptr<Module>(const ModuleArgs&)>;

/// The int8 layer for a calibrated fp32 one: the qconfig's weight observer quantizes its
/// weight, `q` is its output's qparams.
using Int8Module = std::function<std::shared_ptr<Module>(const Module& fp32, const QConfig& qconfig,
                                                         const OutputQParams& q)>;

/// What a TorchScript expression needs from the export: its inputs' names, and its
/// module's tensors and objects as attributes of the exported module.
class TorchScriptContext {
 public:
  virtual ~TorchScriptContext() = default;
  virtual const Node& node() const = 0;
  /// The module a call_module node calls.
  virtual const Module& module() const = 0;
  /// The variable holding input `i`.
  virtual std::string input(size_t i) const = 0;
  /// "[a, b, c]": every input, as a TorchScript list.
  virtual std::string input_list() const = 0;
  /// `self.<attr>` holding the module's tensor `name` ("None" when it has none).
  virtual std::string tensor(const std::string& name) = 0;
  /// `self.<attr>` holding `value` (prepacked weights) under the module's path plus `suffix`.
  virtual std::string object(const std::string& suffix, const c10::IValue& value) = 0;
};

/// The TorchScript expression computing the op, calling what our kernels call.
using TorchScriptForm = std::function<std::string(TorchScriptContext&)>;

struct OpSpec {
  /// Module::kind() of a layer ("ConvReLU2d"), or a function's name in graphs ("add").
  std::string name;
  OpForm form = OpForm::kFunction;
  /// Functions: the target as torch.fx prints it ("operator.add"); layers: empty.
  std::string display_name;
  Domain domain = Domain::kFloat;
  Observation observation = Observation::kNone;
  /// The object_type whose qconfig applies: a fused layer takes its first op's ("Conv2d").
  std::string qconfig_kind;
  /// How many leading inputs carry data (0: all). The others are only read for their
  /// sizes (reshape's size sources) and are neither observed nor converted.
  size_t data_inputs = 0;
  /// kFixedQParams: the output's quint8 qparams.
  double fixed_scale = 0;
  int64_t fixed_zero_point = 0;
  /// Functions: the fp32 (or int8, per `domain`) kernel.
  Function function;
  /// Layers: how to rebuild one from its config and tensors.
  ModuleFactory make;
  /// A quantized function (graph mode): the int8 function it lowers to, given the output
  /// qparams as `scale` and `zero_point` attrs ("quantized_add"); empty for ops with kAny
  /// domain, which run on int8 tensors as they are.
  std::string int8_function;
  /// A quantized layer (graph and eager mode): its int8 counterpart; unset for ops with
  /// kAny domain, which run on int8 tensors as they are.
  Int8Module to_int8;
  /// Eager mode observes the layer's output (torch.ao.quantization.prepare's propagation
  /// list: QuantStub, Conv2d, Linear, BatchNorm2d, ReLU6, FloatFunctional, fused layers).
  bool eager_observed = false;
  TorchScriptForm torchscript;
};

/// Every registered op, in registration order.
const std::vector<OpSpec>& all_ops();
/// The entry called `name`, or nullptr.
const OpSpec* find_op(const std::string& name);
/// The entry called `name`; GraphError when there is none.
const OpSpec& op(const std::string& name);
/// The entry a call_module or call_function node runs; GraphError for other nodes.
const OpSpec& op_of(const GraphModule& gm, const Node& node);
/// Like op_of, but nullptr for nodes that run no registered op (placeholders, the output,
/// observers).
const OpSpec* find_op_of(const GraphModule& gm, const Node& node);

/// Whether the op runs on an int8 tensor as it is, keeping its qparams (kAny and
/// kLayout domains): converting it needs no int8 counterpart.
bool runs_on_int8_as_is(const OpSpec& spec);
/// The inputs of `node` that carry data (OpSpec::data_inputs).
std::vector<std::string> data_inputs(const OpSpec& spec, const Node& node);

/// A weight quantized as nnq.Conv2d.from_float does: the qconfig's weight observer
/// measures it and its qparams quantize it (per channel along the observer's axis, or per tensor).
at::Tensor quantize_weight(const at::Tensor& weight, const ObserverSpec& spec);

}  // namespace qb
