#!/usr/bin/env bash
# Runs the benchmarks, cheapest first; each writes bench/results/<name>.json and <name>.md stamped with its
# date, commit and machine load (bench/provenance.py). Then rewrites the figures README.md and docs/ quote
# from those results (bench/doc_numbers.py, docs/benchmarks.md).
#   scripts/bench.sh                 every benchmark
#   scripts/bench.sh gate serving    only these (the others' results stay as they are)
# The arguments below are the ones the docs' figures were measured with.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ALL=(lookup_calls check_sandbox accuracy deploy tuning gate shadow collect serving)
declare -A ARGS=(
  [gate]="--rounds 8"
  [shadow]="--rounds 3"
  [serving]="--model demo-sized"
)
if [ "$#" -gt 0 ]; then selected=("$@"); else selected=("${ALL[@]}"); fi
for bench in "${selected[@]}"; do
  echo "== bench/${bench}.py ${ARGS[$bench]:-}"
  # shellcheck disable=SC2086
  $PY -m "bench.${bench}" ${ARGS[$bench]:-}
done
$PY -m bench.doc_numbers
echo "Results in bench/results/; README.md and docs/ rewritten from them."
