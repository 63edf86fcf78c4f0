#include "models/torchscript_export.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "quant/quantized_modules.h"

namespace qb {

namespace {

namespace jit = torch::jit;

// ---------------------------------------------------------------------------
// TorchScript literals.

// A float that reads back as the same double: 17 significant digits, always with a
// '.' or an exponent so TorchScript parses a float.
std::string literal(double value) {
  std::ostringstream out;
  out << std::setprecision(17) << value;
  std::string s = out.str();
  if (s.find_first_of(".eE") == std::string::npos && s.find("inf") == std::string::npos) s += ".0";
  return s;
}

std::string literal(int64_t value) { return std::to_string(value); }

std::string literal(const std::vector<int64_t>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}

std::string pair(int64_t value) { return literal(std::vector<int64_t>{value, value}); }

// The ScalarType code TorchScript passes for a dtype (torch.quint8 is 13, torch.qint8 12).
std::string dtype_literal(const std::string& dtype) {
  return std::to_string(static_cast<int>(dtype == "qint8" ? at::kQInt8 : at::kQUInt8));
}

// The entry `key` of a module's config(), which must hold a T.
template <typename T>
T config_value(const Module& module, const std::string& key) {
  for (const auto& [name, value] : module.config()) {
    if (name == key) return std::get<T>(value);
  }
  throw ExportError(module.kind() + " has no config entry '" + key + "'");
}

// ---------------------------------------------------------------------------
// The generated module: attributes, and forward's statements.

class Writer {
 public:
  explicit Writer(const GraphModule& model) : model_(model) {}

  std::string source() {
    std::ostringstream body;
    std::vector<std::string> arguments;
    for (const Node& node : model_.graph.nodes()) {
      if (node.op == NodeOp::kPlaceholder) {
        arguments.push_back(variable(node.name) + ": Tensor");
        continue;
      }
      if (node.op == NodeOp::kOutput) {
        body << "    return " << outputs(node) << "\n";
        continue;
      }
      std::string expression;
      try {
        expression = node.op == NodeOp::kCallModule ? module_call(node) : function_call(node);
      } catch (const std::bad_variant_access&) {
        throw ExportError("node '" + node.name + "': its configuration has an unexpected type");
      }
      body << "    " << variable(node.name) << " = " << expression << "\n";
    }
    std::string signature = "def forward(self";
    for (const std::string& argument : arguments) signature += ", " + argument;
    return signature + "):\n" + body.str();
  }

  /// Attributes to register: (name, value), in the order the source first reads them.
  const std::vector<std::pair<std::string, c10::IValue>>& attributes() const { return attributes_; }

 private:
  // Node names are identifiers already; a few would shadow what the source needs.
  static std::string variable(const std::string& name) {
    static const std::set<std::string> reserved = {"self", "torch", "quantized", "None", "True",
                                                   "False", "return", "def", "in", "is",
                                                   "not", "and", "or", "if", "else", "for",
                                                   "while", "pass", "lambda", "import"};
    return reserved.count(name) ? "v_" + name : name;
  }

  std::string input(const Node& node, size_t i) const { return variable(node.inputs.at(i)); }

  std::string outputs(const Node& node) const {
    if (node.inputs.size() == 1) return variable(node.inputs[0]);
    std::string s = "(";
    for (size_t i = 0; i < node.inputs.size(); ++i) s += (i ? ", " : "") + variable(node.inputs[i]);
    return s + ")";
  }

  // `self.<attribute>` for a module's tensor, registered once.
  std::string tensor(const std::string& path, const Module& module, const std::string& name) {
    return attribute(path + "." + name, module.tensor(name).detach());
  }

