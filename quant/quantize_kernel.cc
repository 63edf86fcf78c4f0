#include "quant/quantize_kernel.h"

#include <ATen/ATen.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace qb {

namespace {

// LibTorch's quantize_val: q = int64(zero_point + nearbyint(x * (1 / float(scale)))), the sum
// taken in float, then clamped. A float at or beyond 2^63 (or NaN) converts to INT64_MIN
// on x86 and so clamps to the minimum; the vector paths reproduce that.
constexpr float kInt64Limit = 9.223372036854775808e18f;

template <typename T>
T quantize_one(float x, float inv_scale, float zero_point) {
  constexpr float qmin = std::numeric_limits<T>::min(), qmax = std::numeric_limits<T>::max();
  const float q = zero_point + std::nearbyint(x * inv_scale);
  if (!(q < kInt64Limit)) return static_cast<T>(qmin);
  return static_cast<T>(std::min(std::max(q, qmin), qmax));
}

template <typename T>
void quantize_scalar(const float* x, T* q, int64_t n, float inv_scale, float zero_point) {
  for (int64_t i = 0; i < n; ++i) q[i] = quantize_one<T>(x[i], inv_scale, zero_point);
}

template <typename T>
__attribute__((target("avx512f"))) void quantize_avx512(const float* x, T* q, int64_t n,
                                                        float inv_scale, float zero_point) {
  constexpr float qmin = std::numeric_limits<T>::min(), qmax = std::numeric_limits<T>::max();
  const __m512 inv = _mm512_set1_ps(inv_scale), zp = _mm512_set1_ps(zero_point);
  const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
  const __m512 limit = _mm512_set1_ps(kInt64Limit);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), inv);
    v = _mm512_add_ps(zp, _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __mmask16 wraps = _mm512_cmp_ps_mask(v, limit, _CMP_NLT_UQ);  // >= 2^63 or NaN
    v = _mm512_mask_mov_ps(_mm512_min_ps(_mm512_max_ps(v, lo), hi), wraps, lo);
    const __m512i ints = _mm512_cvtps_epi32(v);
    if constexpr (std::is_signed_v<T>) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(ints));
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtusepi32_epi8(ints));
    }
  }
  quantize_scalar(x + i, q + i, n - i, inv_scale, zero_point);
}

template <typename T>
__attribute__((target("avx2"))) void quantize_avx2(const float* x, T* q, int64_t n,
                                                   float inv_scale, float zero_point) {
  constexpr float qmin = std::numeric_limits<T>::min(), qmax = std::numeric_limits<T>::max();
  const __m256 inv = _mm256_set1_ps(inv_scale), zp = _mm256_set1_ps(zero_point);
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  const __m256 limit = _mm256_set1_ps(kInt64Limit);
  alignas(32) int32_t lanes[8];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), inv);
    v = _mm256_add_ps(zp, _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256 wraps = _mm256_cmp_ps(v, limit, _CMP_NLT_UQ);
    v = _mm256_blendv_ps(_mm256_min_ps(_mm256_max_ps(v, lo), hi), lo, wraps);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_cvtps_epi32(v));
    for (int k = 0; k < 8; ++k) q[i + k] = static_cast<T>(lanes[k]);
  }
  quantize_scalar(x + i, q + i, n - i, inv_scale, zero_point);
}

template <typename T>
void quantize(QuantizeIsa isa, const float* x, T* q, int64_t n, float inv_scale, float zero_point) {
  switch (isa) {
    case QuantizeIsa::kAvx512:
      return quantize_avx512(x, q, n, inv_scale, zero_point);
    case QuantizeIsa::kAvx2:
      return quantize_avx2(x, q, n, inv_scale, zero_point);
    default:
      return quantize_scalar(x, q, n, inv_scale, zero_point);
  }
}

}  // namespace

bool cpu_supports(QuantizeIsa isa) {
  switch (isa) {
    case QuantizeIsa::kAvx512:
      return __builtin_cpu_supports("avx512f");
    case QuantizeIsa::kAvx2:
      return __builtin_cpu_supports("avx2");
    default:
      return true;
  }
}

at::Tensor fast_quantize_per_tensor(const at::Tensor& input, double scale, int64_t zero_point,
                                    at::ScalarType dtype, QuantizeIsa isa) {
  static const QuantizeIsa best = cpu_supports(QuantizeIsa::kAvx512) ? QuantizeIsa::kAvx512
                                  : cpu_supports(QuantizeIsa::kAvx2)  ? QuantizeIsa::kAvx2
                                                                      : QuantizeIsa::kScalar;
  if (isa == QuantizeIsa::kBest) isa = best;
  if (!cpu_supports(isa)) throw std::invalid_argument("this CPU cannot run the requested quantize path");
  if (input.scalar_type() != at::kFloat || (dtype != at::kQUInt8 && dtype != at::kQInt8) ||
      input.is_quantized()) {
    return at::quantize_per_tensor(input, scale, zero_point, dtype);
  }
  const at::MemoryFormat format = input.suggest_memory_format();
  const at::Tensor x = input.contiguous(format);
  at::Tensor q = at::_empty_affine_quantized(x.sizes(), x.options().dtype(dtype), scale, zero_point,
                                             format);
  const float inv_scale = 1.0f / static_cast<float>(scale);
  const float zp = static_cast<float>(zero_point);
  if (dtype == at::kQUInt8) {
    quantize(isa, x.data_ptr<float>(), static_cast<uint8_t*>(q.data_ptr()), x.numel(), inv_scale, zp);
  } else {
    quantize(isa, x.data_ptr<float>(), static_cast<int8_t*>(q.data_ptr()), x.numel(), inv_scale, zp);
  }
  return q;
}

}  // namespace qb
