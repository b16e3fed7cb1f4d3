#!/usr/bin/env bash
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
# nsgen 0.1.0: setup (batched) of topology pod
#
# host (ip_forward on)
# └── network pods (bridge br-pods-84512, 10.88.0.0/24, gateway 10.88.0.1, masquerade)
#     └── ve-pod-1-cfa11 <──veth──> pod-1: eth0 10.88.0.2/24  published *:8081->8000/tcp
# pod-1 runs: nsgen echo-server --port 8000
# pod-1 runs: python3 -m http.server 9000 --bind 127.0.0.1
# pod-1 resolves through: 1.1.1.1
#
# Undo: nsgen render --teardown > cleanup.sh && sudo bash cleanup.sh (or: sudo nsgen run --teardown)
#
# Batched: consecutive ip commands that run in the same place share one `ip -batch` process,
# whose lines are those commands; each firewall table is one iptables-restore. Every step is
# still named below, and a failure still undoes what this run began.
set -euo pipefail

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

# If any command fails (or the script is interrupted), undo what this run did, newest first.
# A step with nothing of its own to undo (an address, a route) goes away with an earlier step.
# A step that goes away with another (a veth pair with its namespace) is undone by itself only
# when that other step was not begun by this run.
undo_0() {
  rm -rf /run/nsgen/pod
  if test -d /run/nsgen; then
    rmdir --ignore-fail-on-non-empty /run/nsgen
  fi
}
undo_1() {
  if nsgen_began 4; then return 0; fi
  if test -d /run/nsgen/pod && ip link show br-pods-84512 >/dev/null 2>&1; then
    ip link delete br-pods-84512
  fi
}
undo_3() {
  if test -d /run/nsgen/pod && test -e /run/netns/pod-1; then
    ip netns delete pod-1
  fi
}
undo_4() {
  if test -d /run/nsgen/pod && group_has_links 0x6e0a636b >/dev/null 2>&1; then
    ip link delete group 0x6e0a636b
  fi
}
undo_5() {
  if test -d /run/nsgen/pod; then
    stop_processes pod-1
  fi
}
undo_6() {
  if nsgen_began 4; then return 0; fi
  if test -d /run/nsgen/pod && ip link show ve-pod-1-cfa11 >/dev/null 2>&1; then
    ip link delete ve-pod-1-cfa11
  fi
}
undo_11() {
  rm -f /run/nsgen/.ip_forward/users/pod
  if test -e /run/nsgen/.ip_forward/before && rmdir /run/nsgen/.ip_forward/users >/dev/null 2>&1 && ! cmp -s /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
    cp /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward
  fi
  if test ! -d /run/nsgen/.ip_forward/users; then
    rm -rf /run/nsgen/.ip_forward
  fi
}
undo_12() {
  if test -d /run/nsgen/pod && iptables -w -t filter -S NSGEN-pod >/dev/null 2>&1; then
    iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
-D FORWARD -m comment --comment nsgen:pod -j NSGEN-pod
-F NSGEN-pod
-X NSGEN-pod
COMMIT
NSGEN_EOF
  fi
}
undo_13() {
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
}
undo_15() {
  if grep -qF '# Written by nsgen for topology pod' /etc/netns/pod-1/resolv.conf >/dev/null 2>&1; then
    rm -f /etc/netns/pod-1/resolv.conf
  fi
  if test -d /run/nsgen/pod && test -d /etc/netns/pod-1; then
    rmdir /etc/netns/pod-1
  fi
}
undo_16() {
  if test -d /run/nsgen/pod; then
    stop_processes pod-1
  fi
}
undo_17() {
  if test -d /run/nsgen/pod; then
    stop_processes pod-1
  fi
}
nsgen_begun=()
nsgen_step=""
begin() { nsgen_begun+=("$1"); nsgen_step=$2; }
nsgen_began() { local i; for i in "${nsgen_begun[@]}"; do [ "$i" = "$1" ] && return 0; done; return 1; }
rollback() {
  local status=$? i
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ]; then
    nsgen_say "setup failed (exit $status) at: $nsgen_step"
    nsgen_say "undoing the ${#nsgen_begun[@]} step(s) this run began"
    set +e
    for ((i = ${#nsgen_begun[@]} - 1; i >= 0; i--)); do
      if declare -F "undo_${nsgen_begun[i]}" >/dev/null; then "undo_${nsgen_begun[i]}"; fi
    done
  fi
  exit "$status"
}
trap rollback EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What the host must allow before anything changes.
if ! grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1 && ! test -w /proc/sys/net/ipv4/ip_forward; then die 'net.ipv4.ip_forward is off and cannot be turned on: /proc/sys/net/ipv4/ip_forward is not writable (is /proc/sys read-only here?); nothing was changed'; fi


# A batched setup starts from nothing: when the topology is already (or partly) up, say so.
if test -e /run/nsgen/pod/up; then
  trap - EXIT INT TERM
  nsgen_say 'topology pod is already up; nothing to do'
  exit 0
fi
if test -d /run/nsgen/pod; then
  die 'a previous setup of pod did not finish: run the teardown first, or the default (not batched) setup script, which completes it'
fi

# Whether a link exists is looked up in one listing of the host's links, taken now, instead of
# one `ip link show` a link (this script holds the lock: nothing else adds links meanwhile).
declare -A nsgen_link=()
while read -r _ nsgen_name _; do nsgen_name=${nsgen_name%:}; nsgen_link[${nsgen_name%@*}]=1; done < <(ip -o link show)
has_link() { [ -n "${nsgen_link[$1]+set}" ]; }
# Refuse, before changing anything, when a resource of ours already exists but this topology is not up.
if ! test -d /run/nsgen/pod; then
  if has_link br-pods-84512; then die 'link br-pods-84512 already exists and was not made by nsgen topology pod; nothing was changed'; fi
  if test -e /run/netns/pod-1; then die 'network namespace pod-1 already exists and was not made by nsgen topology pod; nothing was changed'; fi
  if group_has_links 0x6e0a636b >/dev/null 2>&1; then die 'a link in device group 0x6e0a636b (another topology'"'"'s name hashes alike: rename one) already exists and was not made by nsgen topology pod; nothing was changed'; fi
  if has_link ve-pod-1-cfa11; then die 'link ve-pod-1-cfa11 already exists and was not made by nsgen topology pod; nothing was changed'; fi
  if iptables -w -t filter -S NSGEN-pod >/dev/null 2>&1; then die 'iptables chain NSGEN-pod (table filter) already exists and was not made by nsgen topology pod; nothing was changed'; fi
  if iptables -w -t nat -S NSGEN-pod >/dev/null 2>&1; then die 'iptables chain NSGEN-pod (table nat) already exists and was not made by nsgen topology pod; nothing was changed'; fi
  if test -e /etc/netns/pod-1; then die 'directory /etc/netns/pod-1 already exists and was not made by nsgen topology pod; nothing was changed'; fi
  :
fi

# Record that topology pod is up: its processes' pids and logs live in /run/nsgen/pod.
begin 0 state
mkdir -p /run/nsgen/pod

install -m 0644 /dev/stdin /run/nsgen/pod/containers <<'NSGEN_EOF'
pod-1
NSGEN_EOF

# Create bridge br-pods-84512 for network pods: a virtual switch for its containers.
# Give br-pods-84512 the gateway address 10.88.0.1/24 and bring it up: the host is the network's router.
begin 1 bridge:pods
begin 2 bridge-up:pods
ip -batch - <<'NSGEN_EOF'
link add br-pods-84512 group 0x6e0a636b type bridge
addr replace 10.88.0.1/24 dev br-pods-84512
link set br-pods-84512 up
NSGEN_EOF

# Create the network namespace pod-1: the container's own interfaces, routes and firewall.
begin 3 netns:pod-1
ip netns add pod-1

# Teardown deletes every host device of topology pod at once: its bridges and veth host ends are in device group 0x6e0a636b, and deleting one end of a veth pair deletes the other.
# Teardown stops every process still running in pod-1 before the namespace is deleted.
# Create the veth pair ve-pod-1-cfa11 (host) <-> eth0 (in pod-1), its inner end made directly inside the namespace.
# Plug ve-pod-1-cfa11 into bridge br-pods-84512 (it has no address of its own, not even IPv6 link-local) with hairpin on, so pod-1 reaches its own published ports; bring it up.
begin 4 devices
begin 5 reap:pod-1
begin 6 veth:pod-1:pods
begin 7 host-end:pod-1:pods
ip -batch - <<'NSGEN_EOF'
link add ve-pod-1-cfa11 group 0x6e0a636b type veth peer name eth0 netns pod-1
link set ve-pod-1-cfa11 master br-pods-84512 addrgenmode none up
link set ve-pod-1-cfa11 type bridge_slave hairpin on
NSGEN_EOF

# Bring up lo in pod-1, so that a server listening on localhost answers inside it.
# Give eth0 in pod-1 the address 10.88.0.2/24 (and no IPv6 link-local one) and bring it up.
# Send pod-1's traffic for everywhere else to the host at 10.88.0.1, from 10.88.0.2.
begin 8 lo:pod-1
begin 9 addr:pod-1:pods
begin 10 route:pod-1
nsenter --net=/run/netns/pod-1 ip -batch - <<'NSGEN_EOF'
link set lo up
addr replace 10.88.0.2/24 dev eth0
link set eth0 addrgenmode none up
route replace default via 10.88.0.1 dev eth0 src 10.88.0.2
NSGEN_EOF

# Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.
begin 11 ip_forward
mkdir -p /run/nsgen/.ip_forward/users

if test ! -e /run/nsgen/.ip_forward/before; then
  cp /proc/sys/net/ipv4/ip_forward /run/nsgen/.ip_forward/before
fi

touch /run/nsgen/.ip_forward/users/pod

if ! grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  sysctl -q -w net.ipv4.ip_forward=1
fi

# Filter: the topology's own chain NSGEN-pod, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.
begin 12 firewall:filter
iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
:NSGEN-pod - [0:0]
-A NSGEN-pod -o br-pods-84512 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsgen:pod -j ACCEPT
-A NSGEN-pod -o br-pods-84512 -d 10.88.0.2 -p tcp --dport 8000 -m conntrack --ctstate DNAT -m comment --comment nsgen:pod -j ACCEPT
-A NSGEN-pod -i br-pods-84512 -o br-pods-84512 -m comment --comment nsgen:pod -j ACCEPT
-A NSGEN-pod -o br-pods-84512 -m comment --comment nsgen:pod -j DROP
-A NSGEN-pod -i br-pods-84512 -m devgroup ! --dst-group 0x6e000000/0xff000000 -m comment --comment nsgen:pod -j ACCEPT
-I FORWARD 1 -m comment --comment nsgen:pod -j NSGEN-pod
COMMIT
NSGEN_EOF

# NAT: masquerade in POSTROUTING; published ports in NSGEN-pod (reached from PREROUTING and OUTPUT for local destinations).
begin 13 firewall:nat
iptables-restore -w --noflush <<'NSGEN_EOF'
*nat
:NSGEN-pod - [0:0]
-A POSTROUTING -s 10.88.0.0/24 ! -o br-pods-84512 -m comment --comment nsgen:pod -j MASQUERADE
-A POSTROUTING -o br-pods-84512 -s 10.88.0.0/24 -m conntrack --ctstate DNAT -m comment --comment nsgen:pod -j MASQUERADE
-A POSTROUTING -o br-pods-84512 -s 127.0.0.0/8 -m comment --comment nsgen:pod -j MASQUERADE
-A NSGEN-pod -p tcp --dport 8081 -m comment --comment nsgen:pod -j DNAT --to-destination 10.88.0.2:8000
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment nsgen:pod -j NSGEN-pod
-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment nsgen:pod -j NSGEN-pod
COMMIT
NSGEN_EOF

# Let br-pods-84512 carry connections from localhost to published ports (route_localnet); the setting goes away with br-pods-84512.
begin 14 route_localnet:br-pods-84512
sysctl -q -w net/ipv4/conf/br-pods-84512/route_localnet=1

# Give pod-1 its own resolver: ip netns exec shows /etc/netns/pod-1/resolv.conf as /etc/resolv.conf inside.
begin 15 dns:pod-1
mkdir -p /etc/netns/pod-1

install -m 0644 /dev/stdin /etc/netns/pod-1/resolv.conf <<'NSGEN_EOF'
# Written by nsgen for topology pod; nameservers from the topology file.
nameserver 1.1.1.1
NSGEN_EOF

# Start `nsgen echo-server --port 8000` in pod-1, detached; output in /run/nsgen/pod/pod-1.0.log.
begin 16 process:pod-1:0
setsid ip netns exec pod-1 nsgen echo-server --port 8000 >/run/nsgen/pod/pod-1.0.log 2>&1 </dev/null 9>&- &
echo "$!" >/run/nsgen/pod/pod-1.0.pid

# Start `python3 -m http.server 9000 --bind 127.0.0.1` in pod-1, detached; output in /run/nsgen/pod/pod-1.1.log.
begin 17 process:pod-1:1
setsid ip netns exec pod-1 python3 -m http.server 9000 --bind 127.0.0.1 >/run/nsgen/pod/pod-1.1.log 2>&1 </dev/null 9>&- &
echo "$!" >/run/nsgen/pod/pod-1.1.pid

# Mark topology pod as completely up.
begin 18 up
touch /run/nsgen/pod/up

trap - EXIT INT TERM
nsgen_say 'topology pod is up'
