#!/usr/bin/env bash
# Bootstraps a minimal Debian base image with python3 from Debian packages, for
# machines that cannot pull from a container registry.
#   usage: images/bootstrap-base.sh [TAG [EXTRA_PACKAGES]]   (default sbx-base:bookworm)
#   e.g.   images/bootstrap-base.sh sbx-controller-base:bookworm python3-venv
# Needs root, debootstrap and a running Docker engine. Takes about 40 s.
set -euo pipefail
tag="${1:-sbx-base:bookworm}"
extra="${2:-}"
mirror="${SANDBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
root="$(mktemp -d /tmp/sbx-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include="python3${extra:+,$extra}" bookworm "$root" "$mirror" >/dev/null
# Trim what a sandbox never needs: apt caches, docs, man pages.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "$tag"
