#include "models/torchscript_import.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cctype>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <unordered_map>

#include "quant/modules.h"
#include "quant/ops.h"

namespace qb {

namespace {

namespace jit = torch::jit;

// ---------------------------------------------------------------------------
// Where an error happened: the TorchScript op, its module path and source line.

std::string source_line(const jit::Node* node) {
  // A saved file keeps the range in the user's Python source that generated its code.
  jit::SourceRange range = node->sourceRange();
  if (auto original = range.findSourceRangeThatGenerated()) range = *original;
  auto location = range.file_line_col();
  if (!location) return "";
  const auto& [file, line, column] = *location;
  return " at " + file + ":" + std::to_string(line);
}

// Whether the Python source of `node` called `method` as a method (`x.flatten(1)`) rather
// than as torch's function (`torch.flatten(x, 1)`). A scripted file keeps the call's own
// text; a traced one only the file and line of the call, read here when the file is still
// there. Without either, the function.
bool written_as_method(const jit::Node* node, const std::string& method) {
  jit::SourceRange range = node->sourceRange();
  if (auto original = range.findSourceRangeThatGenerated()) range = *original;
  std::string text = range.text().str();
  // A traced call's range is the Python stack that made it: "/path/net.py(381): forward\n...".
  static const std::regex frame(R"(^([^\n]+)\((\d+)\): )");
  std::smatch match;
  if (std::regex_search(text, match, frame)) {
    const std::string file = match[1];
    const long line = std::stol(match[2]);
    std::ifstream in(file);
    text.clear();
    for (long i = 0; i < line && std::getline(in, text); ++i) {
    }
  }
  const std::string dotted = "." + method;
  for (size_t at = text.find(dotted); at != std::string::npos; at = text.find(dotted, at + 1)) {
    const size_t end = at + dotted.size();
    if (end < text.size() && text[end] != '(' && !std::isspace(static_cast<unsigned char>(text[end]))) continue;
    size_t start = at;
    while (start > 0 && (std::isalnum(static_cast<unsigned char>(text[start - 1])) || text[start - 1] == '_')) {
      --start;
    }
    if (text.compare(start, at - start, "torch") != 0) return true;
  }
  return false;
}

// "[3, 1]", as Python prints a list.
std::string list_text(c10::IntArrayRef values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}

std::string module_label(const std::string& path) {
  return path.empty() ? "the top-level module" : "module '" + path + "'";
}

// ---------------------------------------------------------------------------
// What a TorchScript value is while we walk the forward code.

struct Value {
  /// kUnmapped: the result of an op we cannot map. Using it is an error, raised where the
  /// value is used, so that a tensor-valued `if` condition is reported as control flow.
  /// kSize: an integer known only when the graph runs, size(node, dim) floor-divided by
  /// `divisor` (ShuffleNet's channel shuffle); kSizes: all sizes of a tensor, x.size().
  enum class Kind { kTensor, kModule, kConstant, kList, kUnmapped, kSize, kSizes };
  Kind kind = Kind::kConstant;
  std::string node;                      // kTensor: the graph node that produces it
  std::optional<jit::Module> module;     // kModule
  std::string path;                      // kModule: its dotted path
  c10::IValue constant;                  // kConstant
  std::vector<Value> items;              // kList: a list or tuple holding tensors
  std::string error;                     // kUnmapped: why it could not be mapped
  int64_t dim = 0;                       // kSize: of `node`
  int64_t divisor = 1;                   // kSize

  static Value tensor(std::string node) {
    Value v;
    v.kind = Kind::kTensor;
    v.node = std::move(node);
    return v;
  }
  static Value of_module(jit::Module module, std::string path) {
    Value v;
    v.kind = Kind::kModule;
    v.module = std::move(module);
    v.path = std::move(path);
    return v;
  }
  static Value of_constant(c10::IValue constant) {
    Value v;
    v.constant = std::move(constant);
    return v;
  }
  static Value size(std::string node, int64_t dim) {
    Value v;
    v.kind = Kind::kSize;
    v.node = std::move(node);
    v.dim = dim;
    return v;
  }
  static Value unmapped(std::string error) {
    Value v;
    v.kind = Kind::kUnmapped;
    v.error = std::move(error);
    return v;
  }
};

// The Python name of a class or function TorchScript saved:
// "__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d" -> "torch.nn.modules.conv.Conv2d"
std::string python_name(std::string name) {
  name = std::regex_replace(name, std::regex(R"(___torch_mangle_\d+\.)"), "");
  const std::string prefix = "__torch__.";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return name;
}

std::string class_name(const jit::Module& module) {
  return python_name(module.type()->name()->qualifiedName());
}

// "torch.nn.modules.conv.Conv2d" -> "Conv2d"
std::string short_class_name(const std::string& name) {
  return name.substr(name.rfind('.') + 1);
}

// torch.nn classes that FX treats as leaves but whose forward we walk: containers.
bool is_container(const std::string& name) {
  return name == "torch.nn.modules.container.Sequential" ||
         name == "torch.nn.modules.container.ModuleList" ||
         name == "torch.nn.modules.container.ModuleDict";
}

bool is_torch_nn(const std::string& name) { return name.rfind("torch.nn.", 0) == 0; }

// ---------------------------------------------------------------------------
// Leaf layers: the torch.nn modules that become call_module nodes. Their
// hyperparameters are read from the op their forward runs, after inlining and
// constant propagation, so scripted files (constants in the class) and traced
// files (constants in the graph) are read alike.

class LeafGraph {
 public:
  LeafGraph(const jit::Module& module, const std::string& method, std::string path,
            std::string origin)
      : path_(std::move(path)), kind_(short_class_name(class_name(module))), origin_(std::move(origin)) {
    graph_ = module.get_method(method).graph()->copy();
    jit::Inline(*graph_);
    jit::ConstantPropagation(graph_);
  }

