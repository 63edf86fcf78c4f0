#pragma once
// Where relative paths point. `bazel run` starts programs inside their runfiles
// tree, so user paths are resolved against the directories Bazel reports.

#include <string>

namespace qb {

/// The source checkout: BUILD_WORKSPACE_DIRECTORY under `bazel run`, else the current directory.
std::string workspace_dir();
/// A path typed on the command line, relative to where the user typed it.
std::string resolve_user_path(const std::string& path);
/// A path written in a config file, relative to the workspace root.
std::string resolve_config_path(const std::string& path);

/// Whether `path` names a regular file; false also when it cannot be looked at (a name too
/// long for the file system, a directory without permission), never an exception.
bool is_file(const std::string& path);

/// Checks a run directory's name (--run): letters, digits, '.', '_', '-', not "." or "..",
/// so that a run stays inside its experiment's output directory; std::invalid_argument
/// otherwise.
void check_run_name(const std::string& name);

}  // namespace qb
