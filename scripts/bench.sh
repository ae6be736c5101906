#!/usr/bin/env bash
# Runs every benchmark; each writes bench/results/<name>.json and <name>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
for bench in collect tuning accuracy serving deploy; do
  echo "== bench/${bench}.py"
  $PY "bench/${bench}.py"
done
echo "Results in bench/results/"
