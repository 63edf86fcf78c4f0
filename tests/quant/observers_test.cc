#include "quant/observers.h"

#include "tests/catch.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "quant/graph_module.h"
#include "tests/test_util.h"

namespace qb {
namespace {

const std::vector<std::string> kAllKinds = {
    "minmax",    "moving_average_minmax", "per_channel_minmax", "moving_average_per_channel_minmax",
    "histogram", "percentile",            "entropy"};

/// A valid spec of `kind`: per-channel kinds get a per-channel scheme.
ObserverSpec spec_of(const std::string& kind) {
  ObserverSpec spec;
  spec.kind = kind;
  if (kind.find("per_channel") != std::string::npos) spec.qscheme = QScheme::kPerChannelAffine;
  return spec;
}

std::vector<at::Tensor> observe(Observer& observer, const std::vector<at::Tensor>& batches) {
  std::vector<at::Tensor> outputs;
  for (const at::Tensor& batch : batches) outputs.push_back(observer.forward({batch}));
  return outputs;
}

/// make_observer_fixtures.py's make_stream, draw for draw from the global
/// generator (which Python's torch.manual_seed also seeds: same libtorch).
std::vector<at::Tensor> make_stream(const std::string& name) {
  std::vector<at::Tensor> batches;
  if (name == "none") return batches;
  if (name == "gaussian") {
    at::manual_seed(1);
    for (int i = 0; i < 2; ++i) batches.push_back(at::randn({4, 3, 5, 5}));
    batches.push_back(at::zeros({0, 3, 5, 5}));
    for (int i = 0; i < 2; ++i) batches.push_back(at::randn({4, 3, 5, 5}));
  } else if (name == "relu_growing") {
    at::manual_seed(2);
    for (double s : {1.0, 2.5, 6.0}) batches.push_back(at::relu(at::randn({2, 4, 6, 6})) * s);
  } else if (name == "shifted_growing") {
    at::manual_seed(3);
    for (int64_t k = 0; k < 4; ++k) batches.push_back(at::randn({2, 4, 6, 6}) * (1 + k) + 0.5 * k);
  } else if (name == "wide_then_narrow") {
    at::manual_seed(4);
    batches.push_back(at::randn({2, 4, 6, 6}) * 5.0);
    for (int i = 0; i < 2; ++i) batches.push_back(at::randn({2, 4, 6, 6}) * 0.5);
  } else if (name == "all_zero") {
    for (int i = 0; i < 2; ++i) batches.push_back(at::zeros({2, 3, 4, 4}));
  } else if (name == "constant") {
    for (int i = 0; i < 2; ++i) batches.push_back(at::full({2, 3, 4, 4}, 0.75));
  } else if (name == "constant_then_gaussian") {
    at::manual_seed(5);
    batches.push_back(at::full({2, 3, 4, 4}, 0.75));
    for (int i = 0; i < 2; ++i) batches.push_back(at::randn({2, 3, 4, 4}));
  } else if (name == "outlier") {
    at::manual_seed(6);
    at::Tensor x = at::randn({2, 3, 8, 8});
    x[1][2][3][4] = 1000.0;
    batches.push_back(x);
  } else if (name == "small") {
    at::manual_seed(7);
    for (int i = 0; i < 2; ++i) batches.push_back(at::randn({2, 3, 8, 8}) * 0.2);
  } else if (name == "long_mixed") {
    at::manual_seed(8);
    const double scales[] = {0.5, 3.0, 1.0, 7.0, 2.0, 0.3, 12.0, 1.0};
    const double shifts[] = {0.0, 1.0, -2.0, 0.5, 3.0, 0.0, -4.0, 1.0};
    for (int i = 0; i < 8; ++i) batches.push_back(at::randn({4, 8, 8, 8}) * scales[i] + shifts[i]);
  } else {
    throw std::invalid_argument("unknown stream " + name);
  }
  return batches;
}

/// One line of observers/qparams.tsv (see make_observer_fixtures.py).
struct FixtureCase {
  std::string line;
  ObserverSpec spec;
  std::string stream;
  int64_t quant_min = 0, quant_max = 0;
  std::vector<double> scales;
  std::vector<int64_t> zero_points;
  std::string extra_repr;
};

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  return parts;
}

std::string unescape_newlines(std::string text) {
  for (size_t at = text.find("\\n"); at != std::string::npos; at = text.find("\\n", at + 1)) {
    text.replace(at, 2, "\n");
  }
  return text;
}

std::vector<FixtureCase> load_fixture_cases() {
  const auto path = test::source_path("tests/fixtures/observers/qparams.tsv");
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::vector<FixtureCase> cases;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f = split(line, '\t');
    if (f.size() != 14) throw std::runtime_error("bad fixture line: " + line);
    FixtureCase c;
    c.line = line;
    c.spec.kind = f[0];
    c.spec.dtype = parse_qdtype(f[1]);
    c.spec.qscheme = parse_qscheme(f[2]);
    c.spec.reduce_range = f[3] == "1";
    if (f[4] != "-") c.spec.quant_min = std::stoll(f[4]);
    if (f[5] != "-") c.spec.quant_max = std::stoll(f[5]);
    c.spec.ch_axis = std::stoll(f[6]);
    c.spec.averaging_constant = std::stod(f[7]);
    c.stream = f[8];
    c.quant_min = std::stoll(f[9]);
    c.quant_max = std::stoll(f[10]);
    for (const auto& s : split(f[11], ',')) c.scales.push_back(std::stod(s));
    for (const auto& z : split(f[12], ',')) c.zero_points.push_back(std::stoll(z));
    c.extra_repr = unescape_newlines(f[13]);
    cases.push_back(std::move(c));
  }
  return cases;
}

