#!/usr/bin/env bash
# Start the Ray HEAD node of the tuning cluster, with token authentication (Ray 2.60's default).
#
#   RAY_NODE_IP=10.0.0.5 scripts/ray_head.sh              # then on each worker: scripts/ray_worker.sh
#   RAY_BLOCK=1 scripts/ray_head.sh                       # stay in the foreground (supervisor, tests)
#
# Environment (all optional):
#   RAY_TOKEN_FILE   token shared by every node and client (default ~/.ray/auth_token). Created here, mode 0600,
#                    if missing. It is a secret: keep it out of git; copy it to the workers (Ansible does).
#   RAY_NODE_IP      address the other nodes reach this one on (default: Ray's guess)
#   RAY_PORT         GCS port (default 6379)
#   RAY_TEMP_DIR     this node's --temp-dir (default /tmp/ray); one per node when nodes share a filesystem
#   RAY_NUM_CPUS     CPUs offered to Ray (default: all)
#   RAY_BLOCK        1 = run in the foreground (--block), so the caller owns the node's processes
#   RAY_BIN          the `ray` executable (default: the project's .venv)
# Extra arguments are passed to `ray start`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RAY_BIN=${RAY_BIN:-$ROOT/.venv/bin/ray}
TOKEN_FILE=${RAY_TOKEN_FILE:-$HOME/.ray/auth_token}
PORT=${RAY_PORT:-6379}
TEMP_DIR=${RAY_TEMP_DIR:-/tmp/ray}

if [[ ! -s "$TOKEN_FILE" ]]; then
  mkdir -p "$(dirname "$TOKEN_FILE")"
  (umask 077 && "$ROOT/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$TOKEN_FILE")
  echo "ray_head: new auth token written to $TOKEN_FILE (copy it to every worker and client)" >&2
fi

# Token auth for this node and every process it starts; the token itself never appears on a command line.
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN_FILE"
unset RAY_AUTH_TOKEN
# Ray workers import the project's code (features, tuning trainable) from this checkout.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

args=(start --head --port "$PORT" --temp-dir "$TEMP_DIR" --include-dashboard=false --disable-usage-stats)
[[ -n "${RAY_NODE_IP:-}" ]] && args+=(--node-ip-address "$RAY_NODE_IP")
[[ -n "${RAY_NUM_CPUS:-}" ]] && args+=(--num-cpus "$RAY_NUM_CPUS")
[[ "${RAY_BLOCK:-0}" == 1 ]] && args+=(--block)
exec "$RAY_BIN" "${args[@]}" "$@"
