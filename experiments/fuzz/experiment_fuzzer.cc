// libFuzzer target for the experiment reader (experiments/config.cc and experiment.cc): any
// TOML text may be rejected with a ConfigError naming the file, but nothing may crash or
// throw anything else (a library's exception, a std::out_of_range). Built and run by
// tools/fuzz.sh.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "experiments/config.h"
#include "experiments/experiment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A file of this process's own: the reader hashes the file and resolves paths from it.
  static const std::string path = "/tmp/qb_experiment_fuzzer_" + std::to_string(getpid()) + ".toml";
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    qb::Config config = qb::Config::from_file(path);
    qb::Experiment experiment = qb::read_experiment(config, path);
    config.get_json("data", nlohmann::json::object());  // [data] is the data set reader's
    config.reject_unknown_keys();
  } catch (const qb::ConfigError&) {
  }
  return 0;
}
