// Sweep expansion, exclusion, configuration hashes and shards.

#include "experiments/points.h"

#include <map>
#include <set>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

Experiment experiment() {
  Experiment e;
  e.name = "points";
  e.model.architectures = {"fmnist_resnet8"};
  e.model.num_classes = 10;
  e.data = {{"kind", "fashion_mnist"}};
  e.calibration.samples = {0, 32};
  e.sweep.variants = {"fp32", "eager", "graph"};
  e.sweep.observers = {"minmax", "histogram"};
  e.sweep.weights = {"per_channel"};
  e.sweep.threads = {1, 2};
  e.mappings.emplace("global", QConfigMapping());
  return e;
}

TEST_CASE("expand crosses every list, threads and batch sizes innermost") {
  Experiment e = experiment();
  std::vector<Point> points = expand(e);
  // fp32: 2 thread counts; eager and graph: 2 observers x 2 sample counts x 2 thread counts.
  REQUIRE(points.size() == 2 + 2 * 2 * 2 * 2);
  CHECK(points[0].label() == "fp32");
  CHECK(points[0].threads == 1);
  CHECK(points[1].threads == 2);
  CHECK(points[2].label() == "eager minmax/per_channel calib=0 onednn");
  CHECK(points[3].label() == "eager minmax/per_channel calib=0 onednn");
  CHECK(points[4].label() == "eager minmax/per_channel calib=32 onednn");
  CHECK(points.back().label() == "graph histogram/per_channel calib=32 onednn");
  CHECK(points.back().threads == 2);
  std::set<std::string> distinct;
  for (const Point& p : points) distinct.insert(p.to_json().dump());
  CHECK(distinct.size() == points.size());
}

TEST_CASE("the runtime is a dimension inside the model: one converted model, two timings") {
  Experiment e = experiment();
  e.sweep.variants = {"fp32", "graph"};
  e.sweep.observers = {"minmax"};
  e.calibration.samples = {32};
  e.sweep.threads = {1};
  const std::string plain_hash = config_hash(point_config(e, expand(e).back(), "sha"));
  e.sweep.runtimes = {"interpreter", "torchscript"};
  std::vector<Point> points = expand(e);
  REQUIRE(points.size() == 4);
  CHECK(points[0].label() == "fp32");
  CHECK(points[1].label() == "fp32 torchscript");
  CHECK(points[2].label() == "graph minmax/per_channel calib=32 onednn");
  CHECK(points[3].label() == "graph minmax/per_channel calib=32 onednn torchscript");
  CHECK(points[2].model_key() == points[3].model_key());
  CHECK(points[3].to_json()["runtime"] == "torchscript");
  CHECK_FALSE(points[2].to_json().contains("runtime"));  // earlier records keep their hashes
  CHECK(config_hash(point_config(e, points[2], "sha")) == plain_hash);
  CHECK(config_hash(point_config(e, points[3], "sha")) != plain_hash);
  CHECK(Point::from_json(points[3].to_json()).runtime == "torchscript");
  CHECK(Point::from_json(points[2].to_json()).runtime == "interpreter");
  e.sweep.exclude = {nlohmann::json{{"runtime", "interpreter"}, {"variant", "graph"}}};
  points = expand(e);
  CHECK(points.size() == 3);
  CHECK(points.back().label() == "graph minmax/per_channel calib=32 onednn torchscript");
}

TEST_CASE("exclude rules drop matching points and never match fp32 on quantization fields") {
  Experiment e = experiment();
  e.sweep.exclude = {nlohmann::json{{"variant", "eager"}, {"observer", {"histogram"}}},
                     nlohmann::json{{"samples", 0}, {"threads", 2}},
                     nlohmann::json{{"observer", "minmax"}, {"threads", 1}, {"variant", "fp32"}}};
  std::vector<Point> points = expand(e);
  // eager histogram (4) removed; samples 0 at 2 threads removed from the rest (eager minmax 1,
  // graph 2); the third rule cannot match fp32, which has no observer.
  CHECK(points.size() == 18 - 4 - 3);
  for (const Point& p : points) {
    CHECK_FALSE((p.variant == "eager" && p.observer == "histogram"));
    CHECK_FALSE((p.samples == 0 && p.threads == 2));
  }
  CHECK(points[0].label() == "fp32");
}

