// --shard auto reads the shard from Slurm, a Kubernetes indexed Job or Bazel test sharding.

#include "experiments/shard_env.h"

#include <filesystem>
#include <map>
#include <stdexcept>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

EnvLookup env_of(std::map<std::string, std::string> values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST_CASE("a Slurm array task is a shard, whatever id the array starts at") {
  CHECK(shard_from_environment("auto", env_of({{"SLURM_ARRAY_TASK_ID", "0"},
                                                {"SLURM_ARRAY_TASK_COUNT", "4"}})) ==
        std::pair<int, int>{1, 4});
  CHECK(shard_from_environment("auto", env_of({{"SLURM_ARRAY_TASK_ID", "7"},
                                                {"SLURM_ARRAY_TASK_MIN", "5"},
                                                {"SLURM_ARRAY_TASK_COUNT", "3"}})) ==
        std::pair<int, int>{3, 3});
  CHECK_THROWS_WITH(shard_from_environment("auto", env_of({{"SLURM_ARRAY_TASK_ID", "4"},
                                                            {"SLURM_ARRAY_TASK_COUNT", "4"}})),
                    "--shard auto: the Slurm array gives shard 5 of 4, not 1 <= K <= N");
}

TEST_CASE("a Kubernetes indexed Job needs its count on the command line") {
  CHECK(shard_from_environment("auto/5", env_of({{"JOB_COMPLETION_INDEX", "4"}})) ==
        std::pair<int, int>{5, 5});
  CHECK_THROWS_WITH(shard_from_environment("auto", env_of({{"JOB_COMPLETION_INDEX", "0"}})),
                    Catch::Contains("pass it as --shard auto/N"));
  CHECK_THROWS_WITH(shard_from_environment("auto/x", env_of({{"JOB_COMPLETION_INDEX", "0"}})),
                    "--shard auto/N expects a number N, got 'auto/x'");
}

TEST_CASE("Bazel test sharding is read and acknowledged") {
  const std::string status = test::scratch_dir("shard_env").string() + "/status";
  CHECK(shard_from_environment("auto", env_of({{"TEST_SHARD_INDEX", "1"},
                                                {"TEST_TOTAL_SHARDS", "2"},
                                                {"TEST_SHARD_STATUS_FILE", status}})) ==
        std::pair<int, int>{2, 2});
  CHECK(std::filesystem::exists(status));
}

TEST_CASE("no job system and bad values are errors that say what to do") {
  CHECK_THROWS_WITH(shard_from_environment("auto", env_of({})),
                    Catch::Contains("give the shard as --shard K/N"));
  CHECK_THROWS_WITH(shard_from_environment("auto", env_of({{"TEST_SHARD_INDEX", "one"},
                                                            {"TEST_TOTAL_SHARDS", "2"}})),
                    "--shard auto: TEST_SHARD_INDEX is 'one', not a number >= 0");
  CHECK_THROWS_WITH(shard_from_environment("automatic", env_of({})),
                    "--shard expects K/N, auto or auto/N, got 'automatic'");
}

}  // namespace
}  // namespace qb
