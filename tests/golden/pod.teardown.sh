#!/usr/bin/env bash
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
# nsgen 0.1.0: teardown of topology pod
#
# host (ip_forward on)
# └── network pods (bridge br-pods-84512, 10.88.0.0/24, gateway 10.88.0.1, masquerade)
#     └── ve-pod-1-cfa11 <──veth──> pod-1: eth0 10.88.0.2/24  published *:8081->8000/tcp
# pod-1 runs: nsgen echo-server --port 8000
# pod-1 runs: python3 -m http.server 9000 --bind 127.0.0.1
# pod-1 resolves through: 1.1.1.1
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

# Undo: Start `python3 -m http.server 9000 --bind 127.0.0.1` in pod-1, detached; output in /run/nsgen/pod/pod-1.1.log.
if test -d /run/nsgen/pod; then
  stop_processes pod-1
fi

# Undo: Start `nsgen echo-server --port 8000` in pod-1, detached; output in /run/nsgen/pod/pod-1.0.log.
if test -d /run/nsgen/pod; then
  stop_processes pod-1
fi

# Undo: Give pod-1 its own resolver: ip netns exec shows /etc/netns/pod-1/resolv.conf as /etc/resolv.conf inside.
if grep -qF '# Written by nsgen for topology pod' /etc/netns/pod-1/resolv.conf >/dev/null 2>&1; then
  rm -f /etc/netns/pod-1/resolv.conf
fi
if test -d /run/nsgen/pod && test -d /etc/netns/pod-1; then
  rmdir /etc/netns/pod-1
fi

# Undo: NAT: masquerade in POSTROUTING; published ports in NSGEN-pod (reached from PREROUTING and OUTPUT for local destinations).
if test -d /run/nsgen/pod && iptables -w -t nat -S NSGEN-pod >/dev/null 2>&1; then
  iptables-restore -w --noflush <<'NSGEN_EOF'
*nat
-D PREROUTING -m addrtype --dst-type LOCAL -m comment --comment nsgen:pod -j NSGEN-pod
-D OUTPUT -m addrtype --dst-type LOCAL -m comment --comment nsgen:pod -j NSGEN-pod
-D POSTROUTING -s 10.88.0.0/24 ! -o br-pods-84512 -m comment --comment nsgen:pod -j MASQUERADE
-D POSTROUTING -o br-pods-84512 -s 10.88.0.0/24 -m conntrack --ctstate DNAT -m comment --comment nsgen:pod -j MASQUERADE
-D POSTROUTING -o br-pods-84512 -s 127.0.0.0/8 -m comment --comment nsgen:pod -j MASQUERADE
-F NSGEN-pod
-X NSGEN-pod
COMMIT
NSGEN_EOF
fi

# Undo: Filter: the topology's own chain NSGEN-pod, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.
if test -d /run/nsgen/pod && iptables -w -t filter -S NSGEN-pod >/dev/null 2>&1; then
  iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
-D FORWARD -m comment --comment nsgen:pod -j NSGEN-pod
-F NSGEN-pod
-X NSGEN-pod
COMMIT
NSGEN_EOF
fi

# Undo: Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.
rm -f /run/nsgen/.ip_forward/users/pod
if test -e /run/nsgen/.ip_forward/before && rmdir /run/nsgen/.ip_forward/users >/dev/null 2>&1 && ! cmp -s /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  cp /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward
fi
if test ! -d /run/nsgen/.ip_forward/users; then
  rm -rf /run/nsgen/.ip_forward
fi

# Undo: Teardown stops every process still running in pod-1 before the namespace is deleted.
if test -d /run/nsgen/pod; then
  stop_processes pod-1
fi

# Undo: Teardown deletes every host device of topology pod at once: its bridges and veth host ends are in device group 0x6e0a636b, and deleting one end of a veth pair deletes the other.
if test -d /run/nsgen/pod && group_has_links 0x6e0a636b >/dev/null 2>&1; then
  ip link delete group 0x6e0a636b
fi

# Undo: Create the network namespace pod-1: the container's own interfaces, routes and firewall.
if test -d /run/nsgen/pod && test -e /run/netns/pod-1; then
  ip netns delete pod-1
fi

# Undo: Record that topology pod is up: its processes' pids and logs live in /run/nsgen/pod.
rm -rf /run/nsgen/pod
if test -d /run/nsgen; then
  rmdir --ignore-fail-on-non-empty /run/nsgen
fi

if [ "$nsgen_failed" -ne 0 ]; then die 'teardown of pod finished with errors (see above)'; fi
nsgen_say 'topology pod is down'
