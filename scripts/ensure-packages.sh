#!/usr/bin/env bash
# Install the Debian packages whose commands are missing, as root (or through sudo).
#
#   scripts/ensure-packages.sh COMMAND=PACKAGE ...
#   scripts/ensure-packages.sh dockerd=docker.io debootstrap=debootstrap
#
# Exit status: 0 every command is there, 3 they are missing and cannot be installed
# here (no root, no sudo, or apt failed), 2 bad arguments.
set -euo pipefail

log() { echo "[ensure-packages] $*" >&2; }

(($#)) || { log "usage: $0 COMMAND=PACKAGE ..."; exit 2; }
missing=()
for pair in "$@"; do
  [[ $pair == *=* ]] || { log "not COMMAND=PACKAGE: $pair"; exit 2; }
  command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
done
((${#missing[@]})) || exit 0

if [[ $(id -u) -eq 0 ]]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo); else
  log "need root to install: ${missing[*]}"
  exit 3
fi
log "installing ${missing[*]}"
if ! "${as_root[@]}" apt-get update -qq ||
   ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
  log "apt-get could not install: ${missing[*]}"
  exit 3
fi
