#!/usr/bin/env bash
# The nightly job: build, run experiments/nightly.toml as tonight's run, compare it with this
# machine's baseline, append it to the history and regenerate the report.
#   bash tools/nightly.sh [RUN_NAME]        (default: today's UTC date)
# Baselines are kept per machine fingerprint (CPU model and flags, cores, LibTorch version:
# `bazel-bin/experiments/compare --fingerprint`), since timings do not compare across
# machines: results/baselines/<fingerprint>/nightly.jsonl. The first night on a machine
# records its baseline there and says so: QB_BASELINE_RUNS runs of the sweep, so that compare
# learns how much a whole run's timings move on this machine (a latency change within that
# spread is noise, not a regression). QB_BASELINE_ADD=1 appends tonight's run to the baseline
# after the comparison, widening what it knows of the machine's run-to-run spread.
# Environment: QB_BASELINE (default: this machine's baseline file, as above),
#              QB_BASELINE_RUNS (default 3), QB_BASELINE_ADD (default 0),
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
    --json "$dir/verdict.json" > /dev/null || status=$?
  if [ "$status" = 1 ]; then
    # A machine's timings move from run to run by more than one run's repetitions show: a
    # regression must show again in a second measurement. Accuracy and size are deterministic;
    # the latency part is measured again and replaces the first in the run's tables.
    echo "nightly: regression against the baseline; timing every point again to confirm" >&2
    bazel-bin/experiments/sweep experiments/nightly.toml --run "$run" --part latency --force
    status=0
    bazel-bin/experiments/compare "$baseline" "$dir" --report "$dir/compare.md" \
      --json "$dir/verdict.json" || status=$?
  else
    cat "$dir/compare.md"
  fi
  if [ "${QB_BASELINE_ADD:-0}" = 1 ]; then
    cat "$dir/records.jsonl" >> "$baseline"
    echo "nightly: tonight's records appended to the baseline $baseline" >&2
  fi
else
  mkdir -p "$(dirname "$baseline")"
  cp "$dir/records.jsonl" "$baseline.tmp"
  for i in $(seq 2 "${QB_BASELINE_RUNS:-3}"); do
    bazel-bin/experiments/sweep experiments/nightly.toml --run "$run.baseline$i"
    cat "results/nightly/$run.baseline$i/records.jsonl" >> "$baseline.tmp"
  done
  mv "$baseline.tmp" "$baseline"
  echo "nightly: first run on machine $fingerprint: ${QB_BASELINE_RUNS:-3} runs of its records" \
       "are now the baseline $baseline (commit it); nothing to compare tonight" >&2
fi
bazel-bin/experiments/report "$dir" --history "$history" --append "$run" --title "nightly $run"
echo "nightly $run: report $dir/report.html, comparison $dir/compare.md, exit status $status"
exit "$status"
