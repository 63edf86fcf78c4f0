#include "experiments/paths.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace qb {

namespace {
std::string env_or_cwd(const char* variable) {
  const char* value = std::getenv(variable);
  return value && *value ? value : std::filesystem::current_path().string();
}

std::string resolve_against(const std::string& base, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(base) / path).lexically_normal().string();
}
}  // namespace

std::string workspace_dir() { return env_or_cwd("BUILD_WORKSPACE_DIRECTORY"); }

std::string resolve_user_path(const std::string& path) {
  return resolve_against(env_or_cwd("BUILD_WORKING_DIRECTORY"), path);
}

std::string resolve_config_path(const std::string& path) {
  return resolve_against(workspace_dir(), path);
}

bool is_file(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error);
}

void check_run_name(const std::string& name) {
  const bool plain = !name.empty() && name != "." && name != ".." &&
                     name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789._-") == std::string::npos;
  if (!plain) {
    throw std::invalid_argument("--run '" + name + "': a run's name must be a plain name (letters, digits, "
                                "'.', '_', '-'), such as 2026-12-02 or shard1");
  }
}

}  // namespace qb