  std::string attribute(const std::string& dotted, c10::IValue value) {
    std::string name = dotted;
    std::replace(name.begin(), name.end(), '.', '_');
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

  std::string optional_tensor(const std::string& path, const Module& module,
                              const std::string& name) {
    for (const TensorSlot& slot : module.tensors()) {
      if (slot.name == name) return tensor(path, module, name);
    }
    return "None";
  }

  std::string module_call(const Node& node) {
    const Module& m = model_.module(node.target);
    const std::string& path = node.target;
    const std::string kind = m.kind();
    const std::string x = node.inputs.empty() ? "" : input(node, 0);
    if (kind == "Conv2d" || kind == "ConvReLU2d") {
      std::string conv = "torch.conv2d(" + x + ", " + tensor(path, m, "weight") + ", " +
                         optional_tensor(path, m, "bias") + ", " +
                         pair(config_value<int64_t>(m, "stride")) + ", " +
                         pair(config_value<int64_t>(m, "padding")) + ", " +
                         pair(config_value<int64_t>(m, "dilation")) + ", " +
                         literal(config_value<int64_t>(m, "groups")) + ")";
      return kind == "ConvReLU2d" ? "torch.relu(" + conv + ")" : conv;
    }
    if (kind == "Linear" || kind == "LinearReLU") {
      std::string linear = "torch.linear(" + x + ", " + tensor(path, m, "weight") + ", " +
                           optional_tensor(path, m, "bias") + ")";
      return kind == "LinearReLU" ? "torch.relu(" + linear + ")" : linear;
    }
    if (kind == "BatchNorm2d") {
      return "torch.batch_norm(" + x + ", " + tensor(path, m, "weight") + ", " +
             tensor(path, m, "bias") + ", " + tensor(path, m, "running_mean") + ", " +
             tensor(path, m, "running_var") + ", False, " +
             literal(config_value<double>(m, "momentum")) + ", " +
             literal(config_value<double>(m, "eps")) + ", False)";
    }
    if (kind == "ReLU") return "torch.relu(" + x + ")";
    if (kind == "ReLU6") return "torch.hardtanh(" + x + ", 0.0, 6.0)";
    if (kind == "MaxPool2d") {
      return "torch.max_pool2d(" + x + ", " + pair(config_value<int64_t>(m, "kernel_size")) +
             ", " + pair(config_value<int64_t>(m, "stride")) + ", " +
             pair(config_value<int64_t>(m, "padding")) + ", [1, 1], False)";
    }
    if (kind == "AdaptiveAvgPool2d") {
      return "torch.adaptive_avg_pool2d(" + x + ", " +
             literal(std::vector<int64_t>{config_value<int64_t>(m, "output_height"),
                                          config_value<int64_t>(m, "output_width")}) +
             ")";
    }
    if (kind == "Dropout") return "torch.dropout(" + x + ", " + literal(config_value<double>(m, "p")) + ", False)";
    if (kind == "Identity" || kind == "QuantStub" || kind == "DeQuantStub") return x;
    if (kind == "QuantizedConv2d" || kind == "QuantizedConvReLU2d") {
      const auto& conv = dynamic_cast<const QuantizedConv2d&>(m);
      return std::string(kind == "QuantizedConv2d" ? "quantized.conv2d(" : "quantized.conv2d_relu(") +
             x + ", " + attribute(path + ".packed_params", conv.packed()) + ", " +
             literal(conv.scale()) + ", " + literal(conv.zero_point()) + ")";
    }
    if (kind == "QuantizedLinear" || kind == "QuantizedLinearReLU") {
      const auto& linear = dynamic_cast<const QuantizedLinear&>(m);
      return std::string(kind == "QuantizedLinear" ? "quantized.linear(" : "quantized.linear_relu(") +
             x + ", " + attribute(path + ".packed_params", linear.packed()) + ", " +
             literal(linear.scale()) + ", " + literal(linear.zero_point()) + ")";
    }
    if (kind == "Quantize") {
      return "torch.quantize_per_tensor(" + x + ", " + literal(config_value<double>(m, "scale")) +
             ", " + literal(config_value<int64_t>(m, "zero_point")) + ", " +
             dtype_literal(config_value<std::string>(m, "dtype")) + ")";
    }
    if (kind == "DeQuantize") return "torch.dequantize(" + x + ")";
    if (kind == "QuantizedBatchNorm2d") {
      return "quantized.batch_norm2d(" + x + ", " + tensor(path, m, "weight") + ", " +
             tensor(path, m, "bias") + ", " + tensor(path, m, "running_mean") + ", " +
             tensor(path, m, "running_var") + ", " + literal(config_value<double>(m, "eps")) +
             ", " + literal(config_value<double>(m, "scale")) + ", " +
             literal(config_value<int64_t>(m, "zero_point")) + ")";
    }
    if (kind == "QFunctional" || kind == "FloatFunctional") {
      return functional_method(node, m, kind == "QFunctional");
    }
    throw ExportError("node '" + node.name + "': layer '" + path + "' (" + kind +
                      ") has no TorchScript form; observers are exported only after convert");
  }

  // FloatFunctional's and QFunctional's methods (add, add_relu, mul, cat).
  std::string functional_method(const Node& node, const Module& m, bool quantized) {
    const std::string method = config_value<std::string>(m, "method");
    std::string list = "[";
    for (size_t i = 0; i < node.inputs.size(); ++i) list += (i ? ", " : "") + input(node, i);
    list += "]";
    if (quantized) {
      std::string qparams = literal(config_value<double>(m, "scale")) + ", " +
                            literal(config_value<int64_t>(m, "zero_point"));
      if (method == "cat") {
        return "quantized.cat(" + list + ", " + literal(config_value<int64_t>(m, "dim")) + ", " +
               qparams + ")";
      }
      return "quantized." + method + "(" + input(node, 0) + ", " + input(node, 1) + ", " + qparams + ")";
    }
    if (method == "cat") return "torch.cat(" + list + ", " + literal(config_value<int64_t>(m, "dim")) + ")";
    if (method == "mul") return "torch.mul(" + input(node, 0) + ", " + input(node, 1) + ")";
    std::string sum = "torch.add(" + input(node, 0) + ", " + input(node, 1) + ")";
    return method == "add_relu" ? "torch.relu(" + sum + ")" : sum;
  }

  std::string function_call(const Node& node) {
    const std::string& f = node.target;
    auto list = [&] {
      std::string s = "[";
      for (size_t i = 0; i < node.inputs.size(); ++i) s += (i ? ", " : "") + input(node, i);
      return s + "]";
    };
    auto qparams = [&] {
      return literal(node.float_attr("scale", 1.0)) + ", " + literal(node.int_attr("zero_point", 0));
    };
    if (f == "add") return "torch.add(" + input(node, 0) + ", " + input(node, 1) + ")";
    if (f == "mul") return "torch.mul(" + input(node, 0) + ", " + input(node, 1) + ")";
    if (f == "relu") return "torch.relu(" + input(node, 0) + ")";
    if (f == "flatten") {
      return "torch.flatten(" + input(node, 0) + ", " + literal(node.int_attr("start_dim", 0)) +
             ", " + literal(node.int_attr("end_dim", -1)) + ")";
    }
    if (f == "cat") return "torch.cat(" + list() + ", " + literal(node.int_attr("dim", 0)) + ")";
    if (f == "adaptive_avg_pool2d") {
      return "torch.adaptive_avg_pool2d(" + input(node, 0) + ", " +
             literal(node.ints_attr("output_size", {1, 1})) + ")";
    }
    if (f == "contiguous") {
      // MemoryFormat codes: 0 contiguous, 2 channels-last (4-D only, as our function does).
      bool channels_last = node.string_attr("memory_format", "contiguous_format") == "channels_last";
      std::string x = input(node, 0);
      return channels_last ? x + ".contiguous(memory_format=2) if " + x + ".dim() == 4 else " + x
                           : x + ".contiguous()";
    }
    if (f == "quantize_per_tensor") {
      return "torch.quantize_per_tensor(" + input(node, 0) + ", " + qparams() + ", " +
             dtype_literal(node.string_attr("dtype", "quint8")) + ")";
    }
    if (f == "dequantize") return "torch.dequantize(" + input(node, 0) + ")";
    if (f == "quantized_add" || f == "quantized_add_relu" || f == "quantized_mul") {
      return "quantized." + f.substr(std::string("quantized_").size()) + "(" + input(node, 0) +
             ", " + input(node, 1) + ", " + qparams() + ")";
    }
    if (f == "quantized_cat") {
      return "quantized.cat(" + list() + ", " + literal(node.int_attr("dim", 0)) + ", " + qparams() + ")";
    }
    throw ExportError("node '" + node.name + "': function '" + f + "' has no TorchScript form");
  }

  const GraphModule& model_;
  std::vector<std::pair<std::string, c10::IValue>> attributes_;
  std::map<std::string, std::string> attribute_keys_;  // attribute -> dotted key
};

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
  const std::string temporary = path + ".tmp";
  try {
    module.save(temporary);
  } catch (const c10::Error& e) {
    std::remove(temporary.c_str());
    throw ExportError(path + ": cannot write: " + e.what_without_backtrace());
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::remove(temporary.c_str());
    throw ExportError(path + ": cannot write: " + error.message());
  }
}

}  // namespace qb
