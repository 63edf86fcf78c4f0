#include "experiments/error_message.h"

#include <c10/util/Exception.h>

namespace qb {

std::string error_message(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    std::string text = torch_error->what_without_backtrace();
    // LibTorch's own wording ends with a newline; ours does not.
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }
  return error.what();
}

std::string error_message(const std::exception& error, bool debug) {
  return debug ? std::string(error.what()) : error_message(error);
}

bool debug_requested(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--debug") return true;
  }
  return false;
}

}  // namespace qb
