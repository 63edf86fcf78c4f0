#!/usr/bin/env bash
# Builds the libFuzzer targets in data/fuzz/ with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs each for a while. They live outside Bazel
# because Debian's Bazel 4 toolchain is gcc, and libFuzzer needs clang.
#
# Usage: tools/fuzz.sh [seconds per fuzzer, default 60] [fuzzer names, default all]
# Output (binaries, corpora, crash inputs) goes to $QB_FUZZ_DIR, default /tmp/qb-fuzz;
# corpora persist there, so later runs continue where earlier ones stopped.
set -euo pipefail

seconds=${1:-60}
shift || true
fuzzers=("$@")
[ ${#fuzzers[@]} -gt 0 ] || fuzzers=(idx_fuzzer cifar_fuzzer)

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${QB_FUZZ_DIR:-/tmp/qb-fuzz}
mkdir -p "$out/obj"

CXX=${CXX:-clang++-14}
sanitizers=-fsanitize=fuzzer,address,undefined
# UB must stop the run like a crash does, or the fuzzer would only print it.
cxxflags=(-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter "$sanitizers"
  -fno-sanitize-recover=undefined -I"$repo" -isystem /usr/include/torch/csrc/api/include)
libs=(-ltorch -ltorch_cpu -lc10 -lz)

# The parsers each fuzzer exercises, compiled straight from data/ (dataset.cc holds
# the Dataset vtable).
declare -A sources=(
  [idx_fuzzer]="data/idx.cc data/dataset.cc"
  [cifar_fuzzer]="data/cifar.cc data/dataset.cc"
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
  esac
  echo "$seeds"
}

for fuzzer in "${fuzzers[@]}"; do
  [ -n "${sources[$fuzzer]:-}" ] || { echo "fuzz: unknown fuzzer $fuzzer" >&2; exit 2; }
  objects=()
  for source in data/fuzz/$fuzzer.cc ${sources[$fuzzer]}; do objects+=("$(compile "$source")"); done
  "$CXX" "${cxxflags[@]}" "${objects[@]}" "${libs[@]}" -o "$out/$fuzzer"

  seeds=$(write_seeds "$fuzzer")
  mkdir -p "$out/corpus/$fuzzer" "$out/crashes"
  echo "fuzz: running $fuzzer for ${seconds}s"
  # Records are 3073 or 3074 bytes, so inputs must be allowed to hold a few of them.
  "$out/$fuzzer" -max_total_time="$seconds" -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$fuzzer-" "$out/corpus/$fuzzer" "$seeds"
done
