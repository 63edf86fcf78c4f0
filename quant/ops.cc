#include "quant/ops.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include <iomanip>
#include <map>
#include <sstream>
#include <tuple>

#include "quant/modules.h"
#include "quant/onednn_conv.h"
#include "quant/observers.h"
#include "quant/quantize_kernel.h"
#include "quant/quantized_modules.h"
#include "quant/quantized_ops.h"
#include "quant/stubs.h"

namespace qb {

at::Tensor quantize_weight(const at::Tensor& weight, const ObserverSpec& spec) {
  std::unique_ptr<Observer> observer = make_observer(spec);
  observer->forward({weight.detach()});
  QParams q = observer->calculate_qparams();
  at::ScalarType dtype = q.dtype == QDtype::kQInt8 ? at::kQInt8 : at::kQUInt8;
  if (q.qscheme == QScheme::kPerChannelAffine || q.qscheme == QScheme::kPerChannelSymmetric) {
    return at::quantize_per_channel(weight.detach(), q.scale.to(at::kDouble),
                                    q.zero_point.to(at::kLong), q.axis, dtype);
  }
  return at::quantize_per_tensor(weight.detach(), q.scale.item<double>(),
                                 q.zero_point.item<int64_t>(), dtype);
}

namespace {

// ---------------------------------------------------------------------------
// Pieces the entries share.

void expect_inputs(const Node& node, const std::vector<at::Tensor>& inputs, size_t count) {
  if (inputs.size() != count) {
    throw GraphError("node '" + node.name + "' (" + node.target + ") takes " +
                     std::to_string(count) + " inputs, got " + std::to_string(inputs.size()));
  }
}

// TorchScript literals: a float that reads back as the same double (17 significant
// digits, always with a '.' or an exponent), ints, int lists.
std::string ts(double value) {
  std::ostringstream out;
  out << std::setprecision(17) << value;
  std::string s = out.str();
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}
std::string ts(int64_t value) { return std::to_string(value); }
std::string ts(const std::vector<int64_t>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}
std::string ts_pair(int64_t value) { return ts(std::vector<int64_t>{value, value}); }
// The ScalarType code TorchScript passes for a dtype (torch.quint8 is 13, torch.qint8 12).
std::string ts_dtype(QDtype dtype) {
  return std::to_string(static_cast<int>(dtype == QDtype::kQInt8 ? at::kQInt8 : at::kQUInt8));
}

template <typename T>
T config(const Module& module, const std::string& key) {
  for (const auto& [name, value] : module.config()) {
    if (name == key) return std::get<T>(value);
  }
  throw std::invalid_argument(module.kind() + " has no config entry '" + key + "'");
}

Conv2dOptions conv2d_options(const ModuleArgs& a) {
  return {a.get<int64_t>("in_channels"), a.get<int64_t>("out_channels"),
          a.size2("kernel_size"),        a.size2("stride"),
          a.size2("padding"),            a.size2("dilation"),
          a.get<int64_t>("groups"),      a.get<int64_t>("bias") != 0};
}

at::Tensor float_bias(const Module& module) {
  for (const auto& slot : module.tensors()) {
    if (slot.name == "bias") return slot.tensor.detach().to(at::kFloat);
  }
  return at::Tensor();
}

// One entry of reshape's `sizes`: a constant (input < 0), or size `value` of input
// `input` floor-divided by `divisor`.
struct ReshapeSize {
  int64_t input = -1;
  int64_t value = 0;
  int64_t divisor = 1;
};

std::vector<ReshapeSize> parse_reshape_sizes(const Node& node) {
  std::vector<ReshapeSize> sizes;
  std::istringstream in(node.string_attr("sizes", ""));
  for (std::string entry; std::getline(in, entry, ',');) {
    ReshapeSize size;
    try {
      if (!entry.empty() && entry[0] == 'i') {
        size_t dot = entry.find('.'), slash = entry.find('/');
        size.input = std::stoll(entry.substr(1, dot - 1));
        size.value = std::stoll(entry.substr(dot + 1, slash - dot - 1));
        if (slash != std::string::npos) size.divisor = std::stoll(entry.substr(slash + 1));
      } else {
        size.value = std::stoll(entry);
      }
    } catch (const std::exception&) {
      throw GraphError("node '" + node.name + "': bad reshape size '" + entry + "'");
    }
    if (size.divisor < 1 || (size.input >= 0 && static_cast<size_t>(size.input) >= node.inputs.size())) {
      throw GraphError("node '" + node.name + "': bad reshape size '" + entry + "'");
    }
    sizes.push_back(size);
  }
  return sizes;
}

// Entries for a module and a function, filled in by the table below.
OpSpec layer(std::string name, Domain domain, Observation observation, ModuleFactory make,
             TorchScriptForm torchscript) {
  OpSpec spec;
  spec.name = name;
  spec.form = OpForm::kModule;
  spec.qconfig_kind = std::move(name);
  spec.domain = domain;
  spec.observation = observation;
  spec.make = std::move(make);
  spec.torchscript = std::move(torchscript);
  return spec;
}

OpSpec function(std::string name, std::string display_name, Domain domain,
                Observation observation, Function fn, TorchScriptForm torchscript) {
  OpSpec spec;
  spec.name = name;
  spec.form = OpForm::kFunction;
  spec.qconfig_kind = std::move(name);
  spec.display_name = std::move(display_name);
  spec.domain = domain;
  spec.observation = observation;
  spec.function = std::move(fn);
  spec.torchscript = std::move(torchscript);
  return spec;
}

// ---------------------------------------------------------------------------
// fp32 layers (modules.h).

std::string conv_torchscript(TorchScriptContext& c, const Conv2dOptions& o) {
  return "torch.conv2d(" + c.input(0) + ", " + c.tensor("weight") + ", " + c.tensor("bias") +
         ", " + ts(o.stride.vec()) + ", " + ts(o.padding.vec()) + ", " + ts(o.dilation.vec()) +
         ", " + ts(o.groups) + ")";
}

std::string linear_torchscript(TorchScriptContext& c) {
  return "torch.linear(" + c.input(0) + ", " + c.tensor("weight") + ", " + c.tensor("bias") + ")";
}

std::shared_ptr<Module> quantized_conv(const Module& fp32, const QConfig& qconfig,
                                       const OutputQParams& q) {
  const auto& conv = dynamic_cast<const Conv2d&>(fp32);
  return std::make_shared<QuantizedConv2d>(conv.options(), conv.fused_relu(),
                                           quantize_weight(conv.tensor("weight"), qconfig.weight),
                                           float_bias(conv), q.scale, q.zero_point);
}

std::shared_ptr<Module> quantized_linear(const Module& fp32, const QConfig& qconfig,
                                         const OutputQParams& q) {
  const auto& linear = dynamic_cast<const Linear&>(fp32);
  return std::make_shared<QuantizedLinear>(linear.fused_relu(),
                                           quantize_weight(linear.tensor("weight"), qconfig.weight),
                                           float_bias(linear), q.scale, q.zero_point);
}

void add_float_layers(std::vector<OpSpec>& ops) {
  for (bool relu : {false, true}) {
    OpSpec conv = layer(
        relu ? "ConvReLU2d" : "Conv2d", Domain::kFloat, Observation::kNewObserver,
        [relu](const ModuleArgs& a) {
          auto m = std::make_shared<Conv2d>(conv2d_options(a));
          if (relu) m->fuse_relu();
          return m;
        },
        [relu](TorchScriptContext& c) {
          const std::string conv = conv_torchscript(c, dynamic_cast<const Conv2d&>(c.module()).options());
          return relu ? "torch.relu(" + conv + ")" : conv;
        });
    conv.qconfig_kind = "Conv2d";
    conv.to_int8 = quantized_conv;
    conv.eager_observed = true;
    ops.push_back(conv);

    OpSpec linear = layer(
        relu ? "LinearReLU" : "Linear", Domain::kFloat, Observation::kNewObserver,
        [relu](const ModuleArgs& a) {
          auto m = std::make_shared<Linear>(a.get<int64_t>("in_features"),
                                            a.get<int64_t>("out_features"),
                                            a.get<int64_t>("bias") != 0);
          if (relu) m->fuse_relu();
          return m;
        },
        [relu](TorchScriptContext& c) {
          return relu ? "torch.relu(" + linear_torchscript(c) + ")" : linear_torchscript(c);
        });
    linear.qconfig_kind = "Linear";
    linear.to_int8 = quantized_linear;
    linear.eager_observed = true;
    ops.push_back(linear);
  }

  // Fusion folds a BatchNorm into the conv before it; one no conv takes in (DenseNet's)
  // is quantized on its own, with the relu after it as BNReLU2d, as PyTorch does.
  for (bool relu : {false, true}) {
    OpSpec bn = layer(
        relu ? "BNReLU2d" : "BatchNorm2d", Domain::kFloat, Observation::kNewObserver,
        [relu](const ModuleArgs& a) {
          auto m = std::make_shared<BatchNorm2d>(a.get<int64_t>("num_features"),
                                                 a.get<double>("eps"), a.get<double>("momentum"));
          if (relu) m->fuse_relu();
          return m;
        },
        [relu](TorchScriptContext& c) {
          const Module& m = c.module();
          std::string bn = "torch.batch_norm(" + c.input(0) + ", " + c.tensor("weight") + ", " +
                           c.tensor("bias") + ", " + c.tensor("running_mean") + ", " +
                           c.tensor("running_var") + ", False, " +
                           ts(config<double>(m, "momentum")) + ", " + ts(config<double>(m, "eps")) +
                           ", False)";
          return relu ? "torch.relu(" + bn + ")" : bn;
        });
    bn.qconfig_kind = "BatchNorm2d";
    bn.to_int8 = [](const Module& fp32, const QConfig&, const OutputQParams& q) {
      return std::make_shared<QuantizedBatchNorm2d>(dynamic_cast<const BatchNorm2d&>(fp32), q.scale,
                                                    q.zero_point);
    };
    bn.eager_observed = true;
    ops.push_back(bn);
  }

  ops.push_back(layer(
      "ReLU", Domain::kAny, Observation::kShareInput,
      [](const ModuleArgs&) { return std::make_shared<ReLU>(); },
      [](TorchScriptContext& c) { return "torch.relu(" + c.input(0) + ")"; }));
  OpSpec relu6 = layer(
      "ReLU6", Domain::kAny, Observation::kShareInput,
      [](const ModuleArgs&) { return std::make_shared<ReLU6>(); },
      [](TorchScriptContext& c) { return "torch.hardtanh(" + c.input(0) + ", 0.0, 6.0)"; });
  relu6.eager_observed = true;  // observed by PyTorch, though its qparams go unused
  ops.push_back(relu6);
  ops.push_back(layer(
      "MaxPool2d", Domain::kAny, Observation::kShareInput,
      [](const ModuleArgs& a) {
        return std::make_shared<MaxPool2d>(a.get<int64_t>("kernel_size"), a.get<int64_t>("stride"),
                                           a.get<int64_t>("padding"),
                                           a.get<int64_t>("ceil_mode", 0) != 0);
      },
      [](TorchScriptContext& c) {
        const Module& m = c.module();
        return "torch.max_pool2d(" + c.input(0) + ", " + ts_pair(config<int64_t>(m, "kernel_size")) +
               ", " + ts_pair(config<int64_t>(m, "stride")) + ", " +
               ts_pair(config<int64_t>(m, "padding")) + ", [1, 1], " +
               (config<int64_t>(m, "ceil_mode") ? "True" : "False") + ")";
      }));
  ops.push_back(layer(
      "AvgPool2d", Domain::kAny, Observation::kShareInput,
      [](const ModuleArgs& a) {
        return std::make_shared<AvgPool2d>(a.get<int64_t>("kernel_size"), a.get<int64_t>("stride"),
                                           a.get<int64_t>("padding"), a.get<int64_t>("ceil_mode") != 0,
                                           a.get<int64_t>("count_include_pad") != 0);
      },
      [](TorchScriptContext& c) {
        const Module& m = c.module();
        return "torch.avg_pool2d(" + c.input(0) + ", " + ts_pair(config<int64_t>(m, "kernel_size")) +
               ", " + ts_pair(config<int64_t>(m, "stride")) + ", " +
               ts_pair(config<int64_t>(m, "padding")) + ", " +
               (config<int64_t>(m, "ceil_mode") ? "True" : "False") + ", " +
               (config<int64_t>(m, "count_include_pad") ? "True" : "False") + ")";
      }));
  ops.push_back(layer(
      "AdaptiveAvgPool2d", Domain::kAny, Observation::kShareInput,
      [](const ModuleArgs& a) {
        return std::make_shared<AdaptiveAvgPool2d>(a.get<int64_t>("output_height"),
                                                   a.get<int64_t>("output_width"));
      },
      [](TorchScriptContext& c) {
        const Module& m = c.module();
        return "torch.adaptive_avg_pool2d(" + c.input(0) + ", " +
               ts(std::vector<int64_t>{config<int64_t>(m, "output_height"),
                                       config<int64_t>(m, "output_width")}) +
               ")";
      }));
  // The fp32 deployment form (quant/fp32_deploy.h): timed, never quantized.
  ops.push_back(layer(
      "OneDnnConv2d", Domain::kFloat, Observation::kNone,
      [](const ModuleArgs& a) {
        return std::make_shared<OneDnnConv2d>(conv2d_options(a), a.get<int64_t>("relu") != 0);
      },
      [](TorchScriptContext& c) {
        const auto& conv = dynamic_cast<const OneDnnConv2d&>(c.module());
        const std::string text = conv_torchscript(c, conv.options());
        return conv.relu() ? "torch.relu(" + text + ")" : text;
      }));
  // Eval-mode dropout is the identity, but PyTorch 1.13 still gives it its own observer.
  ops.push_back(layer(
      "Dropout", Domain::kAny, Observation::kNewObserver,
      [](const ModuleArgs& a) { return std::make_shared<Dropout>(a.get<double>("p")); },
      [](TorchScriptContext& c) {
        return "torch.dropout(" + c.input(0) + ", " + ts(config<double>(c.module(), "p")) + ", False)";
      }));
  // PyTorch 1.13 shares qparams through torch.flatten but not through nn.Flatten, which FX
  // runs in fp32 between a dequantize and a quantize (ConvNeXt's head).
  ops.push_back(layer(
      "Flatten", Domain::kFloat, Observation::kNone,
      [](const ModuleArgs& a) {
        return std::make_shared<Flatten>(a.get<int64_t>("start_dim"), a.get<int64_t>("end_dim"));
      },
      [](TorchScriptContext& c) {
        return "torch.flatten(" + c.input(0) + ", " + ts(config<int64_t>(c.module(), "start_dim")) + ", " +
               ts(config<int64_t>(c.module(), "end_dim")) + ")";
      }));
  ops.push_back(layer(
      "Identity", Domain::kAny, Observation::kShareInput,
      [](const ModuleArgs&) { return std::make_shared<Identity>(); },
      [](TorchScriptContext& c) { return c.input(0); }));

  OpSpec hardswish = layer(
      "Hardswish", Domain::kFloat, Observation::kNewObserver,
      [](const ModuleArgs&) { return std::make_shared<Elementwise>("Hardswish", +[](const at::Tensor& x) { return at::hardswish(x); }); },
      [](TorchScriptContext& c) { return "torch.hardswish(" + c.input(0) + ")"; });
  hardswish.to_int8 = [](const Module&, const QConfig&, const OutputQParams& q) {
    return std::make_shared<QuantizedHardswish>(q.scale, q.zero_point);
  };
  hardswish.eager_observed = true;
  ops.push_back(hardswish);
  // Their int8 kernels give quint8 at scale 1/256, zero point 0, as the fixed qparams say.
  for (auto [name, kernel, script] :
       {std::tuple{"Hardsigmoid", +[](const at::Tensor& x) { return at::hardsigmoid(x); }, "torch.hardsigmoid("},
        std::tuple{"Sigmoid", +[](const at::Tensor& x) { return at::sigmoid(x); }, "torch.sigmoid("}}) {
    OpSpec spec = layer(
        name, Domain::kAny, Observation::kFixedQParams,
        [name = std::string(name), kernel = kernel](const ModuleArgs&) {
          return std::make_shared<Elementwise>(name, kernel);
        },
        [script = std::string(script)](TorchScriptContext& c) { return script + c.input(0) + ")"; });
    spec.fixed_scale = 1.0 / 256;
    ops.push_back(spec);
  }
  OpSpec tanh = layer(
      "Tanh", Domain::kAny, Observation::kFixedQParams,
      [](const ModuleArgs&) {
        return std::make_shared<Elementwise>("Tanh", +[](const at::Tensor& x) { return at::tanh(x); });
      },
      [](TorchScriptContext& c) { return "torch.tanh(" + c.input(0) + ")"; });
  tanh.fixed_scale = 2.0 / 256;
  tanh.fixed_zero_point = 128;
  ops.push_back(tanh);
  // PyTorch 1.13 has no int8 SiLU or GELU: they run in fp32 between a dequantize and a
  // quantize.
  ops.push_back(layer(
      "SiLU", Domain::kFloat, Observation::kNone,
      [](const ModuleArgs&) { return std::make_shared<Elementwise>("SiLU", +[](const at::Tensor& x) { return at::silu(x); }); },
      [](TorchScriptContext& c) { return "torch.silu(" + c.input(0) + ")"; }));
  ops.push_back(layer(
      "GELU", Domain::kFloat, Observation::kNone,
      [](const ModuleArgs&) { return std::make_shared<Elementwise>("GELU", +[](const at::Tensor& x) { return at::gelu(x); }); },
      [](TorchScriptContext& c) { return "torch.gelu(" + c.input(0) + ")"; }));
}

// ---------------------------------------------------------------------------
// Eager mode's stubs and FloatFunctional (stubs.h), and the int8 layers
// (quantized_modules.h).

std::string functional_torchscript(TorchScriptContext& c, const std::string& method,
                                   int64_t dim, const std::string& qparams) {
  if (!qparams.empty()) {
    if (method == "cat") return "quantized.cat(" + c.input_list() + ", " + ts(dim) + ", " + qparams + ")";
    return "quantized." + method + "(" + c.input(0) + ", " + c.input(1) + ", " + qparams + ")";
  }
  if (method == "cat") return "torch.cat(" + c.input_list() + ", " + ts(dim) + ")";
  if (method == "mul") return "torch.mul(" + c.input(0) + ", " + c.input(1) + ")";
  std::string sum = "torch.add(" + c.input(0) + ", " + c.input(1) + ")";
  return method == "add_relu" ? "torch.relu(" + sum + ")" : sum;
}

void add_eager_and_int8_layers(std::vector<OpSpec>& ops) {
  OpSpec quant_stub = layer(
      "QuantStub", Domain::kStub, Observation::kNone,
      [](const ModuleArgs&) { return std::make_shared<QuantStub>(); },
      [](TorchScriptContext& c) { return c.input(0); });
  quant_stub.to_int8 = [](const Module&, const QConfig&, const OutputQParams& q) {
    return std::make_shared<Quantize>(q.scale, q.zero_point, q.dtype);
  };
  quant_stub.eager_observed = true;
  ops.push_back(quant_stub);

  OpSpec dequant_stub = layer(
      "DeQuantStub", Domain::kStub, Observation::kNone,
      [](const ModuleArgs&) { return std::make_shared<DeQuantStub>(); },
      [](TorchScriptContext& c) { return c.input(0); });
  dequant_stub.to_int8 = [](const Module&, const QConfig&, const OutputQParams&) {
    return std::make_shared<DeQuantize>();
  };
  ops.push_back(dequant_stub);

  OpSpec float_functional = layer(
      "FloatFunctional", Domain::kFloat, Observation::kNone,
      [](const ModuleArgs& a) {
        return std::make_shared<FloatFunctional>(a.get<std::string>("method"), a.get<int64_t>("dim"));
      },
      [](TorchScriptContext& c) {
        return functional_torchscript(c, config<std::string>(c.module(), "method"),
                                      config<int64_t>(c.module(), "dim"), "");
      });
  float_functional.to_int8 = [](const Module& fp32, const QConfig&, const OutputQParams& q) {
    const auto& f = dynamic_cast<const FloatFunctional&>(fp32);
    return std::make_shared<QFunctional>(f.method(), f.dim(), q.scale, q.zero_point);
  };
  float_functional.eager_observed = true;
  ops.push_back(float_functional);

  for (bool relu : {false, true}) {
    ops.push_back(layer(
        relu ? "QuantizedConvReLU2d" : "QuantizedConv2d", Domain::kInt8, Observation::kNone,
        [relu](const ModuleArgs& a) {
          return std::make_shared<QuantizedConv2d>(conv2d_options(a), relu, a.tensor("weight"),
                                                   a.tensor("bias"), a.get<double>("scale"),
                                                   a.get<int64_t>("zero_point"));
        },
        [relu](TorchScriptContext& c) {
          const auto& conv = dynamic_cast<const QuantizedConv2d&>(c.module());
          return std::string(relu ? "quantized.conv2d_relu(" : "quantized.conv2d(") + c.input(0) +
                 ", " + c.object("packed_params", conv.packed()) + ", " + ts(conv.scale()) +
                 ", " + ts(conv.zero_point()) + ")";
        }));
    ops.push_back(layer(
        relu ? "QuantizedLinearReLU" : "QuantizedLinear", Domain::kInt8, Observation::kNone,
        [relu](const ModuleArgs& a) {
          return std::make_shared<QuantizedLinear>(relu, a.tensor("weight"), a.tensor("bias"),
                                                   a.get<double>("scale"),
                                                   a.get<int64_t>("zero_point"));
        },
        [relu](TorchScriptContext& c) {
          const auto& linear = dynamic_cast<const QuantizedLinear&>(c.module());
          return std::string(relu ? "quantized.linear_relu(" : "quantized.linear(") + c.input(0) +
                 ", " + c.object("packed_params", linear.packed()) + ", " + ts(linear.scale()) +
                 ", " + ts(linear.zero_point()) + ")";
        }));
  }
  for (bool relu : {false, true}) {
    ops.push_back(layer(
        relu ? "QuantizedBNReLU2d" : "QuantizedBatchNorm2d", Domain::kInt8, Observation::kNone,
        // A BatchNorm2d of the stored config, quantized; its tensors are filled in afterwards.
        [relu](const ModuleArgs& a) {
          BatchNorm2d bn(a.get<int64_t>("num_features"), a.get<double>("eps"), a.get<double>("momentum"));
          if (relu) bn.fuse_relu();
          return std::make_shared<QuantizedBatchNorm2d>(bn, a.get<double>("scale"),
                                                        a.get<int64_t>("zero_point"));
        },
        [relu](TorchScriptContext& c) {
          const Module& m = c.module();
          return std::string(relu ? "quantized.batch_norm2d_relu(" : "quantized.batch_norm2d(") +
                 c.input(0) + ", " + c.tensor("weight") + ", " + c.tensor("bias") + ", " +
                 c.tensor("running_mean") + ", " + c.tensor("running_var") + ", " +
                 ts(config<double>(m, "eps")) + ", " + ts(config<double>(m, "scale")) + ", " +
                 ts(config<int64_t>(m, "zero_point")) + ")";
        }));
  }
  ops.push_back(layer(
      "QuantizedHardswish", Domain::kInt8, Observation::kNone,
      [](const ModuleArgs& a) {
        return std::make_shared<QuantizedHardswish>(a.get<double>("scale"), a.get<int64_t>("zero_point"));
      },
      [](TorchScriptContext& c) {
        const Module& m = c.module();
        return "quantized.hardswish(" + c.input(0) + ", " + ts(config<double>(m, "scale")) + ", " +
               ts(config<int64_t>(m, "zero_point")) + ")";
      }));
  ops.push_back(layer(
      "Quantize", Domain::kQuantize, Observation::kNone,
      [](const ModuleArgs& a) {
        return std::make_shared<Quantize>(a.get<double>("scale"), a.get<int64_t>("zero_point"),
                                          parse_qdtype(a.get<std::string>("dtype")));
      },
      [](TorchScriptContext& c) {
        const Module& m = c.module();
        return "torch.quantize_per_tensor(" + c.input(0) + ", " + ts(config<double>(m, "scale")) +
               ", " + ts(config<int64_t>(m, "zero_point")) + ", " +
               ts_dtype(parse_qdtype(config<std::string>(m, "dtype"))) + ")";
      }));
  ops.push_back(layer(
      "DeQuantize", Domain::kDequantize, Observation::kNone,
      [](const ModuleArgs&) { return std::make_shared<DeQuantize>(); },
      [](TorchScriptContext& c) { return "torch.dequantize(" + c.input(0) + ")"; }));
  ops.push_back(layer(
      "QFunctional", Domain::kInt8, Observation::kNone,
      [](const ModuleArgs& a) {
        return std::make_shared<QFunctional>(a.get<std::string>("method"), a.get<int64_t>("dim"),
                                             a.get<double>("scale"), a.get<int64_t>("zero_point"));
      },
      [](TorchScriptContext& c) {
        const Module& m = c.module();
        return functional_torchscript(
            c, config<std::string>(m, "method"), config<int64_t>(m, "dim"),
            ts(config<double>(m, "scale")) + ", " + ts(config<int64_t>(m, "zero_point")));
      }));
}

// ---------------------------------------------------------------------------
// Functions.

void add_functions(std::vector<OpSpec>& ops) {
  OpSpec add = function(
      "add", "operator.add", Domain::kFloat, Observation::kNewObserver,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 2);
        if (can_overwrite(in[0]) && in[0].sizes() == in[1].sizes() &&
            in[0].scalar_type() == in[1].scalar_type()) {
          return in[0].add_(in[1]);
        }
        return at::add(in[0], in[1]);
      },
      [](TorchScriptContext& c) { return "torch.add(" + c.input(0) + ", " + c.input(1) + ")"; });
  add.int8_function = "quantized_add";
  ops.push_back(add);

