#!/usr/bin/env bash
# Installs the system packages the tests and the demo start for real, when they are missing.
# Runs apt only as root; otherwise says what is missing and carries on (tests then fail or skip as docs/contracts.md §7 says).
set -euo pipefail
declare -A need=(
  [rabbitmq-server]=/usr/sbin/rabbitmq-server
  [nginx]=/usr/sbin/nginx
  [chromium]=/usr/bin/chromium
  [openssh-server]=/usr/sbin/sshd
  [iproute2]=/usr/sbin/ip
  [wrk]=/usr/bin/wrk
  [git]=/usr/bin/git
  [supervisor]=/usr/bin/supervisord
  [sudo]=/usr/bin/sudo
  [openssl]=/usr/bin/openssl
  [util-linux]=/usr/bin/unshare
)
missing=()
for pkg in "${!need[@]}"; do
  [ -x "${need[$pkg]}" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install_system_deps: not root, cannot install: ${missing[*]}" >&2
  exit 0
fi
echo "install_system_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
