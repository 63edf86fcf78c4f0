#include "quant/qconfig_mapping.h"

#include "tests/catch.h"

#include "quant/qconfig.h"

namespace qb {
namespace {

ObserverSpec observer(const std::string& kind, QDtype dtype, QScheme qscheme, bool reduce_range) {
  ObserverSpec spec;
  spec.kind = kind;
  spec.dtype = dtype;
  spec.qscheme = qscheme;
  spec.reduce_range = reduce_range;
  return spec;
}

// Distinct qconfigs to tell the resolution results apart.
const QConfig kFbgemm = default_qconfig("fbgemm");
const QConfig kQnnpack = default_qconfig("qnnpack");
const QConfig kOnednn = default_qconfig("onednn");
const QConfig kMinMax{observer("minmax", QDtype::kQUInt8, QScheme::kPerTensorAffine, false),
                      observer("minmax", QDtype::kQInt8, QScheme::kPerTensorSymmetric, false)};

// Catch2 v2 prints std::optional as {?}; this shows the qconfig when a check fails.
std::string show(const std::optional<QConfig>& qconfig) {
  return qconfig ? to_string(*qconfig) : "none";
}

TEST_CASE("default_qconfig matches get_default_qconfig of PyTorch 1.13") {
  // Expected values printed by python3-torch 1.13 (/usr/bin/python3):
  //   q = torch.ao.quantization.get_default_qconfig(engine); q.activation(), q.weight()
  // quant_min/quant_max are left to the observer there too (with_args does not set them).
  const ObserverSpec histogram_reduced =
      observer("histogram", QDtype::kQUInt8, QScheme::kPerTensorAffine, true);
  const ObserverSpec histogram_full =
      observer("histogram", QDtype::kQUInt8, QScheme::kPerTensorAffine, false);
  const ObserverSpec per_channel_weight =
      observer("per_channel_minmax", QDtype::kQInt8, QScheme::kPerChannelSymmetric, false);
  const ObserverSpec per_tensor_weight =
      observer("minmax", QDtype::kQInt8, QScheme::kPerTensorSymmetric, false);

  CHECK(default_qconfig("fbgemm") == QConfig{histogram_reduced, per_channel_weight});
  CHECK(default_qconfig("x86") == QConfig{histogram_reduced, per_channel_weight});
  CHECK(default_qconfig("qnnpack") == QConfig{histogram_full, per_tensor_weight});
  CHECK(default_qconfig("onednn") == QConfig{histogram_full, per_channel_weight});
  for (const auto& engine : known_engines()) {
    CHECK_FALSE(default_qconfig(engine).activation.quant_min.has_value());
    CHECK(default_qconfig(engine).weight.ch_axis == 0);
  }
  CHECK_THROWS_MATCHES(default_qconfig("fbgemmm"), std::invalid_argument,
                       Catch::Message("unknown quantization engine 'fbgemmm' "
                                      "(known: fbgemm, x86, qnnpack, onednn)"));
}

TEST_CASE("qconfig compares field by field and prints its observers") {
  QConfig changed = kFbgemm;
  changed.activation.bins = 1024;
  CHECK(changed != kFbgemm);
  CHECK(to_string(kQnnpack) ==
        "QConfig(activation={ observer = 'histogram', dtype = 'quint8', qscheme = "
        "'per_tensor_affine', reduce_range = false }, weight={ observer = 'minmax', dtype = "
        "'qint8', qscheme = 'per_tensor_symmetric', reduce_range = false })");
  CHECK_THAT(to_string(changed), Catch::Contains("reduce_range = true, bins = 1024 }"));
}

TEST_CASE("priority: global < object_type < module_name_regex < module_name") {
  QConfigMapping mapping;
  mapping.set_global(kFbgemm)
      .set_object_type("Conv2d", kQnnpack)
      .set_module_name_regex("layer1\\.", kOnednn)
      .set_module_name("layer1.0.conv2", kMinMax);
  CHECK(show(mapping.qconfig_for("fc", "Linear")) == show(kFbgemm));
  CHECK(show(mapping.qconfig_for("conv1", "Conv2d")) == show(kQnnpack));
  CHECK(show(mapping.qconfig_for("layer1.0.conv1", "Conv2d")) == show(kOnednn));
  CHECK(show(mapping.qconfig_for("layer1.0.conv2", "Conv2d")) == show(kMinMax));
  // The order of the calls does not matter, only the kind of entry.
  QConfigMapping reversed;
  reversed.set_module_name("layer1.0.conv2", kMinMax)
      .set_module_name_regex("layer1\\.", kOnednn)
      .set_object_type("Conv2d", kQnnpack)
      .set_global(kFbgemm);
  for (const char* path : {"fc", "conv1", "layer1.0.conv1", "layer1.0.conv2"}) {
    CHECK(show(reversed.qconfig_for(path, "Conv2d")) == show(mapping.qconfig_for(path, "Conv2d")));
  }
}

TEST_CASE("setting a key again replaces its qconfig but keeps its place") {
  QConfigMapping mapping;
  mapping.set_object_type("Linear", kFbgemm)
      .set_object_type("Linear", kQnnpack)
      .set_module_name_regex("layer", kFbgemm)
      .set_module_name_regex("layer1", kOnednn)
      .set_module_name_regex("layer", kMinMax)
      .set_module_name("fc", kFbgemm)
      .set_module_name("fc", std::nullopt);
  CHECK(show(mapping.qconfig_for("head", "Linear")) == show(kQnnpack));
  // "layer" was registered first, so it still wins over "layer1", now with its new qconfig.
  CHECK(show(mapping.qconfig_for("layer1.0", "Conv2d")) == show(kMinMax));
  CHECK(mapping.module_name_regexes().front().first == "layer");
  CHECK(show(mapping.qconfig_for("fc", "Linear")) == "none");
  CHECK(mapping.object_types().size() == 1);
}

TEST_CASE("regexes: first match wins, anchored at the start only as re.match") {
  QConfigMapping mapping;
  mapping.set_global(kFbgemm)
      .set_module_name_regex("layer1\\.0\\.conv[0-9]+", kQnnpack)
      .set_module_name_regex("layer1\\..*", kOnednn)
      .set_module_name_regex("conv", kMinMax);
  CHECK(show(mapping.qconfig_for("layer1.0.conv1", "Conv2d")) == show(kQnnpack));
  CHECK(show(mapping.qconfig_for("layer1.1.conv1", "Conv2d")) == show(kOnednn));
  // re.match needs no full match: "conv" matches "conv1" and "conv.bn" ...
  CHECK(show(mapping.qconfig_for("conv1", "Conv2d")) == show(kMinMax));
  CHECK(show(mapping.qconfig_for("conv.bn", "BatchNorm2d")) == show(kMinMax));
  // ... but it is anchored at the start: "features.conv" is not matched by "conv".
  CHECK(show(mapping.qconfig_for("features.conv", "Conv2d")) == show(kFbgemm));
  // "$" asks for a full match explicitly.
  mapping.set_module_name_regex("fc$", kQnnpack);
  CHECK(show(mapping.qconfig_for("fc", "Linear")) == show(kQnnpack));
  CHECK(show(mapping.qconfig_for("fc2", "Linear")) == show(kFbgemm));
}

TEST_CASE("module_name applies to submodules through their parents' names") {
  QConfigMapping mapping;
  mapping.set_global(kFbgemm)
      .set_module_name("layer1", std::nullopt)
      .set_module_name("layer1.0", kQnnpack)
      .set_module_name_regex("layer1\\.0\\.conv1", kOnednn);
  CHECK(show(mapping.qconfig_for("layer1", "Sequential")) == "none");
  CHECK(show(mapping.qconfig_for("layer1.1.conv1", "Conv2d")) == "none");
  // The nearest enclosing name wins, and any module_name beats a regex.
  CHECK(show(mapping.qconfig_for("layer1.0.conv1", "Conv2d")) == show(kQnnpack));
  // Parents are whole path components: "layer1" is not a parent of "layer10".
  CHECK(show(mapping.qconfig_for("layer10.conv", "Conv2d")) == show(kFbgemm));
  CHECK_THROWS_AS(mapping.set_module_name("", kFbgemm), std::invalid_argument);
}

TEST_CASE("none entries, and functions resolved at the top-level path \"\"") {
  QConfigMapping mapping;
  mapping.set_global(kFbgemm).set_object_type("add", std::nullopt);
  CHECK(show(mapping.qconfig_for("", "add")) == "none");
  CHECK(show(mapping.qconfig_for("", "cat")) == show(kFbgemm));
  CHECK(show(QConfigMapping().qconfig_for("conv", "Conv2d")) == "none");
  // Regexes are tried on "" as re.match does; ".*" matches it.
  mapping.set_module_name_regex(".*", kQnnpack);
  CHECK(show(mapping.qconfig_for("", "add")) == show(kQnnpack));
}

TEST_CASE("object types accept PyTorch's spellings") {
  CHECK(canonical_object_type("torch.nn.Conv2d") == "Conv2d");
  CHECK(canonical_object_type("nn.Conv2d") == "Conv2d");
  CHECK(canonical_object_type("torch.nn.intrinsic.ConvReLU2d") == "ConvReLU2d");
  CHECK(canonical_object_type("operator.add") == "add");
  CHECK(canonical_object_type("torch.add") == "add");
  CHECK(canonical_object_type("torch.nn.functional.relu") == "relu");
  CHECK(canonical_object_type("F.relu") == "relu");
  CHECK(canonical_object_type("torch.flatten") == "flatten");
  CHECK(canonical_object_type("torch.cat") == "cat");
  CHECK(canonical_object_type("Linear") == "Linear");
  CHECK_THROWS_MATCHES(canonical_object_type("torch.ao.nn.quantized.Linear"),
                       std::invalid_argument,
                       Catch::Message("unknown object type 'torch.ao.nn.quantized.Linear': "
                                      "expected a module kind or function such as Conv2d, add, "
                                      "torch.nn.Linear or operator.add"));

  QConfigMapping mapping;
  mapping.set_object_type("torch.nn.Linear", std::nullopt).set_object_type("operator.add", kQnnpack);
  CHECK(show(mapping.qconfig_for("fc", "Linear")) == "none");
  CHECK(show(mapping.qconfig_for("", "add")) == show(kQnnpack));
  CHECK(mapping.object_types().front().first == "Linear");
}

TEST_CASE("the documented TOML schema parses") {
  QConfigMapping mapping = parse_qconfig_mapping(R"(
[global]
qconfig = "fbgemm"

[[object_type]]
type = "torch.nn.Linear"
qconfig = "none"

[[module_name_regex]]
regex = 'layer1\..*'
qconfig.activation = { observer = "histogram", dtype = "quint8", qscheme = "per_tensor_affine" }
qconfig.weight = { observer = "minmax", dtype = "qint8", qscheme = "per_tensor_symmetric" }

[[module_name]]
name = "fc"
qconfig = "qnnpack"
)",
                                                 "schema.toml");
  QConfig inline_qconfig{observer("histogram", QDtype::kQUInt8, QScheme::kPerTensorAffine, false),
                         observer("minmax", QDtype::kQInt8, QScheme::kPerTensorSymmetric, false)};
  QConfigMapping expected;
  expected.set_global(kFbgemm)
      .set_object_type("Linear", std::nullopt)
      .set_module_name_regex("layer1\\..*", inline_qconfig)
      .set_module_name("fc", kQnnpack);
  CHECK(mapping == expected);
  CHECK(parse_qconfig_mapping("", "empty.toml") == QConfigMapping());
  // Integers are fine where a float is expected.
  QConfigMapping percentile = parse_qconfig_mapping(
      "[global]\n"
      "qconfig.activation = { observer = 'percentile', dtype = 'quint8', qscheme = "
      "'per_tensor_affine', percentile = 100 }\n"
      "qconfig.weight = { observer = 'minmax', dtype = 'qint8', qscheme = 'per_tensor_symmetric' }\n",
      "percentile.toml");
  CHECK(percentile.global()->activation.percentile == 100.0);
}

TEST_CASE("to_toml prints a mapping that parses back equal") {
  ObserverSpec every_field = observer("moving_average_per_channel_minmax", QDtype::kQInt8,
                                      QScheme::kPerChannelAffine, true);
  every_field.quant_min = -127;
  every_field.quant_max = 127;
  every_field.eps = 1e-5;
  every_field.averaging_constant = 0.1;
  every_field.ch_axis = 1;
  every_field.bins = 256;
  every_field.upsample_rate = 16;
  every_field.percentile = 99;
  every_field.quantized_bins = 64;
  QConfigMapping mapping;
  mapping.set_global(std::nullopt)
      .set_object_type("Conv2d", kOnednn)
      .set_object_type("add", std::nullopt)
      .set_module_name_regex("layer[12]\\.\\d+\\.conv", QConfig{every_field, kMinMax.weight})
      .set_module_name_regex("it's", kQnnpack)
      .set_module_name("fc", std::nullopt);

  std::string text = to_toml(mapping);
  INFO(text);
  CHECK(parse_qconfig_mapping(text, "printed.toml") == mapping);
  CHECK_THAT(text, Catch::StartsWith("[global]\n"
                                     "qconfig = 'none'\n"
                                     "\n"
                                     "[[object_type]]\n"
                                     "type = 'Conv2d'\n"
                                     "qconfig.activation = { observer = 'histogram', dtype = "
                                     "'quint8', qscheme = 'per_tensor_affine', reduce_range = "
                                     "false }\n"));
  CHECK_THAT(text, Catch::Contains("regex = 'layer[12]\\.\\d+\\.conv'\n"));
  CHECK_THAT(text, Catch::Contains("quant_min = -127, quant_max = 127, eps = 1e-05, "
                                   "averaging_constant = 0.1, ch_axis = 1, bins = 256, "
                                   "upsample_rate = 16, percentile = 99.0, quantized_bins = 64 }"));
}

// Parses `text` (origin "m.toml") and returns the QConfigError's message.
std::string error_of(const std::string& text) {
  try {
    parse_qconfig_mapping(text, "m.toml");
  } catch (const QConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_CASE("TOML errors name the origin, the line and the key path") {
  CHECK(error_of("[global]\nqconfig = \"fbgemm\"\nfoo = 1\n") ==
        "m.toml:3: global.foo: unknown key (expected one of: qconfig)");
  CHECK(error_of("[globals]\nqconfig = \"none\"\n") ==
        "m.toml:1: globals: unknown key (expected one of: global, object_type, "
        "module_name_regex, module_name)");
  CHECK(error_of("[global]\nqconfig = \"fbgem\"\n") ==
        "m.toml:2: global.qconfig: unknown qconfig 'fbgem' (known: none, fbgemm, x86, qnnpack, "
        "onednn)");
  CHECK(error_of("[global]\n") == "m.toml:1: global.qconfig: missing key");
  CHECK(error_of("[global]\nqconfig = 1\n") ==
        "m.toml:2: global.qconfig: must be \"none\", an engine name or a table with activation "
        "and weight, got an integer");
  CHECK(error_of("[[object_type]]\ntype = 'Linear'\nqconfig = 'none'\n"
                 "[[object_type]]\ntype = 3\nqconfig = 'none'\n") ==
        "m.toml:5: object_type[1].type: must be a string, got an integer");
  CHECK(error_of("[[object_type]]\ntype = 'torch.ao.Linear'\nqconfig = 'none'\n") ==
        "m.toml:2: object_type[0].type: unknown object type 'torch.ao.Linear': expected a module "
        "kind or function such as Conv2d, add, torch.nn.Linear or operator.add");
  CHECK(error_of("[object_type]\ntype = 'Linear'\n") ==
        "m.toml:1: object_type: must be an array of tables ([[object_type]]), got a table");
  CHECK(error_of("[[module_name]]\nname = 'fc'\nqconfig = 'none'\nregex = 'fc'\n") ==
        "m.toml:4: module_name[0].regex: unknown key (expected one of: name, qconfig)");
  CHECK(error_of("[[module_name]]\nname = ''\nqconfig = 'none'\n") ==
        "m.toml:2: module_name[0].name: module_name \"\" would never match: use set_global");
  CHECK_THAT(error_of("[[module_name_regex]]\nregex = 'layer(1'\nqconfig = 'none'\n"),
             Catch::StartsWith("m.toml:2: module_name_regex[0].regex: bad module_name_regex "
                               "'layer(1': "));

  const std::string weight =
      "qconfig.weight = { observer = 'minmax', dtype = 'qint8', qscheme = 'per_tensor_symmetric' }\n";
  CHECK(error_of("[global]\nqconfig.activation = { observer = 'histogramm', dtype = 'quint8', "
                 "qscheme = 'per_tensor_affine' }\n" + weight) ==
        "m.toml:2: global.qconfig.activation.observer: unknown observer 'histogramm' (known: "
        "minmax, moving_average_minmax, per_channel_minmax, moving_average_per_channel_minmax, "
        "histogram, percentile, entropy)");
  CHECK(error_of("[global]\nqconfig.activation = { observer = 'histogram', dtype = 'int8', "
                 "qscheme = 'per_tensor_affine' }\n" + weight) ==
        "m.toml:2: global.qconfig.activation.dtype: unknown dtype 'int8' (known: quint8, qint8)");
  CHECK(error_of("[global]\nqconfig.activation = { observer = 'histogram', dtype = 'quint8', "
                 "qscheme = 'affine' }\n" + weight) ==
        "m.toml:2: global.qconfig.activation.qscheme: unknown qscheme 'affine' (known: "
        "per_tensor_affine, per_tensor_symmetric, per_channel_affine, per_channel_symmetric)");
  CHECK(error_of("[global]\nqconfig.activation = { observer = 'histogram', dtype = 'quint8', "
                 "qscheme = 'per_tensor_affine', reduce_range = 'yes' }\n" + weight) ==
        "m.toml:2: global.qconfig.activation.reduce_range: must be true or false, got a string");
  CHECK(error_of("[global]\nqconfig.activation = { observer = 'histogram', dtype = 'quint8', "
                 "qscheme = 'per_tensor_affine', bins = 1.5 }\n" + weight) ==
        "m.toml:2: global.qconfig.activation.bins: must be an integer, got a floating-point number");
  CHECK(error_of("[global]\nqconfig.activation = { observer = 'histogram', dtype = 'quint8', "
                 "qscheme = 'per_tensor_affine', epsilon = 0.1 }\n" + weight) ==
        "m.toml:2: global.qconfig.activation.epsilon: unknown key (expected one of: observer, "
        "dtype, qscheme, reduce_range, quant_min, quant_max, eps, averaging_constant, ch_axis, "
        "bins, upsample_rate, percentile, quantized_bins)");
  CHECK(error_of("[global]\nqconfig.activation = { observer = 'histogram', dtype = 'quint8' }\n" +
                 weight) == "m.toml:2: global.qconfig.activation.qscheme: missing key");
  CHECK_THAT(error_of("[global]\nqconfig = \n"), Catch::StartsWith("m.toml:2:"));
}

}  // namespace
}  // namespace qb
