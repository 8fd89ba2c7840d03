#!/usr/bin/env bash
# The device target for real: an arm64 Debian root (debootstrap) run under qemu-user,
# the device package installed there by `edge-agent install` from the registry's arm64
# wheels, then `edge-agent replay` on the shipped sample, the inference benchmark and
# `edge-agent doctor`. Slow under emulation (tens of minutes the first time); the point
# is that the arm64 install and run work, not the speed. Results: docs/arm64.md.
#
# Needs root (debootstrap, chroot, binfmt). Re-running reuses the root (delete
# $ARM64_ROOT to start over) and reinstalls the freshly built wheel.
#
#   sudo scripts/arm64-smoke.sh            # ARM64_ROOT=/var/tmp/edgetwin-arm64 SUITE=bookworm
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=${ARM64_ROOT:-/var/tmp/edgetwin-arm64}
SUITE=${SUITE:-bookworm}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3

say() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

if [ "$(id -u)" != 0 ]; then
  echo "arm64-smoke: needs root (debootstrap, chroot, binfmt_misc)" >&2
  exit 2
fi

# The mirror apt already uses on this host, so the script names none of its own.
mirror() {
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "arm64-smoke: no Debian mirror in /etc/apt/sources.list*" >&2; exit 2; }
  echo "$uri"
}

say "host: $(uname -m), $(. /etc/os-release && echo "$PRETTY_NAME")"
need=()
for pkg in debootstrap qemu-user-static binfmt-support; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# In a container binfmt_misc is often not mounted: mounting it lets binfmt-support
# register qemu-aarch64 (with the F flag, so the chroot needs no copy of qemu).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64
say "binfmt: qemu-aarch64 $(grep -o 'flags: .*' /proc/sys/fs/binfmt_misc/qemu-aarch64)"

if [ ! -e "$ROOT/.edgetwin-debootstrapped" ]; then
  MIRROR=$(mirror)
  say "debootstrap $SUITE arm64 into $ROOT from the host's mirror"
  # Never delete through a bind mount left by an interrupted run (it would be the host's /dev).
  if grep -q " $ROOT/" /proc/mounts; then
    echo "arm64-smoke: $ROOT still has mounts (see /proc/mounts): umount them first" >&2
    exit 2
  fi
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,ca-certificates,systemd,systemd-sysv,passwd \
    "$SUITE" "$ROOT" "$MIRROR" | grep -v '^I: \(Retrieving\|Validating\|Extracting\|Unpacking\|Configuring\)'

  touch "$ROOT/.edgetwin-debootstrapped"
fi

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
# No /sys: the host's (x86) CPU topology there makes LiteRT's CPU probe (cpuinfo)
# segfault under qemu-user; without it the probe falls back to /proc and works.
if mountpoint -q "$ROOT/sys"; then umount -l "$ROOT/sys"; fi
for fs in proc dev dev/pts; do
  mountpoint -q "$ROOT/$fs" || { mount --bind "/$fs" "$ROOT/$fs"; mounts+=("$ROOT/$fs"); }
done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The host's trust store (it may trust a TLS-intercepting proxy that the fresh root does
# not know) for pip inside; proxy variables pass through.
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"

say "building the edgetwin wheel on the host"
rm -rf "$ROOT/tmp/edgetwin-dist"
mkdir -p "$ROOT/tmp/edgetwin-dist"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$ROOT/tmp/edgetwin-dist" "$REPO"
WHEEL=$(basename "$(ls "$ROOT"/tmp/edgetwin-dist/edgetwin-*.whl)")
echo "$WHEEL"

in_root() {
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt \
    PIP_DEFAULT_TIMEOUT=180 ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
    "$@"
}

say "inside: $(in_root uname -m), $(in_root python3 --version)"
# A re-run brings a rebuilt wheel of the same version: pip would call it satisfied.
if [ -x "$ROOT/opt/edge-agent/bin/pip" ]; then
  in_root /opt/edge-agent/bin/pip install --quiet --disable-pip-version-check \
    --force-reinstall --no-deps "/tmp/edgetwin-dist/$WHEEL"
fi
# The installer is pure standard library: it runs from the wheel itself, before any
# venv exists, and installs the wheel with its arm64 dependencies into /opt/edge-agent.
say "edge-agent install (venv, user, config, unit)"
in_root env PYTHONPATH="/tmp/edgetwin-dist/$WHEEL" python3 -m edge_agent.install \
  --package "/tmp/edgetwin-dist/$WHEEL"
say "installed: $(in_root /opt/edge-agent/bin/pip list --format=freeze 2>/dev/null | grep -iE '^(edgetwin|ai-edge-litert|numpy)==' | tr '\n' ' ')"
in_root id edge-agent
in_root systemctl is-enabled edge-agent.service
in_root /opt/edge-agent/bin/edge-agent check-config /etc/edge-agent/agent.toml

say "edge-agent model verify"
in_root /opt/edge-agent/bin/edge-agent model verify
say "edge-agent replay --sample"
in_root /opt/edge-agent/bin/edge-agent replay --sample
say "edge-agent model bench"
in_root /opt/edge-agent/bin/edge-agent model bench --samples "${BENCH_SAMPLES:-2000}"
say "edge-agent doctor (a chroot under emulation: no serial device, no time sync expected)"
in_root /opt/edge-agent/bin/edge-agent doctor --config /etc/edge-agent/agent.toml || true
say "done"