// ---------------------------------------------------------------------------

TEST_CASE("observers reproduce PyTorch's qparams and reprs on every fixture stream") {
  const std::vector<FixtureCase> cases = load_fixture_cases();
  REQUIRE(cases.size() == 1034);
  std::map<std::string, std::vector<at::Tensor>> streams;
  std::map<std::string, int> cases_per_kind;
  double max_relative = 0;
  for (const FixtureCase& c : cases) {
    INFO(c.line);
    if (!streams.count(c.stream)) streams[c.stream] = make_stream(c.stream);
    auto observer = make_observer(c.spec);
    observe(*observer, streams[c.stream]);
    CHECK(observer->quant_min() == c.quant_min);
    CHECK(observer->quant_max() == c.quant_max);
    CHECK(observer->calibrated() == (c.stream != "none"));
    const QParams qparams = observer->calculate_qparams();
    CHECK(qparams.scale.scalar_type() == at::kDouble);
    CHECK(qparams.zero_point.scalar_type() == at::kLong);
    REQUIRE(qparams.scale.numel() == static_cast<int64_t>(c.scales.size()));
    REQUIRE(qparams.zero_point.numel() == static_cast<int64_t>(c.zero_points.size()));
    for (size_t i = 0; i < c.scales.size(); ++i) {
      const double scale = qparams.scale[i].item<double>();
      const double relative = std::abs(scale - c.scales[i]) / c.scales[i];
      max_relative = std::max(max_relative, relative);
      CHECK(relative <= 1e-6);
      CHECK(qparams.zero_point[i].item<int64_t>() == c.zero_points[i]);
    }
    CHECK(observer->extra_repr() == c.extra_repr);
    ++cases_per_kind[c.spec.kind];
  }
  CHECK(cases_per_kind.size() == 5);
  std::printf("max relative scale difference from PyTorch: %g over %zu cases\n", max_relative,
              cases.size());
}

TEST_CASE("observers pass their input through and keep their statistics in the state_dict") {
  at::manual_seed(0);
  const at::Tensor input = at::randn({2, 3, 4, 4});
  const at::Tensor original = input.clone();
  // PyTorch's class name and state_dict buffers for each kind.
  const std::map<std::string, std::pair<std::string, std::vector<std::string>>> expected = {
      {"minmax", {"MinMaxObserver", {"eps", "min_val", "max_val"}}},
      {"moving_average_minmax", {"MovingAverageMinMaxObserver", {"eps", "min_val", "max_val"}}},
      {"per_channel_minmax", {"PerChannelMinMaxObserver", {"eps", "min_val", "max_val"}}},
      {"moving_average_per_channel_minmax",
       {"MovingAveragePerChannelMinMaxObserver", {"eps", "min_val", "max_val"}}},
      {"histogram", {"HistogramObserver", {"eps", "histogram", "min_val", "max_val"}}},
      {"percentile", {"PercentileObserver", {"eps", "histogram", "min_val", "max_val", "bound"}}},
      {"entropy", {"EntropyObserver", {"eps", "histogram", "min_val", "max_val", "bound"}}},
  };
  for (const std::string& kind : kAllKinds) {
    INFO(kind);
    std::shared_ptr<Observer> observer = make_observer(spec_of(kind));
    const auto& [class_name, buffers] = expected.at(kind);
    CHECK(observer->kind() == class_name);
    const at::Tensor output = observer->forward({input});
    CHECK(output.is_same(input));
    CHECK(at::equal(input, original));

    GraphModule gm;
    gm.add_module("activation_post_process_0", observer);
    std::vector<std::string> keys;
    for (const auto& [key, value] : gm.state_dict()) keys.push_back(key);
    std::vector<std::string> expected_keys;
    for (const auto& name : buffers) expected_keys.push_back("activation_post_process_0." + name);
    CHECK(keys == expected_keys);
    const float min_val = observer->tensor("min_val").min().item<float>();
    CHECK(min_val == input.min().item<float>());
  }
}

