#!/usr/bin/env bash
# The Lambda image moto's Lambda emulation runs functions in, for the bulk state machine on moto's
# Step Functions interpreter (make bulk, tests/sam/test_bulk_state_machine.py), built offline.
#
#   scripts/moto-lambda-image.sh    # docker up, images built (idempotent); prints the image name
#
# moto runs an image in the docker-lambda convention (handler and event as arguments, the answer
# on stdout's last line: scripts/moto_lambda_runner.py), and copies each function's code and layers
# into volumes with a `busybox` image. Both come from scripts/lambda-image.sh's image (a Debian
# root file system with the Lambda runtime's Python and boto3): no registry is needed.
# Exit status: 0 ready, 3 no Docker daemon could be started, 1 anything else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECIPE=1  # bump when the runner or this recipe changes
BASE="$("$ROOT/scripts/lambda-image.sh" ensure | tail -1)"
RUNNER_DIGEST="$(sha256sum "$ROOT/scripts/moto_lambda_runner.py" | cut -c1-12)"
IMAGE="local/moto-lambda-python3.13-r${RECIPE}-${RUNNER_DIGEST}:latest"

log() { echo "[moto-lambda-image] $*" >&2; }

if ! docker image inspect busybox:latest >/dev/null 2>&1; then
  log "tagging $BASE as busybox:latest (moto copies code into volumes with it; it needs only sleep)"
  docker tag "$BASE" busybox:latest
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "building $IMAGE from $BASE"
  container="$(docker create "$BASE" /bin/true)"
  trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
  docker cp "$ROOT/scripts/moto_lambda_runner.py" "$container:/var/runtime/moto_lambda_runner.py"
  docker commit \
    --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
    --change 'WORKDIR /var/task' \
    --change 'ENTRYPOINT ["/usr/bin/python3", "/var/runtime/moto_lambda_runner.py"]' \
    "$container" "$IMAGE" >/dev/null
  log "built $IMAGE"
fi
echo "$IMAGE"
