#!/usr/bin/env bash
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
# nsgen 0.1.0: setup (batched) of topology tutorial
#
# host (ip_forward on)
# └── network link0 (veth, 172.18.0.0/24, gateway 172.18.0.1, masquerade)
#     └── vethc1 172.18.0.1/24 <──veth──> container-1: veth1 172.18.0.2/24
# container-1 runs: nsgen echo-server --port 8000
# container-1 resolves through: 1.1.1.1
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
  rm -rf /run/nsgen/tutorial
  if test -d /run/nsgen; then
    rmdir --ignore-fail-on-non-empty /run/nsgen
  fi
}
undo_1() {
  if test -d /run/nsgen/tutorial && test -e /run/netns/container-1; then
    ip netns delete container-1
  fi
}
undo_2() {
  if test -d /run/nsgen/tutorial && group_has_links 0x6e6bffe9 >/dev/null 2>&1; then
    ip link delete group 0x6e6bffe9
  fi
}
undo_3() {
  if test -d /run/nsgen/tutorial; then
    stop_processes container-1
  fi
}
undo_4() {
  if nsgen_began 2; then return 0; fi
  if test -d /run/nsgen/tutorial && ip link show vethc1 >/dev/null 2>&1; then
    ip link delete vethc1
  fi
}
undo_9() {
  rm -f /run/nsgen/.ip_forward/users/tutorial
  if test -e /run/nsgen/.ip_forward/before && rmdir /run/nsgen/.ip_forward/users >/dev/null 2>&1 && ! cmp -s /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
    cp /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward
  fi
  if test ! -d /run/nsgen/.ip_forward/users; then
    rm -rf /run/nsgen/.ip_forward
  fi
}
undo_10() {
  if test -d /run/nsgen/tutorial && iptables -w -t filter -S NSGEN-tutorial >/dev/null 2>&1; then
    iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
-D FORWARD -m comment --comment nsgen:tutorial -j NSGEN-tutorial
-F NSGEN-tutorial
-X NSGEN-tutorial
COMMIT
NSGEN_EOF
  fi
}
undo_11() {
  if test -d /run/nsgen/tutorial && iptables -w -t nat -C POSTROUTING -s 172.18.0.0/24 ! -o vethc1 -m comment --comment nsgen:tutorial -j MASQUERADE >/dev/null 2>&1; then
    iptables-restore -w --noflush <<'NSGEN_EOF'
*nat
-D POSTROUTING -s 172.18.0.0/24 ! -o vethc1 -m comment --comment nsgen:tutorial -j MASQUERADE
COMMIT
NSGEN_EOF
  fi
}
undo_12() {
  if grep -qF '# Written by nsgen for topology tutorial' /etc/netns/container-1/resolv.conf >/dev/null 2>&1; then
    rm -f /etc/netns/container-1/resolv.conf
  fi
  if test -d /run/nsgen/tutorial && test -d /etc/netns/container-1; then
    rmdir /etc/netns/container-1
  fi
}
undo_13() {
  if test -d /run/nsgen/tutorial; then
    stop_processes container-1
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
if test -e /run/nsgen/tutorial/up; then
  trap - EXIT INT TERM
  nsgen_say 'topology tutorial is already up; nothing to do'
  exit 0
fi
if test -d /run/nsgen/tutorial; then
  die 'a previous setup of tutorial did not finish: run the teardown first, or the default (not batched) setup script, which completes it'
fi

# Whether a link exists is looked up in one listing of the host's links, taken now, instead of
# one `ip link show` a link (this script holds the lock: nothing else adds links meanwhile).
declare -A nsgen_link=()
while read -r _ nsgen_name _; do nsgen_name=${nsgen_name%:}; nsgen_link[${nsgen_name%@*}]=1; done < <(ip -o link show)
has_link() { [ -n "${nsgen_link[$1]+set}" ]; }
# Refuse, before changing anything, when a resource of ours already exists but this topology is not up.
if ! test -d /run/nsgen/tutorial; then
  if test -e /run/netns/container-1; then die 'network namespace container-1 already exists and was not made by nsgen topology tutorial; nothing was changed'; fi
  if group_has_links 0x6e6bffe9 >/dev/null 2>&1; then die 'a link in device group 0x6e6bffe9 (another topology'"'"'s name hashes alike: rename one) already exists and was not made by nsgen topology tutorial; nothing was changed'; fi
  if has_link vethc1; then die 'link vethc1 already exists and was not made by nsgen topology tutorial; nothing was changed'; fi
  if iptables -w -t filter -S NSGEN-tutorial >/dev/null 2>&1; then die 'iptables chain NSGEN-tutorial (table filter) already exists and was not made by nsgen topology tutorial; nothing was changed'; fi
  if test -e /etc/netns/container-1; then die 'directory /etc/netns/container-1 already exists and was not made by nsgen topology tutorial; nothing was changed'; fi
  :
fi

# Record that topology tutorial is up: its processes' pids and logs live in /run/nsgen/tutorial.
begin 0 state
mkdir -p /run/nsgen/tutorial

install -m 0644 /dev/stdin /run/nsgen/tutorial/containers <<'NSGEN_EOF'
container-1
NSGEN_EOF

# Create the network namespace container-1: the container's own interfaces, routes and firewall.
begin 1 netns:container-1
ip netns add container-1

# Teardown deletes every host device of topology tutorial at once: its bridges and veth host ends are in device group 0x6e6bffe9, and deleting one end of a veth pair deletes the other.
# Teardown stops every process still running in container-1 before the namespace is deleted.
# Create the veth pair vethc1 (host) <-> veth1 (in container-1), its inner end made directly inside the namespace.
# Give vethc1 the gateway address 172.18.0.1/24 and bring it up (no IPv6 link-local address): the host is container-1's router.
begin 2 devices
begin 3 reap:container-1
begin 4 veth:container-1:link0
begin 5 host-end:container-1:link0
ip -batch - <<'NSGEN_EOF'
link add vethc1 group 0x6e6bffe9 type veth peer name veth1 netns container-1
addr replace 172.18.0.1/24 dev vethc1
link set vethc1 addrgenmode none up
NSGEN_EOF

# Bring up lo in container-1, so that a server listening on localhost answers inside it.
# Give veth1 in container-1 the address 172.18.0.2/24 (and no IPv6 link-local one) and bring it up.
# Send container-1's traffic for everywhere else to the host at 172.18.0.1, from 172.18.0.2.
begin 6 lo:container-1
begin 7 addr:container-1:link0
begin 8 route:container-1
nsenter --net=/run/netns/container-1 ip -batch - <<'NSGEN_EOF'
link set lo up
addr replace 172.18.0.2/24 dev veth1
link set veth1 addrgenmode none up
route replace default via 172.18.0.1 dev veth1 src 172.18.0.2
NSGEN_EOF

# Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.
begin 9 ip_forward
mkdir -p /run/nsgen/.ip_forward/users

if test ! -e /run/nsgen/.ip_forward/before; then
  cp /proc/sys/net/ipv4/ip_forward /run/nsgen/.ip_forward/before
fi

touch /run/nsgen/.ip_forward/users/tutorial

if ! grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  sysctl -q -w net.ipv4.ip_forward=1
fi

# Filter: the topology's own chain NSGEN-tutorial, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.
begin 10 firewall:filter
iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
:NSGEN-tutorial - [0:0]
-A NSGEN-tutorial -o vethc1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsgen:tutorial -j ACCEPT
-A NSGEN-tutorial -o vethc1 -m comment --comment nsgen:tutorial -j DROP
-A NSGEN-tutorial -i vethc1 -m devgroup ! --dst-group 0x6e000000/0xff000000 -m comment --comment nsgen:tutorial -j ACCEPT
-I FORWARD 1 -m comment --comment nsgen:tutorial -j NSGEN-tutorial
COMMIT
NSGEN_EOF

# NAT: masquerade in POSTROUTING.
begin 11 firewall:nat
iptables-restore -w --noflush <<'NSGEN_EOF'
*nat
-A POSTROUTING -s 172.18.0.0/24 ! -o vethc1 -m comment --comment nsgen:tutorial -j MASQUERADE
COMMIT
NSGEN_EOF

# Give container-1 its own resolver: ip netns exec shows /etc/netns/container-1/resolv.conf as /etc/resolv.conf inside.
begin 12 dns:container-1
mkdir -p /etc/netns/container-1

install -m 0644 /dev/stdin /etc/netns/container-1/resolv.conf <<'NSGEN_EOF'
# Written by nsgen for topology tutorial; nameservers from the topology file.
nameserver 1.1.1.1
NSGEN_EOF

# Start `nsgen echo-server --port 8000` in container-1, detached; output in /run/nsgen/tutorial/container-1.0.log.
begin 13 process:container-1:0
setsid ip netns exec container-1 nsgen echo-server --port 8000 >/run/nsgen/tutorial/container-1.0.log 2>&1 </dev/null 9>&- &
echo "$!" >/run/nsgen/tutorial/container-1.0.pid

# Mark topology tutorial as completely up.
begin 14 up
touch /run/nsgen/tutorial/up

trap - EXIT INT TERM
nsgen_say 'topology tutorial is up'
