#include "quant/graph.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <unordered_set>

#include "quant/ops.h"

namespace qb {

const char* to_string(NodeOp op) {
  switch (op) {
    case NodeOp::kPlaceholder:
      return "placeholder";
    case NodeOp::kCallModule:
      return "call_module";
    case NodeOp::kCallFunction:
      return "call_function";
    case NodeOp::kOutput:
      return "output";
  }
  return "?";
}

namespace {

template <typename T>
T typed_attr(const Node& node, const std::string& key, T fallback) {
  for (const auto& [name, value] : node.attrs) {
    if (name != key) continue;
    if (const T* typed = std::get_if<T>(&value)) return *typed;
    throw GraphError("node '" + node.name + "': attribute '" + key + "' has the wrong type");
  }
  return fallback;
}

std::string attr_str(const Attr& attr) {
  std::ostringstream out;
  if (auto i = std::get_if<int64_t>(&attr)) out << *i;
  if (auto d = std::get_if<double>(&attr)) out << *d;
  if (auto s = std::get_if<std::string>(&attr)) out << "'" << *s << "'";
  if (auto v = std::get_if<std::vector<int64_t>>(&attr)) {
    out << "[";
    for (size_t i = 0; i < v->size(); ++i) out << (i ? ", " : "") << (*v)[i];
    out << "]";
  }
  return out.str();
}

}  // namespace

int64_t Node::int_attr(const std::string& key, int64_t fallback) const {
  return typed_attr<int64_t>(*this, key, fallback);
}

std::vector<int64_t> Node::ints_attr(const std::string& key, std::vector<int64_t> fallback) const {
  return typed_attr<std::vector<int64_t>>(*this, key, std::move(fallback));
}

double Node::float_attr(const std::string& key, double fallback) const {
  return typed_attr<double>(*this, key, fallback);
}

std::string Node::string_attr(const std::string& key, const std::string& fallback) const {
  return typed_attr<std::string>(*this, key, fallback);
}

std::string Graph::placeholder(const std::string& name) {
  Node node;
  node.name = name;
  node.op = NodeOp::kPlaceholder;
  node.target = name;
  return insert_at(nodes_.size(), std::move(node));
}

std::string Graph::call_module(const std::string& target, std::vector<std::string> inputs,
                               const std::string& name) {
  Node node;
  node.op = NodeOp::kCallModule;
  node.target = target;
  if (name.empty()) {
    // FX's _snake_case ("Mixed_7c.branchPool" -> "mixed_7c.branch_pool"), then its
    // _Namespace.create_name: each run of characters outside [0-9a-zA-Z_] becomes one '_'
    // ("block1-0.proj" -> "block1_0_proj"), and a leading digit gets a '_' before it.
    bool in_illegal_run = false;
    bool previous_lower = false;
    for (char c : target) {
      const auto byte = static_cast<unsigned char>(c);
      bool legal = std::isalnum(byte) || c == '_';
      if (legal) {
        if (previous_lower && std::isupper(byte)) node.name += '_';
        node.name += static_cast<char>(std::tolower(byte));
      } else if (!in_illegal_run) {
        node.name += '_';
      }
      in_illegal_run = !legal;
      previous_lower = std::islower(byte);
    }
    if (!node.name.empty() && std::isdigit(static_cast<unsigned char>(node.name[0]))) {
      node.name = "_" + node.name;
    }
  } else {
    node.name = name;
  }
  node.inputs = std::move(inputs);
  return insert_at(nodes_.size(), std::move(node));
}

std::string Graph::call_function(const std::string& function, std::vector<std::string> inputs,
                                 std::vector<std::pair<std::string, Attr>> attrs,
                                 const std::string& name) {
  Node node;
  node.op = NodeOp::kCallFunction;
  node.target = function;
  // A method ("Tensor.flatten") is named by its name alone, as FX names call_method nodes.
  node.name = name.empty() ? function.substr(function.rfind('.') + 1) : name;
  node.inputs = std::move(inputs);
  node.attrs = std::move(attrs);
  return insert_at(nodes_.size(), std::move(node));
}

void Graph::output(std::vector<std::string> values) {
  Node node;
  node.name = "output";
  node.op = NodeOp::kOutput;
  node.target = "output";
  node.inputs = std::move(values);
  insert_at(nodes_.size(), std::move(node));
}

std::string Graph::insert_before(const std::string& before, Node node) {
  size_t position = index_.at(this->node(before).name);
  return insert_at(position, std::move(node));
}

std::string Graph::insert_after(const std::string& after, Node node) {
  size_t position = index_.at(this->node(after).name) + 1;
  return insert_at(position, std::move(node));
}

void Graph::erase(const std::string& name) {
  const Node& doomed = node(name);
  std::vector<std::string> readers = users(name);
  if (!readers.empty()) {
    throw GraphError("cannot erase node '" + name + "': still used by '" + readers.front() + "'");
  }
  nodes_.erase(nodes_.begin() + static_cast<std::ptrdiff_t>(index_.at(doomed.name)));
  reindex();
}

void Graph::replace_all_uses(const std::string& old_value, const std::string& new_value) {
  for (auto& n : nodes_) {
    if (n.name == new_value) continue;
    std::replace(n.inputs.begin(), n.inputs.end(), old_value, new_value);
  }
}

const Node& Graph::node(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw GraphError("no node named '" + name + "' in the graph");
  return nodes_[it->second];
}

Node& Graph::node(const std::string& name) {
  return const_cast<Node&>(static_cast<const Graph&>(*this).node(name));
}

std::vector<std::string> Graph::users(const std::string& name) const {
  std::vector<std::string> result;
  for (const auto& n : nodes_) {
    if (std::find(n.inputs.begin(), n.inputs.end(), name) != n.inputs.end()) {
      result.push_back(n.name);
    }
  }
  return result;
}

std::vector<std::string> Graph::inputs() const {
  std::vector<std::string> result;
  for (const auto& n : nodes_) {
    if (n.op == NodeOp::kPlaceholder) result.push_back(n.name);
  }
  return result;
}

const std::vector<std::string>& Graph::outputs() const {
  if (nodes_.empty() || nodes_.back().op != NodeOp::kOutput) {
    throw GraphError("the graph has no output node");
  }
  return nodes_.back().inputs;
}

std::string Graph::str() const {
  std::unordered_map<std::string, int> user_count;
  for (const auto& n : nodes_) {
    for (const auto& input : n.inputs) ++user_count[input];
  }
  std::ostringstream out;
  out << "graph():\n";
  for (const auto& n : nodes_) {
    if (n.op == NodeOp::kOutput) {
      out << "    return ";
      if (n.inputs.size() == 1) {
        out << n.inputs[0];
      } else {
        out << "(";
        for (size_t i = 0; i < n.inputs.size(); ++i) out << (i ? ", " : "") << n.inputs[i];
        out << ")";
      }
      out << "\n";
      continue;
    }
    out << "    %" << n.name << " : [#users=" << user_count[n.name] << "] = " << to_string(n.op)
        << "[target=";
    const OpSpec* function = n.op == NodeOp::kCallFunction ? find_op(n.target) : nullptr;
    out << (function ? function->display_name : n.target) << "]";
    if (n.op != NodeOp::kPlaceholder) {
      out << "(args = (";
      for (size_t i = 0; i < n.inputs.size(); ++i) out << (i ? ", " : "") << "%" << n.inputs[i];
      if (n.inputs.size() == 1) out << ",";
      out << "), kwargs = {";
      for (size_t i = 0; i < n.attrs.size(); ++i) {
        out << (i ? ", " : "") << n.attrs[i].first << ": " << attr_str(n.attrs[i].second);
      }
      out << "})";
    }
    out << "\n";
  }
  return out.str();
}

std::string Graph::unique_name(std::string candidate) const {
  if (!index_.count(candidate)) return candidate;
  for (int suffix = 1;; ++suffix) {
    std::string name = candidate + "_" + std::to_string(suffix);
    if (!index_.count(name)) return name;
  }
}

std::string Graph::insert_at(size_t position, Node node) {
  if (!nodes_.empty() && nodes_.back().op == NodeOp::kOutput && position == nodes_.size() &&
      node.op != NodeOp::kOutput) {
    throw GraphError("cannot append node '" + node.name + "' after the output node");
  }
  node.name = unique_name(node.name);
  std::string name = node.name;
  nodes_.insert(nodes_.begin() + static_cast<std::ptrdiff_t>(position), std::move(node));
  reindex();
  return name;
}

void Graph::reindex() {
  index_.clear();
  for (size_t i = 0; i < nodes_.size(); ++i) index_.emplace(nodes_[i].name, i);
}

void lint(const Graph& graph) {
  std::unordered_set<std::string> defined;
  bool seen_non_placeholder = false;
  const auto& nodes = graph.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (n.name.empty()) throw GraphError("node #" + std::to_string(i) + " has no name");
    if (defined.count(n.name)) throw GraphError("node name '" + n.name + "' is used twice");
    for (const auto& input : n.inputs) {
      if (!defined.count(input)) {
        throw GraphError("node '" + n.name + "' reads '" + input +
                         "', which is not defined before it");
      }
    }
    switch (n.op) {
      case NodeOp::kPlaceholder:
        if (seen_non_placeholder) {
          throw GraphError("placeholder '" + n.name + "' comes after a computing node");
        }
        break;
      case NodeOp::kOutput:
        if (i + 1 != nodes.size()) {
          throw GraphError("output node '" + n.name + "' is not the last node");
        }
        if (n.inputs.empty()) throw GraphError("output node '" + n.name + "' returns nothing");
        break;
      case NodeOp::kCallFunction:
        if (!find_op(n.target) || find_op(n.target)->form != OpForm::kFunction) {
          throw GraphError("node '" + n.name + "' calls unknown function '" + n.target + "'");
        }
        seen_non_placeholder = true;
        break;
      case NodeOp::kCallModule:
        if (n.target.empty()) throw GraphError("node '" + n.name + "' calls a module with no path");
        seen_non_placeholder = true;
        break;
    }
    defined.insert(n.name);
  }
  if (nodes.empty() || nodes.back().op != NodeOp::kOutput) {
    throw GraphError("the graph has no output node");
  }
}

}  // namespace qb
