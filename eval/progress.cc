#include "eval/progress.h"

#include <unistd.h>

#include <cstdio>

namespace qb {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total > 0 ? total : 1),
      terminal_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void Progress::update(int64_t done, const std::string& detail) {
  auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    // Redrawing more often than 10 times a second only costs time.
    if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
    last_draw_ = now;
    print(done, detail, false);
    return;
  }
  int decile = static_cast<int>(10 * done / total_);
  if (decile > last_decile_ && decile < 10) {
    last_decile_ = decile;
    print(done, detail, false);
  }
}

void Progress::finish(const std::string& detail) { print(total_, detail, true); }

void Progress::print(int64_t done, const std::string& detail, bool final) {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = seconds > 0 ? done / seconds : 0.0;
  int percent = static_cast<int>(100 * done / total_);
  std::string text = label_ + " " + std::to_string(percent) + "% (" + std::to_string(done) + "/" +
                     std::to_string(total_) + ", " + std::to_string(static_cast<int64_t>(rate)) +
                     "/s, " + std::to_string(static_cast<int64_t>(seconds)) + " s)";
  if (!detail.empty()) text += " " + detail;
  if (terminal_) {
    const int width = 20;
    int filled = width * percent / 100;
    std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    std::fprintf(stderr, "\r\033[K%s%s%s", bar.c_str(), text.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

}  // namespace qb
