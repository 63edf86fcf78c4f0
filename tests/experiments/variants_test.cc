#include "experiments/variants.h"

#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("variants are the Cartesian product of the lists, in order") {
  Config config = Config::from_string(R"(
[quantization]
modes = ["graph"]
engines = ["onednn"]
observers = ["minmax", "histogram"]
weights = ["per_tensor", "per_channel"]
[calibration]
samples = [0, 32]
)",
                                      "sweep.toml");
  std::vector<QuantVariant> variants = read_variants(config);
  REQUIRE(variants.size() == 8);
  CHECK(variants[0].name() == "graph int8 minmax/per_tensor calib=0 onednn");
  CHECK(variants[1].name() == "graph int8 minmax/per_tensor calib=32 onednn");
  CHECK(variants[7].name() == "graph int8 histogram/per_channel calib=32 onednn");
  CHECK(variants[0].calibration_key() != variants[1].calibration_key());
  CHECK_NOTHROW(config.reject_unknown_keys());
}

TEST_CASE("a variant's qconfig is the engine default with its observer and weight scheme") {
  QuantVariant variant{"graph", "onednn", "minmax", "per_tensor", 32};
  QConfig qconfig = variant_qconfig(variant);
  CHECK(qconfig.activation.kind == "minmax");
  CHECK(qconfig.activation.reduce_range == default_qconfig("onednn").activation.reduce_range);
  CHECK(qconfig.weight.kind == "minmax");
  CHECK(qconfig.weight.qscheme == QScheme::kPerTensorSymmetric);
  CHECK(qconfig.weight.dtype == QDtype::kQInt8);
  variant.weights = "per_channel";
  CHECK(variant_qconfig(variant).weight.qscheme == QScheme::kPerChannelSymmetric);
}

TEST_CASE("unknown values name the key and list the known ones") {
  Config config = Config::from_string("[quantization]\nobservers = [\"minmax\", \"kl\"]\n",
                                      "sweep.toml");
  CHECK_THROWS_WITH(read_variants(config),
                    "sweep.toml:2: 'quantization.observers': unknown value 'kl' (known: minmax, "
                    "moving_average_minmax, histogram, percentile, entropy)");
  Config engines = Config::from_string("[quantization]\nengines = [\"tpu\"]\n", "sweep.toml");
  CHECK_THROWS_WITH(read_variants(engines), Catch::Contains("unknown value 'tpu'"));
  Config samples = Config::from_string("[calibration]\nsamples = [-1]\n", "sweep.toml");
  CHECK_THROWS_WITH(read_variants(samples),
                    "sweep.toml:2: 'calibration.samples': sample counts must be >= 0");
}

}  // namespace
}  // namespace qb
