#include "models/torchscript_export.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "base/atomic_file.h"
#include "quant/ops.h"

namespace qb {

namespace {

namespace jit = torch::jit;

// ---------------------------------------------------------------------------
// The generated module: attributes, and forward's statements, one per node, each the
// expression the op registry (quant/ops.h) gives for it.

class Writer {
 public:
  explicit Writer(const GraphModule& model) : model_(model) {}

  std::string source() {
    std::ostringstream body;
    std::vector<std::string> arguments;
    for (const Node& node : model_.graph.nodes()) {
      if (node.op == NodeOp::kPlaceholder) {
        arguments.push_back(variable(node.name) + ": Tensor");
      } else if (node.op == NodeOp::kOutput) {
        body << "    return " << outputs(node) << "\n";
      } else {
        body << "    " << variable(node.name) << " = " << expression(node) << "\n";
      }
    }
    std::string signature = "def forward(self";
    for (const std::string& argument : arguments) signature += ", " + argument;
    return signature + "):\n" + body.str();
  }

  /// Attributes to register: (name, value), in the order the source first reads them.
  const std::vector<std::pair<std::string, c10::IValue>>& attributes() const { return attributes_; }

  // Node names are identifiers already; a few would shadow what the source needs.
  static std::string variable(const std::string& name) {
    static const std::set<std::string> reserved = {"self", "torch", "quantized", "None", "True",
                                                   "False", "return", "def", "in", "is",
                                                   "not", "and", "or", "if", "else", "for",
                                                   "while", "pass", "lambda", "import"};
    return reserved.count(name) ? "v_" + name : name;
  }

  /// `self.<name>` for `value`, registered once; `dotted` is the key it stands for.
  std::string attribute(const std::string& dotted, c10::IValue value) {
    // A TorchScript identifier: module paths hold dots, and may hold dashes (RegNet's
    // "block1-0") or start with a digit (a top-level nn.Sequential's "0.weight").
    std::string name = dotted;
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) name = "m_" + name;
    auto known = attribute_keys_.find(name);
    if (known == attribute_keys_.end()) {
      attribute_keys_.emplace(name, dotted);
      attributes_.emplace_back(name, std::move(value));
    } else if (known->second != dotted) {
      throw ExportError("'" + dotted + "' and '" + known->second +
                        "' would both be exported as attribute '" + name + "'");
    }
    return "self." + name;
  }

  const GraphModule& model() const { return model_; }

 private:
  std::string outputs(const Node& node) const {
    if (node.inputs.size() == 1) return variable(node.inputs[0]);
    std::string s = "(";
    for (size_t i = 0; i < node.inputs.size(); ++i) s += (i ? ", " : "") + variable(node.inputs[i]);
    return s + ")";
  }

  std::string expression(const Node& node);

  const GraphModule& model_;
  std::vector<std::pair<std::string, c10::IValue>> attributes_;
  std::map<std::string, std::string> attribute_keys_;  // attribute -> dotted key
};

// One node's view of the export, for its op's TorchScript form.
class NodeContext : public TorchScriptContext {
 public:
  NodeContext(Writer& writer, const Node& node) : writer_(writer), node_(node) {}

  const Node& node() const override { return node_; }
  const Module& module() const override { return writer_.model().module(node_.target); }
  std::string input(size_t i) const override { return Writer::variable(node_.inputs.at(i)); }
  std::string input_list() const override {
    std::string s = "[";
    for (size_t i = 0; i < node_.inputs.size(); ++i) s += (i ? ", " : "") + input(i);
    return s + "]";
  }
  std::string tensor(const std::string& name) override {
    for (const TensorSlot& slot : module().tensors()) {
      if (slot.name == name) return writer_.attribute(node_.target + "." + name, slot.tensor.detach());
    }
    return "None";
  }
  std::string object(const std::string& suffix, const c10::IValue& value) override {
    return writer_.attribute(node_.target + "." + suffix, value);
  }

 private:
  Writer& writer_;
  const Node& node_;
};

std::string Writer::expression(const Node& node) {
  const OpSpec* spec = find_op_of(model_, node);
  if (!spec || !spec->torchscript) {
    const std::string what = node.op == NodeOp::kCallModule
                                 ? "layer '" + node.target + "' (" + model_.module(node.target).kind() + ")"
                                 : "function '" + node.target + "'";
    throw ExportError("node '" + node.name + "': " + what +
                      " has no TorchScript form; observers are exported only after convert");
  }
  NodeContext context(*this, node);
  try {
    return spec->torchscript(context);
  } catch (const std::exception& e) {
    throw ExportError("node '" + node.name + "': " + e.what());
  }
}

// `torch` names ATen's ops and `quantized` LibTorch's int8 kernels, as in torch.ops.
struct OpsResolver : jit::Resolver {
  std::shared_ptr<jit::SugaredValue> resolveValue(const std::string& name, jit::GraphFunction&,
                                                  const jit::SourceRange&) override {
    if (name == "torch") return std::make_shared<jit::BuiltinModule>("aten");
    if (name == "quantized") return std::make_shared<jit::BuiltinModule>("quantized");
    return nullptr;
  }
  c10::TypePtr resolveType(const std::string&, const jit::SourceRange&) override { return nullptr; }
};

jit::Module build_module(const GraphModule& model) {
  Writer writer(model);
  const std::string source = writer.source();
  jit::Module module("__torch__.quantbench.ExportedModel");
  for (const auto& [name, value] : writer.attributes()) {
    if (value.isTensor()) {
      module.register_buffer(name, value.toTensor());
    } else {
      module.register_attribute(name, value.type(), value);
    }
  }
  try {
    module.define(source, std::make_shared<OpsResolver>());
  } catch (const c10::Error& e) {
    throw ExportError(std::string("the generated TorchScript does not compile: ") +
                      e.what_without_backtrace() + "\n" + source);
  }
  module.eval();
  return module;
}

}  // namespace

std::string torchscript_source(const GraphModule& model) { return Writer(model).source(); }

void export_torchscript(const GraphModule& model, const std::string& path) {
  jit::Module module = build_module(model);
  std::ostringstream bytes;
  try {
    module.save(bytes);
  } catch (const c10::Error& e) {
    throw ExportError(path + ": cannot write: " + e.what_without_backtrace());
  }
  try {
    write_file_atomically(path, bytes.str());
  } catch (const WriteError& e) {
    throw ExportError(e.what());
  }
}

}  // namespace qb
