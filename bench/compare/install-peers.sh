#!/usr/bin/env bash
# bench/compare/install-peers.sh — installs what the comparison harness (bench/compare/run.sh)
# needs besides bus's own build dependencies: nats-server (2.9, JetStream built in), the NATS C
# client (libnats-dev, pkg-config libnats), ZeroMQ (libzmq3-dev, pkg-config libzmq), gnuplot for
# the latency plot, and pkg-config itself. Debian 12, as root. Idempotent: installs only what is
# missing and does nothing (no apt-get update either) when everything is there.
#   SKIP_APT=1 bench/compare/install-peers.sh    does nothing (same switch as scripts/setup.sh)
set -euo pipefail

[[ "${SKIP_APT:-0}" == 1 ]] && exit 0

packages=(nats-server libnats-dev libzmq3-dev gnuplot-nox pkg-config)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-peers.sh: missing packages (${missing[*]}); run as root or install them" >&2
  exit 1
fi
echo "install-peers.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
