#pragma once
// What produced a result: source revision, library versions, CPU, threads.
// Recorded beside every result so a number can be traced and reproduced.

#include <nlohmann/json.hpp>

#include <string>

namespace qb {

struct Environment {
  std::string git_revision;  // "unknown" outside a git checkout
  bool git_dirty = false;
  std::string libtorch_version;
  std::string opencv_version;
  std::string quantized_engines;  // the engines this LibTorch build supports
  std::string cpu_model;
  std::string cpu_flags;  // the SIMD flags that decide kernel choice (avx2, avx512*, vnni...)
  int cores = 0;
  int intra_op_threads = 0;
  std::string hostname;
  std::string date_utc;  // ISO 8601
};

/// The current time as ISO 8601 UTC ("2026-12-01T23:05:00Z").
std::string utc_now();

/// Reads the environment now; `source_dir` is the git checkout to describe.
Environment capture_environment(const std::string& source_dir);

nlohmann::json to_json(const Environment& env);
/// The fields of to_json; a missing one takes its default (records older than the field).
Environment environment_from_json(const nlohmann::json& json);

/// What decides whether two machines' latencies compare: "amd-epyc-9b14-2c-torch1.13.0-" and
/// the first 8 hex digits of FNV-1a 32 over cpu_flags. Nightly baselines are kept per
/// fingerprint (results/baselines/<fingerprint>/).
std::string machine_fingerprint(const Environment& env);

}  // namespace qb
