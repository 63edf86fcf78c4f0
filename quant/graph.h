#pragma once
// An FX-like dataflow graph: nodes in topological order, each naming the nodes
// whose values it consumes. A Graph is a plain value; copying it copies every node.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace qb {

/// What a node does, as torch.fx's Node.op.
enum class NodeOp { kPlaceholder, kCallModule, kCallFunction, kOutput };

/// "placeholder", "call_module", ...: FX's spelling.
const char* to_string(NodeOp op);

/// A constant argument of a call_function node (flatten's start_dim, cat's dim).
using Attr = std::variant<int64_t, double, std::vector<int64_t>, std::string>;

/// One operation. `inputs` name the nodes whose values are its positional arguments.
struct Node {
  std::string name;
  NodeOp op = NodeOp::kPlaceholder;
  /// placeholder: the input's name; call_module: the module path; call_function:
  /// the function's name in the op registry (ops.h); output: "output".
  std::string target;
  std::vector<std::string> inputs;
  std::vector<std::pair<std::string, Attr>> attrs;

  /// The constant `key`, or `fallback` when absent; throws GraphError on a wrong type.
  int64_t int_attr(const std::string& key, int64_t fallback) const;
  std::vector<int64_t> ints_attr(const std::string& key, std::vector<int64_t> fallback) const;
  double float_attr(const std::string& key, double fallback) const;
  std::string string_attr(const std::string& key, const std::string& fallback) const;
};

/// A malformed graph or a reference to a missing node, module or function.
struct GraphError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Graph {
 public:
  /// Appends an input. Returns the node's name.
  std::string placeholder(const std::string& name);
  /// Appends a call of the module at `target` ("layer1.0.conv1"). The default name
  /// is the target as an identifier ("layer1_0_conv1"), made unique as FX does.
  std::string call_module(const std::string& target, std::vector<std::string> inputs,
                          const std::string& name = "");
  /// Appends a call of a registered function ("add", "flatten", ...).
  std::string call_function(const std::string& function, std::vector<std::string> inputs,
                            std::vector<std::pair<std::string, Attr>> attrs = {},
                            const std::string& name = "");
  /// Appends the output node returning the given values.
  void output(std::vector<std::string> values);

  /// Inserts `node` (its name made unique) just before the node `before`; returns its name.
  std::string insert_before(const std::string& before, Node node);
  /// Inserts `node` (its name made unique) just after the node `after`; returns its name.
  std::string insert_after(const std::string& after, Node node);
  /// Removes a node that nothing uses any more.
  void erase(const std::string& name);
  /// Makes every user of `old_value` read `new_value` instead (except `new_value` itself).
  void replace_all_uses(const std::string& old_value, const std::string& new_value);

  const std::vector<Node>& nodes() const { return nodes_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// The node called `name`; throws GraphError when absent.
  const Node& node(const std::string& name) const;
  Node& node(const std::string& name);
  /// Names of the nodes that read `name`'s value, in graph order.
  std::vector<std::string> users(const std::string& name) const;
  /// The placeholders' names, in order.
  std::vector<std::string> inputs() const;
  /// The values the output node returns.
  const std::vector<std::string>& outputs() const;

  /// The graph as torch.fx prints it (`print(gm.graph)`).
  std::string str() const;

 private:
  std::string unique_name(std::string candidate) const;
  std::string insert_at(size_t position, Node node);
  void reindex();

  std::vector<Node> nodes_;
  std::unordered_map<std::string, size_t> index_;
};

/// Structural check: unique names, inputs defined before use, placeholders first,
/// exactly one output at the end. Throws GraphError naming the offending node.
void lint(const Graph& graph);

}  // namespace qb
