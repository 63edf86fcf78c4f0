#pragma once
// Progress of long work (training, calibration, evaluation) on stderr: a bar
// redrawn in place on a terminal, a line every tenth of the way otherwise.

#include <chrono>
#include <cstdint>
#include <string>

namespace qb {

class Progress {
 public:
  /// `label` starts every line; `total` is the number of units (images, batches).
  Progress(std::string label, int64_t total);
  /// Records that `done` units are finished; `detail` is appended (e.g. "loss 0.31").
  void update(int64_t done, const std::string& detail = "");
  /// Prints the final line with the elapsed time.
  void finish(const std::string& detail = "");

 private:
  void print(int64_t done, const std::string& detail, bool final);

  std::string label_;
  int64_t total_;
  bool terminal_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace qb
