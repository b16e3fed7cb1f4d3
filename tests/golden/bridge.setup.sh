#!/usr/bin/env bash
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
# nsgen 0.1.0: setup of topology bridge-lab
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
# Undo: nsgen render --teardown > cleanup.sh && sudo bash cleanup.sh (or: sudo nsgen run --teardown)
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
  rm -rf /run/nsgen/bridge-lab
  if test -d /run/nsgen; then
    rmdir --ignore-fail-on-non-empty /run/nsgen
  fi
}
undo_1() {
  if nsgen_began 8; then return 0; fi
  if test -d /run/nsgen/bridge-lab && ip link show br-front >/dev/null 2>&1; then
    ip link delete br-front
  fi
}
undo_3() {
  if nsgen_began 8; then return 0; fi
  if test -d /run/nsgen/bridge-lab && ip link show br-back >/dev/null 2>&1; then
    ip link delete br-back
  fi
}
undo_5() {
  if test -d /run/nsgen/bridge-lab && test -e /run/netns/web; then
    ip netns delete web
  fi
}
undo_6() {
  if test -d /run/nsgen/bridge-lab && test -e /run/netns/app; then
    ip netns delete app
  fi
}
undo_7() {
  if test -d /run/nsgen/bridge-lab && test -e /run/netns/db; then
    ip netns delete db
  fi
}
undo_8() {
  if test -d /run/nsgen/bridge-lab && group_has_links 0x6e7c5ce4 >/dev/null 2>&1; then
    ip link delete group 0x6e7c5ce4
  fi
}
undo_9() {
  if test -d /run/nsgen/bridge-lab; then
    stop_processes web
  fi
}
undo_10() {
  if test -d /run/nsgen/bridge-lab; then
    stop_processes app
  fi
}
undo_11() {
  if test -d /run/nsgen/bridge-lab; then
    stop_processes db
  fi
}
undo_12() {
  if nsgen_began 8; then return 0; fi
  if test -d /run/nsgen/bridge-lab && ip link show ve-web-794cd >/dev/null 2>&1; then
    ip link delete ve-web-794cd
  fi
}
undo_13() {
  if nsgen_began 8; then return 0; fi
  if test -d /run/nsgen/bridge-lab && ip link show ve-app-628c5 >/dev/null 2>&1; then
    ip link delete ve-app-628c5
  fi
}
undo_14() {
  if nsgen_began 8; then return 0; fi
  if test -d /run/nsgen/bridge-lab && ip link show ve-app-13f41 >/dev/null 2>&1; then
    ip link delete ve-app-13f41
  fi
}
undo_15() {
  if nsgen_began 8; then return 0; fi
  if test -d /run/nsgen/bridge-lab && ip link show ve-db-6650d >/dev/null 2>&1; then
    ip link delete ve-db-6650d
  fi
}
undo_29() {
  rm -f /run/nsgen/.ip_forward/users/bridge-lab
  if test -e /run/nsgen/.ip_forward/before && rmdir /run/nsgen/.ip_forward/users >/dev/null 2>&1 && ! cmp -s /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
    cp /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward
  fi
  if test ! -d /run/nsgen/.ip_forward/users; then
    rm -rf /run/nsgen/.ip_forward
  fi
}
undo_30() {
  if test -d /run/nsgen/bridge-lab && iptables -w -t filter -S NSGEN-bridge-lab >/dev/null 2>&1; then
    iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
-D FORWARD -m comment --comment nsgen:bridge-lab -j NSGEN-bridge-lab
-F NSGEN-bridge-lab
-X NSGEN-bridge-lab
COMMIT
NSGEN_EOF
  fi
}
undo_31() {
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
}
undo_33() {
  if grep -qF '# Written by nsgen for topology bridge-lab' /etc/netns/web/resolv.conf >/dev/null 2>&1; then
    rm -f /etc/netns/web/resolv.conf
  fi
  if test -d /run/nsgen/bridge-lab && test -d /etc/netns/web; then
    rmdir /etc/netns/web
  fi
}
undo_34() {
  if grep -qF '# Written by nsgen for topology bridge-lab' /etc/netns/app/resolv.conf >/dev/null 2>&1; then
    rm -f /etc/netns/app/resolv.conf
  fi
  if test -d /run/nsgen/bridge-lab && test -d /etc/netns/app; then
    rmdir /etc/netns/app
  fi
}
undo_35() {
  if test -d /run/nsgen/bridge-lab; then
    stop_processes web
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


# Whether a link exists is looked up in one listing of the host's links, taken now, instead of
# one `ip link show` a link (this script holds the lock: nothing else adds links meanwhile).
declare -A nsgen_link=()
while read -r _ nsgen_name _; do nsgen_name=${nsgen_name%:}; nsgen_link[${nsgen_name%@*}]=1; done < <(ip -o link show)
has_link() { [ -n "${nsgen_link[$1]+set}" ]; }
# Refuse, before changing anything, when a resource of ours already exists but this topology is not up.
if ! test -d /run/nsgen/bridge-lab; then
  if has_link br-front; then die 'link br-front already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if has_link br-back; then die 'link br-back already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if test -e /run/netns/web; then die 'network namespace web already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if test -e /run/netns/app; then die 'network namespace app already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if test -e /run/netns/db; then die 'network namespace db already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if group_has_links 0x6e7c5ce4 >/dev/null 2>&1; then die 'a link in device group 0x6e7c5ce4 (another topology'"'"'s name hashes alike: rename one) already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if has_link ve-web-794cd; then die 'link ve-web-794cd already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if has_link ve-app-628c5; then die 'link ve-app-628c5 already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if has_link ve-app-13f41; then die 'link ve-app-13f41 already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if has_link ve-db-6650d; then die 'link ve-db-6650d already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if iptables -w -t filter -S NSGEN-bridge-lab >/dev/null 2>&1; then die 'iptables chain NSGEN-bridge-lab (table filter) already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if iptables -w -t nat -S NSGEN-bridge-lab >/dev/null 2>&1; then die 'iptables chain NSGEN-bridge-lab (table nat) already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if test -e /etc/netns/web; then die 'directory /etc/netns/web already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  if test -e /etc/netns/app; then die 'directory /etc/netns/app already exists and was not made by nsgen topology bridge-lab; nothing was changed'; fi
  :
fi


# ==== State ====

# Record that topology bridge-lab is up: its processes' pids and logs live in /run/nsgen/bridge-lab.
if test -d /run/nsgen/bridge-lab; then
  nsgen_say 'already done: state'
else
  begin 0 state
  mkdir -p /run/nsgen/bridge-lab
  install -m 0644 /dev/stdin /run/nsgen/bridge-lab/containers <<'NSGEN_EOF'
web
app
db
NSGEN_EOF
fi

# ==== Bridges ====

# Create bridge br-front for network front: a virtual switch for its containers.
if has_link br-front; then
  nsgen_say 'already done: bridge:front'
else
  begin 1 bridge:front
  ip link add br-front group 0x6e7c5ce4 type bridge
fi

# Give br-front the gateway address 172.20.0.1/24 and bring it up: the host is the network's router.
begin 2 bridge-up:front
ip addr replace 172.20.0.1/24 dev br-front
ip link set br-front up

# Create bridge br-back for network back: a virtual switch for its containers.
if has_link br-back; then
  nsgen_say 'already done: bridge:back'
else
  begin 3 bridge:back
  ip link add br-back group 0x6e7c5ce4 type bridge
fi

# Give br-back the gateway address 172.21.0.1/24 and bring it up: the host is the network's router.
begin 4 bridge-up:back
ip addr replace 172.21.0.1/24 dev br-back
ip link set br-back up

# ==== Namespaces ====

# Create the network namespace web: the container's own interfaces, routes and firewall.
if test -e /run/netns/web; then
  nsgen_say 'already done: netns:web'
else
  begin 5 netns:web
  ip netns add web
fi

# Create the network namespace app: the container's own interfaces, routes and firewall.
if test -e /run/netns/app; then
  nsgen_say 'already done: netns:app'
else
  begin 6 netns:app
  ip netns add app
fi

# Create the network namespace db: the container's own interfaces, routes and firewall.
if test -e /run/netns/db; then
  nsgen_say 'already done: netns:db'
else
  begin 7 netns:db
  ip netns add db
fi

# Teardown deletes every host device of topology bridge-lab at once: its bridges and veth host ends are in device group 0x6e7c5ce4, and deleting one end of a veth pair deletes the other.
if group_has_links 0x6e7c5ce4 >/dev/null 2>&1; then
  nsgen_say 'already done: devices'
else
  begin 8 devices
fi

# Teardown stops every process still running in web before the namespace is deleted.
begin 9 reap:web

# Teardown stops every process still running in app before the namespace is deleted.
begin 10 reap:app

# Teardown stops every process still running in db before the namespace is deleted.
begin 11 reap:db

# ==== Links ====

# Create the veth pair ve-web-794cd (host) <-> eth0 (in web), its inner end made directly inside the namespace.
if has_link ve-web-794cd; then
  nsgen_say 'already done: veth:web:front'
else
  begin 12 veth:web:front
  ip link add ve-web-794cd group 0x6e7c5ce4 type veth peer name eth0 netns web
fi

# Create the veth pair ve-app-628c5 (host) <-> eth0 (in app), its inner end made directly inside the namespace.
if has_link ve-app-628c5; then
  nsgen_say 'already done: veth:app:front'
else
  begin 13 veth:app:front
  ip link add ve-app-628c5 group 0x6e7c5ce4 type veth peer name eth0 netns app
fi

# Create the veth pair ve-app-13f41 (host) <-> eth1 (in app), its inner end made directly inside the namespace.
if has_link ve-app-13f41; then
  nsgen_say 'already done: veth:app:back'
else
  begin 14 veth:app:back
  ip link add ve-app-13f41 group 0x6e7c5ce4 type veth peer name eth1 netns app
fi

# Create the veth pair ve-db-6650d (host) <-> eth0 (in db), its inner end made directly inside the namespace.
if has_link ve-db-6650d; then
  nsgen_say 'already done: veth:db:back'
else
  begin 15 veth:db:back
  ip link add ve-db-6650d group 0x6e7c5ce4 type veth peer name eth0 netns db
fi

# Plug ve-web-794cd into bridge br-front (it has no address of its own, not even IPv6 link-local) with hairpin on, so web reaches its own published ports; bring it up.
begin 16 host-end:web:front
ip link set ve-web-794cd master br-front addrgenmode none up
ip link set ve-web-794cd type bridge_slave hairpin on

# Plug ve-app-628c5 into bridge br-front (it has no address of its own, not even IPv6 link-local) with hairpin on, so app reaches its own published ports; bring it up.
begin 17 host-end:app:front
ip link set ve-app-628c5 master br-front addrgenmode none up
ip link set ve-app-628c5 type bridge_slave hairpin on

# Plug ve-app-13f41 into bridge br-back (it has no address of its own, not even IPv6 link-local) with hairpin on, so app reaches its own published ports; bring it up.
begin 18 host-end:app:back
ip link set ve-app-13f41 master br-back addrgenmode none up
ip link set ve-app-13f41 type bridge_slave hairpin on

# Plug ve-db-6650d into bridge br-back (it has no address of its own, not even IPv6 link-local) with hairpin on, so db reaches its own published ports; bring it up.
begin 19 host-end:db:back
ip link set ve-db-6650d master br-back addrgenmode none up
ip link set ve-db-6650d type bridge_slave hairpin on

# ==== Inside the containers ====

# Bring up lo in web, so that a server listening on localhost answers inside it.
begin 20 lo:web
ip -n web link set lo up

# Give eth0 in web the address 172.20.0.2/24 (and no IPv6 link-local one) and bring it up.
begin 21 addr:web:front
ip -n web addr replace 172.20.0.2/24 dev eth0
ip -n web link set eth0 addrgenmode none up

# Send web's traffic for everywhere else to the host at 172.20.0.1, from 172.20.0.2.
begin 22 route:web
ip -n web route replace default via 172.20.0.1 dev eth0 src 172.20.0.2

# Bring up lo in app, so that a server listening on localhost answers inside it.
begin 23 lo:app
ip -n app link set lo up

# Give eth0 in app the address 172.20.0.3/24 (and no IPv6 link-local one) and bring it up.
begin 24 addr:app:front
ip -n app addr replace 172.20.0.3/24 dev eth0
ip -n app link set eth0 addrgenmode none up

# Give eth1 in app the address 172.21.0.2/24 (and no IPv6 link-local one) and bring it up.
begin 25 addr:app:back
ip -n app addr replace 172.21.0.2/24 dev eth1
ip -n app link set eth1 addrgenmode none up

# Send app's traffic for everywhere else to the host at 172.20.0.1, from 172.20.0.3.
begin 26 route:app
ip -n app route replace default via 172.20.0.1 dev eth0 src 172.20.0.3

# Bring up lo in db, so that a server listening on localhost answers inside it.
begin 27 lo:db
ip -n db link set lo up

# Give eth0 in db the address 172.21.0.10/24 (and no IPv6 link-local one) and bring it up.
begin 28 addr:db:back
ip -n db addr replace 172.21.0.10/24 dev eth0
ip -n db link set eth0 addrgenmode none up

# ==== Forwarding ====

# Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.
begin 29 ip_forward
mkdir -p /run/nsgen/.ip_forward/users
if test ! -e /run/nsgen/.ip_forward/before; then
  cp /proc/sys/net/ipv4/ip_forward /run/nsgen/.ip_forward/before
fi
touch /run/nsgen/.ip_forward/users/bridge-lab
if ! grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  sysctl -q -w net.ipv4.ip_forward=1
fi

# ==== Firewall ====

# Filter: the topology's own chain NSGEN-bridge-lab, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.
if iptables -w -t filter -S NSGEN-bridge-lab >/dev/null 2>&1; then
  nsgen_say 'already done: firewall:filter'
else
  begin 30 firewall:filter
  iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
:NSGEN-bridge-lab - [0:0]
-A NSGEN-bridge-lab -o br-front -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsgen:bridge-lab -j ACCEPT
-A NSGEN-bridge-lab -o br-front -d 172.20.0.2 -p tcp --dport 8000 -m conntrack --ctstate DNAT -m comment --comment nsgen:bridge-lab -j ACCEPT
-A NSGEN-bridge-lab -i br-front -o br-front -m comment --comment nsgen:bridge-lab -j ACCEPT
-A NSGEN-bridge-lab -o br-front -m comment --comment nsgen:bridge-lab -j DROP
-A NSGEN-bridge-lab -i br-back -o br-back -m comment --comment nsgen:bridge-lab -j ACCEPT
-A NSGEN-bridge-lab -o br-back -m comment --comment nsgen:bridge-lab -j DROP
-A NSGEN-bridge-lab -i br-front -m devgroup ! --dst-group 0x6e000000/0xff000000 -m comment --comment nsgen:bridge-lab -j ACCEPT
-A NSGEN-bridge-lab -i br-back -m comment --comment nsgen:bridge-lab -j DROP
-I FORWARD 1 -m comment --comment nsgen:bridge-lab -j NSGEN-bridge-lab
COMMIT
NSGEN_EOF
fi

# NAT: masquerade in POSTROUTING; published ports in NSGEN-bridge-lab (reached from PREROUTING and OUTPUT for local destinations).
if iptables -w -t nat -S NSGEN-bridge-lab >/dev/null 2>&1; then
  nsgen_say 'already done: firewall:nat'
else
  begin 31 firewall:nat
  iptables-restore -w --noflush <<'NSGEN_EOF'
*nat
:NSGEN-bridge-lab - [0:0]
-A POSTROUTING -s 172.20.0.0/24 ! -o br-front -m comment --comment nsgen:bridge-lab -j MASQUERADE
-A POSTROUTING -o br-front -s 172.20.0.0/24 -m conntrack --ctstate DNAT -m comment --comment nsgen:bridge-lab -j MASQUERADE
-A POSTROUTING -o br-front -s 127.0.0.0/8 -m comment --comment nsgen:bridge-lab -j MASQUERADE
-A NSGEN-bridge-lab -p tcp --dport 8080 -m comment --comment nsgen:bridge-lab -j DNAT --to-destination 172.20.0.2:8000
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment nsgen:bridge-lab -j NSGEN-bridge-lab
-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment nsgen:bridge-lab -j NSGEN-bridge-lab
COMMIT
NSGEN_EOF
fi

# Let br-front carry connections from localhost to published ports (route_localnet); the setting goes away with br-front.
begin 32 route_localnet:br-front
sysctl -q -w net/ipv4/conf/br-front/route_localnet=1

# ==== DNS ====

# Give web its own resolver: ip netns exec shows /etc/netns/web/resolv.conf as /etc/resolv.conf inside.
if test -e /etc/netns/web; then
  nsgen_say 'already done: dns:web'
else
  begin 33 dns:web
  mkdir -p /etc/netns/web
  install -m 0644 /dev/stdin /etc/netns/web/resolv.conf <<'NSGEN_EOF'
# Written by nsgen for topology bridge-lab; nameservers from the topology file.
nameserver 1.1.1.1
NSGEN_EOF
fi

# Give app its own resolver: ip netns exec shows /etc/netns/app/resolv.conf as /etc/resolv.conf inside.
if test -e /etc/netns/app; then
  nsgen_say 'already done: dns:app'
else
  begin 34 dns:app
  mkdir -p /etc/netns/app
  install -m 0644 /dev/stdin /etc/netns/app/resolv.conf <<'NSGEN_EOF'
# Written by nsgen for topology bridge-lab; nameservers from the topology file.
nameserver 1.1.1.1
NSGEN_EOF
fi

# ==== Processes ====

# Start `nsgen echo-server --port 8000` in web, detached; output in /run/nsgen/bridge-lab/web.0.log.
if test -e /run/nsgen/bridge-lab/web.0.pid; then
  nsgen_say 'already done: process:web:0'
else
  begin 35 process:web:0
  setsid ip netns exec web nsgen echo-server --port 8000 >/run/nsgen/bridge-lab/web.0.log 2>&1 </dev/null 9>&- &
  echo "$!" >/run/nsgen/bridge-lab/web.0.pid
fi

# ==== Done ====

# Mark topology bridge-lab as completely up.
if test -e /run/nsgen/bridge-lab/up; then
  nsgen_say 'already done: up'
else
  begin 36 up
  touch /run/nsgen/bridge-lab/up
fi

trap - EXIT INT TERM
nsgen_say 'topology bridge-lab is up'
