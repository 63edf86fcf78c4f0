// bazel run //:quantize -- --model FP32.pt --calibration CALIB.pt --output INT8.pt [...]
// A TorchScript model in, an int8 TorchScript model out (experiments/quantize.h).

#include <ATen/Parallel.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "eval/progress.h"
#include "experiments/error_message.h"
#include "experiments/paths.h"
#include "experiments/quantize.h"

namespace qb {
namespace {

int quantize_main(int argc, char** argv) {
  const bool debug = debug_requested(argc, argv);
  std::vector<std::string> arguments;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) != "--debug") arguments.push_back(argv[i]);
  }
  for (const std::string& argument : arguments) {
    if (argument == "--help" || argument == "-h") {
      std::cout << quantize_usage();
      return 0;
    }
  }
  QuantizeOptions options;
  try {
    options = parse_quantize_arguments(arguments);
  } catch (const UsageError& e) {
    std::cerr << "quantize: " << e.what() << "\n" << quantize_usage();
    return 2;
  }
  for (std::string* path : {&options.model, &options.calibration, &options.output, &options.mapping}) {
    if (!path->empty()) *path = resolve_user_path(*path);
  }
  try {
    std::unique_ptr<Progress> progress;
    QuantizeReport report = quantize(options, [&](int64_t done, int64_t total) {
      if (!progress) progress = std::make_unique<Progress>("calibrate", total);
      if (done < total) {
        progress->update(done);
      } else {
        progress->finish();
      }
    });
    std::cout << format_report(options, report);
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "quantize: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "quantize: " << error_message(e, debug) << "\n";
    return 1;
  }
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) { return qb::quantize_main(argc, argv); }
