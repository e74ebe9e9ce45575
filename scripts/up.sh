#!/usr/bin/env bash
# The main job: sets up a fresh machine, then `docker compose up` the controller (HTTP API and
# MCP endpoint on 127.0.0.1:8080) and prints an API key for owner "demo".
#   scripts/up.sh          start (or update) the stack
#   scripts/up.sh down     stop it (sessions end; skills, keys and the audit log stay)
set -euo pipefail
cd "$(dirname "$0")/.."
export SANDBOX_DATA_DIR="${SANDBOX_DATA_DIR:-/var/lib/sandbox-compose}"

if [ "${1:-}" = "down" ]; then
  docker compose down --remove-orphans
  exit 0
fi

bash scripts/setup.sh --no-image

# Bases: the official image where a registry answers, else bootstrapped from Debian packages.
if docker image inspect python:3.11-slim >/dev/null 2>&1 || docker pull -q python:3.11-slim >/dev/null 2>&1; then
  export SANDBOX_BASE_IMAGE=python:3.11-slim SANDBOX_CONTROLLER_BASE_IMAGE=python:3.11-slim
else
  docker image inspect sbx-base:bookworm >/dev/null 2>&1 || images/bootstrap-base.sh sbx-base:bookworm
  docker image inspect sbx-controller-base:bookworm >/dev/null 2>&1 \
    || images/bootstrap-base.sh sbx-controller-base:bookworm python3-venv
  export SANDBOX_BASE_IMAGE=sbx-base:bookworm SANDBOX_CONTROLLER_BASE_IMAGE=sbx-controller-base:bookworm
fi

# Built here rather than by compose, so sandbox containers carry only our labels (compose.yaml).
if [ -z "${SANDBOX_IMAGE:-}" ]; then
  echo "== sandbox image"
  sandbox images build
  SANDBOX_IMAGE="$(python3 -c 'from sandbox.images import image_tag; print(image_tag())')"
  export SANDBOX_IMAGE
fi

echo "== wheelhouse (the controller image installs from it, offline)"
rm -rf build/wheelhouse
python3 -m pip wheel -q --disable-pip-version-check -w build/wheelhouse .

mkdir -p "$SANDBOX_DATA_DIR"
echo "== docker compose up"
# --remove-orphans: earlier versions had a one-shot sandbox-image service.
docker compose up -d --build --wait --remove-orphans

key="$(docker compose exec -T controller sandbox keys create --owner demo 2>/dev/null)"
cat <<TXT

The controller is up on http://127.0.0.1:${SANDBOX_PORT:-8080} (MCP endpoint: /mcp).
An API key for owner "demo" (shown once; make more with
  docker compose exec controller sandbox keys create --owner NAME):

$key

Try it:
  python3 -c 'from sandbox.client import Client
with Client("http://127.0.0.1:${SANDBOX_PORT:-8080}", "$key") as c, c.session() as s:
    print(s.run("print(6 * 7)").stdout)'
TXT
