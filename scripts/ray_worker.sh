#!/usr/bin/env bash
# Start a Ray WORKER node and join the head, with the head's auth token.
#
#   RAY_HEAD_ADDRESS=10.0.0.5:6379 RAY_NODE_IP=10.0.0.6 scripts/ray_worker.sh
#
# Environment:
#   RAY_HEAD_ADDRESS  head's ip:port (required)
#   RAY_TOKEN_FILE    the SAME token as the head (default ~/.ray/auth_token); must exist: a worker never invents
#                     one (a different token fails after ~20 s with AuthenticationError: InvalidAuthToken)
#   RAY_NODE_IP, RAY_TEMP_DIR, RAY_NUM_CPUS, RAY_BLOCK, RAY_BIN: as in ray_head.sh
# Extra arguments are passed to `ray start`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RAY_BIN=${RAY_BIN:-$ROOT/.venv/bin/ray}
TOKEN_FILE=${RAY_TOKEN_FILE:-$HOME/.ray/auth_token}
TEMP_DIR=${RAY_TEMP_DIR:-/tmp/ray}

if [[ -z "${RAY_HEAD_ADDRESS:-}" ]]; then
  echo "ray_worker: set RAY_HEAD_ADDRESS to the head's ip:port (e.g. 10.0.0.5:6379)" >&2
  exit 2
fi
if [[ ! -s "$TOKEN_FILE" ]]; then
  echo "ray_worker: no auth token at $TOKEN_FILE: copy the head's token there (or set RAY_TOKEN_FILE)" >&2
  exit 2
fi

export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN_FILE"
unset RAY_AUTH_TOKEN
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

args=(start --address "$RAY_HEAD_ADDRESS" --temp-dir "$TEMP_DIR" --disable-usage-stats)
[[ -n "${RAY_NODE_IP:-}" ]] && args+=(--node-ip-address "$RAY_NODE_IP")
[[ -n "${RAY_NUM_CPUS:-}" ]] && args+=(--num-cpus "$RAY_NUM_CPUS")
[[ "${RAY_BLOCK:-0}" == 1 ]] && args+=(--block)
exec "$RAY_BIN" "${args[@]}" "$@"
