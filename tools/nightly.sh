#!/usr/bin/env bash
# The nightly job: build, run experiments/nightly.toml as tonight's run, compare it with the
# committed baseline, append it to the history and regenerate the report.
#   bash tools/nightly.sh [RUN_NAME]        (default: today's UTC date)
# Environment: QB_BASELINE (default results/baselines/nightly.jsonl),
#              QB_HISTORY (default results/history/nightly.jsonl).
# Exit status: compare's (0 clean, 1 regression, 2 bad input), or the failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."

run="${1:-$(date -u +%F)}"
baseline="${QB_BASELINE:-results/baselines/nightly.jsonl}"
history="${QB_HISTORY:-results/history/nightly.jsonl}"
dir="results/nightly/$run"

bash tools/setup.sh
bazel build //experiments:sweep //experiments:compare //experiments:report
bazel-bin/experiments/sweep experiments/nightly.toml --run "$run"

status=0
if [ -f "$baseline" ]; then
  bazel-bin/experiments/compare "$baseline" "$dir" --report "$dir/compare.md" \
    --json "$dir/verdict.json" || status=$?
else
  echo "no baseline at $baseline: to make tonight's run the baseline," \
       "cp $dir/records.jsonl $baseline" >&2
fi
bazel-bin/experiments/report "$dir" --history "$history" --append "$run" --title "nightly $run"
echo "nightly $run: report $dir/report.html, comparison $dir/compare.md, exit status $status"
exit "$status"