  // The only node of one of `kinds` in the graph (nested blocks included).
  const jit::Node* op(std::initializer_list<const char*> kinds) const {
    std::vector<const jit::Node*> found;
    collect(graph_->block(), kinds, found);
    if (found.size() != 1) {
      std::string names;
      for (const char* kind : kinds) names += std::string(names.empty() ? "" : " or ") + kind;
      throw ImportError(where() + ": expected one " + names + " in its forward, found " +
                        std::to_string(found.size()));
    }
    return found[0];
  }

  // Input `index` of `node` as a constant; an error names the argument when it is not one.
  c10::IValue constant(const jit::Node* node, size_t index, const char* what) const {
    auto value = jit::toIValue(node->input(index));
    if (!value) {
      throw ImportError(where() + ": its " + what + " is not a constant" + source_line(node));
    }
    return *value;
  }

  /// A 2-D size argument: one int, or a list of one or two.
  Size2 size2(const jit::Node* node, size_t index, const char* what) const {
    c10::IValue value = constant(node, index, what);
    if (value.isInt()) return value.toInt();
    std::vector<int64_t> values = value.toIntVector();
    if (values.size() == 1) return values[0];
    if (values.size() == 2) return Size2(values[0], values[1]);
    throw ImportError(where() + ": its " + what + " " + list_text(values) + " is not 2-D");
  }

  /// A size argument our pooling layers hold as one int.
  int64_t square(const jit::Node* node, size_t index, const char* what) const {
    Size2 size = size2(node, index, what);
    if (size.h == size.w) return size.h;
    throw ImportError(where() + ": its " + what + " " + size.repr() +
                      " is not square; only square " + what + "s are supported");
  }

  /// "FILE: layer 'layer1.0.conv1' (Conv2d)", to start error messages.
  std::string where() const { return origin_ + ": layer '" + path_ + "' (" + kind_ + ")"; }

 private:
  static void collect(const jit::Block* block, std::initializer_list<const char*> kinds,
                      std::vector<const jit::Node*>& found) {
    for (const jit::Node* node : block->nodes()) {
      for (const char* kind : kinds) {
        if (node->kind().toQualString() == std::string(kind)) found.push_back(node);
      }
      for (const jit::Block* inner : node->blocks()) collect(inner, kinds, found);
    }
  }

