#pragma once
// `--shard auto`: which shard this process is, from the job system that started it, so an
// array job needs no per-task command line.
//   Slurm job arrays      SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT (and _MIN, the first id)
//   Kubernetes indexed    JOB_COMPLETION_INDEX (0-based); the count comes from "auto/N"
//   Bazel test sharding   TEST_SHARD_INDEX, TEST_TOTAL_SHARDS; TEST_SHARD_STATUS_FILE touched
//                         to say the process shards

#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace qb {

/// Reads an environment variable; std::getenv by default, a map in tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
std::optional<std::string> process_env(const std::string& name);

/// Shard (k, n), 1 <= k <= n, for `spec` "auto" or "auto/N" (N: the Kubernetes Job's
/// completions). std::invalid_argument naming the variables when none is set or a value is
/// not a number in range.
std::pair<int, int> shard_from_environment(const std::string& spec, const EnvLookup& env = process_env);

}  // namespace qb
