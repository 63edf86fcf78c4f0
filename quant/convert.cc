#include "quant/convert.h"

#include <ATen/ATen.h>

#include <map>

#include "quant/observers.h"
#include "quant/ops.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/quantized_ops.h"

namespace qb {

namespace {

// Per-tensor activation qparams as plain numbers.
OutputQParams activation_qparams(const QParams& q) {
  return {q.scale.item<double>(), q.zero_point.item<int64_t>(), q.dtype};
}

// Builds the converted graph node by node. Each value of the prepared graph may
// exist in fp32, in int8, or both; conversions are emitted once, on first need.
class Lowering {
 public:
  Lowering(const GraphModule& prepared, const ConvertOptions& options)
      : prepared_(prepared), options_(options) {}

  GraphModule run() {
    collect_qparams();
    for (const Node& node : prepared_.graph.nodes()) lower(node);
    out_.remove_unused_modules();
    lint(out_);
    return std::move(out_);
  }

 private:
  struct Forms {
    std::string fp32;
    std::string int8;
  };

  void collect_qparams() {
    for (const Node& node : prepared_.graph.nodes()) {
      if (!is_observer_node(prepared_, node)) continue;
      const auto& observer = dynamic_cast<const Observer&>(prepared_.module(node.target));
      if (!observer.calibrated() && !options_.allow_uncalibrated) {
        throw GraphError("observer '" + node.name + "' (after '" + node.inputs.at(0) +
                         "') has seen no data: calibrate before convert, or allow "
                         "uncalibrated conversion to use default qparams");
      }
      qparams_.emplace(node.inputs.at(0), activation_qparams(observer.calculate_qparams()));
    }
  }

  // Observer nodes vanish: a read of one is a read of the value it observed.
  const std::string& resolve(const std::string& value) const {
    auto it = alias_.find(value);
    return it == alias_.end() ? value : it->second;
  }

  const OutputQParams* qparams(const std::string& value) const {
    auto it = qparams_.find(resolve(value));
    return it == qparams_.end() ? nullptr : &it->second;
  }

  std::string fp32(const std::string& value) {
    Forms& forms = env_.at(resolve(value));
    if (forms.fp32.empty()) forms.fp32 = out_.graph.call_function("dequantize", {forms.int8});
    return forms.fp32;
  }

  std::string int8(const std::string& value) {
    Forms& forms = env_.at(resolve(value));
    if (forms.int8.empty()) {
      const OutputQParams* q = qparams(value);
      if (!q) throw GraphError("internal: value '" + value + "' has no observer to quantize it");
      forms.int8 = out_.graph.call_function(
          "quantize_per_tensor", {forms.fp32},
          {{"scale", q->scale}, {"zero_point", q->zero_point}, {"dtype", to_string(q->dtype)}});
    }
    return forms.int8;
  }

  // `value` as it exists: int8 if it has been quantized, else fp32.
  const std::string& any_form(const std::string& value) const {
    const Forms& forms = env_.at(resolve(value));
    return forms.int8.empty() ? forms.fp32 : forms.int8;
  }

  bool is_int8(const std::string& value) const { return !env_.at(resolve(value)).int8.empty(); }

  void keep_module(const std::string& path) {
    if (!out_.has_module(path)) out_.add_module(path, prepared_.module_ptr(path));
  }

  void lower(const Node& node) {
    switch (node.op) {
      case NodeOp::kPlaceholder:
        env_[node.name].fp32 = out_.graph.placeholder(node.name);
        return;
      case NodeOp::kOutput: {
        std::vector<std::string> values;
        for (const auto& value : node.inputs) values.push_back(fp32(value));
        out_.graph.output(values);
        return;
      }
      default:
        break;
    }
    if (is_observer_node(prepared_, node)) {
      alias_[node.name] = resolve(node.inputs.at(0));
      return;
    }
    const OpSpec* spec = find_op_of(prepared_, node);
    const OutputQParams* out_q = qparams(node.name);

    // Quantized where prepare gave it a qconfig (quant/fp32_fallback.h takes some away); an
    // fp32 op's output may still be observed, for the quantized op reading it.
    const bool has_qconfig = prepared_.qconfigs.count(node.name) != 0;
    if (node.target == "add" && has_qconfig && !out_q && fused_add_relu(node)) return;  // emitted at the relu
    if (spec && spec->observation != Observation::kNone && has_qconfig && out_q &&
        lower_quantized(node, *spec, *out_q)) {
      return;
    }

    // fp32: the op as it was, on fp32 inputs.
    std::vector<std::string> inputs;
    for (const auto& value : node.inputs) inputs.push_back(fp32(value));
    if (node.op == NodeOp::kCallModule) {
      keep_module(node.target);
      env_[node.name].fp32 = out_.graph.call_module(node.target, inputs, node.name);
    } else {
      env_[node.name].fp32 =
          out_.graph.call_function(node.target, inputs, node.attrs, node.name);
    }
  }

