#pragma once
// The instruction set oneDNN dispatches its kernels to. It decides int8 latency (AMX is
// about 3x VNNI on ResNet-18) and, for oneDNN 2.6.3's grouped and depthwise int8
// convolutions, whether the result is right at all; so records name it, and sweeps can cap it.
//
// Names are oneDNN's own, as ONEDNN_MAX_CPU_ISA takes them, in lower case: "avx2",
// "avx2_vnni", "avx512_core", "avx512_core_vnni", "avx512_core_bf16", "avx512_core_amx".

#include <string>
#include <vector>

namespace qb {

/// The ISA names a sweep may ask for, from the oldest to the newest.
const std::vector<std::string>& onednn_isa_names();

/// Whether `name` is one of onednn_isa_names().
bool is_onednn_isa(const std::string& name);

/// The ISA oneDNN dispatches to in this process: the CPU's best, capped by
/// ONEDNN_MAX_CPU_ISA as it was when oneDNN first looked (before the first primitive).
std::string effective_onednn_isa();

/// Whether this CPU has every instruction `isa` needs, from its /proc/cpuinfo flags (not
/// oneDNN's view, which a cap in this process's environment would narrow).
bool cpu_has_isa(const std::string& isa);

/// The same test against a space-separated flags line, as /proc/cpuinfo writes it.
bool flags_have_isa(const std::string& isa, const std::string& flags);

/// The cap this process's environment sets (ONEDNN_MAX_CPU_ISA, or the older
/// DNNL_MAX_CPU_ISA), in lower case; "" for none.
std::string onednn_isa_cap_from_environment();

/// The environment variable's value that caps oneDNN at `isa` ("AVX512_CORE_VNNI").
std::string onednn_max_cpu_isa_value(const std::string& isa);

}  // namespace qb
