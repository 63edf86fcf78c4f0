// The Catch2 main every test binary shares.
//
// oneDNN 2.6.3's AMX int8 kernels for grouped and depthwise convolutions are wrong (PyTorch's
// own int8 MobileNetV2 gives 1.0 dB SQNR and can corrupt the heap). Capping oneDNN at
// AVX512_CORE_VNNI before any primitive exists makes every test's verdict the same on CPUs
// with and without AMX; the cap is inherited by the Python reference scripts the tests run.
// A cap the environment already sets wins.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

int main(int argc, char** argv) {
  setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI", /*overwrite=*/0);
  return Catch::Session().run(argc, argv);
}
