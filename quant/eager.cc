#include "quant/eager.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "quant/fuse.h"
#include "quant/modules.h"
#include "quant/observers.h"
#include "quant/ops.h"
#include "quant/quantized_modules.h"
#include "quant/quantized_ops.h"
#include "quant/stubs.h"

namespace qb {

namespace {

constexpr const char* kObserverSuffix = ".activation_post_process";

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The nodes that call the module at `path`, in graph order.
std::vector<const Node*> callers(const Graph& graph, const std::string& path) {
  std::vector<const Node*> result;
  for (const Node& node : graph.nodes()) {
    if (node.op == NodeOp::kCallModule && node.target == path) result.push_back(&node);
  }
  return result;
}

// ---- fuse_modules -----------------------------------------------------------------

// fuser_method_mappings.py's DEFAULT_OP_LIST_TO_FUSER_METHOD, for the layers we have.
bool fusable(const std::vector<std::string>& kinds) {
  static const std::set<std::vector<std::string>> patterns = {
      {"Conv2d", "BatchNorm2d"},
      {"Conv2d", "BatchNorm2d", "ReLU"},
      {"Conv2d", "ReLU"},
      {"Linear", "ReLU"},
  };
  return patterns.count(kinds) != 0;
}

// The module that replaces the group's first one: a new module, never an edited one,
// since the input model's modules are shared with the copy.
std::shared_ptr<Module> fused_module(const GraphModule& gm, const std::vector<std::string>& group,
                                     const std::vector<std::string>& kinds) {
  const Module& head = gm.module(group[0]);
  const bool relu = kinds.back() == "ReLU";
  if (kinds[0] == "Linear") {
    std::unique_ptr<Module> linear = head.clone();
    static_cast<Linear&>(*linear).fuse_relu();
    return linear;
  }
  const auto& conv = dynamic_cast<const Conv2d&>(head);
  const bool batch_norm = kinds[1] == "BatchNorm2d";
  Conv2dOptions options = conv.options();
  options.bias = options.bias || batch_norm;  // folding gives the conv a bias
  auto fused = std::make_shared<Conv2d>(options);
  at::Tensor weight = conv.tensor("weight").detach().clone();
  at::Tensor bias = conv.options().bias ? conv.tensor("bias").detach().clone() : at::Tensor();
  if (batch_norm) {
    const auto& bn = dynamic_cast<const BatchNorm2d&>(gm.module(group[1]));
    std::tie(weight, bias) =
        fold_batch_norm(weight, bias, bn.tensor("running_mean"), bn.tensor("running_var"), bn.eps(),
                        bn.tensor("weight"), bn.tensor("bias"));
  }
  fused->set_tensor("weight", weight);
  if (bias.defined()) fused->set_tensor("bias", bias);
  if (relu) fused->fuse_relu();
  return fused;
}

void fuse_group(GraphModule& gm, const std::vector<std::string>& group) {
  auto fail = [&](const std::string& problem) {
    throw std::invalid_argument("fuse_modules: group [" + joined(group) + "]: " + problem);
  };
  std::vector<std::string> kinds;
  std::vector<const Node*> nodes;
  for (const std::string& path : group) {
    if (!gm.has_module(path)) fail("no module '" + path + "'");
    kinds.push_back(gm.module(path).kind());
  }
  if (!fusable(kinds)) {
    fail("(" + joined(kinds) +
         ") is not a supported pattern; fuse_modules fuses (Conv2d, BatchNorm2d), "
         "(Conv2d, BatchNorm2d, ReLU), (Conv2d, ReLU) and (Linear, ReLU)");
  }
  for (const std::string& path : group) {
    std::vector<const Node*> calls = callers(gm.graph, path);
    if (calls.empty()) fail("module '" + path + "' is not called by any node (fused already?)");
    if (calls.size() > 1) {
      std::vector<std::string> names;
      for (const Node* node : calls) names.push_back(node->name);
      fail("module '" + path + "' is called by " + std::to_string(calls.size()) + " nodes (" +
           joined(names) + "); only a module called once can be fused");
    }
    if (gm.module(path).training()) {
      fail("module '" + path + "' is in training mode; fuse_modules fuses eval-mode modules");
    }
    nodes.push_back(calls[0]);
  }
  for (size_t i = 1; i < group.size(); ++i) {
    const Node& previous = *nodes[i - 1];
    if (nodes[i]->inputs != std::vector<std::string>{previous.name}) {
      fail("module '" + group[i] + "' does not take the output of '" + group[i - 1] +
           "' as its only input");
    }
    std::vector<std::string> readers = gm.graph.users(previous.name);
    if (readers.size() != 1) {
      fail("the output of module '" + group[i - 1] + "' is also read by '" +
           (readers[0] == nodes[i]->name ? readers[1] : readers[0]) + "'");
    }
  }

  gm.replace_module(group[0], fused_module(gm, group, kinds));
  // The fused module now does the others' work: their nodes go, their readers read it.
  std::vector<std::string> doomed;
  for (size_t i = 1; i < nodes.size(); ++i) doomed.push_back(nodes[i]->name);
  for (const std::string& name : doomed) {
    gm.graph.replace_all_uses(name, gm.graph.node(name).inputs.at(0));
    gm.graph.erase(name);
  }
}

// ---- prepare_eager ----------------------------------------------------------------

// add_observer_ in quantize.py with the default propagation list: the registry says
// which kinds (OpSpec::eager_observed).
bool observes_output(const std::string& kind) {
  const OpSpec* spec = find_op(kind);
  return spec && spec->eager_observed;
}

// Whether the module at `path` is an observer prepare_eager attached
// ("conv1.activation_post_process").
bool is_observer(const GraphModule& gm, const std::string& path) {
  const std::string suffix = kObserverSuffix;
  return path.size() > suffix.size() &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         dynamic_cast<const Observer*>(&gm.module(path)) != nullptr;
}

// "conv1.activation_post_process" -> "conv1".
std::string observed_path(const std::string& observer_path) {
  return observer_path.substr(0, observer_path.size() - std::string(kObserverSuffix).size());
}

// ---- convert_eager ----------------------------------------------------------------

// Which tensors an op takes and gives, for placing dequantize nodes.
enum class Takes { kFloat, kQuantized, kEither };
enum class Gives { kFloat, kQuantized, kLikeInput };
struct DomainRule {
  Takes takes;
  Gives gives;
};

// From what the op computes on once converted (quant/ops.h).
DomainRule domain_rule(Domain domain) {
  switch (domain) {
    case Domain::kQuantize:
      return {Takes::kFloat, Gives::kQuantized};
    case Domain::kDequantize:
      return {Takes::kEither, Gives::kFloat};
    case Domain::kInt8:
      return {Takes::kQuantized, Gives::kQuantized};
    case Domain::kAny:
    case Domain::kLayout:
    case Domain::kStub:  // identities while they have no qconfig
      return {Takes::kEither, Gives::kLikeInput};
    case Domain::kFloat:
      break;
  }
  return {Takes::kFloat, Gives::kFloat};
}

// Builds the converted model: the prepared module table with observers dropped and
// prepared modules swapped, then the graph with observer nodes removed and dequantize
// nodes where an fp32 op meets an int8 value.
class EagerConversion {
 public:
  EagerConversion(const GraphModule& prepared, const ConvertOptions& options)
      : prepared_(prepared), options_(options) {}

