#include "quant/functions.h"

#include <ATen/ATen.h>

#include <map>

#include "quant/module.h"
#include "quant/quantized_ops.h"

namespace qb {

namespace {

struct Entry {
  std::string display_name;
  Function fn;
  FunctionKind kind = FunctionKind::kCompute;
};

void expect_inputs(const Node& node, const std::vector<at::Tensor>& inputs, size_t count) {
  if (inputs.size() != count) {
    throw GraphError("node '" + node.name + "' (" + node.target + ") takes " +
                     std::to_string(count) + " inputs, got " + std::to_string(inputs.size()));
  }
}

std::map<std::string, Entry> builtin_functions() {
  std::map<std::string, Entry> table;
  table["add"] = {"operator.add", [](const std::vector<at::Tensor>& in, const Node& n) {
                    expect_inputs(n, in, 2);
                    if (can_overwrite(in[0]) && in[0].sizes() == in[1].sizes() &&
                        in[0].scalar_type() == in[1].scalar_type()) {
                      return in[0].add_(in[1]);
                    }
                    return at::add(in[0], in[1]);
                  }};
  table["mul"] = {"operator.mul", [](const std::vector<at::Tensor>& in, const Node& n) {
                    expect_inputs(n, in, 2);
                    return at::mul(in[0], in[1]);
                  }};
  table["relu"] = {"torch.nn.functional.relu",
                   [](const std::vector<at::Tensor>& in, const Node& n) {
                     expect_inputs(n, in, 1);
                     return can_overwrite(in[0]) ? in[0].relu_() : at::relu(in[0]);
                   }};
  table["flatten"] = {"torch.flatten", [](const std::vector<at::Tensor>& in, const Node& n) {
                        expect_inputs(n, in, 1);
                        return at::flatten(in[0], n.int_attr("start_dim", 0),
                                           n.int_attr("end_dim", -1));
                      }};
  table["contiguous"] = {
      "torch.Tensor.contiguous", [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        std::string format = n.string_attr("memory_format", "contiguous_format");
        // Channels-last exists for 4-D tensors only; others keep their layout.
        if (format == "channels_last" && in[0].dim() == 4) {
          return in[0].contiguous(at::MemoryFormat::ChannelsLast);
        }
        if (format != "channels_last" && format != "contiguous_format") {
          throw GraphError("node '" + n.name + "': unknown memory_format '" + format + "'");
        }
        return in[0].contiguous();
      },
      FunctionKind::kLayout};
  table["cat"] = {"torch.cat", [](const std::vector<at::Tensor>& in, const Node& n) {
                    return at::cat(in, n.int_attr("dim", 0));
                  }};
  table["adaptive_avg_pool2d"] = {"torch.nn.functional.adaptive_avg_pool2d",
                                  [](const std::vector<at::Tensor>& in, const Node& n) {
                                    expect_inputs(n, in, 1);
                                    return at::adaptive_avg_pool2d(
                                        in[0], n.ints_attr("output_size", {1, 1}));
                                  }};
  // The quantized domain: conversions at its borders and the kernels that need
  // output qparams (the others run on quantized tensors directly).
  table["quantize_per_tensor"] = {
      "torch.quantize_per_tensor", [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        at::ScalarType dtype = n.string_attr("dtype", "quint8") == "qint8" ? at::kQInt8 : at::kQUInt8;
        return at::quantize_per_tensor(in[0], n.float_attr("scale", 1.0),
                                       n.int_attr("zero_point", 0), dtype);
      },
      FunctionKind::kQuantize};
  table["dequantize"] = {"dequantize", [](const std::vector<at::Tensor>& in, const Node& n) {
                           expect_inputs(n, in, 1);
                           return in[0].dequantize();
                         },
                         FunctionKind::kDequantize};
  for (const char* name : {"add", "add_relu", "mul"}) {
    table[std::string("quantized_") + name] = {
        std::string("torch.ops.quantized.") + name,
        [name](const std::vector<at::Tensor>& in, const Node& n) {
          expect_inputs(n, in, 2);
          return call_quantized_op(std::string("quantized::") + name, "",
                                   {in[0], in[1], n.float_attr("scale", 1.0),
                                    n.int_attr("zero_point", 0)})
              .toTensor();
        },
        FunctionKind::kInt8Kernel};
  }
  table["quantized_cat"] = {
      "torch.ops.quantized.cat", [](const std::vector<at::Tensor>& in, const Node& n) {
        return call_quantized_op("quantized::cat", "",
                                 {c10::List<at::Tensor>(in), n.int_attr("dim", 0),
                                  c10::optional<double>(n.float_attr("scale", 1.0)),
                                  c10::optional<int64_t>(n.int_attr("zero_point", 0))})
            .toTensor();
      },
      FunctionKind::kInt8Kernel};
  return table;
}

const std::map<std::string, Entry>& registry() {
  static const std::map<std::string, Entry> table = builtin_functions();
  return table;
}

}  // namespace

bool has_function(const std::string& name) { return registry().count(name) != 0; }

const Function& lookup_function(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) throw GraphError("unknown function '" + name + "'");
  return it->second.fn;
}

std::string function_display_name(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? name : it->second.display_name;
}

FunctionKind function_kind(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) throw GraphError("unknown function '" + name + "'");
  return it->second.kind;
}

}  // namespace qb