TEST_CASE("a point's configuration hash is stable and sees every setting") {
  Experiment e = experiment();
  std::vector<Point> points = expand(e);
  const Point& graph = points.back();
  nlohmann::json config = point_config(e, graph, "abc");
  // Fixed by the canonical JSON text: a change here means old runs would no longer resume.
  CHECK(config_hash(config) == config_hash(nlohmann::json::parse(config.dump())));
  CHECK(config_hash(nlohmann::json{{"b", 1}, {"a", 2}}) ==
        config_hash(nlohmann::json::parse(R"({"a": 2, "b": 1})")));
  CHECK(config_hash(nlohmann::json{{"a", 1}}) == "9c3e82dd6fcae8b1");

  std::set<std::string> hashes;
  for (const Point& p : points) hashes.insert(config_hash(point_config(e, p, "abc")));
  CHECK(hashes.size() == points.size());
  CHECK(config_hash(point_config(e, graph, "abd")) != config_hash(config));
  Experiment seeds = e;
  seeds.calibration.seeds = {0, 1};
  CHECK(config_hash(point_config(seeds, graph, "abc")) != config_hash(config));
  Experiment longer = e;
  longer.latency.repetitions = 9;
  CHECK(config_hash(point_config(longer, graph, "abc")) != config_hash(config));
  // The experiment's name and output place do not change what a point measures.
  Experiment renamed = e;
  renamed.name = "other";
  renamed.output_dir = "/elsewhere";
  CHECK(config_hash(point_config(renamed, graph, "abc")) == config_hash(config));
}

TEST_CASE("shards cover every point exactly once and keep a model's points together") {
  Experiment e = experiment();
  std::vector<Point> points = expand(e);
  for (int n : {1, 2, 3, 5, 40}) {
    std::map<std::string, int> seen;
    std::map<std::string, int> shard_of_model;
    for (int k = 1; k <= n; ++k) {
      for (const Point& p : shard(points, k, n)) {
        ++seen[p.to_json().dump()];
        auto [it, added] = shard_of_model.emplace(p.model_key(), k);
        CHECK(it->second == k);
      }
    }
    CHECK(seen.size() == points.size());
    for (const auto& entry : seen) CHECK(entry.second == 1);
  }
  CHECK(parse_shard("2/3") == std::pair<int, int>{2, 3});
  for (const char* bad : {"0/3", "4/3", "3", "a/b", "1/0", "1/2x"}) {
    CHECK_THROWS_WITH(parse_shard(bad),
                      "--shard expects K/N with 1 <= K <= N, got '" + std::string(bad) + "'");
  }
}

TEST_CASE("point_mapping puts the point's qconfig globally under the named overrides") {
  Experiment e = experiment();
  QConfigMapping float_fc;
  float_fc.set_module_name("fc", std::nullopt);
  e.mappings.emplace("float_fc", float_fc);
  Point p = expand(e).back();
  p.mapping = "float_fc";
  p.weights = "per_tensor";
  QConfigMapping mapping = point_mapping(e, p);
  REQUIRE(mapping.global());
  CHECK(mapping.global()->activation.kind == "histogram");
  CHECK(mapping.global()->weight.kind == "minmax");
  CHECK(mapping.global()->weight.qscheme == QScheme::kPerTensorSymmetric);
  CHECK_FALSE(mapping.qconfig_for("fc", "Linear"));
  CHECK(mapping.qconfig_for("layer1.0.conv1", "Conv2d"));
}

}  // namespace
}  // namespace qb
