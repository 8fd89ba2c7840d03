#!/usr/bin/env bash
# Installs the Debian packages the tests use, when running as root (CI, a fresh machine).
# Otherwise lists what is missing: the tests that need it say so (and fail under CI=true).
# Usage: scripts/debian-packages.sh PACKAGE...
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "Debian packages missing (not root, not installing): ${missing[*]}"
fi