  GraphModule run() {
    lint(prepared_);
    collect_qparams();
    for (const auto& [path, module] : prepared_.modules()) {
      if (is_observer(prepared_, path)) continue;
      std::shared_ptr<Module> swapped = swap(path, *module);
      out_.add_module(path, swapped ? swapped : module);
    }
    for (const Node& node : prepared_.graph.nodes()) lower(node);
    lint(out_);
    return std::move(out_);
  }

 private:
  // A value of the prepared graph in the converted one: the node that produces it, in
  // the domain it is born in, and the dequantized form once something needs it.
  struct Value {
    std::string node;
    bool quantized = false;
    std::string dequantized;
  };

  // Every observer's qparams by observed module path; an observer that saw no data is an
  // error naming its first node unless allowed.
  void collect_qparams() {
    for (const Node& node : prepared_.graph.nodes()) {
      if (node.op != NodeOp::kCallModule || !is_observer(prepared_, node.target)) continue;
      const std::string observed = observed_path(node.target);
      if (qparams_.count(observed)) continue;  // a module called twice shares its observer
      const auto& observer = dynamic_cast<const Observer&>(prepared_.module(node.target));
      if (!observer.calibrated() && !options_.allow_uncalibrated) {
        throw GraphError("observer '" + node.name + "' (after '" + node.inputs.at(0) +
                         "') has seen no data: calibrate before convert_eager, or allow "
                         "uncalibrated conversion to use default qparams");
      }
      QParams q = observer.calculate_qparams();
      qparams_.emplace(observed, OutputQParams{q.scale.item<double>(),
                                                   q.zero_point.item<int64_t>(), q.dtype});
    }
  }