  OpSpec mul = function(
      "mul", "operator.mul", Domain::kFloat, Observation::kNewObserver,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 2);
        return at::mul(in[0], in[1]);
      },
      [](TorchScriptContext& c) { return "torch.mul(" + c.input(0) + ", " + c.input(1) + ")"; });
  mul.int8_function = "quantized_mul";
  ops.push_back(mul);

  // PyTorch 1.13 makes all of cat's inputs and its output share the first input's observer.
  OpSpec cat = function(
      "cat", "torch.cat", Domain::kFloat, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) { return at::cat(in, n.int_attr("dim", 0)); },
      [](TorchScriptContext& c) {
        return "torch.cat(" + c.input_list() + ", " + ts(c.node().int_attr("dim", 0)) + ")";
      });
  cat.int8_function = "quantized_cat";
  ops.push_back(cat);

  ops.push_back(function(
      "relu", "torch.nn.functional.relu", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return can_overwrite(in[0]) ? in[0].relu_() : at::relu(in[0]);
      },
      [](TorchScriptContext& c) { return "torch.relu(" + c.input(0) + ")"; }));
  ops.push_back(function(
      "flatten", "torch.flatten", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return at::flatten(in[0], n.int_attr("start_dim", 0), n.int_attr("end_dim", -1));
      },
      [](TorchScriptContext& c) {
        return "torch.flatten(" + c.input(0) + ", " + ts(c.node().int_attr("start_dim", 0)) + ", " +
               ts(c.node().int_attr("end_dim", -1)) + ")";
      }));
  // The method x.flatten(...): PyTorch 1.13's backend config lists the function among the ops
  // that share their input's qparams but not the method, which FX then runs in fp32 between
  // a dequantize and a quantize (RegNet's head).
  ops.push_back(function(
      "Tensor.flatten", "Tensor.flatten", Domain::kFloat, Observation::kNone,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return at::flatten(in[0], n.int_attr("start_dim", 0), n.int_attr("end_dim", -1));
      },
      [](TorchScriptContext& c) {
        return c.input(0) + ".flatten(" + ts(c.node().int_attr("start_dim", 0)) + ", " +
               ts(c.node().int_attr("end_dim", -1)) + ")";
      }));
  ops.push_back(function(
      "adaptive_avg_pool2d", "torch.nn.functional.adaptive_avg_pool2d", Domain::kAny,
      Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return at::adaptive_avg_pool2d(in[0], n.ints_attr("output_size", {1, 1}));
      },
      [](TorchScriptContext& c) {
        return "torch.adaptive_avg_pool2d(" + c.input(0) + ", " +
               ts(c.node().ints_attr("output_size", {1, 1})) + ")";
      }));
  // Functional pooling and eval-mode dropout, as user code calls them (F.max_pool2d, ...).
  auto bool_text = [](int64_t v) { return std::string(v ? "True" : "False"); };
  ops.push_back(function(
      "max_pool2d", "torch.nn.functional.max_pool2d", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return at::max_pool2d(in[0], n.ints_attr("kernel_size", {}), n.ints_attr("stride", {}),
                              n.ints_attr("padding", {0, 0}), n.ints_attr("dilation", {1, 1}),
                              n.int_attr("ceil_mode", 0) != 0);
      },
      [bool_text](TorchScriptContext& c) {
        const Node& n = c.node();
        return "torch.max_pool2d(" + c.input(0) + ", " + ts(n.ints_attr("kernel_size", {})) + ", " +
               ts(n.ints_attr("stride", {})) + ", " + ts(n.ints_attr("padding", {0, 0})) + ", " +
               ts(n.ints_attr("dilation", {1, 1})) + ", " + bool_text(n.int_attr("ceil_mode", 0)) + ")";
      }));
  ops.push_back(function(
      "avg_pool2d", "torch.nn.functional.avg_pool2d", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return at::avg_pool2d(in[0], n.ints_attr("kernel_size", {}), n.ints_attr("stride", {}),
                              n.ints_attr("padding", {0, 0}), n.int_attr("ceil_mode", 0) != 0,
                              n.int_attr("count_include_pad", 1) != 0);
      },
      [bool_text](TorchScriptContext& c) {
        const Node& n = c.node();
        return "torch.avg_pool2d(" + c.input(0) + ", " + ts(n.ints_attr("kernel_size", {})) + ", " +
               ts(n.ints_attr("stride", {})) + ", " + ts(n.ints_attr("padding", {0, 0})) + ", " +
               bool_text(n.int_attr("ceil_mode", 0)) + ", " +
               bool_text(n.int_attr("count_include_pad", 1)) + ")";
      }));
  // Like nn.Dropout: the identity in eval mode, with an observer of its own.
  ops.push_back(function(
      "dropout", "torch.nn.functional.dropout", Domain::kAny, Observation::kNewObserver,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return in[0];
      },
      [](TorchScriptContext& c) { return c.input(0); }));
  // torchvision.ops.stochastic_depth in eval mode: the identity. PyTorch 1.13 has no int8
  // form, so FX runs it in fp32 between a dequantize and a quantize.
  ops.push_back(function(
      "stochastic_depth", "torchvision.ops.stochastic_depth.stochastic_depth", Domain::kFloat,
      Observation::kNone,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return in[0];
      },
      [](TorchScriptContext& c) { return c.input(0); }));
  ops.push_back(function(
      "mean", "mean", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return at::mean(in[0], n.ints_attr("dim", {}), n.int_attr("keepdim", 0) != 0);
      },
      [](TorchScriptContext& c) {
        return "torch.mean(" + c.input(0) + ", " + ts(c.node().ints_attr("dim", {})) + ", " +
               (c.node().int_attr("keepdim", 0) ? "True" : "False") + ")";
      }));
  // x.view / x.reshape to `sizes`: entries are integers (-1 as in PyTorch) or "i<k>.<d>"
  // (size d of input k), optionally "/<n>" (floor-divided by n); input 0 is the tensor
  // reshaped, the others are read only for their sizes (ShuffleNet's channel shuffle).
  OpSpec reshape = function(
      "reshape", "torch.Tensor.reshape", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        std::vector<int64_t> sizes;
        for (const ReshapeSize& size : parse_reshape_sizes(n)) {
          sizes.push_back(size.input < 0 ? size.value
                                         : in.at(static_cast<size_t>(size.input)).size(size.value) / size.divisor);
        }
        return in.at(0).reshape(sizes);
      },
      [](TorchScriptContext& c) {
        std::string list;
        for (const ReshapeSize& size : parse_reshape_sizes(c.node())) {
          if (!list.empty()) list += ", ";
          list += size.input < 0 ? ts(size.value)
                                 : c.input(static_cast<size_t>(size.input)) + ".size(" + ts(size.value) + ")";
          if (size.divisor != 1) list += " // " + ts(size.divisor);
        }
        return c.input(0) + ".reshape([" + list + "])";
      });
  reshape.data_inputs = 1;
  ops.push_back(reshape);
  ops.push_back(function(
      "transpose", "torch.transpose", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return in[0].transpose(n.int_attr("dim0", 0), n.int_attr("dim1", 1));
      },
      [](TorchScriptContext& c) {
        return "torch.transpose(" + c.input(0) + ", " + ts(c.node().int_attr("dim0", 0)) + ", " +
               ts(c.node().int_attr("dim1", 1)) + ")";
      }));
  // One piece of x.chunk(chunks, dim): the importer makes one node per piece.
  ops.push_back(function(
      "chunk", "torch.chunk", Domain::kAny, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return in[0].chunk(n.int_attr("chunks", 1), n.int_attr("dim", 0)).at(
            static_cast<size_t>(n.int_attr("index", 0)));
      },
      [](TorchScriptContext& c) {
        const Node& n = c.node();
        return "torch.chunk(" + c.input(0) + ", " + ts(n.int_attr("chunks", 1)) + ", " +
               ts(n.int_attr("dim", 0)) + ")[" + ts(n.int_attr("index", 0)) + "]";
      }));
  for (auto [name, kernel] : {std::pair{"sigmoid", +[](const at::Tensor& x) { return at::sigmoid(x); }},
                             std::pair{"hardsigmoid", +[](const at::Tensor& x) { return at::hardsigmoid(x); }}}) {
    OpSpec spec = function(
        name, std::string(name == std::string("sigmoid") ? "torch." : "torch.nn.functional.") + name,
        Domain::kAny, Observation::kFixedQParams,
        [kernel = kernel](const std::vector<at::Tensor>& in, const Node& n) {
          expect_inputs(n, in, 1);
          return kernel(in[0]);
        },
        [name = std::string(name)](TorchScriptContext& c) { return "torch." + name + "(" + c.input(0) + ")"; });
    spec.fixed_scale = 1.0 / 256;
    ops.push_back(spec);
  }
  // tanh's int8 kernel gives quint8 at scale 2/256, zero point 128: [-1, 1].
  OpSpec tanh = function(
      "tanh", "torch.tanh", Domain::kAny, Observation::kFixedQParams,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return at::tanh(in[0]);
      },
      [](TorchScriptContext& c) { return "torch.tanh(" + c.input(0) + ")"; });
  tanh.fixed_scale = 2.0 / 256;
  tanh.fixed_zero_point = 128;
  ops.push_back(tanh);
  ops.push_back(function(
      "contiguous", "torch.Tensor.contiguous", Domain::kLayout, Observation::kShareInput,
      [](const std::vector<at::Tensor>& in, const Node& n) {
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
      [](TorchScriptContext& c) {
        // MemoryFormat codes: 2 is channels-last.
        const std::string x = c.input(0);
        return c.node().string_attr("memory_format", "contiguous_format") == "channels_last"
                   ? x + ".contiguous(memory_format=2) if " + x + ".dim() == 4 else " + x
                   : x + ".contiguous()";
      }));

  // The quantized domain: conversions at its borders and the kernels that need output
  // qparams (the others run on quantized tensors directly).
  ops.push_back(function(
      "quantize_per_tensor", "torch.quantize_per_tensor", Domain::kQuantize, Observation::kNone,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        at::ScalarType dtype = n.string_attr("dtype", "quint8") == "qint8" ? at::kQInt8 : at::kQUInt8;
        return fast_quantize_per_tensor(in[0], n.float_attr("scale", 1.0),
                                        n.int_attr("zero_point", 0), dtype);
      },
      [](TorchScriptContext& c) {
        const Node& n = c.node();
        return "torch.quantize_per_tensor(" + c.input(0) + ", " + ts(n.float_attr("scale", 1.0)) +
               ", " + ts(n.int_attr("zero_point", 0)) + ", " +
               ts_dtype(parse_qdtype(n.string_attr("dtype", "quint8"))) + ")";
      }));
  ops.push_back(function(
      "dequantize", "dequantize", Domain::kDequantize, Observation::kNone,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        expect_inputs(n, in, 1);
        return in[0].dequantize();
      },
      [](TorchScriptContext& c) { return "torch.dequantize(" + c.input(0) + ")"; }));
  auto qparams = [](const Node& n) {
    return ts(n.float_attr("scale", 1.0)) + ", " + ts(n.int_attr("zero_point", 0));
  };
  for (const char* name : {"add", "add_relu", "mul"}) {
    ops.push_back(function(
        std::string("quantized_") + name, std::string("torch.ops.quantized.") + name,
        Domain::kInt8, Observation::kNone,
        [name](const std::vector<at::Tensor>& in, const Node& n) {
          expect_inputs(n, in, 2);
          return call_quantized_op(std::string("quantized::") + name, "",
                                   {in[0], in[1], n.float_attr("scale", 1.0),
                                    n.int_attr("zero_point", 0)})
              .toTensor();
        },
        [name, qparams](TorchScriptContext& c) {
          return std::string("quantized.") + name + "(" + c.input(0) + ", " + c.input(1) + ", " +
                 qparams(c.node()) + ")";
        }));
  }
  ops.push_back(function(
      "quantized_cat", "torch.ops.quantized.cat", Domain::kInt8, Observation::kNone,
      [](const std::vector<at::Tensor>& in, const Node& n) {
        return call_quantized_op("quantized::cat", "",
                                 {c10::List<at::Tensor>(in), n.int_attr("dim", 0),
                                  c10::optional<double>(n.float_attr("scale", 1.0)),
                                  c10::optional<int64_t>(n.int_attr("zero_point", 0))})
            .toTensor();
      },
      [qparams](TorchScriptContext& c) {
        return "quantized.cat(" + c.input_list() + ", " + ts(c.node().int_attr("dim", 0)) + ", " +
               qparams(c.node()) + ")";
      }));
}