TEST_CASE("observers that saw nothing report it and return PyTorch's default qparams") {
  for (const std::string& kind : kAllKinds) {
    INFO(kind);
    auto observer = make_observer(spec_of(kind));
    observer->forward({at::zeros({0, 3})});  // empty batches are ignored
    CHECK_FALSE(observer->calibrated());
    const QParams qparams = observer->calculate_qparams();
    CHECK(at::equal(qparams.scale, at::ones({1}, at::kDouble)));
    CHECK(at::equal(qparams.zero_point, at::zeros({1}, at::kLong)));
    observer->forward({at::ones({2, 3})});
    CHECK(observer->calibrated());
  }
}

TEST_CASE("NaN inputs fail as they do in PyTorch, histogram observers before changing state") {
  const at::Tensor with_nan = at::tensor({1.0f, NAN, -2.0f}).reshape({1, 3});
  for (const std::string kind : {"minmax", "per_channel_minmax"}) {
    INFO(kind);
    auto observer = make_observer(spec_of(kind));
    observer->forward({with_nan});
    CHECK_THROWS_AS(observer->calculate_qparams(), std::runtime_error);
  }
  for (const std::string kind : {"histogram", "percentile", "entropy"}) {
    INFO(kind);
    auto observer = make_observer(spec_of(kind));
    CHECK_THROWS_WITH(observer->forward({with_nan}), Catch::Contains("NaN"));
    CHECK_FALSE(observer->calibrated());
  }
}

TEST_CASE("clones observe independently") {
  for (const std::string& kind : kAllKinds) {
    INFO(kind);
    auto observer = make_observer(spec_of(kind));
    observer->forward({at::full({2, 2}, 1.0)});
    const std::unique_ptr<Module> copy = observer->clone();
    observer->forward({at::full({2, 2}, -5.0)});
    CHECK(copy->tensor("min_val").min().item<float>() == 1.0f);
    CHECK(observer->tensor("min_val").min().item<float>() < 1.0f);
    CHECK(dynamic_cast<Observer&>(*copy).spec().kind == kind);
  }
}

TEST_CASE("per-channel observers check the channel axis against their input") {
  ObserverSpec spec = spec_of("per_channel_minmax");
  spec.ch_axis = 2;
  auto observer = make_observer(spec);
  CHECK_THROWS_WITH(observer->forward({at::zeros({3, 4})}), Catch::Contains("ch_axis"));
  CHECK_THROWS_WITH(observer->forward({at::zeros({5})}), Catch::Contains("ch_axis"));
  observer->forward({at::zeros({1, 2, 3})});
  CHECK_THROWS_WITH(observer->forward({at::zeros({1, 2, 4})}), Catch::Contains("channels"));
  CHECK(observer->calculate_qparams().scale.numel() == 3);
}

