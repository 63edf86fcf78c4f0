// Writing files: whole or not at all, with the path and the reason when not; a full disk is
// played by /dev/full and by a file size limit (RLIMIT_FSIZE).

#include "base/atomic_file.h"

#include <sys/resource.h>

#include <csignal>
#include <filesystem>

#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

/// Files may grow to `bytes` while this lives (writes beyond fail with EFBIG, not a signal).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    previous_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_);
  }

 private:
  rlimit saved_{};
  void (*previous_)(int) = nullptr;
};

TEST_CASE("a file is replaced whole, and a failed write leaves the old one untouched") {
  const std::string dir = test::scratch_dir("atomic_file").string();
  const std::string path = dir + "/table.md";
  write_file_atomically(path, "old table\n");
  CHECK(test::read_file(path) == "old table\n");
  {
    FileSizeLimit limit(16);
    CHECK_THROWS_WITH(write_file_atomically(path, std::string(1000, 'x')),
                      path + ": cannot write: File too large");
  }
  CHECK(test::read_file(path) == "old table\n");
  // No temporary file is left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files += entry.is_regular_file();
  CHECK(files == 1);
  write_file_atomically(path, "new table\n");
  CHECK(test::read_file(path) == "new table\n");
}

TEST_CASE("a missing directory and a full disk are errors naming the path") {
  CHECK_THROWS_WITH(write_file_atomically("/nonexistent/dir/report.md", "x"),
                    Catch::StartsWith("/nonexistent/dir/report.md: cannot create /nonexistent/dir/report.md.tmp.") &&
                        Catch::EndsWith(": No such file or directory"));
  // Once "cannot append a record: Success".
  CHECK_THROWS_WITH(append_durably("/dev/full", "{}\n"),
                    "/dev/full: cannot append a record: No space left on device");
}

TEST_CASE("lines are appended whole") {
  const std::string path = test::scratch_dir("append_durably").string() + "/records.jsonl";
  append_durably(path, "one\n");
  append_durably(path, "two\n");
  CHECK(test::read_file(path) == "one\ntwo\n");
  {
    FileSizeLimit limit(10);
    // The file may grow by 2 bytes: a short write, which sets no errno.
    CHECK_THROWS_WITH(append_durably(path, "three and more\n"), path + ": cannot append a record: disk full");
  }
  CHECK(test::read_file(path) == "one\ntwo\n");
}

}  // namespace
}  // namespace qb
