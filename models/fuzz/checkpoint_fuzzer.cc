// libFuzzer target for the checkpoint reader (models/checkpoint.cc: the zip container, the
// pickle machine, the storages): any input may be rejected with a CheckpointError, but
// nothing may crash, leak or throw anything else. Built and run by tools/fuzz.sh.

#include <cstddef>
#include <cstdint>
#include <string>

#include "models/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    qb::parse_state_dict(std::string(reinterpret_cast<const char*>(data), size), "fuzz.pt");
  } catch (const qb::CheckpointError&) {
  }
  return 0;
}
