// libFuzzer target for the CIFAR reader (data/cifar.cc): any input may be
// rejected with a DataError, but nothing may crash, leak or throw anything else.
// Built and run by tools/fuzz.sh, outside Bazel.
//
// Input layout: a flags byte (bit 0: CIFAR-100, bit 1: coarse labels, bit 2: the
// meta file is fuzzed too, its length in the next two bytes, its text after
// them), then the test batch file. Without bit 2 the meta file is valid, so the
// fuzzer spends its time on the records.

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/cifar.h"

namespace {

void write_file(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

std::string valid_names(int count) {
  std::string text;
  for (int i = 0; i < count; ++i) text += "class" + std::to_string(i) + "\n";
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A directory private to this process, so parallel fuzzing jobs do not share it.
  static const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("qb_cifar_fuzzer_" + std::to_string(getpid()));
  if (size == 0) return 0;
  uint8_t flags = data[0];
  ++data, --size;

  qb::CifarVersion version = flags & 1 ? qb::CifarVersion::k100 : qb::CifarVersion::k10;
  qb::CifarOptions options;
  options.root = root.string();
  options.label = version == qb::CifarVersion::k100 && flags & 2 ? "coarse" : "fine";
  std::string meta =
      version == qb::CifarVersion::k10 ? "batches.meta.txt" : options.label + "_label_names.txt";
  int classes = version == qb::CifarVersion::k10 ? 10 : options.label == "coarse" ? 20 : 100;

  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  if (flags & 4) {
    size_t length = size >= 2 ? std::min<size_t>(size - 2, data[0] << 8 | data[1]) : 0;
    size_t header = std::min<size_t>(size, 2);
    write_file(root / meta, data + header, length);
    data += header + length, size -= header + length;
  } else {
    std::string names = valid_names(classes);
    write_file(root / meta, reinterpret_cast<const uint8_t*>(names.data()), names.size());
  }
  write_file(root / (version == qb::CifarVersion::k10 ? "test_batch.bin" : "test.bin"), data, size);

  try {
    qb::Cifar test(version, "test", options);
    test.describe();
    for (int64_t i = 0; i < test.size(); ++i) {
      if (test.label(i) >= test.num_classes()) __builtin_trap();
      test.image(i);
    }
  } catch (const qb::DataError&) {
  }
  return 0;
}
