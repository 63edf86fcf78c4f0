#pragma once
// Per-tensor quantization of fp32 activations, bit for bit what at::quantize_per_tensor
// gives. LibTorch built without FBGEMM (Debian's) quantizes one element at a time through
// quantize_val, which costs 0.45 ms on a 3x224x224 input, 7% of int8 ResNet-18; this runs
// the same arithmetic 16 (AVX-512) or 8 (AVX2) elements at a time, chosen at run time.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qb {

/// The instruction sets the kernel has a path for; kBest is the widest this CPU runs.
enum class QuantizeIsa { kBest, kScalar, kAvx2, kAvx512 };

/// Whether this CPU runs `isa`'s path.
bool cpu_supports(QuantizeIsa isa);

/// at::quantize_per_tensor(input, scale, zero_point, dtype) for an fp32 input and dtype
/// quint8 or qint8; other dtypes go to LibTorch. The output keeps the input's memory format.
/// `isa` picks a path (tests check each against LibTorch); one this CPU lacks throws
/// std::invalid_argument.
at::Tensor fast_quantize_per_tensor(const at::Tensor& input, double scale, int64_t zero_point,
                                    at::ScalarType dtype, QuantizeIsa isa = QuantizeIsa::kBest);

}  // namespace qb
