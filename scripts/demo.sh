#!/usr/bin/env bash
# The main job end to end on this one machine, with embedded defaults (no cloud, no tokens):
#   GitHub simulator -> data_collection -> development_server (screen, Ray Tune, final fit, artifact)
#   -> deploy by `git push` into a local production host repository (pre-receive validates, post-receive
#      switches var/production/current) -> local production stack (RabbitMQ, Celery worker, gunicorn, nginx).
# Sizes can be changed through the environment (DEMO_REPOS, DEMO_MAX_REPOS, DEMO_TRIALS, DEMO_SEED).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DEMO_REPOS=${DEMO_REPOS:-6000}
DEMO_MAX_REPOS=${DEMO_MAX_REPOS:-4000}
DEMO_MIN_STARS=${DEMO_MIN_STARS:-50}
DEMO_TRIALS=${DEMO_TRIALS:-16}
DEMO_SEED=${DEMO_SEED:-7}
# A fixed port by default: the collection checkpoint records the API URL, so an interrupted demo resumes.
SIM_PORT=${DEMO_SIM_PORT:-38765}
if (exec 3<>"/dev/tcp/127.0.0.1/${SIM_PORT}") 2>/dev/null; then
  SIM_PORT=$($PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  echo "   (port ${DEMO_SIM_PORT:-38765} is taken: the simulator uses ${SIM_PORT})"
fi
mkdir -p var data models

echo "== 1/5 GitHub simulator on 127.0.0.1:${SIM_PORT} (${DEMO_REPOS} repositories, seed ${DEMO_SEED})"
$PY -m data_collection.simulator --port "$SIM_PORT" --repos "$DEMO_REPOS" --seed "$DEMO_SEED" \
  --tokens demo-token-1,demo-token-2,demo-token-3 >var/simulator.log 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${SIM_PORT}/rate_limit" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== 2/5 collecting repositories with >= ${DEMO_MIN_STARS} stars (top ${DEMO_MAX_REPOS}, enriched)"
collect() {
  GITHUB_API_URL="http://127.0.0.1:${SIM_PORT}" GITHUB_TOKENS=demo-token-1,demo-token-2,demo-token-3 \
    $PY -m data_collection collect --min-stars "$DEMO_MIN_STARS" --max-repos "$DEMO_MAX_REPOS" \
    --out data/repos.csv --workers 4 --resume 2> >(tee var/collect.err >&2)
}
if ! collect; then
  sleep 0.2  # let tee finish writing
  if grep -q "was made with other parameters" var/collect.err; then
    # An interrupted earlier demo with other sizes or another simulator port: its progress cannot be reused.
    echo "   the checkpoint of an earlier demo was made with other parameters: collecting afresh"
    rm -f data/repos.csv.checkpoint.sqlite data/repos.csv.checkpoint.sqlite-wal data/repos.csv.checkpoint.sqlite-shm
    collect
  else
    exit 1
  fi
fi
$PY - <<'PYEOF'
import json
meta = json.load(open("data/repos.csv.meta.json"))
print(f"   dataset: {meta['rows']} rows, {len(meta['slices'])} search slices, API calls {meta['api_calls']}")
PYEOF

echo "== 3/5 training: screening, Ray Tune (${DEMO_TRIALS} trials), final fit, held-out evaluation"
$PY -m model_serving.development_server train --data data/repos.csv --trials "$DEMO_TRIALS" --out models/ \
  --seed "$DEMO_SEED"

echo "== 4/5 deploying the new model by git push into this machine's production host repository"
kill $SIM_PID 2>/dev/null || true
$PY -m model_serving.production_server.local stop >/dev/null 2>&1 || true
# The deploy secret signs the model (deploy) and is checked by the hooks and the workers; generated once,
# mode 0600, git-ignored. Only its path is ever passed around.
if [ ! -s var/deploy_secret ]; then
  (umask 077 && $PY -c 'import secrets; print(secrets.token_urlsafe(32))' >var/deploy_secret)
fi
export STARGAZER_DEPLOY_SECRET_FILE="$PWD/var/deploy_secret"
HOST_REPO="$PWD/var/host/stargazer-deploy.git"
install_hooks() {
  bash githooks/install.sh --repo "$HOST_REPO" --model-dir "$PWD/var/production" \
    --secret-file "$STARGAZER_DEPLOY_SECRET_FILE" --host-name demo-host "$@" >var/githooks-install.log 2>&1
}
if ! install_hooks; then
  # The model check runs sandboxed as `stargazer-check` (install.sh as root creates it); without root, or with
  # a checkout that user cannot read, the demo checks models as the current user (no sandbox user).
  echo "   (the sandboxed load check cannot run here: checking models as $(id -un) instead)"
  install_hooks --check-user ''
fi
[ -d var/deploy.git ] || git init -q --bare --initial-branch=deploy var/deploy.git
git -C var/deploy.git remote get-url demo-host >/dev/null 2>&1 \
  || git -C var/deploy.git remote add demo-host "$HOST_REPO"
$PY -m model_serving.development_server deploy --remote demo-host

echo "== 5/5 serving var/production/current (RabbitMQ, Celery worker, gunicorn, nginx)"
$PY -m model_serving.production_server.local start
echo "Stop it with: make serve-stop"