  std::shared_ptr<jit::Graph> graph_;
  std::string path_;
  std::string kind_;
  std::string origin_;
};


// A tensor attribute of a leaf, or an undefined tensor for a missing or None one.
at::Tensor tensor_attr(const jit::Module& module, const std::string& name) {
  if (!module.hasattr(name)) return at::Tensor();
  c10::IValue value = module.attr(name);
  return value.isTensor() ? value.toTensor() : at::Tensor();
}

std::shared_ptr<Module> make_conv2d(const jit::Module& m, const LeafGraph& g) {
  const jit::Node* conv = g.op({"aten::conv2d", "aten::_convolution"});
  bool traced = conv->kind().toQualString() == std::string("aten::_convolution");
  if (traced && g.constant(conv, 6, "transposed flag").toBool()) {
    throw ImportError(g.where() + ": transposed convolutions are not supported");
  }
  at::Tensor weight = tensor_attr(m, "weight");
  Conv2dOptions o;
  o.groups = g.constant(conv, traced ? 8 : 6, "groups").toInt();
  o.out_channels = weight.size(0);
  o.in_channels = weight.size(1) * o.groups;
  o.kernel_size = Size2(weight.size(2), weight.size(3));
  o.stride = g.size2(conv, 3, "stride");
  if (!traced && g.constant(conv, 4, "padding").isString()) {
    throw ImportError(g.where() + ": string padding ('same', 'valid') is not supported");
  }
  o.padding = g.size2(conv, 4, "padding");
  o.dilation = g.size2(conv, 5, "dilation");
  o.bias = tensor_attr(m, "bias").defined();
  return std::make_shared<Conv2d>(o);
}

std::shared_ptr<Module> make_batch_norm2d(const jit::Module& m, const LeafGraph& g) {
  const jit::Node* bn = g.op({"aten::batch_norm"});
  at::Tensor weight = tensor_attr(m, "weight");
  if (!weight.defined() || !tensor_attr(m, "running_mean").defined()) {
    throw ImportError(g.where() +
                      ": only BatchNorm2d with affine parameters and running statistics "
                      "(affine=True, track_running_stats=True) is supported");
  }
  double eps = g.constant(bn, 7, "eps").toDouble();
  // Momentum only matters in training; a scripted class keeps it as a constant.
  double momentum = 0.1;
  if (m.type()->hasConstant("momentum")) {
    c10::IValue value = m.type()->getConstant("momentum");
    if (value.isDouble()) momentum = value.toDouble();
  }
  return std::make_shared<BatchNorm2d>(weight.size(0), eps, momentum);
}

std::shared_ptr<Module> make_linear(const jit::Module& m, const LeafGraph& g) {
  at::Tensor weight = tensor_attr(m, "weight");
  return std::make_shared<Linear>(weight.size(1), weight.size(0), tensor_attr(m, "bias").defined());
}

// A pooling op's stride: an empty list is F.max_pool2d's stride=None, the kernel size.
int64_t pool_stride(const LeafGraph& g, const jit::Node* pool, int64_t kernel) {
  c10::IValue stride = g.constant(pool, 2, "stride");
  return stride.isIntList() && stride.toIntVector().empty() ? kernel : g.square(pool, 2, "stride");
}

using LeafFactory = std::function<std::shared_ptr<Module>(const jit::Module&, const LeafGraph&)>;

std::shared_ptr<Module> make_max_pool2d(const jit::Module&, const LeafGraph& g) {
  const jit::Node* pool = g.op({"aten::max_pool2d"});
  int64_t kernel = g.square(pool, 1, "kernel size");
  if (g.square(pool, 4, "dilation") != 1) {
    throw ImportError(g.where() + ": dilated max-pooling is not supported");
  }
  return std::make_shared<MaxPool2d>(kernel, pool_stride(g, pool, kernel), g.square(pool, 3, "padding"),
                                     g.constant(pool, 5, "ceil_mode").toBool());
}

std::shared_ptr<Module> make_avg_pool2d(const jit::Module&, const LeafGraph& g) {
  const jit::Node* pool = g.op({"aten::avg_pool2d"});
  int64_t kernel = g.square(pool, 1, "kernel size");
  if (!g.constant(pool, 6, "divisor_override").isNone()) {
    throw ImportError(g.where() + ": divisor_override is not supported");
  }
  return std::make_shared<AvgPool2d>(kernel, pool_stride(g, pool, kernel), g.square(pool, 3, "padding"),
                                     g.constant(pool, 4, "ceil_mode").toBool(),
                                     g.constant(pool, 5, "count_include_pad").toBool());
}

// Parameterless elementwise layers; the registry (quant/ops.h) builds them.
LeafFactory elementwise(const char* kind) {
  return [kind](const jit::Module&, const LeafGraph&) {
    ModuleConfig none;
    return op(kind).make(ModuleArgs(kind, none, [](const std::string&) { return at::Tensor(); }));
  };
}

std::shared_ptr<Module> make_gelu(const jit::Module& m, const LeafGraph& g) {
  c10::IValue approximate = g.constant(g.op({"aten::gelu"}), 1, "approximate");
  if (approximate.toStringRef() != "none") {
    throw ImportError(g.where() + ": approximate='" + approximate.toStringRef() +
                      "' is not supported; only the exact GELU (approximate='none') is");
  }
  return elementwise("GELU")(m, g);
}

std::shared_ptr<Module> make_adaptive_avg_pool2d(const jit::Module&, const LeafGraph& g) {
  const jit::Node* pool = g.op({"aten::adaptive_avg_pool2d"});
  c10::IValue size = g.constant(pool, 1, "output size");
  std::vector<int64_t> hw = size.isInt() ? std::vector<int64_t>{size.toInt(), size.toInt()}
                                         : size.toIntVector();
  if (hw.size() == 1) hw.push_back(hw[0]);
  if (hw.size() != 2) throw ImportError(g.where() + ": its output size is not 2-D");
  return std::make_shared<AdaptiveAvgPool2d>(hw[0], hw[1]);
}

std::shared_ptr<Module> make_dropout(const jit::Module&, const LeafGraph& g) {
  const jit::Node* dropout = g.op({"aten::dropout", "aten::dropout_"});
  return std::make_shared<Dropout>(g.constant(dropout, 1, "p").toDouble());
}

std::shared_ptr<Module> make_flatten(const jit::Module&, const LeafGraph& g) {
  const jit::Node* flatten = g.op({"aten::flatten"});
  return std::make_shared<Flatten>(g.constant(flatten, 1, "start_dim").toInt(),
                                   g.constant(flatten, 2, "end_dim").toInt());
}

const std::map<std::string, LeafFactory>& leaf_factories() {
  static const std::map<std::string, LeafFactory> table = {
      {"torch.nn.modules.conv.Conv2d", make_conv2d},
      {"torch.nn.modules.batchnorm.BatchNorm2d", make_batch_norm2d},
      {"torch.nn.modules.linear.Linear", make_linear},
      {"torch.nn.modules.activation.ReLU",
       [](const jit::Module&, const LeafGraph&) { return std::make_shared<ReLU>(); }},
      {"torch.nn.modules.activation.ReLU6",
       [](const jit::Module&, const LeafGraph&) { return std::make_shared<ReLU6>(); }},
      {"torch.nn.modules.pooling.MaxPool2d", make_max_pool2d},
      {"torch.nn.modules.pooling.AvgPool2d", make_avg_pool2d},
      {"torch.nn.modules.activation.Hardswish", elementwise("Hardswish")},
      {"torch.nn.modules.activation.Hardsigmoid", elementwise("Hardsigmoid")},
      {"torch.nn.modules.activation.Sigmoid", elementwise("Sigmoid")},
      {"torch.nn.modules.activation.SiLU", elementwise("SiLU")},
      {"torch.nn.modules.activation.GELU", make_gelu},
      {"torch.nn.modules.activation.Tanh", elementwise("Tanh")},
      {"torch.nn.modules.pooling.AdaptiveAvgPool2d", make_adaptive_avg_pool2d},
      {"torch.nn.modules.dropout.Dropout", make_dropout},
      {"torch.nn.modules.flatten.Flatten", make_flatten},
      {"torch.nn.modules.linear.Identity",
       [](const jit::Module&, const LeafGraph&) { return std::make_shared<Identity>(); }},
  };
  return table;
}

// ---------------------------------------------------------------------------
// Functional code: the aten ops that become call_function nodes.

struct FunctionCall {
  std::string function;  // the op registry name (quant/ops.h), also FX's node name
  std::vector<std::string> inputs;
  std::vector<std::pair<std::string, Attr>> attrs;
};

// ---------------------------------------------------------------------------
// The walk.

class Importer {
 public:
  explicit Importer(std::string origin) : origin_(std::move(origin)) {}

