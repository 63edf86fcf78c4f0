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
for experiment in quickstart latency_resnet18; do
  bazel-bin/experiments/sweep "experiments/$experiment.toml" --run published "$@"
  cp "results/$experiment/published/records.jsonl" "results/published/$experiment.jsonl"
done
bazel-bin/experiments/report --publish results \
  quickstart=results/published/quickstart.jsonl \
  latency_resnet18=results/published/latency_resnet18.jsonl
