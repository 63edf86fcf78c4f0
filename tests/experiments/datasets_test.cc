#include "experiments/datasets.h"

#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("a [data] section opens Fashion-MNIST with its options") {
  Config config = Config::from_string(
      "[data]\nkind = \"fashion_mnist\"\nroot = \"/usr/share/datasets/fashion-mnist\"\n"
      "limit = 100\n",
      "exp.toml");
  std::unique_ptr<Dataset> test = open_dataset(config, "data", "test");
  CHECK(test->size() == 100);
  CHECK(test->num_classes() == 10);
  CHECK_NOTHROW(config.reject_unknown_keys());
}

TEST_CASE("dataset configuration errors name the key") {
  Config unknown = Config::from_string("[data]\nkind = \"mnist\"\n", "exp.toml");
  CHECK_THROWS_WITH(open_dataset(unknown, "data", "test"),
                    "exp.toml:2: 'data.kind': unknown dataset kind 'mnist' (known: fashion_mnist, "
                    "cifar10, cifar100, imagenet, synthetic)");
  Config layout = Config::from_string(
      "[data]\nkind = \"imagenet\"\nroot = \"/tmp\"\nlayout = \"flat\"\n", "exp.toml");
  CHECK_THROWS_WITH(open_dataset(layout, "data", "val"),
                    "exp.toml:4: 'data.layout': unknown layout 'flat' (known: folder, loc_val, "
                    "devkit_val)");
  Config mean = Config::from_string("[data]\nkind = \"cifar10\"\nmean = [0.5, 0.5]\n", "exp.toml");
  CHECK_THROWS_WITH(open_dataset(mean, "data", "test"),
                    "exp.toml:3: 'data.mean': needs 3 numbers (R, G, B)");
  Config missing = Config::from_string(
      "[data]\nkind = \"cifar10\"\nroot = \"/nonexistent/cifar\"\n", "exp.toml");
  CHECK_THROWS_AS(open_dataset(missing, "data", "test"), DataError);
}

TEST_CASE("a data set's keys are read and checked before any of its files is") {
  // Once unknown keys were found only after the data sets had been decoded.
  Config config = Config::from_string(
      "[data]\nkind = \"cifar10\"\nroot = \"/nonexistent/cifar\"\nlimt = 10\n", "exp.toml");
  DatasetOpener open = read_dataset(config, "data", "test");
  CHECK_THROWS_WITH(config.reject_unknown_keys(), Catch::Contains("exp.toml:4: unknown key 'data.limt'"));
  CHECK_THROWS_AS(open(), DataError);  // the files, only when asked
}

}  // namespace
}  // namespace qb