  // The qconfig of the module at `path`: prepare_eager records it under each node calling it.
  const QConfig* qconfig_of(const std::string& path) const {
    for (const Node* node : callers(prepared_.graph, path)) {
      auto it = prepared_.qconfigs.find(node->name);
      if (it != prepared_.qconfigs.end()) return &it->second;
    }
    return nullptr;
  }

  const OutputQParams& output_qparams(const std::string& path) const {
    auto it = qparams_.find(path);
    if (it == qparams_.end()) {
      throw GraphError("module '" + path +
                       "' has a qconfig but no observer: was it prepared "
                       "with prepare_eager?");
    }
    return it->second;
  }

  // swap_module: the quantized counterpart of a module that has a qconfig, or nullptr
  // to keep the module as it is (ops that run on int8 tensors as they are).
  std::shared_ptr<Module> swap(const std::string& path, const Module& module) {
    const QConfig* qconfig = qconfig_of(path);
    const OpSpec* spec = find_op(module.kind());
    if (!qconfig || !spec || !spec->to_int8) return nullptr;
    // Observed layers are built with their output's qparams; DeQuantStub has none.
    return spec->to_int8(module, *qconfig, spec->eager_observed ? output_qparams(path) : OutputQParams{});
  }

  // `value` in fp32: dequantized once, on first need.
  std::string as_float(const std::string& value) {
    Value& v = values_.at(value);
    if (!v.quantized) return v.node;
    if (v.dequantized.empty()) v.dequantized = out_.graph.call_function("dequantize", {v.node});
    return v.dequantized;
  }

  std::string as_quantized(const std::string& value, const Node& reader,
                           const std::string& reader_kind) const {
    const Value& v = values_.at(value);
    if (v.quantized) return v.node;
    throw GraphError("node '" + reader.name + "' (" + reader_kind +
                     ") needs a quantized input, but '" + value +
                     "' is fp32 there: in eager mode only a QuantStub or a quantized module "
                     "produces int8 values (put a QuantStub before it, or give the module "
                     "producing it a qconfig)");
  }