  GraphModule run(const jit::Module& root) {
    jit::Method forward = root.get_method("forward");
    std::shared_ptr<jit::Graph> graph = forward.graph();
    std::vector<Value> args = {Value::of_module(root, "")};
    for (size_t i = 1; i < graph->inputs().size(); ++i) {
      const jit::Value* input = graph->inputs()[i];
      if (!input->type()->cast<c10::TensorType>()) {
        throw ImportError(origin_ + ": forward's argument '" + input->debugName() + "' is a " +
                          input->type()->repr_str() + "; only tensor arguments are supported");
      }
      args.push_back(Value::tensor(gm_.graph.placeholder(argument_name(input))));
    }
    std::vector<Value> outputs = call(*graph, args, "");
    std::vector<std::string> returned;
    for (const Value& output : outputs) flatten_tensors(output, returned, "forward's result");
    gm_.graph.output(returned);
    register_modules(root);
    lint(gm_);
    return std::move(gm_);
  }

 private:
  // "x.1" -> "x": TorchScript's unique suffix is not part of the Python name.
  static std::string argument_name(const jit::Value* value) {
    std::string name = value->debugName();
    return std::regex_replace(name, std::regex(R"(\.\d+$)"), "");
  }

  // An unmapped value's own error, where it is used.
  static void raise_if_unmapped(const Value& value) {
    if (value.kind == Value::Kind::kUnmapped) throw ImportError(value.error);
  }

  // The tensors a returned value holds, in order. None entries of a returned tuple are
  // left out: GoogLeNet's and Inception's scripted forward return their aux logits as None
  // in eval mode.
  void flatten_tensors(const Value& value, std::vector<std::string>& out, const char* what) {
    raise_if_unmapped(value);
    if (value.kind == Value::Kind::kTensor) {
      out.push_back(value.node);
    } else if (value.kind == Value::Kind::kList) {
      for (const Value& item : value.items) {
        if (item.kind != Value::Kind::kConstant || !item.constant.isNone()) flatten_tensors(item, out, what);
      }
    } else {
      throw ImportError(origin_ + ": " + what + " holds a value that is not a tensor");
    }
  }

  // Runs a method or function graph whose inputs are bound to `args`; returns its outputs.
  std::vector<Value> call(const jit::Graph& graph, const std::vector<Value>& args,
                          const std::string& path) {
    std::unordered_map<const jit::Value*, Value> env;
    for (size_t i = 0; i < graph.inputs().size(); ++i) env[graph.inputs()[i]] = args.at(i);
    return run_block(graph.block(), env, path);
  }

  std::vector<Value> run_block(const jit::Block* block,
                               std::unordered_map<const jit::Value*, Value>& env,
                               const std::string& path) {
    for (const jit::Node* node : block->nodes()) run_node(node, env, path);
    std::vector<Value> outputs;
    for (const jit::Value* output : block->outputs()) outputs.push_back(lookup(env, output));
    return outputs;
  }

  Value lookup(std::unordered_map<const jit::Value*, Value>& env, const jit::Value* value) {
    auto it = env.find(value);
    if (it == env.end()) {
      throw ImportError(origin_ + ": internal: TorchScript value %" + value->debugName() +
                        " used before it was computed");
    }
    return it->second;
  }

  std::string failure(const jit::Node* node, const std::string& path, const std::string& why) {
    return origin_ + ": " + module_label(path) + ": " + why + " (TorchScript op " +
           node->kind().toQualString() + source_line(node) + ")";
  }

  [[noreturn]] void fail(const jit::Node* node, const std::string& path, const std::string& why) {
    throw ImportError(failure(node, path, why));
  }

