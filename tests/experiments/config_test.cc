#include "experiments/config.h"

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

const char* kExample = R"(name = "demo"
[train]
epochs = 3
learning_rate = 1
schedule = "cosine"
threads = [1, 2]
[model]
architecture = "fmnist_resnet8"
)";

TEST_CASE("typed getters read dotted keys and fall back to defaults") {
  Config config = Config::from_string(kExample, "demo.toml");
  CHECK(config.get_string("name") == "demo");
  CHECK(config.get_int("train.epochs") == 3);
  CHECK(config.get_double("train.learning_rate") == 1.0);  // integers are numbers
  CHECK(config.get_int_list("train.threads") == std::vector<int64_t>{1, 2});
  CHECK(config.get_bool("train.nesterov", false) == false);
  CHECK(config.has("model.architecture"));
  CHECK_FALSE(config.has("model.checkpoint"));
}

TEST_CASE("configuration errors name the file, the line and the key") {
  Config config = Config::from_string(kExample, "demo.toml");
  CHECK_THROWS_WITH(config.get_int("train.schedule"),
                    "demo.toml:5: 'train.schedule' must be an integer, got a string");
  CHECK_THROWS_WITH(config.get_string("model.checkpoint"),
                    "demo.toml: missing key 'model.checkpoint' (a string)");
  CHECK_THROWS_WITH(config.get_string_list("train.threads"),
                    Catch::StartsWith("demo.toml:6: 'train.threads' must be a list of strings"));
  CHECK(std::string(config.error("train.epochs", "must be >= 1").what()) ==
        "demo.toml:3: 'train.epochs': must be >= 1");
}

TEST_CASE("keys nobody read are reported together, with their lines") {
  Config config = Config::from_string(kExample, "demo.toml");
  config.get_string("name");
  config.get_int("train.epochs");
  config.get_string("model.architecture");
  CHECK_THROWS_WITH(config.reject_unknown_keys(),
                    "demo.toml: keys this program does not know (misspelled?):\n"
                    "  demo.toml:4: unknown key 'train.learning_rate'\n"
                    "  demo.toml:5: unknown key 'train.schedule'\n"
                    "  demo.toml:6: unknown key 'train.threads'");
  config.get_double("train.learning_rate");
  config.get_string("train.schedule");
  config.get_int_list("train.threads");
  CHECK_NOTHROW(config.reject_unknown_keys());
}

TEST_CASE("syntax errors and missing files are ConfigErrors with a location") {
  CHECK_THROWS_AS(Config::from_string("a = [1,\n", "bad.toml"), ConfigError);
  CHECK_THROWS_WITH(Config::from_string("x = 1\ny = = 2\n", "bad.toml"),
                    Catch::StartsWith("bad.toml:2:"));
  CHECK_THROWS_WITH(Config::from_file("/nonexistent/exp.toml"),
                    "/nonexistent/exp.toml: cannot open the configuration file: No such file or directory");
  // Once "missing key 'name'".
  const std::string dir = test::scratch_dir("config_directory").string();
  CHECK_THROWS_WITH(Config::from_file(dir), dir + ": is a directory; give the TOML file in it");
}

}  // namespace
}  // namespace qb
