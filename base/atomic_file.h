#pragma once
// The project's one way to write a file: to a temporary name beside it, every write and the
// close checked, fsync, then rename over the target. A reader sees the old file or the whole
// new one, never part of one, and a failed write (a full disk, a missing directory) leaves
// what was there untouched and is an error naming the path.

#include <stdexcept>
#include <string>
#include <string_view>

namespace qb {

/// A file that could not be written: "PATH: cannot write: No space left on device".
struct WriteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Replaces `path` with `contents`, atomically; WriteError on any failure.
void write_file_atomically(const std::string& path, std::string_view contents);

/// Appends `line` to `path` with one write() (O_APPEND: after every earlier line, whole) and
/// fsync; WriteError on any failure, a short write included. Creates the file.
void append_durably(const std::string& path, std::string_view line);

/// Why the last system call failed: strerror(errno), or "disk full" when errno says nothing
/// (a short write sets none).
std::string last_error();

}  // namespace qb
