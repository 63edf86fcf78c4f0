#!/usr/bin/env bash
# Regenerates results/README.md and results/plots/: resumes the published sweeps (only points
# not yet recorded are measured; --force measures everything again), keeps their records in
# results/published/ and renders them.
#   bash tools/publish_results.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
bazel build //experiments:sweep //experiments:report
mkdir -p results/published
experiments=(quickstart latency_resnet18 mobilenet_v2_fmnist)
tuned=(mobilenet_v2_fmnist)  # experiments with a [tuning] table: sweep --tune first
# Every sweep before any copy: records note uncommitted changes, and the copies would be some.
for experiment in "${tuned[@]}"; do
  bazel-bin/experiments/sweep "experiments/$experiment.toml" --run published --tune "$@"
done
for experiment in "${experiments[@]}"; do
  bazel-bin/experiments/sweep "experiments/$experiment.toml" --run published "$@"
done
for experiment in "${experiments[@]}"; do
  cp "results/$experiment/published/records.jsonl" "results/published/$experiment.jsonl"
done
for experiment in "${tuned[@]}"; do
  for file in fallback sensitivity; do
    cp "results/$experiment/published/tuning/$file.jsonl" "results/published/$experiment.$file.jsonl"
  done
done
bazel-bin/experiments/report --publish results \
  quickstart=results/published/quickstart.jsonl \
  latency_resnet18=results/published/latency_resnet18.jsonl \
  mobilenet_v2_fmnist=results/published/mobilenet_v2_fmnist.jsonl
