#pragma once
// What a user reads when something fails: one message, with our context, never a backtrace.
// LibTorch's exceptions carry their C++ backtrace in what(); the programs print it only with
// --debug.

#include <exception>
#include <string>

namespace qb {

/// The error's message without LibTorch's backtrace ("Exception raised from ..., frame #0").
std::string error_message(const std::exception& error);

/// The error as the programs print it: error_message, or with `debug` everything what() says.
std::string error_message(const std::exception& error, bool debug);

/// Whether the command line asks for --debug (the programs' parsers accept it anywhere).
bool debug_requested(int argc, char** argv);

}  // namespace qb
