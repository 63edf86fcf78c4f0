#!/usr/bin/env bash
# The nightly job: build, run experiments/nightly.toml as tonight's run, compare it with this
# machine's baseline, append it to the history and regenerate the report.
#   bash tools/nightly.sh [RUN_NAME]        (default: today's UTC date)
# Baselines are kept per machine fingerprint (CPU model and flags, cores, LibTorch version:
# `bazel-bin/experiments/compare --fingerprint`), since timings do not compare across
# machines: results/baselines/<fingerprint>/nightly.jsonl. The first night on a machine
# records its baseline there and says so.
# Environment: QB_BASELINE (default: this machine's baseline file, as above),
#              QB_HISTORY (default results/history/nightly.jsonl).
# Exit status: compare's (0 clean, 1 regression, 2 bad input, 3 latency not comparable), or
# the failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."

run="${1:-$(date -u +%F)}"
history="${QB_HISTORY:-results/history/nightly.jsonl}"
dir="results/nightly/$run"

bash tools/setup.sh
bazel build //experiments:sweep //experiments:compare //experiments:report
fingerprint="$(bazel-bin/experiments/compare --fingerprint)"
baseline="${QB_BASELINE:-results/baselines/$fingerprint/nightly.jsonl}"
bazel-bin/experiments/sweep experiments/nightly.toml --run "$run"

status=0
if [ -f "$baseline" ]; then
  bazel-bin/experiments/compare "$baseline" "$dir" --report "$dir/compare.md" \
    --json "$dir/verdict.json" || status=$?
else
  mkdir -p "$(dirname "$baseline")"
  cp "$dir/records.jsonl" "$baseline"
  echo "nightly: first run on machine $fingerprint: its records are now the baseline" \
       "$baseline (commit it); nothing to compare tonight" >&2
fi
bazel-bin/experiments/report "$dir" --history "$history" --append "$run" --title "nightly $run"
echo "nightly $run: report $dir/report.html, comparison $dir/compare.md, exit status $status"
exit "$status"
