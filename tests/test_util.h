#pragma once
// Helpers shared by the tests: scratch files and the path to the sources.

#include <cstdlib>
#include <filesystem>
#include <string>

namespace qb::test {

/// A fresh directory under Bazel's per-test scratch space (or /tmp outside Bazel).
inline std::filesystem::path scratch_dir(const std::string& name) {
  const char* root = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(root ? root : "/tmp") / ("qb_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// Path of a file in the source tree as seen from a test's runfiles.
inline std::filesystem::path source_path(const std::string& relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir && workspace) return std::filesystem::path(srcdir) / workspace / relative;
  return relative;
}

}  // namespace qb::test
