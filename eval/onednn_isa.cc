#include "eval/onednn_isa.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

namespace qb {

namespace {

struct IsaInfo {
  const char* name;
  dnnl_cpu_isa_t value;
  /// The /proc/cpuinfo flags the ISA needs (oneDNN's own checks, through cpuid).
  std::vector<std::string> flags;
};

const std::vector<IsaInfo>& isa_table() {
  static const std::vector<IsaInfo> table = {
      {"avx2", dnnl_cpu_isa_avx2, {"avx2", "fma"}},
      {"avx2_vnni", dnnl_cpu_isa_avx2_vnni, {"avx2", "fma", "avx_vnni"}},
      {"avx512_core", dnnl_cpu_isa_avx512_core, {"avx512f", "avx512bw", "avx512vl", "avx512dq"}},
      {"avx512_core_vnni",
       dnnl_cpu_isa_avx512_core_vnni,
       {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"}},
      {"avx512_core_bf16",
       dnnl_cpu_isa_avx512_core_bf16,
       {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16"}},
      {"avx512_core_amx",
       dnnl_cpu_isa_avx512_core_amx,
       {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16", "amx_tile",
        "amx_int8", "amx_bf16"}},
  };
  return table;
}

const IsaInfo& isa_info(const std::string& name) {
  for (const IsaInfo& info : isa_table()) {
    if (name == info.name) return info;
  }
  throw std::invalid_argument("unknown oneDNN ISA '" + name + "'");
}

std::string cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) return line.substr(line.find(':') + 1);
  }
  return "";
}

}  // namespace

const std::vector<std::string>& onednn_isa_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const IsaInfo& info : isa_table()) out.push_back(info.name);
    return out;
  }();
  return names;
}

bool is_onednn_isa(const std::string& name) {
  const auto& names = onednn_isa_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string effective_onednn_isa() {
  const dnnl_cpu_isa_t effective = dnnl_get_effective_cpu_isa();
  for (const IsaInfo& info : isa_table()) {
    if (info.value == effective) return info.name;
  }
  switch (effective) {
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    default:
      return "unknown (" + std::to_string(static_cast<int>(effective)) + ")";
  }
}

bool cpu_has_isa(const std::string& isa) { return flags_have_isa(isa, cpuinfo_flags()); }

bool flags_have_isa(const std::string& isa, const std::string& flags) {
  std::istringstream words(flags);
  const std::set<std::string> present{std::istream_iterator<std::string>(words),
                                      std::istream_iterator<std::string>()};
  for (const std::string& flag : isa_info(isa).flags) {
    if (!present.count(flag)) return false;
  }
  return true;
}

std::string onednn_isa_cap_from_environment() {
  for (const char* name : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}) {
    if (const char* value = std::getenv(name)) {
      std::string text = value;
      for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return text;
    }
  }
  return "";
}

std::string onednn_max_cpu_isa_value(const std::string& isa) {
  std::string value = isa_info(isa).name;
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return value;
}

}  // namespace qb
