#include "experiments/shard_env.h"

#include <cstdlib>
#include <stdexcept>

#include "base/atomic_file.h"

namespace qb {

namespace {

int number(const EnvLookup& env, const std::string& name) {
  const std::string text = env(name).value();
  size_t used = 0;
  int value = -1;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0) {
    throw std::invalid_argument("--shard auto: " + name + " is '" + text + "', not a number >= 0");
  }
  return value;
}

std::pair<int, int> checked(int k, int n, const std::string& source) {
  if (n < 1 || k < 1 || k > n) {
    throw std::invalid_argument("--shard auto: " + source + " gives shard " + std::to_string(k) +
                                " of " + std::to_string(n) + ", not 1 <= K <= N");
  }
  return {k, n};
}

}  // namespace

std::optional<std::string> process_env(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (!value) return std::nullopt;
  return std::string(value);
}

std::pair<int, int> shard_from_environment(const std::string& spec, const EnvLookup& env) {
  std::optional<int> count;
  if (spec.rfind("auto/", 0) == 0) {
    const std::string text = spec.substr(5);
    size_t used = 0;
    try {
      count = std::stoi(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || used == 0) {
      throw std::invalid_argument("--shard auto/N expects a number N, got '" + spec + "'");
    }
  } else if (spec != "auto") {
    throw std::invalid_argument("--shard expects K/N, auto or auto/N, got '" + spec + "'");
  }
  if (env("SLURM_ARRAY_TASK_ID")) {
    const int first = env("SLURM_ARRAY_TASK_MIN") ? number(env, "SLURM_ARRAY_TASK_MIN") : 0;
    const int n = env("SLURM_ARRAY_TASK_COUNT") ? number(env, "SLURM_ARRAY_TASK_COUNT") : count.value_or(0);
    return checked(number(env, "SLURM_ARRAY_TASK_ID") - first + 1, n, "the Slurm array");
  }
  if (env("JOB_COMPLETION_INDEX")) {
    if (!count) {
      throw std::invalid_argument(
          "--shard auto: a Kubernetes indexed Job gives JOB_COMPLETION_INDEX but not the count; "
          "pass it as --shard auto/N (N = the Job's completions)");
    }
    return checked(number(env, "JOB_COMPLETION_INDEX") + 1, *count, "JOB_COMPLETION_INDEX");
  }
  if (env("TEST_SHARD_INDEX") && env("TEST_TOTAL_SHARDS")) {
    if (auto status = env("TEST_SHARD_STATUS_FILE")) write_file_atomically(*status, "");
    return checked(number(env, "TEST_SHARD_INDEX") + 1, number(env, "TEST_TOTAL_SHARDS"),
                   "Bazel test sharding");
  }
  throw std::invalid_argument(
      "--shard auto: none of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or TEST_SHARD_INDEX / "
      "TEST_TOTAL_SHARDS is set; give the shard as --shard K/N");
}

}  // namespace qb
