#!/usr/bin/env bash
# Install nsgen from this checkout on a Debian or Ubuntu host, without touching the system Python:
# its own virtual environment in /opt/nsgen, and the command on every user's PATH and on sudo's
# (secure_path holds /usr/local/bin), so that `nsgen render` and `sudo nsgen run` both work.
#
#   sudo ./install.sh                 # install (again: upgrade) from this checkout
#   sudo ./install.sh --uninstall     # remove /opt/nsgen and /usr/local/bin/nsgen
#
# NSGEN_PREFIX and NSGEN_BIN choose other places; NSGEN_NO_APT=1 installs no Debian package.
set -euo pipefail

prefix=${NSGEN_PREFIX:-/opt/nsgen}
bin=${NSGEN_BIN:-/usr/local/bin}
here=$(cd "$(dirname "$0")" && pwd)
say() { echo "install: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  say "it installs into $prefix and $bin: run it as root (sudo $0 $*)"
  exit 1
fi

if [ "${1:-}" = --uninstall ]; then
  [ -L "$bin/nsgen" ] && [ "$(readlink "$bin/nsgen")" = "$prefix/bin/nsgen" ] && rm -f "$bin/nsgen"
  rm -rf "$prefix"
  say "removed $prefix and $bin/nsgen"
  exit 0
fi

# What nsgen runs, and Python's venv module (Debian ships it apart, as python3-venv).
need=()
for pair in ip:iproute2 ss:iproute2 iptables:iptables sysctl:procps flock:util-linux nsenter:util-linux \
            setsid:util-linux conntrack:conntrack nft:nftables; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ] && [ "${NSGEN_NO_APT:-}" != 1 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

say "making $prefix (a virtual environment) and installing nsgen from $here into it"
python3 -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$here"
mkdir -p "$bin"
ln -sfn "$prefix/bin/nsgen" "$bin/nsgen"
say "installed $("$bin/nsgen" --version): $bin/nsgen (for sudo too); try: nsgen render | less"
