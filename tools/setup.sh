#!/usr/bin/env bash
# Installs the Debian packages quantbench builds and runs with, when missing.
# Idempotent: with everything present it only checks and exits.
set -euo pipefail

packages=(
  bazel-bootstrap        # Bazel 4, offline
  build-essential        # g++
  git                    # results record the source revision
  libtorch-dev           # LibTorch 1.13: tensors, autograd, quantized kernels
  libopencv-dev          # image decoding and transforms
  libjpeg62-turbo-dev    # decoding part of a JPEG
  libbenchmark-dev       # latency measurements
  libdnnl-dev            # oneDNN 2.6 headers: which ISA the int8 kernels dispatch to
  libtomlplusplus-dev    # experiment files
  nlohmann-json3-dev     # result records
  libssl-dev             # SHA-256 of checkpoints and experiment files
  zlib1g-dev             # gzip-compressed IDX files
  catch2                 # tests
  gnuplot-nox            # plots in reports (SVG)
  dataset-fashion-mnist  # the quickstart data set
  python3-torch          # reference implementation the tests compare against
  python3-torchvision
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} Debian packages are installed."
  exit 0
fi

echo "setup: missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "setup: installing them needs root. Run this once, then retry:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else
  as_root=()
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: installed ${#missing[@]} package(s)."