  // add whose only user is an observed relu: lowered with that relu as add_relu.
  bool fused_add_relu(const Node& add) {
    std::vector<std::string> users = prepared_.graph.users(add.name);
    if (users.size() != 1) return false;
    const Node& relu = prepared_.graph.node(users[0]);
    const OpSpec* spec = find_op_of(prepared_, relu);
    if (!spec || (spec->name != "ReLU" && spec->name != "relu") || !qparams(relu.name) ||
        !prepared_.qconfigs.count(relu.name)) {
      return false;
    }
    pending_add_relu_[relu.name] = add.name;
    return true;
  }

  bool lower_quantized(const Node& node, const OpSpec& spec, const OutputQParams& q) {
    auto pending = pending_add_relu_.find(node.name);
    if (pending != pending_add_relu_.end()) {
      const Node& add = prepared_.graph.node(pending->second);
      env_[node.name].int8 = out_.graph.call_function(
          "quantized_add_relu", {int8(add.inputs[0]), int8(add.inputs[1])},
          {{"scale", q.scale}, {"zero_point", q.zero_point}}, "add_relu");
      return true;
    }
    if (runs_on_int8_as_is(spec)) {
      // Runs on the int8 tensor as it is (quantized first if only its fp32 form exists);
      // qparams pass through unchanged.
      if (!qparams(node.inputs.at(0)) && !is_int8(node.inputs.at(0))) return false;
      std::vector<std::string> inputs = {int8(node.inputs[0])};
      // Inputs read only for their sizes go in whichever form they exist.
      for (size_t i = 1; i < node.inputs.size(); ++i) inputs.push_back(any_form(node.inputs[i]));
      if (node.op == NodeOp::kCallModule) {
        keep_module(node.target);
        env_[node.name].int8 = out_.graph.call_module(node.target, inputs, node.name);
      } else {
        env_[node.name].int8 = out_.graph.call_function(node.target, inputs, node.attrs, node.name);
      }
      return true;
    }
    std::vector<std::string> inputs;
    for (const auto& value : node.inputs) {
      if (!qparams(value) && !is_int8(value)) return false;  // an input nobody observed
      inputs.push_back(int8(value));
    }
    if (spec.form == OpForm::kFunction) {
      // The output qparams, then the node's own attrs (cat's dim).
      std::vector<std::pair<std::string, Attr>> attrs = {{"scale", q.scale},
                                                         {"zero_point", q.zero_point}};
      attrs.insert(attrs.end(), node.attrs.begin(), node.attrs.end());
      env_[node.name].int8 = out_.graph.call_function(spec.int8_function, inputs, attrs, node.name);
      return true;
    }
    out_.add_module(node.target, spec.to_int8(prepared_.module(node.target), qconfig_for(node), q));
    env_[node.name].int8 = out_.graph.call_module(node.target, inputs, node.name);
    return true;
  }

  // The qconfig prepare attached to this node (its weight observer quantizes the weight).
  const QConfig& qconfig_for(const Node& node) const {
    auto it = prepared_.qconfigs.find(node.name);
    if (it == prepared_.qconfigs.end()) {
      throw GraphError("node '" + node.name + "' has no qconfig: was the model prepared?");
    }
    return it->second;
  }

  const GraphModule& prepared_;
  ConvertOptions options_;
  GraphModule out_;
  std::map<std::string, Forms> env_;
  std::map<std::string, OutputQParams> qparams_;  // observed value -> its qparams
  std::map<std::string, std::string> alias_;          // observer node -> observed value
  std::map<std::string, std::string> pending_add_relu_;  // relu node -> its add
};

}  // namespace

GraphModule convert(const GraphModule& prepared, const ConvertOptions& options) {
  select_engine(options.engine);
  Lowering lowering(prepared, options);
  return lowering.run();
}

}  // namespace qb