  void run_node(const jit::Node* node, std::unordered_map<const jit::Value*, Value>& env,
                const std::string& path) {
    std::vector<Value> in;
    for (const jit::Value* input : node->inputs()) in.push_back(lookup(env, input));
    auto bind = [&](std::vector<Value> values) {
      if (values.size() != node->outputs().size()) fail(node, path, "internal: output count");
      for (size_t i = 0; i < values.size(); ++i) env[node->outputs()[i]] = std::move(values[i]);
    };
    const std::string kind = node->kind().toQualString();

    if (kind == "prim::Constant") {
      auto value = jit::toIValue(node->output());
      bind({Value::of_constant(value ? *value : c10::IValue())});
      return;
    }
    if (kind == "prim::GetAttr") {
      bind({get_attr(node, in.at(0), path)});
      return;
    }
    if (kind == "prim::CallMethod") {
      bind(call_method(node, in, path));
      return;
    }
    if (kind == "prim::CallFunction") {
      auto function_type = node->input(0)->type()->cast<c10::FunctionType>();
      if (!function_type) fail(node, path, "a call of something that is not a function");
      std::vector<Value> args(in.begin() + 1, in.end());
      const std::string name = python_name(function_type->function()->qualname().qualifiedName());
      if (std::optional<Value> result = call_functional(node, name, args, path)) {
        bind({*result});
        return;
      }
      const jit::Graph& graph = *jit::toGraphFunction(*function_type->function()).graph();
      bind(call(graph, args, path));
      return;
    }
    if (kind == "prim::If") {
      const Value& condition = in.at(0);
      if (condition.kind != Value::Kind::kConstant || !condition.constant.isBool()) {
        // The error the condition's own op would raise is not the point: the branch is.
        fail(node, path,
             "control flow that depends on a tensor's value cannot be represented in a graph");
      }
      bind(run_block(node->blocks()[condition.constant.toBool() ? 0 : 1], env, path));
      return;
    }
    if (kind == "prim::Loop") {
      fail(node, path, "loops cannot be represented in a graph");
    }
    if (kind == "aten::warn") return;  // a warning changes nothing the graph computes
    if (std::optional<Value> size = size_arithmetic(kind, in)) {
      bind({*size});
      return;
    }
    if ((kind == "prim::ListUnpack") && in.at(0).kind == Value::Kind::kSizes) {
      std::vector<Value> sizes;
      for (size_t d = 0; d < node->outputs().size(); ++d) {
        sizes.push_back(Value::size(in[0].node, static_cast<int64_t>(d)));
      }
      bind(sizes);
      return;
    }
    if (kind == "aten::chunk") {
      bind({chunks(node, in, path)});
      return;
    }
    if (kind == "prim::unchecked_cast") {  // a type refinement: the value itself is unchanged
      bind({in.at(0)});
      return;
    }
    if (kind == "aten::append" && in.at(0).kind == Value::Kind::kList) {
      // Lists of tensors are built up in place (DenseNet's features): the list value the
      // code reads later is the same TorchScript value, now one item longer.
      Value& list = env[node->inputs()[0]];
      list.items.push_back(in.at(1));
      bind({list});
      return;
    }
    if (kind == "aten::len" && in.at(0).kind == Value::Kind::kList) {
      bind({Value::of_constant(static_cast<int64_t>(in[0].items.size()))});
      return;
    }
    if (kind == "aten::__getitem__" && in.at(0).kind == Value::Kind::kList &&
        in.at(1).kind == Value::Kind::kConstant && in[1].constant.isInt()) {
      int64_t index = in[1].constant.toInt();
      const auto size = static_cast<int64_t>(in[0].items.size());
      if (index < -size || index >= size) fail(node, path, "list index out of range");
      bind({in[0].items[index < 0 ? index + size : index]});
      return;
    }
    if (kind == "prim::RaiseException") {
      std::string message = in.empty() || !in[0].constant.isString() ? "" : in[0].constant.toStringRef();
      fail(node, path, "the model raises an exception here: " + message);
    }
    // Past here every op consumes its inputs: an unmapped one taints what it computes.
    for (const Value& v : in) {
      if (v.kind == Value::Kind::kUnmapped) {
        std::vector<Value> tainted(node->outputs().size(), v);
        bind(tainted);
        return;
      }
    }
    if (kind == "prim::ListConstruct" || kind == "prim::TupleConstruct") {
      if (!all_constant(in)) {
        Value list;
        list.kind = Value::Kind::kList;
        list.items = in;
        bind({list});
        return;
      }
    }
    if ((kind == "prim::ListUnpack" || kind == "prim::TupleUnpack") &&
        in.at(0).kind == Value::Kind::kList) {
      bind(in[0].items);
      return;
    }
    if (kind == "prim::TupleIndex" && in.at(0).kind == Value::Kind::kList &&
        in.at(1).kind == Value::Kind::kConstant) {
      bind({in[0].items.at(in[1].constant.toInt())});
      return;
    }
    if (all_constant(in) && !produces_tensor(node)) {
      bind(evaluate(node, in, path));
      return;
    }
    std::optional<FunctionCall> call = map_aten(node, kind, in, path);
    if (!call) {
      std::vector<Value> unmapped(
          node->outputs().size(),
          Value::unmapped(failure(node, path, "this op has no mapping to a graph function")));
      bind(unmapped);
      return;
    }
    Value result = Value::tensor(gm_.graph.call_function(call->function, call->inputs, call->attrs));
    // An in-place op (add_, relu_) changes its first argument: later reads of that
    // TorchScript value see the result.
    if (kind.back() == '_' && !node->inputs().empty()) env[node->inputs()[0]] = result;
    bind({result});
  }

  // Sizes read from tensors and the integer arithmetic on them, as scripted files
  // (x.size(), //) and traced ones (aten::size, NumToTensor, floor_divide, Int) spell it.
  static std::optional<Value> size_arithmetic(const std::string& kind, const std::vector<Value>& in) {
    auto tensor_input = [&] { return in.at(0).kind == Value::Kind::kTensor; };
    if (kind == "aten::size" && in.size() == 1 && tensor_input()) {
      Value sizes;
      sizes.kind = Value::Kind::kSizes;
      sizes.node = in[0].node;
      return sizes;
    }
    if (kind == "aten::size" && in.size() == 2 && tensor_input() &&
        in[1].kind == Value::Kind::kConstant && in[1].constant.isInt()) {
      return Value::size(in[0].node, in[1].constant.toInt());
    }
    if (in.empty() || in[0].kind != Value::Kind::kSize) return std::nullopt;
    if (kind == "prim::NumToTensor" || kind == "aten::Int") return in[0];
    if ((kind == "aten::floordiv" || kind == "aten::floor_divide") && in.size() == 2 &&
        in[1].kind == Value::Kind::kConstant) {
      const c10::IValue& d = in[1].constant;
      int64_t divisor = d.isInt() ? d.toInt() : d.isTensor() ? d.toTensor().item<int64_t>() : 0;
      if (divisor < 1) return std::nullopt;
      Value quotient = in[0];
      quotient.divisor *= divisor;  // floor(floor(a / b) / c) = floor(a / (b c)) for a >= 0
      return quotient;
    }
    return std::nullopt;
  }