  void lower(const Node& node) {
    switch (node.op) {
      case NodeOp::kPlaceholder:
        values_[node.name].node = out_.graph.placeholder(node.name);
        return;
      case NodeOp::kOutput: {
        // Returned as they are, as PyTorch returns whatever the last module gives.
        std::vector<std::string> results;
        for (const auto& value : node.inputs) results.push_back(values_.at(value).node);
        out_.graph.output(results);
        return;
      }
      default:
        break;
    }
    if (node.op == NodeOp::kCallModule && is_observer(prepared_, node.target)) {
      values_[node.name] = values_.at(node.inputs.at(0));  // observers go with convert
      return;
    }
    const bool is_module = node.op == NodeOp::kCallModule;
    const OpSpec& spec = op_of(out_, node);
    const std::string& kind = spec.name;
    const DomainRule rule = domain_rule(spec.domain);

    bool quantized_input = false;
    std::vector<std::string> inputs;
    for (const auto& value : node.inputs) {
      switch (rule.takes) {
        case Takes::kFloat:
          inputs.push_back(as_float(value));
          break;
        case Takes::kQuantized:
          inputs.push_back(as_quantized(value, node, kind));
          break;
        case Takes::kEither:
          inputs.push_back(values_.at(value).node);
          quantized_input = values_.at(value).quantized;
          break;
      }
    }
    Value result;
    result.node = is_module ? out_.graph.call_module(node.target, inputs, node.name)
                            : out_.graph.call_function(node.target, inputs, node.attrs, node.name);
    result.quantized =
        rule.gives == Gives::kQuantized || (rule.gives == Gives::kLikeInput && quantized_input);
    values_[node.name] = result;
  }

  const GraphModule& prepared_;
  ConvertOptions options_;
  GraphModule out_;
  std::map<std::string, OutputQParams> qparams_;  // observed module path -> its output's
  std::map<std::string, Value> values_;               // prepared value -> converted value
};

}  // namespace

GraphModule fuse_modules(const GraphModule& model,
                         const std::vector<std::vector<std::string>>& groups) {
  GraphModule fused = model;  // modules stay shared until replaced by fused ones
  for (const auto& group : groups) fuse_group(fused, group);
  fused.remove_unused_modules();
  lint(fused);
  return fused;
}

GraphModule prepare_eager(const GraphModule& model, const QConfigMapping& mapping) {
  lint(model);
  GraphModule prepared;
  prepared.graph = model.graph;
  // propagate_qconfig_: a qconfig per module, recorded under every node calling it.
  std::map<std::string, QConfig> observed;  // module path -> its qconfig
  for (const Node& node : model.graph.nodes()) {
    if (node.op != NodeOp::kCallModule) continue;
    const std::string kind = model.module(node.target).kind();
    std::optional<QConfig> qconfig = mapping.qconfig_for(node.target, kind);
    if (!qconfig) continue;
    prepared.qconfigs[node.name] = *qconfig;
    if (observes_output(kind)) observed.emplace(node.target, *qconfig);
  }
  // Each observer right after its module, where PyTorch's activation_post_process child
  // puts it in the state_dict.
  for (const auto& [path, module] : model.modules()) {
    prepared.add_module(path, module);
    auto it = observed.find(path);
    if (it != observed.end()) {
      prepared.add_module(path + kObserverSuffix, make_observer(it->second.activation));
    }
  }
  // The forward hook: every call of an observed module passes its output through the
  // module's one observer.
  for (const Node& node : model.graph.nodes()) {
    if (node.op != NodeOp::kCallModule || !observed.count(node.target)) continue;
    Node hook;
    hook.op = NodeOp::kCallModule;
    hook.target = node.target + kObserverSuffix;
    hook.name = hook.target;
    std::replace(hook.name.begin(), hook.name.end(), '.', '_');
    hook.inputs = {node.name};
    std::string name = prepared.graph.insert_after(node.name, hook);
    prepared.graph.replace_all_uses(node.name, name);
  }
  lint(prepared);
  return prepared;
}

std::vector<std::string> observed_modules(const GraphModule& prepared) {
  std::vector<std::string> paths;
  for (const auto& entry : prepared.modules()) {
    const std::string& path = entry.first;
    if (is_observer(prepared, path)) paths.push_back(observed_path(path));
  }
  return paths;
}

GraphModule convert_eager(const GraphModule& prepared, const ConvertOptions& options) {
  select_engine(options.engine);
  return EagerConversion(prepared, options).run();
}

}  // namespace qb
