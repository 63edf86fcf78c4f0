#!/usr/bin/env bash
# Builds the libFuzzer targets (data/fuzz/, models/fuzz/, experiments/fuzz/) with
# AddressSanitizer and UndefinedBehaviorSanitizer and runs each for a while. They live
# outside Bazel because Debian's Bazel 4 toolchain is gcc, and libFuzzer needs clang. The
# parser a target exercises is compiled here, instrumented; what it merely calls (the
# experiment reader's model zoo and qconfigs) is linked from Bazel's libraries.
#
# Usage: tools/fuzz.sh [seconds per fuzzer, default 60] [fuzzer names, default all]
# Output (binaries, corpora, crash inputs) goes to $QB_FUZZ_DIR, default /tmp/qb-fuzz;
# corpora persist there, so later runs continue where earlier ones stopped.
set -euo pipefail

seconds=${1:-60}
shift || true
fuzzers=("$@")
[ ${#fuzzers[@]} -gt 0 ] || fuzzers=(idx_fuzzer cifar_fuzzer checkpoint_fuzzer experiment_fuzzer)

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${QB_FUZZ_DIR:-/tmp/qb-fuzz}
mkdir -p "$out/obj"

CXX=${CXX:-clang++-14}
sanitizers=-fsanitize=fuzzer,address,undefined
# UB must stop the run like a crash does, or the fuzzer would only print it.
cxxflags=(-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter "$sanitizers"
  -fno-sanitize-recover=undefined -I"$repo" -isystem /usr/include/torch/csrc/api/include
  # As Bazel builds it: TOML++'s parser from Debian's library, whose debug assertions (not
  # compiled there) fire on inputs such as "[," that it then reports as parse errors.
  -DTOML_HEADER_ONLY=0)
libs=(-ltorch -ltorch_cpu -lc10 -lz)
# The experiment reader's callees, from Bazel (built below when that fuzzer runs).
bazel_libs=(quant/libquant.pic.a models/libzoo.pic.a quant/libquant.pic.a eval/libeval.pic.a
  data/libdata.pic.a models/libcheckpoint.pic.a base/libbase.pic.a)
system_libs=(-ltomlplusplus -ldnnl -lcrypto -lbenchmark -lopencv_core -lopencv_imgproc
  -lopencv_imgcodecs -ljpeg -lpthread)

# The parsers each fuzzer exercises, compiled straight from data/ (dataset.cc holds
# the Dataset vtable).
declare -A sources=(
  [idx_fuzzer]="data/idx.cc data/dataset.cc"
  [cifar_fuzzer]="data/cifar.cc data/dataset.cc"
  [checkpoint_fuzzer]="models/checkpoint.cc base/atomic_file.cc base/read_file.cc"
  [experiment_fuzzer]="experiments/config.cc experiments/experiment.cc experiments/paths.cc"
)
declare -A directories=(
  [idx_fuzzer]=data/fuzz [cifar_fuzzer]=data/fuzz [checkpoint_fuzzer]=models/fuzz
  [experiment_fuzzer]=experiments/fuzz
)

compile() {  # compile <source>: prints the object, rebuilt only when the source is newer
  local object="$out/obj/${1//\//_}.o"
  if [ ! -e "$object" ] || [ "$repo/$1" -nt "$object" ]; then
    echo "fuzz: compiling $1" >&2
    "$CXX" "${cxxflags[@]}" -c "$repo/$1" -o "$object"
  fi
  echo "$object"
}

# Small valid inputs to start from, so the fuzzer need not discover the formats.
write_seeds() {
  local seeds="$out/seeds/$1"
  rm -rf "$seeds"
  mkdir -p "$seeds"
  case $1 in
    idx_fuzzer)
      printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02abcdefgh' \
        >"$seeds/images"
      printf '\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03' >"$seeds/labels"
      gzip -c "$seeds/images" >"$seeds/images.gz"
      # First byte 0xb0 splits the rest near the boundary between the two files.
      { printf '\xb0'; cat "$seeds/images" "$seeds/labels"; } >"$seeds/pair"
      ;;
    cifar_fuzzer)
      { printf '\x00\x03'; head -c 3072 /dev/zero; } >"$seeds/cifar10"
      { printf '\x01\x05\x3f'; head -c 3072 /dev/urandom; } >"$seeds/cifar100_fine"
      { printf '\x03\x05\x3f'; head -c 3072 /dev/urandom; } >"$seeds/cifar100_coarse"
      { printf '\x01\x05\x3f'; head -c 3072 /dev/urandom
        printf '\x13\x63'; head -c 3072 /dev/zero; } >"$seeds/cifar100_two_records"
      { printf '\x04\x00\x14a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\x01'; head -c 3072 /dev/zero; } \
        >"$seeds/cifar10_meta"
      ;;
    checkpoint_fuzzer)
      cp "$repo"/tests/fixtures/*.pt "$seeds/"
      ;;
    experiment_fuzzer)
      cp "$repo"/experiments/*.toml "$repo"/experiments/mappings/*.toml "$seeds/"
      ;;
  esac
  echo "$seeds"
}

for fuzzer in "${fuzzers[@]}"; do
  [ -n "${sources[$fuzzer]:-}" ] || { echo "fuzz: unknown fuzzer $fuzzer" >&2; exit 2; }
  objects=()
  for source in ${directories[$fuzzer]}/$fuzzer.cc ${sources[$fuzzer]}; do objects+=("$(compile "$source")"); done
  extra=()
  if [ "$fuzzer" = experiment_fuzzer ]; then
    (cd "$repo" && bazel build //quant //models:zoo //eval //data //models:checkpoint //base)
    for lib in "${bazel_libs[@]}"; do extra+=("$repo/bazel-bin/$lib"); done
    extra+=("${system_libs[@]}")
  fi
  "$CXX" "${cxxflags[@]}" "${objects[@]}" "${extra[@]}" "${libs[@]}" -o "$out/$fuzzer"

  # LibTorch 1.13's zip reader leaks miniz's state when its constructor throws on a damaged
  # archive (PyTorchStreamReader's destructor never runs): leaks inside libtorch_cpu are not
  # ours to fix, every other leak still stops the run.
  printf 'leak:libtorch_cpu.so\n' >"$out/lsan.supp"
  export LSAN_OPTIONS="suppressions=$out/lsan.supp:print_suppressions=0"
  seeds=$(write_seeds "$fuzzer")
  mkdir -p "$out/corpus/$fuzzer" "$out/crashes"
  echo "fuzz: running $fuzzer for ${seconds}s"
  # Records are 3073 or 3074 bytes, so inputs must be allowed to hold a few of them.
  "$out/$fuzzer" -max_total_time="$seconds" -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$fuzzer-" "$out/corpus/$fuzzer" "$seeds"
done