  // x.chunk(n, dim): one graph node per piece.
  Value chunks(const jit::Node* node, const std::vector<Value>& in, const std::string& path) {
    if (in.at(0).kind != Value::Kind::kTensor || in.at(1).kind != Value::Kind::kConstant ||
        in.at(2).kind != Value::Kind::kConstant) {
      fail(node, path, "chunk of a tensor into a constant number of pieces along a constant dim");
    }
    Value pieces;
    pieces.kind = Value::Kind::kList;
    const int64_t n = in[1].constant.toInt();
    for (int64_t i = 0; i < n; ++i) {
      pieces.items.push_back(Value::tensor(gm_.graph.call_function(
          "chunk", {in[0].node}, {{"chunks", n}, {"dim", in[2].constant.toInt()}, {"index", i}})));
    }
    return pieces;
  }

  // view / reshape: the target sizes as the "reshape" function's `sizes` (quant/ops.h):
  // constants, or sizes of the tensors it reads besides the one reshaped.
  FunctionCall reshape(const jit::Node* node, const std::vector<Value>& in, const std::string& path) {
    FunctionCall call{"reshape", {in.at(0).node}, {}};
    std::vector<Value> items;
    if (in.at(1).kind == Value::Kind::kList) {
      items = in[1].items;
    } else if (in[1].kind == Value::Kind::kConstant && in[1].constant.isIntList()) {
      for (int64_t v : in[1].constant.toIntVector()) items.push_back(Value::of_constant(v));
    } else if (in[1].kind == Value::Kind::kSizes) {
      fail(node, path, "view to the sizes of a whole tensor (use view_as)");
    } else {
      fail(node, path, "view to sizes that are neither constants nor sizes of tensors");
    }
    std::string sizes;
    for (const Value& item : items) {
      if (!sizes.empty()) sizes += ",";
      if (item.kind == Value::Kind::kConstant && item.constant.isInt()) {
        sizes += std::to_string(item.constant.toInt());
        continue;
      }
      if (item.kind != Value::Kind::kSize) fail(node, path, "view to a size computed in a way a graph cannot hold");
      auto source = std::find(call.inputs.begin(), call.inputs.end(), item.node);
      if (source == call.inputs.end()) source = call.inputs.insert(call.inputs.end(), item.node);
      sizes += "i" + std::to_string(source - call.inputs.begin()) + "." + std::to_string(item.dim);
      if (item.divisor != 1) sizes += "/" + std::to_string(item.divisor);
    }
    call.attrs = {{"sizes", sizes}};
    return call;
  }

  static bool all_constant(const std::vector<Value>& values) {
    for (const Value& v : values) {
      if (v.kind != Value::Kind::kConstant) return false;
    }
    return true;
  }

  static bool produces_tensor(const jit::Node* node) {
    for (const jit::Value* output : node->outputs()) {
      if (output->type()->cast<c10::TensorType>()) return true;
    }
    return false;
  }

  // Runs a node on constant inputs (list building, comparisons, `not`) as TorchScript would.
  std::vector<Value> evaluate(const jit::Node* node, const std::vector<Value>& in,
                              const std::string& path) {
    const std::string kind = node->kind().toQualString();
    // The interpreter runs these itself; they have no operator to call.
    if (kind == "prim::ListConstruct") {
      c10::impl::GenericList list(node->output()->type()->expectRef<c10::ListType>().getElementType());
      for (const Value& v : in) list.push_back(v.constant);
      return {Value::of_constant(list)};
    }
    if (kind == "prim::TupleConstruct") {
      std::vector<c10::IValue> items;
      for (const Value& v : in) items.push_back(v.constant);
      return {Value::of_constant(c10::ivalue::Tuple::create(std::move(items)))};
    }
    if (kind == "prim::ListUnpack" || kind == "prim::TupleUnpack") {
      const c10::IValue& packed = in.at(0).constant;
      std::vector<c10::IValue> items =
          packed.isTuple() ? packed.toTupleRef().elements().vec() : packed.toListRef().vec();
      std::vector<Value> out;
      for (c10::IValue& item : items) out.push_back(Value::of_constant(std::move(item)));
      return out;
    }
    if (kind == "prim::Uninitialized") return {Value::of_constant(c10::IValue())};
    jit::Stack stack;
    for (const Value& v : in) stack.push_back(v.constant);
    try {
      node->getOperation()(stack);
    } catch (const c10::Error& e) {
      fail(node, path, std::string("this op cannot be evaluated at import time: ") +
                           e.what_without_backtrace());
    }
    std::vector<Value> out;
    for (c10::IValue& value : stack) out.push_back(Value::of_constant(std::move(value)));
    return out;
  }

  Value get_attr(const jit::Node* node, const Value& object, const std::string& path) {
    const std::string name = node->s(c10::attr::name);
    if (object.kind != Value::Kind::kModule) fail(node, path, "attribute '" + name + "' of a value");
    c10::IValue value = object.module->attr(name);
    std::string attr_path = object.path.empty() ? name : object.path + "." + name;
    if (value.isModule()) return Value::of_module(jit::Module(value.toObject()), attr_path);
    if (value.isTensor()) {
      fail(node, path,
           "tensor '" + attr_path +
               "' is read outside a supported torch.nn layer; parameters used by functional "
               "code are not supported");
    }
    return Value::of_constant(value);
  }

