#!/usr/bin/env bash
# Installs the Debian packages of scripts/debian-packages.txt that are missing. As root
# only; otherwise it says what is missing, and the tests that need it skip with the
# reason (and fail under CI=true).
set -euo pipefail
LIST=${1:-"$(dirname "$0")/debian-packages.txt"}
missing=()
while read -r pkg; do
  pkg=${pkg%%#*}
  pkg=$(echo "$pkg" | tr -d '[:space:]')
  [ -n "$pkg" ] || continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < "$LIST"
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "debian-deps: missing ${missing[*]} (not root or no apt-get: the tests that need them will skip)"
  exit 0
fi
echo "debian-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
