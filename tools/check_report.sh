#!/usr/bin/env bash
# Renders a report page (and each plot) in headless Chromium and saves screenshots beside it,
# to look at before publishing.
#   bash tools/check_report.sh REPORT_DIR     -> REPORT_DIR/screenshots/*.png
set -euo pipefail
dir="${1:?usage: bash tools/check_report.sh REPORT_DIR}"
if ! command -v chromium > /dev/null; then
  echo "chromium is not installed: apt-get install chromium" >&2
  exit 2
fi
dir="$(cd "$dir" && pwd)"
mkdir -p "$dir/screenshots"
shoot() {  # page, output, width, height
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$3,$4" \
    --screenshot="$2" "file://$1" > /dev/null 2>&1
  [ -s "$2" ] || { echo "no screenshot of $1" >&2; exit 1; }
  echo "$2"
}
shoot "$dir/report.html" "$dir/screenshots/report.png" 1400 4000
for plot in "$dir"/plots/*.svg; do
  shoot "$plot" "$dir/screenshots/$(basename "${plot%.svg}").png" 780 560
done
