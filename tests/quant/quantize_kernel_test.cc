// The vectorized per-tensor quantize gives LibTorch's bits, on every path this CPU runs,
// for ordinary values, exact halves (round half to even), values past the int8 range,
// infinities and NaN (which LibTorch's int64 conversion sends to the lowest value), any
// length (the vector tails) and either memory format.

#include "quant/quantize_kernel.h"

#include <ATen/ATen.h>

#include <limits>

#include "tests/catch.h"

namespace qb {
namespace {

at::Tensor awkward_values() {
  at::manual_seed(0);
  at::Tensor x = at::randn({2, 3, 7, 11}) * 4;  // 462 values: not a multiple of 8 or 16
  float* data = x.data_ptr<float>();
  const float specials[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 127.5f, 128.5f, -128.5f, 1e6f, -1e6f,
                            3e38f, -3e38f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f};
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; ++i) data[i * 17] = specials[i];
  return x;
}

TEST_CASE("fast quantize gives LibTorch's bits on every path this CPU runs") {
  const at::Tensor x = awkward_values();
  for (QuantizeIsa isa : {QuantizeIsa::kScalar, QuantizeIsa::kAvx2, QuantizeIsa::kAvx512,
                          QuantizeIsa::kBest}) {
    if (!cpu_supports(isa)) continue;
    for (at::ScalarType dtype : {at::kQUInt8, at::kQInt8}) {
      for (double scale : {0.5, 0.0342147350311279, 1e-7}) {
        for (int64_t zero_point : dtype == at::kQUInt8 ? std::vector<int64_t>{0, 113, 255}
                                                        : std::vector<int64_t>{-128, 0, 5}) {
          INFO("isa " << static_cast<int>(isa) << " dtype " << dtype << " scale " << scale
                      << " zero point " << zero_point);
          at::Tensor want = at::quantize_per_tensor(x, scale, zero_point, dtype);
          at::Tensor got = fast_quantize_per_tensor(x, scale, zero_point, dtype, isa);
          CHECK(got.scalar_type() == dtype);
          CHECK(got.q_scale() == want.q_scale());
          CHECK(got.q_zero_point() == want.q_zero_point());
          CHECK(at::equal(got.int_repr(), want.int_repr()));
        }
      }
    }
  }
}

TEST_CASE("fast quantize keeps a channels-last input channels-last") {
  const at::Tensor x = awkward_values().contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor got = fast_quantize_per_tensor(x, 0.1, 7, at::kQUInt8);
  CHECK(got.is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(at::equal(got.int_repr(), at::quantize_per_tensor(x, 0.1, 7, at::kQUInt8).int_repr()));
}

TEST_CASE("fast quantize leaves what it does not cover to LibTorch") {
  const at::Tensor y = at::randn({5});
  CHECK(at::equal(fast_quantize_per_tensor(y, 0.1, 3, at::kQInt32).int_repr(),
                  at::quantize_per_tensor(y, 0.1, 3, at::kQInt32).int_repr()));
}

}  // namespace
}  // namespace qb
