// oneDNN's ISA names, the CPU-flag test behind skipping a point, and what oneDNN reports.

#include "eval/onednn_isa.h"

#include <cstdlib>
#include <stdexcept>

#include "tests/catch.h"

namespace qb {
namespace {

// /proc/cpuinfo flags (the relevant part) of three CPUs.
const char* kZen3 = "fpu sse4_1 sse4_2 avx avx2 fma bmi2";
const char* kCascadeLake =
    "sse4_2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni";
const char* kSapphireRapids =
    "sse4_2 avx avx2 fma avx_vnni avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni "
    "avx512_bf16 amx_bf16 amx_tile amx_int8";

TEST_CASE("an ISA is available when the CPU has every flag it needs") {
  CHECK(flags_have_isa("avx2", kZen3));
  CHECK_FALSE(flags_have_isa("avx512_core", kZen3));
  CHECK(flags_have_isa("avx512_core_vnni", kCascadeLake));
  CHECK_FALSE(flags_have_isa("avx512_core_bf16", kCascadeLake));
  CHECK_FALSE(flags_have_isa("avx512_core_amx", kCascadeLake));
  CHECK_FALSE(flags_have_isa("avx2_vnni", kCascadeLake));
  for (const std::string& isa : onednn_isa_names()) CHECK(flags_have_isa(isa, kSapphireRapids));
  CHECK_THROWS_WITH(flags_have_isa("avx512", kZen3), "unknown oneDNN ISA 'avx512'");
}

TEST_CASE("ISA names are oneDNN's, and the environment variable takes them in capitals") {
  CHECK(is_onednn_isa("avx512_core_amx"));
  CHECK_FALSE(is_onednn_isa("AVX512_CORE_AMX"));
  CHECK(onednn_max_cpu_isa_value("avx512_core_vnni") == "AVX512_CORE_VNNI");
}

TEST_CASE("the effective ISA is one oneDNN names, within this process's cap") {
  const std::string effective = effective_onednn_isa();
  INFO(effective);
  CHECK((is_onednn_isa(effective) || effective == "sse41" || effective == "avx"));
  // The test main caps oneDNN at AVX512_CORE_VNNI unless the environment set another cap.
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (cap && std::string(cap) == "AVX512_CORE_VNNI") {
    CHECK(effective != "avx512_core_bf16");
    CHECK(effective != "avx512_core_amx");
  }
}

}  // namespace
}  // namespace qb
