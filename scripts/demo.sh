#!/usr/bin/env bash
# The main job end to end on this one machine, with embedded defaults (no cloud, no tokens):
#   GitHub simulator -> data_collection -> development_server (screen, Ray Tune, final fit, artifact)
#   -> local production stack (RabbitMQ, Celery worker, gunicorn, nginx) serving that model.
# Sizes can be changed through the environment (DEMO_REPOS, DEMO_MAX_REPOS, DEMO_TRIALS, DEMO_SEED).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DEMO_REPOS=${DEMO_REPOS:-6000}
DEMO_MAX_REPOS=${DEMO_MAX_REPOS:-4000}
DEMO_MIN_STARS=${DEMO_MIN_STARS:-50}
DEMO_TRIALS=${DEMO_TRIALS:-16}
DEMO_SEED=${DEMO_SEED:-7}
SIM_PORT=${DEMO_SIM_PORT:-$($PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')}
mkdir -p var data models

echo "== 1/4 GitHub simulator on 127.0.0.1:${SIM_PORT} (${DEMO_REPOS} repositories, seed ${DEMO_SEED})"
$PY -m data_collection.simulator --port "$SIM_PORT" --repos "$DEMO_REPOS" --seed "$DEMO_SEED" \
  --tokens demo-token-1,demo-token-2,demo-token-3 >var/simulator.log 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${SIM_PORT}/rate_limit" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== 2/4 collecting repositories with >= ${DEMO_MIN_STARS} stars (top ${DEMO_MAX_REPOS}, enriched)"
GITHUB_API_URL="http://127.0.0.1:${SIM_PORT}" GITHUB_TOKENS=demo-token-1,demo-token-2,demo-token-3 \
  $PY -m data_collection collect --min-stars "$DEMO_MIN_STARS" --max-repos "$DEMO_MAX_REPOS" \
  --out data/repos.csv --workers 4 --resume
$PY - <<'PYEOF'
import json
meta = json.load(open("data/repos.csv.meta.json"))
print(f"   dataset: {meta['rows']} rows, {len(meta['slices'])} search slices, API calls {meta['api_calls']}")
PYEOF

echo "== 3/4 training: screening, Ray Tune (${DEMO_TRIALS} trials), final fit, held-out evaluation"
$PY -m model_serving.development_server train --data data/repos.csv --trials "$DEMO_TRIALS" --out models/ \
  --seed "$DEMO_SEED"

echo "== 4/4 serving the newest model (RabbitMQ, Celery worker, gunicorn, nginx)"
kill $SIM_PID 2>/dev/null || true
$PY -m model_serving.production_server.local stop >/dev/null 2>&1 || true
$PY -m model_serving.production_server.local start
echo "Stop it with: make serve-stop"
