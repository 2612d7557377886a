#!/usr/bin/env bash
# need_pkg <command> <debian-package>: installs the package (as root, from Debian's registry) when the
# command is missing. Sourced by up.sh; run directly as `packages.sh <command> <package>` by benchmarks.
say() { echo "[infra] $*"; }
apt_updated=0
need_pkg() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then say "$1 is missing; install Debian package $2 (as root)"; return 1; fi
  [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
  say "installing $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# = 2 ] || { echo "usage: $0 <command> <debian-package>" >&2; exit 2; }
  need_pkg "$1" "$2"
fi