  std::vector<Value> call_method(const jit::Node* node, const std::vector<Value>& in,
                                 const std::string& path) {
    const std::string method = node->s(c10::attr::name);
    const Value& self = in.at(0);
    if (self.kind != Value::Kind::kModule) fail(node, path, "method '" + method + "' of a value");
    const std::string cls = class_name(*self.module);
    // A traced file keeps calls of layers the trace went around (nn.Identity, eval-mode
    // StochasticDepth) as calls without arguments that return None.
    if (in.size() == 1 && node->output()->type()->kind() == c10::TypeKind::NoneType) {
      return {Value::of_constant(c10::IValue())};
    }
    if (is_torch_nn(cls) && !is_container(cls)) {
      // Traced files name a layer's second call forward1, its third forward2, ...
      if (method.rfind("forward", 0) != 0) {
        fail(node, path, "method '" + method + "' of layer '" + self.path + "' is called");
      }
      return {Value::tensor(emit_leaf(node, self, method, in))};
    }
    std::shared_ptr<jit::Graph> graph = self.module->get_method(method).graph();
    return call(*graph, in, self.path);
  }

  std::string emit_leaf(const jit::Node* node, const Value& self, const std::string& method,
                        const std::vector<Value>& in) {
    const std::string cls = class_name(*self.module);
    auto factory = leaf_factories().find(cls);
    if (factory == leaf_factories().end()) {
      fail(node, self.path,
           "layer type " + short_class_name(cls) + " (" + cls + ") is not supported");
    }
    if (!leaves_.count(self.path)) {
      LeafGraph leaf(*self.module, method, self.path, origin_);
      std::shared_ptr<Module> module = factory->second(*self.module, leaf);
      copy_tensors(*self.module, *module, leaf);
      leaves_.emplace(self.path, std::move(module));
    }
    std::vector<std::string> inputs;
    for (size_t i = 1; i < in.size(); ++i) {
      raise_if_unmapped(in[i]);
      if (in[i].kind != Value::Kind::kTensor) {
        fail(node, self.path, "layer '" + self.path + "' is given a value that is not a tensor");
      }
      inputs.push_back(in[i].node);
    }
    return gm_.graph.call_module(self.path, inputs);
  }

  // Fills `ours` with the TorchScript layer's parameters and buffers, which must match the
  // tensors our layer was built with one for one, in name, shape and dtype.
  void copy_tensors(const jit::Module& theirs, Module& ours, const LeafGraph& leaf) {
    std::set<std::string> expected;
    for (const TensorSlot& slot : ours.tensors()) {
      expected.insert(slot.name);
      at::Tensor tensor = tensor_attr(theirs, slot.name);
      if (!tensor.defined() || tensor.sizes() != slot.tensor.sizes() ||
          tensor.scalar_type() != slot.tensor.scalar_type()) {
        throw ImportError(leaf.where() + ": tensor '" + slot.name +
                          "' is missing or not shaped as the layer's configuration makes it");
      }
      ours.set_tensor(slot.name, tensor.detach().clone());
    }
    for (const auto& item : theirs.named_attributes(/*recurse=*/false)) {
      if (item.value.isTensor() && !expected.count(item.name)) {
        throw ImportError(leaf.where() + ": unexpected tensor '" + item.name +
                          "'");
      }
    }
  }

  // torch.nn.functional calls become graph functions whole, as FX records them: their
  // TorchScript bodies check argument types and shapes in ways a graph cannot hold.
  std::optional<Value> call_functional(const jit::Node* node, const std::string& name,
                                       const std::vector<Value>& args, const std::string& path) {
    static const std::map<std::string, std::string> as_aten = {
        {"torch.nn.functional.adaptive_avg_pool2d", "aten::adaptive_avg_pool2d"},
        {"torch.nn.functional.relu", "aten::relu"},
    };
    // torchvision's stochastic depth is an FX leaf function (torch.fx.wrap): it stays one node.
    if (name == "torchvision.ops.stochastic_depth.stochastic_depth") {
      if (args.size() != 4 || !all_constant({args[1], args[2], args[3]})) {
        fail(node, path, "stochastic_depth with arguments that are not constants");
      }
      raise_if_unmapped(args[0]);
      return Value::tensor(gm_.graph.call_function(
          "stochastic_depth", {args[0].node},
          {{"p", args[1].constant.toDouble()}, {"mode", args[2].constant.toStringRef()}}));
    }
    auto it = as_aten.find(name);
    if (it == as_aten.end()) return std::nullopt;
    FunctionCall call = *map_aten(node, it->second, args, path);
    return Value::tensor(gm_.graph.call_function(call.function, call.inputs, call.attrs));
  }


