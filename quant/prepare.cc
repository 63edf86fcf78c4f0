#include "quant/prepare.h"

#include <map>
#include <optional>
#include <set>

#include "quant/fuse.h"
#include "quant/observers.h"
#include "quant/ops.h"

namespace qb {

namespace {

constexpr const char* kObserverPrefix = "activation_post_process_";

// The qconfig of a computing node, or nullopt when it stays fp32 (not quantized by graph
// mode, or None in the mapping).
std::optional<QConfig> node_qconfig(const GraphModule& gm, const QConfigMapping& mapping,
                                    const Node& node) {
  const OpSpec* spec = find_op_of(gm, node);
  if (!spec || spec->observation == Observation::kNone) return std::nullopt;
  std::string path = node.op == NodeOp::kCallModule ? node.target : "";
  return mapping.qconfig_for(path, spec->qconfig_kind);
}

bool is_relu(const OpSpec* spec) { return spec && (spec->name == "ReLU" || spec->name == "relu"); }

class ObserverInserter {
 public:
  explicit ObserverInserter(GraphModule& gm) : gm_(gm) {}

  // Observes `value` with a new observer unless it already has one.
  void observe(const std::string& value, const ObserverSpec& spec) {
    if (observer_of_.count(value)) return;
    attach(value, std::shared_ptr<Module>(make_observer(spec)));
  }

  // Observes `value` with `observer` unless it already has one.
  void observe(const std::string& value, std::unique_ptr<Observer> observer) {
    if (observer_of_.count(value)) return;
    attach(value, std::shared_ptr<Module>(std::move(observer)));
  }

  // Makes the observer node of `value` run the observer module of `source`, so both see
  // each other's data and give one set of qparams (FX's
  // maybe_make_input_output_share_observers, which does this to cat's inputs).
  void unify(const std::string& value, const std::string& source) {
    const std::string& path = gm_.graph.node(observer_of_.at(value)).target;
    gm_.replace_module(path, gm_.module_ptr(gm_.graph.node(observer_of_.at(source)).target));
  }

  // Observes `value` with the observer of `source` (same module, new node).
  void share(const std::string& value, const std::string& source) {
    attach(value, gm_.module_ptr(gm_.graph.node(observer_of_.at(source)).target));
  }

 private:
  void attach(const std::string& value, std::shared_ptr<Module> observer) {
    std::string path = kObserverPrefix + std::to_string(next_id_++);
    gm_.add_module(path, std::move(observer));
    Node node;
    node.name = path;
    node.op = NodeOp::kCallModule;
    node.target = path;
    node.inputs = {value};
    // Placeholders stay first: an input's observer goes after the last of them.
    std::string anchor = value;
    if (gm_.graph.node(value).op == NodeOp::kPlaceholder) anchor = gm_.graph.inputs().back();
    std::string name = gm_.graph.insert_after(anchor, node);
    gm_.graph.replace_all_uses(value, name);
    observer_of_[value] = name;
  }

  GraphModule& gm_;
  std::map<std::string, std::string> observer_of_;  // value -> its observer node
  int next_id_ = 0;
};

}  // namespace

bool is_observer_node(const GraphModule& gm, const Node& node) {
  return node.op == NodeOp::kCallModule && node.target.rfind(kObserverPrefix, 0) == 0 &&
         dynamic_cast<const Observer*>(&gm.module(node.target)) != nullptr;
}

GraphModule prepare(const GraphModule& model, const QConfigMapping& mapping) {
  GraphModule gm = fuse(model, mapping);
  ObserverInserter inserter(gm);

  // Walk a snapshot of the fused graph: inserting observers must not disturb the walk.
  std::vector<Node> nodes = gm.graph.nodes();
  std::set<std::string> deferred;    // adds whose observer goes after their relu
  for (const Node& node : nodes) {
    if (node.op == NodeOp::kPlaceholder || node.op == NodeOp::kOutput) continue;
    std::optional<QConfig> qconfig = node_qconfig(gm, mapping, node);
    if (!qconfig) continue;
    const OpSpec& spec = *find_op_of(gm, node);
    gm.qconfigs[node.name] = *qconfig;

    const std::vector<std::string> inputs = data_inputs(spec, node);
    if (spec.observation == Observation::kShareInput && inputs.size() > 1) {
      // cat: every input and the output share the first input's observer.
      for (const std::string& input : inputs) inserter.observe(input, qconfig->activation);
      for (size_t i = 1; i < inputs.size(); ++i) inserter.unify(inputs[i], inputs[0]);
      inserter.share(node.name, inputs[0]);
      continue;
    }
    if (spec.observation == Observation::kShareInput) {
      // Observes its input (as prepare_fx inserts input observers for every op it
      // quantizes, whatever produced the input), and its output shares that observer.
      const std::string& input = inputs.at(0);
      if (deferred.count(input)) {
        // add -> relu: one observer after the relu, as the (relu, add) pattern has it.
        inserter.observe(node.name, qconfig->activation);
      } else {
        inserter.observe(input, qconfig->activation);
        inserter.share(node.name, input);
      }
      continue;
    }

    for (const std::string& input : inputs) inserter.observe(input, qconfig->activation);

    std::vector<std::string> users = gm.graph.users(node.name);
    bool relu_follows = node.target == "add" && users.size() == 1 &&
                        is_relu(find_op_of(gm, gm.graph.node(users[0]))) &&
                        node_qconfig(gm, mapping, gm.graph.node(users[0])).has_value();
    if (relu_follows) {
      deferred.insert(node.name);
    } else if (spec.observation == Observation::kFixedQParams) {
      inserter.observe(node.name, make_fixed_qparams_observer(spec.fixed_scale, spec.fixed_zero_point));
    } else {
      inserter.observe(node.name, qconfig->activation);
    }
  }
  lint(gm);
  return gm;
}

}  // namespace qb
