#!/bin/sh
# Create or update a production host's bare deploy repository with stargazer's hooks (Ansible calls this).
# Runs githooks/install.py with the application's venv; every option is documented by --help, e.g.
#   githooks/install.sh --repo /srv/git/models.git --model-dir /var/lib/stargazer/models \
#                       --public-key-file /etc/stargazer/deploy_public_key --owner git
# Idempotent: prints changed=false when everything was already in place.
set -eu
app_dir="$(cd "$(dirname "$0")/.." && pwd)"
python="${STARGAZER_PYTHON:-$app_dir/.venv/bin/python}"
PYTHONPATH="$app_dir${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m githooks.install --app-dir "$app_dir" "$@"