  // The call_function node for the aten op `kind` on `in` (its TorchScript arguments), or
  // nullopt for an op without a mapping. Arguments a mapped op cannot take are errors.
  std::optional<FunctionCall> map_aten(const jit::Node* node, const std::string& kind,
                                       const std::vector<Value>& in, const std::string& path) {
    auto tensor = [&](size_t i) {
      raise_if_unmapped(in.at(i));
      if (in.at(i).kind != Value::Kind::kTensor) fail(node, path, "argument " + std::to_string(i) + " is not a tensor");
      return in[i].node;
    };
    auto integer = [&](size_t i) {
      if (in.at(i).kind != Value::Kind::kConstant || !in[i].constant.isInt()) {
        fail(node, path, "argument " + std::to_string(i) + " is not a constant integer");
      }
      return in[i].constant.toInt();
    };
    auto ints = [&](size_t i) {
      if (in.at(i).kind != Value::Kind::kConstant) {
        fail(node, path, "argument " + std::to_string(i) + " is not a constant");
      }
      const c10::IValue& v = in[i].constant;
      return v.isInt() ? std::vector<int64_t>{v.toInt(), v.toInt()} : v.toIntVector();
    };

    auto flag = [&](size_t i) {
      if (in.at(i).kind != Value::Kind::kConstant || !in[i].constant.isBool()) {
        fail(node, path, "argument " + std::to_string(i) + " is not a constant bool");
      }
      return in[i].constant.toBool();
    };
    // A pooling stride: F.max_pool2d's stride=None arrives as an empty list, the kernel size.
    auto ints_or_empty = [&](size_t i) {
      std::vector<int64_t> values = ints(i);
      return values.empty() ? ints(1) : values;
    };

    FunctionCall call;
    if (kind == "aten::add" || kind == "aten::add_") {
      if (in.size() != 3 || integer(2) != 1) fail(node, path, "only add with alpha=1 is supported");
      call = {"add", {tensor(0), tensor(1)}, {}};
    } else if (kind == "aten::mul" || kind == "aten::mul_") {
      call = {"mul", {tensor(0), tensor(1)}, {}};
    } else if (kind == "aten::relu" || kind == "aten::relu_") {
      call = {"relu", {tensor(0)}, {}};
    } else if (kind == "aten::flatten") {
      // TorchScript spells out the defaults; FX records only what the code passed, and
      // torchvision passes start_dim alone. The method and the function compile to one op,
      // which PyTorch FX quantizes differently; the recorded source tells them apart.
      call = {written_as_method(node, "flatten") ? "Tensor.flatten" : "flatten", {tensor(0)},
              {{"start_dim", integer(1)}}};
      if (integer(2) != -1) call.attrs.emplace_back("end_dim", integer(2));
    } else if (kind == "aten::adaptive_avg_pool2d") {
      call = {"adaptive_avg_pool2d", {tensor(0)}, {{"output_size", ints(1)}}};
    } else if (kind == "aten::max_pool2d") {
      call = {"max_pool2d", {tensor(0)}, {{"kernel_size", ints(1)}, {"stride", ints_or_empty(2)},
                                          {"padding", ints(3)}, {"dilation", ints(4)},
                                          {"ceil_mode", int64_t{flag(5)}}}};
    } else if (kind == "aten::avg_pool2d") {
      if (!in.at(6).constant.isNone()) fail(node, path, "divisor_override is not supported");
      call = {"avg_pool2d", {tensor(0)}, {{"kernel_size", ints(1)}, {"stride", ints_or_empty(2)},
                                          {"padding", ints(3)}, {"ceil_mode", int64_t{flag(4)}},
                                          {"count_include_pad", int64_t{flag(5)}}}};
    } else if (kind == "aten::dropout" || kind == "aten::dropout_") {
      if (flag(2)) fail(node, path, "dropout in training mode");
      call = {"dropout", {tensor(0)}, {}};
    } else if (kind == "aten::tanh" || kind == "aten::tanh_") {
      call = {"tanh", {tensor(0)}, {}};
    } else if (kind == "aten::mean") {
      if (in.size() != 4 || !in[3].constant.isNone()) fail(node, path, "only mean over dims, without dtype, is supported");
      if (in.at(2).kind != Value::Kind::kConstant || !in[2].constant.isBool()) fail(node, path, "keepdim is not a constant");
      call = {"mean", {tensor(0)}, {{"dim", ints(1)}, {"keepdim", int64_t{in[2].constant.toBool()}}}};
    } else if (kind == "aten::sigmoid" || kind == "aten::sigmoid_") {
      call = {"sigmoid", {tensor(0)}, {}};
    } else if (kind == "aten::hardsigmoid" || kind == "aten::hardsigmoid_") {
      call = {"hardsigmoid", {tensor(0)}, {}};
    } else if (kind == "aten::view" || kind == "aten::reshape") {
      call = reshape(node, in, path);
    } else if (kind == "aten::transpose") {
      call = {"transpose", {tensor(0)}, {{"dim0", integer(1)}, {"dim1", integer(2)}}};
    } else if (kind == "aten::contiguous") {
      // MemoryFormat 0 is torch.contiguous_format; channels-last layouts are ours to choose.
      if (integer(1) != 0) fail(node, path, "only contiguous(memory_format=torch.contiguous_format) is supported");
      call = {"contiguous", {tensor(0)}, {}};
    } else if (kind == "aten::cat") {
      std::vector<std::string> inputs;
      if (in.at(0).kind != Value::Kind::kList) fail(node, path, "cat of something not a list");
      for (const Value& item : in[0].items) {
        if (item.kind != Value::Kind::kTensor) fail(node, path, "cat of a non-tensor");
        inputs.push_back(item.node);
      }
      call = {"cat", inputs, {{"dim", integer(1)}}};
    } else {
      return std::nullopt;
    }
    return call;
  }

  // Modules are registered in the TorchScript module's own order (its state_dict order),
  // only those the graph calls, as FX keeps only called modules.
  void register_modules(const jit::Module& root) {
    for (const auto& item : root.named_modules()) {
      auto leaf = leaves_.find(item.name);
      if (leaf != leaves_.end()) gm_.add_module(item.name, leaf->second);
    }
  }

  std::string origin_;
  GraphModule gm_;
  std::map<std::string, std::shared_ptr<Module>> leaves_;
};

}  // namespace

GraphModule import_torchscript(const std::string& path) {
  jit::Module module;
  try {
    module = jit::load(path);
  } catch (const c10::Error& e) {
    throw ImportError(path + ": not a TorchScript file torch.jit.load can read: " +
                      e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw ImportError(path + ": not a TorchScript file torch.jit.load can read: " + e.what());
  }
  module.eval();
  try {
    return Importer(path).run(module);
  } catch (const ImportError&) {
    throw;
  } catch (const c10::Error& e) {
    throw ImportError(path + ": " + e.what_without_backtrace());
  }
}

}  // namespace qb