TEST_CASE("invalid observer specs throw naming the field") {
  struct Invalid {
    const char* field;
    ObserverSpec spec;
  };
  auto with = [](std::string kind, auto change) {
    ObserverSpec spec = spec_of(kind);
    change(spec);
    return spec;
  };
  const std::vector<Invalid> cases = {
      {"kind", with("minmax", [](ObserverSpec& s) { s.kind = "kl_divergence"; })},
      {"qscheme", with("minmax", [](ObserverSpec& s) { s.qscheme = QScheme::kPerChannelAffine; })},
      {"qscheme", with("histogram", [](ObserverSpec& s) { s.qscheme = QScheme::kPerChannelSymmetric; })},
      {"qscheme", with("per_channel_minmax", [](ObserverSpec& s) { s.qscheme = QScheme::kPerTensorAffine; })},
      {"quant_max", with("minmax", [](ObserverSpec& s) { s.quant_min = 0; })},
      {"quant_min", with("minmax", [](ObserverSpec& s) { s.quant_max = 15; })},
      {"quant_min", with("minmax", [](ObserverSpec& s) { s.quant_min = 0, s.quant_max = 0; })},
      {"quant_min", with("minmax", [](ObserverSpec& s) { s.quant_min = 3, s.quant_max = 15; })},
      {"quant_max", with("minmax", [](ObserverSpec& s) {
         s.dtype = QDtype::kQInt8, s.quant_min = -15, s.quant_max = -3;
       })},
      {"quant_max", with("minmax", [](ObserverSpec& s) {
         s.dtype = QDtype::kQInt8, s.quant_min = -8, s.quant_max = 200;
       })},
      {"quant_min", with("minmax", [](ObserverSpec& s) {
         s.dtype = QDtype::kQInt8, s.quant_min = -200, s.quant_max = 7;
       })},
      {"quant_max", with("minmax", [](ObserverSpec& s) { s.quant_min = 0, s.quant_max = 256; })},
      {"reduce_range", with("minmax", [](ObserverSpec& s) {
         s.qscheme = QScheme::kPerTensorSymmetric, s.reduce_range = true;
       })},
      {"reduce_range", with("minmax", [](ObserverSpec& s) {
         s.quant_min = 0, s.quant_max = 1, s.reduce_range = true;
       })},
      {"eps", with("minmax", [](ObserverSpec& s) { s.eps = 0; })},
      {"averaging_constant", with("moving_average_minmax", [](ObserverSpec& s) { s.averaging_constant = 0; })},
      {"averaging_constant",
       with("moving_average_per_channel_minmax", [](ObserverSpec& s) { s.averaging_constant = 1.5; })},
      {"bins", with("histogram", [](ObserverSpec& s) { s.bins = 0; })},
      {"upsample_rate", with("histogram", [](ObserverSpec& s) { s.upsample_rate = 0; })},
      {"bins", with("percentile", [](ObserverSpec& s) { s.bins = 2047; })},
      {"percentile", with("percentile", [](ObserverSpec& s) { s.percentile = 100.5; })},
      {"percentile", with("percentile", [](ObserverSpec& s) { s.percentile = 10; })},
      {"quantized_bins", with("entropy", [](ObserverSpec& s) { s.quantized_bins = 4096; })},
  };
  for (const Invalid& c : cases) {
    INFO(c.field);
    CHECK_THROWS_AS(make_observer(c.spec), std::invalid_argument);
    CHECK_THROWS_WITH(make_observer(c.spec), Catch::StartsWith(std::string("ObserverSpec.") + c.field + ":"));
  }
}

