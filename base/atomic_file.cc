#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace qb {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw WriteError(path + ": " + what + ": " + last_error());
}

/// Writes all of `data` to `fd`, or fails naming `path`.
void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    errno = 0;
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) fail(path, "cannot write");
    data.remove_prefix(static_cast<size_t>(written));
  }
}

}  // namespace

std::string last_error() { return errno != 0 ? std::strerror(errno) : "disk full"; }

void write_file_atomically(const std::string& path, std::string_view contents) {
  // Same folder, so the rename stays within one file system; the pid keeps writers apart.
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  errno = 0;
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot create " + temporary);
  try {
    write_all(fd, contents, path);
    errno = 0;
    if (::fsync(fd) != 0) fail(path, "cannot write");
  } catch (...) {
    ::close(fd);
    ::unlink(temporary.c_str());
    throw;
  }
  errno = 0;
  if (::close(fd) != 0) {
    const std::string error = last_error();
    ::unlink(temporary.c_str());
    throw WriteError(path + ": cannot write: " + error);
  }
  errno = 0;
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string error = last_error();
    ::unlink(temporary.c_str());
    throw WriteError(path + ": cannot move " + temporary + " into place: " + error);
  }
}

void append_durably(const std::string& path, std::string_view line) {
  errno = 0;
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot open for appending");
  struct stat before {};
  if (::fstat(fd, &before) != 0) {
    ::close(fd);
    fail(path, "cannot append a record");
  }
  errno = 0;
  // One write() of the whole line: a retry after a short write could interleave with another
  // writer, so a short write is an error, and what it wrote is cut off again.
  const ssize_t written = ::write(fd, line.data(), line.size());
  const bool whole = written == static_cast<ssize_t>(line.size());
  std::string error = whole ? "" : last_error();
  if (!whole) {
    if (written > 0 && ::ftruncate(fd, before.st_size) != 0) {
      error += " (the partial line stays; reading drops a last line without its newline)";
    }
    ::close(fd);
    throw WriteError(path + ": cannot append a record: " + error);
  }
  errno = 0;
  const bool synced = ::fsync(fd) == 0;
  const std::string sync_error = synced ? "" : last_error();
  errno = 0;
  if (::close(fd) != 0 || !synced) {
    throw WriteError(path + ": cannot append a record: " + (synced ? last_error() : sync_error));
  }
}

}  // namespace qb