struct Registry {
  std::vector<OpSpec> ops;
  std::map<std::string, size_t> index;
};

const Registry& registry() {
  static const Registry r = [] {
    Registry made;
    add_float_layers(made.ops);
    add_eager_and_int8_layers(made.ops);
    add_functions(made.ops);
    for (size_t i = 0; i < made.ops.size(); ++i) made.index.emplace(made.ops[i].name, i);
    return made;
  }();
  return r;
}

}  // namespace

const std::vector<OpSpec>& all_ops() { return registry().ops; }

const OpSpec* find_op(const std::string& name) {
  auto it = registry().index.find(name);
  return it == registry().index.end() ? nullptr : &registry().ops[it->second];
}

const OpSpec& op(const std::string& name) {
  const OpSpec* spec = find_op(name);
  if (!spec) throw GraphError("unknown op '" + name + "'");
  return *spec;
}

bool runs_on_int8_as_is(const OpSpec& spec) {
  return spec.domain == Domain::kAny || spec.domain == Domain::kLayout;
}

std::vector<std::string> data_inputs(const OpSpec& spec, const Node& node) {
  if (spec.data_inputs == 0 || spec.data_inputs >= node.inputs.size()) return node.inputs;
  return {node.inputs.begin(), node.inputs.begin() + static_cast<std::ptrdiff_t>(spec.data_inputs)};
}

const OpSpec* find_op_of(const GraphModule& gm, const Node& node) {
  if (node.op == NodeOp::kCallModule) return find_op(gm.module(node.target).kind());
  if (node.op == NodeOp::kCallFunction) return find_op(node.target);
  return nullptr;
}

const OpSpec& op_of(const GraphModule& gm, const Node& node) {
  if (node.op == NodeOp::kCallModule) return op(gm.module(node.target).kind());
  if (node.op == NodeOp::kCallFunction) return op(node.target);
  throw GraphError("node '" + node.name + "' (" + to_string(node.op) + ") runs no op");
}

}  // namespace qb