TEST_CASE("qscheme and dtype names read back") {
  for (QScheme scheme : {QScheme::kPerTensorAffine, QScheme::kPerTensorSymmetric,
                         QScheme::kPerChannelAffine, QScheme::kPerChannelSymmetric}) {
    CHECK(parse_qscheme(to_string(scheme)) == scheme);
  }
  CHECK(to_string(QScheme::kPerChannelSymmetric) == "per_channel_symmetric");
  CHECK(parse_qdtype(to_string(QDtype::kQUInt8)) == QDtype::kQUInt8);
  CHECK(to_string(QDtype::kQInt8) == "qint8");
  CHECK_THROWS_WITH(parse_qscheme("per_tensor"), Catch::Contains("per_tensor_affine"));
  CHECK_THROWS_AS(parse_qdtype("int8"), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Percentile and entropy: hand-made inputs with a known answer.

/// 10000 values evenly spread over [-1, 1] plus `outliers` copies of +-50.
at::Tensor uniform_with_outliers(int64_t outliers) {
  at::Tensor uniform = at::linspace(-1, 1, 10000);
  at::Tensor far = at::full({outliers}, 50.0f);
  return at::cat({uniform, far, -far}).reshape({1, -1});
}

/// The clipping threshold T an observer chose, read back from its symmetric qint8 scale.
double symmetric_threshold(const Observer& observer) {
  return observer.calculate_qparams().scale.item<double>() * 127.5;
}

TEST_CASE("the percentile observer clips rare outliers") {
  const at::Tensor x = uniform_with_outliers(2);  // 4 outliers in 10004 values: 0.04%
  ObserverSpec spec = spec_of("percentile");
  spec.dtype = QDtype::kQInt8;
  spec.qscheme = QScheme::kPerTensorSymmetric;
  spec.percentile = 99.9;
  auto symmetric = make_observer(spec);
  symmetric->forward({x});
  // 99.9% of |x| lies below the bin edge just above 1; bins are 50 / 2048 wide.
  CHECK(symmetric_threshold(*symmetric) == Approx(1.0).margin(50.0 / 2048));
  auto again = make_observer(spec);
  again->forward({x});
  CHECK(at::equal(again->calculate_qparams().scale, symmetric->calculate_qparams().scale));

  spec.qscheme = QScheme::kPerTensorAffine;
  spec.dtype = QDtype::kQUInt8;
  auto affine = make_observer(spec);
  affine->forward({x + 2});  // [1, 3] with outliers at -48 and 52
  const QParams qparams = affine->calculate_qparams();
  const double scale = qparams.scale.item<double>();
  const double low = -scale * qparams.zero_point.item<double>();
  CHECK(scale * 255 == Approx(3.0).margin(0.06));  // the range is about [0, 3] (must include 0)
  CHECK(low == Approx(0.0).margin(scale));

  spec.percentile = 99.99;  // keeps everything but 0.01%: the outliers are 0.04%, so they stay
  auto keeps_outliers = make_observer(spec);
  keeps_outliers->forward({x});
  CHECK(keeps_outliers->calculate_qparams().scale.item<double>() * 255 == Approx(100).margin(0.1));
}

TEST_CASE("the 100th percentile is the min/max range") {
  at::manual_seed(3);
  // Zeros first: the histogram gets its range from the first nonzero batch.
  const std::vector<at::Tensor> batches = {at::zeros({4, 16}), at::randn({4, 16}),
                                           at::randn({4, 16}) * 3 + 1, at::randn({4, 16}) * 0.1};
  for (QScheme scheme : {QScheme::kPerTensorAffine, QScheme::kPerTensorSymmetric}) {
    ObserverSpec spec = spec_of("percentile");
    spec.qscheme = scheme;
    spec.dtype = QDtype::kQInt8;
    spec.percentile = 100;
    auto percentile = make_observer(spec);
    spec.kind = "minmax";
    auto minmax = make_observer(spec);
    observe(*percentile, batches);
    observe(*minmax, batches);
    CHECK(at::equal(percentile->calculate_qparams().scale, minmax->calculate_qparams().scale));
    CHECK(at::equal(percentile->calculate_qparams().zero_point,
                    minmax->calculate_qparams().zero_point));
    // Growing ranges merge bins but never lose a count.
    CHECK(percentile->tensor("histogram").sum().item<double>() == 4 * 4 * 16);
  }
}

TEST_CASE("percentile and entropy observers of zeros give the smallest scale, as MinMax does") {
  for (const std::string kind : {"percentile", "entropy"}) {
    INFO(kind);
    auto observer = make_observer(spec_of(kind));
    observer->forward({at::zeros({3, 3})});
    const QParams qparams = observer->calculate_qparams();
    CHECK(qparams.scale.item<double>() == std::numeric_limits<float>::epsilon());
    CHECK(qparams.zero_point.item<int64_t>() == 0);
  }
}

TEST_CASE("the entropy observer puts its threshold between the bulk and the outliers") {
  at::manual_seed(11);
  std::vector<at::Tensor> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(at::randn({25000}));
  batches.push_back(at::full({5}, 40.0f));  // five values far out, in their own batch
  batches.push_back(at::randn({25000}));
  ObserverSpec spec = spec_of("entropy");
  spec.qscheme = QScheme::kPerTensorSymmetric;
  spec.dtype = QDtype::kQInt8;
  auto first = make_observer(spec);
  observe(*first, batches);
  const double threshold = symmetric_threshold(*first);
  CHECK(threshold > 2.5);
  CHECK(threshold < 8.0);

  // ReLU outputs: half exact zeros, which must not drag the threshold down.
  auto relu = make_observer(spec);
  for (const at::Tensor& batch : batches) relu->forward({at::relu(batch)});
  CHECK(symmetric_threshold(*relu) > 2.5);
  CHECK(symmetric_threshold(*relu) < 8.0);

  // Same stream, same answer.
  auto second = make_observer(spec);
  observe(*second, batches);
  CHECK(at::equal(first->calculate_qparams().scale, second->calculate_qparams().scale));
  CHECK(at::equal(first->tensor("histogram"), second->tensor("histogram")));
}

}  // namespace
}  // namespace qb
