#!/usr/bin/env bash
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
# nsgen 0.1.0: teardown of topology bridge-lab
#
# host (ip_forward on)
# ├── network front (bridge br-front, 172.20.0.0/24, gateway 172.20.0.1, masquerade)
# │   ├── ve-web-794cd <──veth──> web: eth0 172.20.0.2/24  published *:8080->8000/tcp
# │   └── ve-app-628c5 <──veth──> app: eth0 172.20.0.3/24
# └── network back (bridge br-back, 172.21.0.0/24, gateway 172.21.0.1, internal)
#     ├── ve-app-13f41 <──veth──> app: eth1 172.21.0.2/24
#     └── ve-db-6650d <──veth──> db: eth0 172.21.0.10/24
# web runs: nsgen echo-server --port 8000
# web resolves through: 1.1.1.1
# app resolves through: 1.1.1.1
#
# Removes exactly what the setup script (or nsgen run) made, newest first; safe to run twice or after a failed setup.
set -uo pipefail

nsgen_say() { echo "nsgen: $*" >&2; }
die() { nsgen_say "$*"; exit 1; }

# Stop every process in a namespace: TERM, then KILL whatever is left after 3 seconds.
# A pid is signalled only while it still lives in that namespace.
stop_processes() {
  local ns=$1 pid round
  for round in 1 2; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      if [ "$(ip netns identify "$pid" 2>/dev/null)" = "$ns" ]; then
        if [ "$round" = 1 ]; then kill -TERM "$pid" 2>/dev/null || true; else kill -KILL "$pid" 2>/dev/null || true; fi
      fi
    done
    for _ in $(seq 30); do
      [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && return 0
      sleep 0.1
    done
  done
  [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] || { nsgen_say "processes still running in $ns"; return 1; }
}

# Whether any host link is in a device group (nsgen's topologies each have their own).
group_has_links() { [ -n "$(ip -o link show group "$1" 2>/dev/null)" ]; }

if [ "$(id -u)" -ne 0 ]; then die "this script changes the host's network: run it as root (sudo bash $0)"; fi
for tool in flock ip iptables iptables-restore nsenter setsid sysctl; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done

# One nsgen at a time on this host: setups and teardowns wait for each other.
# (File descriptor 9 holds the lock; processes started below do not inherit it.)
mkdir -p /run/lock
exec 9>/run/lock/nsgen.lock
flock -w 60 9 || die 'another nsgen setup or teardown still holds /run/lock/nsgen.lock'

# A command that fails is reported, and the rest still runs; the exit status says whether all went well.
nsgen_failed=0
trap 'nsgen_failed=1' ERR

# Undo: Start `nsgen echo-server --port 8000` in web, detached; output in /run/nsgen/bridge-lab/web.0.log.
if test -d /run/nsgen/bridge-lab; then
  stop_processes web
fi

# Undo: Give app its own resolver: ip netns exec shows /etc/netns/app/resolv.conf as /etc/resolv.conf inside.
if grep -qF '# Written by nsgen for topology bridge-lab' /etc/netns/app/resolv.conf >/dev/null 2>&1; then
  rm -f /etc/netns/app/resolv.conf
fi
if test -d /run/nsgen/bridge-lab && test -d /etc/netns/app; then
  rmdir /etc/netns/app
fi

# Undo: Give web its own resolver: ip netns exec shows /etc/netns/web/resolv.conf as /etc/resolv.conf inside.
if grep -qF '# Written by nsgen for topology bridge-lab' /etc/netns/web/resolv.conf >/dev/null 2>&1; then
  rm -f /etc/netns/web/resolv.conf
fi
if test -d /run/nsgen/bridge-lab && test -d /etc/netns/web; then
  rmdir /etc/netns/web
fi

# Undo: NAT: masquerade in POSTROUTING; published ports in NSGEN-bridge-lab (reached from PREROUTING and OUTPUT for local destinations).
if test -d /run/nsgen/bridge-lab && iptables -w -t nat -S NSGEN-bridge-lab >/dev/null 2>&1; then
  iptables-restore -w --noflush <<'NSGEN_EOF'
*nat
-D PREROUTING -m addrtype --dst-type LOCAL -m comment --comment nsgen:bridge-lab -j NSGEN-bridge-lab
-D OUTPUT -m addrtype --dst-type LOCAL -m comment --comment nsgen:bridge-lab -j NSGEN-bridge-lab
-D POSTROUTING -s 172.20.0.0/24 ! -o br-front -m comment --comment nsgen:bridge-lab -j MASQUERADE
-D POSTROUTING -o br-front -s 172.20.0.0/24 -m conntrack --ctstate DNAT -m comment --comment nsgen:bridge-lab -j MASQUERADE
-D POSTROUTING -o br-front -s 127.0.0.0/8 -m comment --comment nsgen:bridge-lab -j MASQUERADE
-F NSGEN-bridge-lab
-X NSGEN-bridge-lab
COMMIT
NSGEN_EOF
fi

# Undo: Filter: the topology's own chain NSGEN-bridge-lab, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.
if test -d /run/nsgen/bridge-lab && iptables -w -t filter -S NSGEN-bridge-lab >/dev/null 2>&1; then
  iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
-D FORWARD -m comment --comment nsgen:bridge-lab -j NSGEN-bridge-lab
-F NSGEN-bridge-lab
-X NSGEN-bridge-lab
COMMIT
NSGEN_EOF
fi

# Undo: Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.
rm -f /run/nsgen/.ip_forward/users/bridge-lab
if test -e /run/nsgen/.ip_forward/before && rmdir /run/nsgen/.ip_forward/users >/dev/null 2>&1 && ! cmp -s /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  cp /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward
fi
if test ! -d /run/nsgen/.ip_forward/users; then
  rm -rf /run/nsgen/.ip_forward
fi

# Undo: Teardown stops every process still running in db before the namespace is deleted.
if test -d /run/nsgen/bridge-lab; then
  stop_processes db
fi

# Undo: Teardown stops every process still running in app before the namespace is deleted.
if test -d /run/nsgen/bridge-lab; then
  stop_processes app
fi

# Undo: Teardown stops every process still running in web before the namespace is deleted.
if test -d /run/nsgen/bridge-lab; then
  stop_processes web
fi

# Undo: Teardown deletes every host device of topology bridge-lab at once: its bridges and veth host ends are in device group 0x6e7c5ce4, and deleting one end of a veth pair deletes the other.
if test -d /run/nsgen/bridge-lab && group_has_links 0x6e7c5ce4 >/dev/null 2>&1; then
  ip link delete group 0x6e7c5ce4
fi

# Undo: Create the network namespace db: the container's own interfaces, routes and firewall.
if test -d /run/nsgen/bridge-lab && test -e /run/netns/db; then
  ip netns delete db
fi

# Undo: Create the network namespace app: the container's own interfaces, routes and firewall.
if test -d /run/nsgen/bridge-lab && test -e /run/netns/app; then
  ip netns delete app
fi

# Undo: Create the network namespace web: the container's own interfaces, routes and firewall.
if test -d /run/nsgen/bridge-lab && test -e /run/netns/web; then
  ip netns delete web
fi

# Undo: Record that topology bridge-lab is up: its processes' pids and logs live in /run/nsgen/bridge-lab.
rm -rf /run/nsgen/bridge-lab
if test -d /run/nsgen; then
  rmdir --ignore-fail-on-non-empty /run/nsgen
fi

if [ "$nsgen_failed" -ne 0 ]; then die 'teardown of bridge-lab finished with errors (see above)'; fi
nsgen_say 'topology bridge-lab is down'
