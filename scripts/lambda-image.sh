#!/usr/bin/env bash
# Make `sam local` work on a machine with no Docker engine and no container registry.
#
#   scripts/lambda-image.sh ensure   # docker daemon up + Lambda image built (idempotent)
#   scripts/lambda-image.sh image    # print the image name to pass to --invoke-image
#   scripts/lambda-image.sh stop     # stop the docker daemon if this script started it
#
# Exit status: 0 ready, 3 no Docker daemon could be started, 1 anything else.
#
# 1. installs docker.io and debootstrap from Debian's packages if they are missing;
# 2. starts `dockerd --iptables=false --ip-masq=false` if no daemon answers (no NAT:
#    containers reach this machine only), remembering that it did;
# 3. builds local/lambda-python3.13-r<recipe>-boto3-<version> once: a minimal Debian root file system
#    whose Python matches the template's Runtime, with the AWS Lambda runtime
#    interface client (awslambdaric), boto3 (as AWS's runtime has) and a
#    /var/runtime/bootstrap that runs it.
set -euo pipefail

PYTHON_VERSION="${LAMBDA_PYTHON_VERSION:-3.13}"
SUITE="${LAMBDA_DEBIAN_SUITE:-trixie}"   # trixie ships Python 3.13
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Like AWS's Python runtime, the image carries boto3: the version requirements-dev.txt pins.
BOTO3="$(grep -Eo '^boto3==[0-9.]+' "$ROOT/requirements-dev.txt")"
RECIPE=2  # bump when the image's contents change, so existing images are rebuilt
# Everything that changes the image is in the repository name: SAM derives `<repo>:rapid-x86_64`
# from it, so two tags of one repository would silently share one derived image.
IMAGE="local/lambda-python${PYTHON_VERSION}-r${RECIPE}-boto3-${BOTO3#boto3==}:latest"
STATE_DIR="${LAMBDA_IMAGE_STATE_DIR:-/tmp/lambda-image-state}"
DOCKERD_PIDFILE="$STATE_DIR/dockerd.pid"

log() { echo "[lambda-image] $*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1
  fi
}

install_packages() { "$ROOT/scripts/ensure-packages.sh" dockerd=docker.io debootstrap=debootstrap; }

docker_answers() { docker info >/dev/null 2>&1; }

start_docker() {
  docker_answers && return 0
  mkdir -p "$STATE_DIR"
  log "starting dockerd (no iptables, no masquerading)"
  as_root bash -c "nohup dockerd --iptables=false --ip-masq=false >'$STATE_DIR/dockerd.log' 2>&1 & echo \$! >'$DOCKERD_PIDFILE'"
  for _ in $(seq 1 60); do
    docker_answers && return 0
    sleep 1
  done
  log "dockerd did not answer within 60 s:"
  tail -20 "$STATE_DIR/dockerd.log" >&2 || true
  exit 3
}

stop_docker() {
  if [[ -f "$DOCKERD_PIDFILE" ]]; then
    local pid
    pid=$(cat "$DOCKERD_PIDFILE")
    log "stopping the dockerd this script started (pid $pid)"
    as_root kill "$pid" 2>/dev/null || true
    rm -f "$DOCKERD_PIDFILE"
  fi
}

debian_mirror() {
  # The machine's own Debian archive, as apt is configured; debootstrap's default otherwise.
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local sources
  for sources in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [[ -f $sources ]] || continue
    awk '/^URIs:/ && $2 !~ /security/ {print $2; exit} /^deb / && $0 !~ /security/ {print $2; exit}' "$sources"
    return
  done
}

build_image() {
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE is present"
    return 0
  fi
  local rootfs
  rootfs=$(mktemp -d /tmp/lambda-rootfs.XXXXXX)
  log "debootstrapping $SUITE into $rootfs"
  as_root debootstrap --variant=minbase --include=python3,ca-certificates "$SUITE" "$rootfs" $(debian_mirror) >"$STATE_DIR/debootstrap.log" 2>&1 || {
    tail -20 "$STATE_DIR/debootstrap.log" >&2
    return 1
  }
  local have
  have=$(as_root chroot "$rootfs" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  if [[ "$have" != "$PYTHON_VERSION" ]]; then
    log "$SUITE has Python $have, not $PYTHON_VERSION: set LAMBDA_DEBIAN_SUITE"
    return 1
  fi
  log "installing awslambdaric and $BOTO3 for Python $PYTHON_VERSION"
  as_root python3 -m pip install --quiet --disable-pip-version-check --target "$rootfs/var/runtime" \
    --python-version "$PYTHON_VERSION" --only-binary=:all: --implementation cp awslambdaric "$BOTO3"
  as_root tee "$rootfs/var/runtime/bootstrap" >/dev/null <<'BOOTSTRAP'
#!/bin/sh
export PYTHONPATH=/var/runtime:/opt/python:$LAMBDA_TASK_ROOT
cd "$LAMBDA_TASK_ROOT"
exec /usr/bin/python3 -m awslambdaric "$_HANDLER"
BOOTSTRAP
  as_root chmod 755 "$rootfs/var/runtime/bootstrap"
  as_root mkdir -p "$rootfs/var/task" "$rootfs/opt"
  log "importing $IMAGE"
  as_root tar -C "$rootfs" -c . | docker import -c 'ENV LAMBDA_TASK_ROOT=/var/task' -c 'WORKDIR /var/task' - "$IMAGE" >/dev/null
  as_root rm -rf "$rootfs"
  log "built $IMAGE"
}

mkdir -p "$STATE_DIR"
case "${1:-ensure}" in
  ensure)
    install_packages || exit 3
    start_docker
    build_image
    echo "$IMAGE"
    ;;
  image) echo "$IMAGE" ;;
  stop) stop_docker ;;
  *)
    echo "usage: $0 [ensure|image|stop]" >&2
    exit 2
    ;;
esac
