#!/usr/bin/env bash
# nsgen 0.1.0: setup of topology jumbo
#
# host (ip_forward on, IPv6 forwarding on)
# ├── network storage (bridge br-storag-a3f9f, 172.28.0.0/24, fd00:28::/64, gateway 172.28.0.1, fd00:28::1, masquerade, mtu 9000)
# │   ├── ve-nas-a155b <──veth──> nas: eth1 172.28.0.10/24, fd00:28::10/64 mac 02:42:ac:1c:00:0a
# │   └── ve-client-92738 <──veth──> client: eth0 172.28.0.2/24, fd00:28::2/64
# └── network mgmt (bridge br-mgmt-7160c, 172.29.0.0/24, gateway 172.29.0.1, masquerade, no default route, route 203.0.113.0/24 via 172.29.0.1)
#     ├── ve-nas-ce03d <──veth──> nas: eth0 172.29.0.2/24 mac 02:42:ac:1d:00:0a
#     └── ve-monito-8ff49 <──veth──> monitor: eth0 172.29.0.3/24
#
# Undo: nsgen render --teardown > cleanup.sh && sudo bash cleanup.sh (or: sudo nsgen run --teardown)
#
# The steps come first, in the tutorial's order; the helper functions, the lock, the checks and the rollback that run them are at the end of the script.
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
steps() {

# ==== State ====

# Record what topology jumbo is, in /run/nsgen/jumbo/topology.json: teardown and later runs undo exactly what is up. Its processes' pids and logs live beside it.
if grep -qF '"digest": "af149c01e0b75811"' /run/nsgen/jumbo/topology.json >/dev/null 2>&1; then
  nsgen_say 'already done: state'
else
  begin 0 state
  install -D -m 0644 /dev/stdin /run/nsgen/jumbo/topology.json <<'NSGEN_EOF'
{"format": 1, "digest": "af149c01e0b75811", "name": "jumbo", "host": {"ip_forward": true, "persist": false},
"networks": [
  {"name": "storage", "driver": "bridge", "subnet": "172.28.0.0/24", "gateway": "172.28.0.1", "masquerade": true, "internal": false, "bridge": "br-storag-a3f9f", "subnet6": "fd00:28::/64", "gateway6": "fd00:28::1", "mtu": 9000},
  {"name": "mgmt", "driver": "bridge", "subnet": "172.29.0.0/24", "gateway": "172.29.0.1", "masquerade": true, "internal": false, "bridge": "br-mgmt-7160c", "routes": [{"destination": "203.0.113.0/24", "gateway": "172.29.0.1"}], "no_default_route": true}
],
"containers": [
  {"name": "nas", "attachments": [{"network": "mgmt", "interface": "eth0", "host_interface": "ve-nas-ce03d", "address": "172.29.0.2", "prefixlen": 24, "gateway": "172.29.0.1", "mac_address": "02:42:ac:1d:00:0a"}, {"network": "storage", "interface": "eth1", "host_interface": "ve-nas-a155b", "address": "172.28.0.10", "prefixlen": 24, "gateway": "172.28.0.1", "address6": "fd00:28::10", "prefixlen6": 64, "gateway6": "fd00:28::1", "mac_address": "02:42:ac:1c:00:0a"}], "dns": [], "dns_source": "host", "processes": [], "ports": []},
  {"name": "client", "attachments": [{"network": "storage", "interface": "eth0", "host_interface": "ve-client-92738", "address": "172.28.0.2", "prefixlen": 24, "gateway": "172.28.0.1", "address6": "fd00:28::2", "prefixlen6": 64, "gateway6": "fd00:28::1"}], "dns": [], "dns_source": "host", "processes": [], "ports": []},
  {"name": "monitor", "attachments": [{"network": "mgmt", "interface": "eth0", "host_interface": "ve-monito-8ff49", "address": "172.29.0.3", "prefixlen": 24, "gateway": "172.29.0.1"}], "dns": [], "dns_source": "host", "processes": [], "ports": []}
]}
NSGEN_EOF
fi
begin 1 ip_forward:restore  # for the rollback: nothing to do at setup
begin 2 ipv6_forwarding:restore  # for the rollback: nothing to do at setup

# ==== Bridges ====

# Create bridge br-storag-a3f9f for network storage: a virtual switch for its containers.
if has_link br-storag-a3f9f; then
  nsgen_say 'already done: bridge:storage'
else
  begin 3 bridge:storage
  ip link add br-storag-a3f9f group 0x6e88e5c0 type bridge
fi

# Give br-storag-a3f9f the gateway addresses 172.28.0.1/24 and fd00:28::1/64 (and the link-local fe80::1/64, usable at once: the host asks for containers' addresses from it), mark it as topology jumbo's (alias nsgen:jumbo), set its MTU to 9000 (its own, whatever its ports) and bring it up: the host is the network's router.
begin 4 bridge-up:storage
ip addr replace 172.28.0.1/24 dev br-storag-a3f9f
ip addr replace fd00:28::1/64 dev br-storag-a3f9f nodad
ip addr replace fe80::1/64 dev br-storag-a3f9f nodad
ip link set br-storag-a3f9f alias nsgen:jumbo addrgenmode none mtu 9000 up

# Create bridge br-mgmt-7160c for network mgmt: a virtual switch for its containers.
if has_link br-mgmt-7160c; then
  nsgen_say 'already done: bridge:mgmt'
else
  begin 5 bridge:mgmt
  ip link add br-mgmt-7160c group 0x6e88e5c0 type bridge
fi

# Give br-mgmt-7160c the gateway address 172.29.0.1/24, mark it as topology jumbo's (alias nsgen:jumbo) and bring it up: the host is the network's router.
begin 6 bridge-up:mgmt
ip addr replace 172.29.0.1/24 dev br-mgmt-7160c
ip link set br-mgmt-7160c alias nsgen:jumbo up

# ==== Namespaces ====

# Note which namespaces this setup is about to create, in /run/nsgen/jumbo/namespaces: until each carries the topology's mark (the alias of its lo), that note tells it from someone else's.
begin 7 namespaces
install -m 0644 /dev/stdin /run/nsgen/jumbo/namespaces <<'NSGEN_EOF'
nas
client
monitor
NSGEN_EOF

# Create the network namespace nas: the container's own interfaces, routes and firewall.
if test -e /run/netns/nas; then
  nsgen_say 'already done: netns:nas'
else
  begin 8 netns:nas
  ip netns add nas
fi

# Create the network namespace client: the container's own interfaces, routes and firewall.
if test -e /run/netns/client; then
  nsgen_say 'already done: netns:client'
else
  begin 9 netns:client
  ip netns add client
fi

# Create the network namespace monitor: the container's own interfaces, routes and firewall.
if test -e /run/netns/monitor; then
  nsgen_say 'already done: netns:monitor'
else
  begin 10 netns:monitor
  ip netns add monitor
fi
if ! group_has_links 0x6e88e5c0 >/dev/null 2>&1; then begin 11 devices; fi  # for the rollback: nothing to do at setup

# Teardown stops every process still running in nas before the namespace is deleted.
if nsgen_began 8; then begin 12 reap:nas; fi  # for the rollback

# Teardown stops every process still running in client before the namespace is deleted.
if nsgen_began 9; then begin 13 reap:client; fi  # for the rollback

# Teardown stops every process still running in monitor before the namespace is deleted.
if nsgen_began 10; then begin 14 reap:monitor; fi  # for the rollback

# ==== Links ====

# Create the veth pair ve-nas-ce03d (host) <-> eth0 (in nas, with MAC address 02:42:ac:1d:00:0a), its inner end made directly inside the namespace.
if has_link ve-nas-ce03d; then
  nsgen_say 'already done: veth:nas:mgmt'
else
  begin 15 veth:nas:mgmt
  ip link add ve-nas-ce03d group 0x6e88e5c0 type veth peer name eth0 address 02:42:ac:1d:00:0a netns nas
fi

# Create the veth pair ve-nas-a155b (host) <-> eth1 (in nas, with MAC address 02:42:ac:1c:00:0a), its inner end made directly inside the namespace, both ends with MTU 9000.
if has_link ve-nas-a155b; then
  nsgen_say 'already done: veth:nas:storage'
else
  begin 16 veth:nas:storage
  ip link add ve-nas-a155b group 0x6e88e5c0 mtu 9000 type veth peer name eth1 mtu 9000 address 02:42:ac:1c:00:0a netns nas
fi

# Create the veth pair ve-client-92738 (host) <-> eth0 (in client), its inner end made directly inside the namespace, both ends with MTU 9000.
if has_link ve-client-92738; then
  nsgen_say 'already done: veth:client:storage'
else
  begin 17 veth:client:storage
  ip link add ve-client-92738 group 0x6e88e5c0 mtu 9000 type veth peer name eth0 mtu 9000 netns client
fi

# Create the veth pair ve-monito-8ff49 (host) <-> eth0 (in monitor), its inner end made directly inside the namespace.
if has_link ve-monito-8ff49; then
  nsgen_say 'already done: veth:monitor:mgmt'
else
  begin 18 veth:monitor:mgmt
  ip link add ve-monito-8ff49 group 0x6e88e5c0 type veth peer name eth0 netns monitor
fi

# Plug ve-nas-ce03d into bridge br-mgmt-7160c (it has no address of its own, not even IPv6 link-local) with hairpin on, so nas reaches its own published ports; mark it (alias nsgen:jumbo) and bring it up.
begin 19 host-end:nas:mgmt
ip link set ve-nas-ce03d master br-mgmt-7160c alias nsgen:jumbo addrgenmode none up
ip link set ve-nas-ce03d type bridge_slave hairpin on

# Plug ve-nas-a155b into bridge br-storag-a3f9f (it has no address of its own, not even IPv6 link-local) with hairpin on, so nas reaches its own published ports; mark it (alias nsgen:jumbo) and bring it up.
begin 20 host-end:nas:storage
ip link set ve-nas-a155b master br-storag-a3f9f alias nsgen:jumbo addrgenmode none up
ip link set ve-nas-a155b type bridge_slave hairpin on

# Plug ve-client-92738 into bridge br-storag-a3f9f (it has no address of its own, not even IPv6 link-local) with hairpin on, so client reaches its own published ports; mark it (alias nsgen:jumbo) and bring it up.
begin 21 host-end:client:storage
ip link set ve-client-92738 master br-storag-a3f9f alias nsgen:jumbo addrgenmode none up
ip link set ve-client-92738 type bridge_slave hairpin on

# Plug ve-monito-8ff49 into bridge br-mgmt-7160c (it has no address of its own, not even IPv6 link-local) with hairpin on, so monitor reaches its own published ports; mark it (alias nsgen:jumbo) and bring it up.
begin 22 host-end:monitor:mgmt
ip link set ve-monito-8ff49 master br-mgmt-7160c alias nsgen:jumbo addrgenmode none up
ip link set ve-monito-8ff49 type bridge_slave hairpin on

# ==== Inside the containers ====

# Bring up lo in nas, so that a server listening on localhost answers inside it; its alias nsgen:jumbo marks the namespace as this topology's.
begin 23 lo:nas
ip -n nas link set lo alias nsgen:jumbo up

# Give eth0 in nas the address 172.29.0.2/24 (and no IPv6 link-local one) and bring it up.
begin 24 addr:nas:mgmt
ip -n nas addr replace 172.29.0.2/24 dev eth0
ip -n nas link set eth0 addrgenmode none up

# Give eth1 in nas the addresses 172.28.0.10/24 and fd00:28::10/64 without duplicate address detection (and no IPv6 link-local one) and bring it up.
begin 25 addr:nas:storage
ip -n nas addr replace 172.28.0.10/24 dev eth1
ip -n nas addr replace fd00:28::10/64 dev eth1 nodad
ip -n nas link set eth1 addrgenmode none up

# Send nas's traffic for everywhere else to the host at 172.28.0.1, from 172.28.0.10.
begin 26 route:nas
ip -n nas route replace default via 172.28.0.1 dev eth1 src 172.28.0.10

# Send nas's IPv6 traffic for everywhere else to the host at fd00:28::1.
begin 27 route6:nas
ip -n nas route replace default via fd00:28::1 dev eth1

# Route 203.0.113.0/24 via 172.29.0.1 from nas over eth0: the static route of network mgmt.
begin 28 routes:nas:mgmt
ip -n nas route replace 203.0.113.0/24 via 172.29.0.1 dev eth0

# Bring up lo in client, so that a server listening on localhost answers inside it; its alias nsgen:jumbo marks the namespace as this topology's.
begin 29 lo:client
ip -n client link set lo alias nsgen:jumbo up

# Give eth0 in client the addresses 172.28.0.2/24 and fd00:28::2/64 without duplicate address detection (and no IPv6 link-local one) and bring it up.
begin 30 addr:client:storage
ip -n client addr replace 172.28.0.2/24 dev eth0
ip -n client addr replace fd00:28::2/64 dev eth0 nodad
ip -n client link set eth0 addrgenmode none up

# Send client's traffic for everywhere else to the host at 172.28.0.1, from 172.28.0.2.
begin 31 route:client
ip -n client route replace default via 172.28.0.1 dev eth0 src 172.28.0.2

# Send client's IPv6 traffic for everywhere else to the host at fd00:28::1.
begin 32 route6:client
ip -n client route replace default via fd00:28::1 dev eth0

# Bring up lo in monitor, so that a server listening on localhost answers inside it; its alias nsgen:jumbo marks the namespace as this topology's.
begin 33 lo:monitor
ip -n monitor link set lo alias nsgen:jumbo up

# Give eth0 in monitor the address 172.29.0.3/24 (and no IPv6 link-local one) and bring it up.
begin 34 addr:monitor:mgmt
ip -n monitor addr replace 172.29.0.3/24 dev eth0
ip -n monitor link set eth0 addrgenmode none up

# Route 203.0.113.0/24 via 172.29.0.1 from monitor over eth0: the static route of network mgmt.
begin 35 routes:monitor:mgmt
ip -n monitor route replace 203.0.113.0/24 via 172.29.0.1 dev eth0

# ==== Forwarding ====

# Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.
if test -e /run/nsgen/.ip_forward/users/jumbo && grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  nsgen_say 'already done: ip_forward'
else
  begin 36 ip_forward
  mkdir -p /run/nsgen/.ip_forward/users
  if test ! -e /run/nsgen/.ip_forward/before; then
    cp /proc/sys/net/ipv4/ip_forward /run/nsgen/.ip_forward/before
  fi
  touch /run/nsgen/.ip_forward/users/jumbo
  if ! grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
    sysctl -q -w net.ipv4.ip_forward=1
  fi
fi

# Make the host an IPv6 router (net.ipv6.conf.all.forwarding=1), keeping the value it had so teardown can put it back.
if test -e /run/nsgen/.ipv6_forwarding/users/jumbo && grep -qx 1 /proc/sys/net/ipv6/conf/all/forwarding >/dev/null 2>&1; then
  nsgen_say 'already done: ipv6_forwarding'
else
  begin 37 ipv6_forwarding
  mkdir -p /run/nsgen/.ipv6_forwarding/users
  if test ! -e /run/nsgen/.ipv6_forwarding/before; then
    cp /proc/sys/net/ipv6/conf/all/forwarding /run/nsgen/.ipv6_forwarding/before
  fi
  touch /run/nsgen/.ipv6_forwarding/users/jumbo
  if ! grep -qx 1 /proc/sys/net/ipv6/conf/all/forwarding >/dev/null 2>&1; then
    sysctl -q -w net.ipv6.conf.all.forwarding=1
  fi
fi

# ==== Firewall ====

# Loopback stays loopback: packets for 127.0.0.0/8 that arrive on any interface but lo are dropped before NAT (raw PREROUTING), so ports published on 127.0.0.1 and host services bound to it are reached from the host only.
if iptables -w -t raw -C PREROUTING ! -i lo -d 127.0.0.0/8 -m comment --comment nsgen:jumbo -j DROP >/dev/null 2>&1; then
  nsgen_say 'already done: firewall:raw'
else
  begin 38 firewall:raw
  iptables-restore -w --noflush <<'NSGEN_EOF'
*raw
# packets for 127.0.0.0/8 that did not start on this host stop here, before any NAT
-A PREROUTING ! -i lo -d 127.0.0.0/8 -m comment --comment nsgen:jumbo -j DROP
COMMIT
NSGEN_EOF
fi

# Filter: the topology's own chain NSGEN-jumbo, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.
if iptables -w -t filter -S NSGEN-jumbo >/dev/null 2>&1; then
  nsgen_say 'already done: firewall:filter'
else
  begin 39 firewall:filter
  iptables-restore -w --noflush <<'NSGEN_EOF'
*filter
:NSGEN-jumbo - [0:0]
# replies into network storage
-A NSGEN-jumbo -o br-storag-a3f9f -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsgen:jumbo -j ACCEPT
# traffic within network storage
-A NSGEN-jumbo -i br-storag-a3f9f -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j ACCEPT
# nothing else into network storage
-A NSGEN-jumbo -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j DROP
# replies into network mgmt
-A NSGEN-jumbo -o br-mgmt-7160c -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsgen:jumbo -j ACCEPT
# traffic within network mgmt
-A NSGEN-jumbo -i br-mgmt-7160c -o br-mgmt-7160c -m comment --comment nsgen:jumbo -j ACCEPT
# nothing else into network mgmt
-A NSGEN-jumbo -o br-mgmt-7160c -m comment --comment nsgen:jumbo -j DROP
# traffic out of network storage, unless it is headed into another container network
-A NSGEN-jumbo -i br-storag-a3f9f -m devgroup ! --dst-group 0x6e000000/0xff000000 -m comment --comment nsgen:jumbo -j ACCEPT
# traffic out of network mgmt, unless it is headed into another container network
-A NSGEN-jumbo -i br-mgmt-7160c -m devgroup ! --dst-group 0x6e000000/0xff000000 -m comment --comment nsgen:jumbo -j ACCEPT
# forwarded packets go through NSGEN-jumbo first
-I FORWARD 1 -m comment --comment nsgen:jumbo -j NSGEN-jumbo
COMMIT
NSGEN_EOF
fi

# NAT: masquerade in POSTROUTING.
if iptables -w -t nat -C POSTROUTING -s 172.28.0.0/24 ! -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j MASQUERADE >/dev/null 2>&1; then
  nsgen_say 'already done: firewall:nat'
else
  begin 40 firewall:nat
  iptables-restore -w --noflush <<'NSGEN_EOF'
*nat
# network storage reaches out as the host
-A POSTROUTING -s 172.28.0.0/24 ! -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j MASQUERADE
# network mgmt reaches out as the host
-A POSTROUTING -s 172.29.0.0/24 ! -o br-mgmt-7160c -m comment --comment nsgen:jumbo -j MASQUERADE
COMMIT
NSGEN_EOF
fi

# IPv6 (ip6tables), as for IPv4. Filter: the topology's own chain NSGEN-jumbo, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.
if ip6tables -w -t filter -S NSGEN-jumbo >/dev/null 2>&1; then
  nsgen_say 'already done: firewall6:filter'
else
  begin 41 firewall6:filter
  ip6tables-restore -w --noflush <<'NSGEN_EOF'
*filter
:NSGEN-jumbo - [0:0]
# replies into network storage
-A NSGEN-jumbo -o br-storag-a3f9f -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsgen:jumbo -j ACCEPT
# traffic within network storage
-A NSGEN-jumbo -i br-storag-a3f9f -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j ACCEPT
# nothing else into network storage
-A NSGEN-jumbo -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j DROP
# traffic out of network storage, unless it is headed into another container network
-A NSGEN-jumbo -i br-storag-a3f9f -m devgroup ! --dst-group 0x6e000000/0xff000000 -m comment --comment nsgen:jumbo -j ACCEPT
# forwarded packets go through NSGEN-jumbo first
-I FORWARD 1 -m comment --comment nsgen:jumbo -j NSGEN-jumbo
COMMIT
NSGEN_EOF
fi

# IPv6 (ip6tables), as for IPv4. NAT: masquerade in POSTROUTING.
if ip6tables -w -t nat -C POSTROUTING -s fd00:28::/64 ! -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j MASQUERADE >/dev/null 2>&1; then
  nsgen_say 'already done: firewall6:nat'
else
  begin 42 firewall6:nat
  ip6tables-restore -w --noflush <<'NSGEN_EOF'
*nat
# network storage reaches out as the host
-A POSTROUTING -s fd00:28::/64 ! -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j MASQUERADE
COMMIT
NSGEN_EOF
fi

# ==== DNS ====

# Give nas the names of the containers it shares a network with: ip netns exec shows /etc/netns/nas/hosts as /etc/hosts inside.
if test -e /etc/netns/nas/hosts; then
  nsgen_say 'already done: hosts:nas'
else
  begin 43 hosts:nas
  if test ! -e /etc/netns/nas/hosts; then
    install -D -m 0644 /dev/null /etc/netns/nas/hosts
  fi
  dd of=/etc/netns/nas/hosts status=none <<'NSGEN_EOF'
# Written by nsgen for topology jumbo; the names nas sees.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
172.29.0.2	nas
172.28.0.10	nas
fd00:28::10	nas
172.28.0.2	client
fd00:28::2	client
172.29.0.3	monitor
NSGEN_EOF
fi

# Give client the names of the containers it shares a network with: ip netns exec shows /etc/netns/client/hosts as /etc/hosts inside.
if test -e /etc/netns/client/hosts; then
  nsgen_say 'already done: hosts:client'
else
  begin 44 hosts:client
  if test ! -e /etc/netns/client/hosts; then
    install -D -m 0644 /dev/null /etc/netns/client/hosts
  fi
  dd of=/etc/netns/client/hosts status=none <<'NSGEN_EOF'
# Written by nsgen for topology jumbo; the names client sees.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
172.28.0.2	client
fd00:28::2	client
172.28.0.10	nas
fd00:28::10	nas
NSGEN_EOF
fi

# Give monitor the names of the containers it shares a network with: ip netns exec shows /etc/netns/monitor/hosts as /etc/hosts inside.
if test -e /etc/netns/monitor/hosts; then
  nsgen_say 'already done: hosts:monitor'
else
  begin 45 hosts:monitor
  if test ! -e /etc/netns/monitor/hosts; then
    install -D -m 0644 /dev/null /etc/netns/monitor/hosts
  fi
  dd of=/etc/netns/monitor/hosts status=none <<'NSGEN_EOF'
# Written by nsgen for topology jumbo; the names monitor sees.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
172.29.0.3	monitor
172.29.0.2	nas
NSGEN_EOF
fi

# ==== Done ====

# Mark topology jumbo as completely up.
if test -e /run/nsgen/jumbo/up; then
  nsgen_say 'already done: up'
else
  begin 46 up
  touch /run/nsgen/jumbo/up
fi
}

# ==== How this script runs the steps above ====
set -euo pipefail

# ---- nsgen's helper functions; the commands of the tutorial follow them, section by section ----
nsgen_say() { echo "nsgen: $*" >&2; }
die() { nsgen_say "$*"; exit 1; }
# Every function below returns an explicit status: called from the rollback (an EXIT trap), a
# bare `return` would return the status of the command that failed before the trap.

# The pids of every process inside one of the namespaces NS... (one look at /proc for all).
nsgen_pids_in() {
  local -A targets=()
  local key path
  [ "$#" -gt 0 ] || return 0
  while read -r key; do targets[$key]=1; done < <(cd /run/netns && stat -L -c %d:%i -- "$@" 2>/dev/null)
  while read -r key path; do
    if [ -n "${targets[$key]+set}" ]; then path=${path#/proc/}; echo "${path%%/*}"; fi
  done < <(stat -L -c '%d:%i %n' /proc/[0-9]*/ns/net 2>/dev/null)
  return 0
}

# Stop every process in the namespaces NS...: TERM, then KILL whatever is left after 3 seconds.
# A pid is signalled only when, looked at right before, it lives in one of them.
stop_processes() {
  local round left
  for round in TERM KILL; do
    left=$(nsgen_pids_in "$@")
    [ -n "$left" ] || return 0
    # shellcheck disable=SC2086 # one pid a word
    kill -"$round" $left 2>/dev/null || true
    for _ in $(seq 30); do
      [ -z "$(nsgen_pids_in "$@")" ] && return 0
      sleep 0.1
    done
  done
  nsgen_say "processes still running in $*: $(nsgen_pids_in "$@" | tr '\n' ' ')"
  return 1
}

# Whether any host link is in a device group (nsgen's topologies each have their own).
group_has_links() { [ -n "$(ip -o link show group "$1" 2>/dev/null)" ]; }

# The links of a device group, one a line: NAME ALIAS (no alias: not marked yet).
nsgen_group_links() {
  local line name
  ip -o link show group "$1" 2>/dev/null | while IFS= read -r line; do
    name=${line#*: }; name=${name%%: *}; name=${name%@*}
    case "$line" in
      *'\    alias '*) printf '%s %s\n' "$name" "${line##*\\    alias }" ;;
      *) printf '%s\n' "$name" ;;
    esac
  done
}

# Whether a link of the group is topology $2's: it carries the topology's alias, or carries no
# alias yet and is one of the topology's devices (named after $3; none named: any).
nsgen_link_mine() {
  local name=$1 alias=$2 topology=$3 x
  shift 3
  [ "$alias" = "nsgen:$topology" ] && return 0
  [ -z "$alias" ] || return 1
  [ "$#" -eq 0 ] && return 0
  for x in "$@"; do [ "$x" = "$name" ] && return 0; done
  return 1
}

# Whether link NAME (in device group GROUP) is topology TOPOLOGY's own.
link_ours() {
  local name alias links
  links=$(nsgen_group_links "$2")
  while read -r name alias; do
    if [ "$name" = "$1" ]; then
      if nsgen_link_mine "$name" "$alias" "$3"; then return 0; else return 1; fi
    fi
  done <<<"$links"
  return 1
}

# Whether every link of device group GROUP is topology TOPOLOGY's own (its devices: NAME...).
group_ours() {
  local group=$1 topology=$2 name alias links
  shift 2
  links=$(nsgen_group_links "$group")
  while read -r name alias; do
    [ -n "$name" ] || continue
    nsgen_link_mine "$name" "$alias" "$topology" "$@" || return 1
  done <<<"$links"
  return 0
}

# Delete the links of device group GROUP that are topology TOPOLOGY's own: all of them in one
# call when the whole group is, else one by one (a link of anyone else's is left alone).
delete_links() {
  local group=$1 topology=$2 name alias all=1 links status
  local -a mine=()
  shift 2
  links=$(nsgen_group_links "$group")
  while read -r name alias; do
    [ -n "$name" ] || continue
    if nsgen_link_mine "$name" "$alias" "$topology" "$@"; then mine+=("$name"); else all=0; fi
  done <<<"$links"
  [ "${#mine[@]}" -gt 0 ] || return 0
  if [ "$all" = 1 ]; then
    ip link delete group "$group"; status=$?
  else
    printf 'link delete %s\n' "${mine[@]}" | ip -batch -; status=$?
  fi
  return "$status"
}

# Why a path is not nsgen's own (printed), or nothing: not a link, of its kind (d or f), root's,
# writable by nobody else.
nsgen_path_problem() {
  local path=$1 kind=$2 info mode
  if [ -L "$path" ]; then echo "$path: it is a symbolic link"; return 0; fi
  if [ ! -e "$path" ]; then echo "$path: it is missing"; return 0; fi
  if [ "$kind" = d ] && [ ! -d "$path" ]; then echo "$path: it is not a directory"; return 0; fi
  if [ "$kind" = f ] && [ ! -f "$path" ]; then echo "$path: it is not a regular file"; return 0; fi
  info=$(stat -c '%u %a' -- "$path") || { echo "$path: it cannot be read"; return 0; }
  mode=$((8#${info#* }))
  if [ "${info%% *}" != 0 ]; then echo "$path: it belongs to uid ${info%% *}, not to root"; return 0; fi
  if (( (mode & 8#022) != 0 )); then printf '%s: others may write to it (mode %04o)\n' "$path" "$mode"; fi
}

declare -A nsgen_known_ours=()

# Note the namespaces that hold the other end of a veth pair of topology TOPOLOGY (in device group
# GROUP, carrying its alias): they are its own. One `ip` for all, before any link is deleted.
nsgen_note_ours() {
  local line name
  while IFS= read -r line; do
    case "$line" in *'\    alias nsgen:'"$1") ;; *) continue ;; esac
    case "$line" in *" link-netns "*) name=${line##* link-netns }; nsgen_known_ours[${name%%[ \\]*}]=1 ;; esac
  done < <(ip -o link show group "$2" 2>/dev/null)
  return 0
}

# Whether namespace NS is topology TOPOLOGY's: its lo carries the topology's alias, or, not
# marked yet, the topology's setup noted in INTENT that it was about to create it.
netns_ours() {
  local line
  # a teardown script first notes, in one look, the namespaces that hold a veth end of the topology's
  if [ -n "${nsgen_known_ours[$2]+set}" ]; then return 0; fi
  line=$(ip -n "$2" -o link show lo 2>/dev/null) || return 1
  case "$line" in
    *'\    alias '*)
      if [ "${line##*\\    alias }" = "nsgen:$1" ]; then return 0; fi
      return 1 ;;
  esac
  if [ -z "$(nsgen_path_problem "${3%/*}" d)" ] && [ -z "$(nsgen_path_problem "$3" f)" ] && grep -qxF -- "$2" "$3"; then return 0; fi
  return 1
}

# Why a state folder is not nsgen's own (printed), or nothing: also no link inside it, and,
# for a topology's (own=1), its record when it holds anything.
nsgen_dir_problem() {
  local dir=$1 own=$2 problem entry
  problem=$(nsgen_path_problem "$dir" d)
  if [ -n "$problem" ]; then echo "$problem"; return 0; fi
  for entry in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
    if [ -L "$entry" ]; then echo "$entry: it is a symbolic link"; return 0; fi
  done
  if [ "$own" = 1 ] && [ -n "$(ls -A -- "$dir")" ]; then
    problem=$(nsgen_path_problem "$dir"/topology.json f)
    if [ -n "$problem" ]; then echo "${problem%%: *} (its record): ${problem#*: }"; fi
  fi
}

# The folders nsgen keeps its state in are its own (root's, writable by nobody else, no link
# inside), and topology TOPOLOGY's holds its record (or nothing at all).
state_ok() {
  local dir problem
  for dir in /run/nsgen /run/nsgen/.ip_forward /run/nsgen/.ip_forward/users /run/nsgen/.ipv6_forwarding /run/nsgen/.ipv6_forwarding/users /run/nsgen/"$1"; do
    [ -e "$dir" ] || [ -L "$dir" ] || continue
    problem=$(nsgen_dir_problem "$dir" "$([ "$dir" = /run/nsgen/"$1" ] && echo 1)")
    if [ -n "$problem" ]; then
      nsgen_say "the state directory $problem: it is not nsgen's; nothing was changed (remove it if nothing of nsgen's is up)"
      return 1
    fi
  done
  return 0
}

# Whether topology TOPOLOGY's state directory is there for a teardown to remove: a folder of
# root's, writable by nobody else, in a state root that is the same (nothing in it is followed).
state_ours() {
  [ -e /run/nsgen/"$1" ] && [ -z "$(nsgen_path_problem /run/nsgen d)" ] && [ -z "$(nsgen_path_problem /run/nsgen/"$1" d)" ]
}

# An IPv4 address (dotted) as a number.
nsgen_ip4() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(( (a << 24) | (b << 16) | (c << 8) | d ))
}

# An IPv6 address as its 32 hex digits (the last 32 bits may be written dotted, as in ::ffff:1.2.3.4).
nsgen_ip6() {
  local addr=$1 n i
  local -a head=() tail=() groups=()
  if [[ $addr == *.* ]]; then
    n=$(nsgen_ip4 "${addr##*:}")
    addr=${addr%:*}:$(printf '%x:%x' $(( n >> 16 )) $(( n & 0xFFFF )))
  fi
  if [[ $addr == *::* ]]; then
    [ -z "${addr%%::*}" ] || IFS=: read -r -a head <<<"${addr%%::*}"
    [ -z "${addr#*::}" ] || IFS=: read -r -a tail <<<"${addr#*::}"
    groups=("${head[@]}")
    for (( i = ${#head[@]} + ${#tail[@]}; i < 8; i++ )); do groups+=(0); done
    groups+=("${tail[@]}")
  else
    IFS=: read -r -a groups <<<"$addr"
  fi
  printf '%04x' "${groups[@]/#/0x}"
}

# Whether two prefixes of one family (a bare address is a /32 or a /128) share an address.
nsgen_overlap() {
  local x=$1 y=$2 max=32 xlen ylen len mask a b n
  case "$x" in *:*) max=128 ;; esac
  xlen=$max ylen=$max
  case "$x" in */*) xlen=${x#*/}; x=${x%/*} ;; esac
  case "$y" in */*) ylen=${y#*/}; y=${y%/*} ;; esac
  len=$(( xlen < ylen ? xlen : ylen ))
  if [ "$max" = 32 ]; then
    mask=$(( len == 0 ? 0 : (0xFFFFFFFF << (32 - len)) & 0xFFFFFFFF ))
    (( ($(nsgen_ip4 "$x") & mask) == ($(nsgen_ip4 "$y") & mask) ))
    return
  fi
  # IPv6: the first len bits, as len/4 hex digits and the high bits of the next one
  a=$(nsgen_ip6 "$x"); b=$(nsgen_ip6 "$y"); n=$(( len / 4 ))
  [ "${a:0:n}" = "${b:0:n}" ] || return 1
  (( len % 4 == 0 )) && return 0
  mask=$(( (0xF << (4 - len % 4)) & 0xF ))
  (( (0x${a:n:1} & mask) == (0x${b:n:1} & mask) ))
}

# No route of the host's main table overlaps a network's subnet (NAME=SUBNET..., IPv4 or IPv6: a
# route of its family; IPv6 link-local and multicast routes, which every link has, aside), except
# the routes of topology TOPOLOGY's own devices (in device group GROUP).
subnets_free() {
  local group=$1 topology=$2 item net subnet name alias dst dev links family
  local -a route
  shift 2
  local -A ours=() routes=()
  links=$(nsgen_group_links "$group")
  while read -r name alias; do
    if [ -n "$name" ] && nsgen_link_mine "$name" "$alias" "$topology"; then ours[$name]=1; fi
  done <<<"$links"
  for item in "$@"; do
    net=${item%=*}; subnet=${item##*=}; family=4
    case "$subnet" in *:*) family=6 ;; esac
    [ -n "${routes[$family]+set}" ] || routes[$family]=$(ip "-$family" -o route show table main 2>/dev/null)
    while read -r -a route; do
      [ "${#route[@]}" -gt 0 ] || continue
      case "${route[0]}" in
        default|unreachable|blackhole|prohibit|throw|local|broadcast|multicast|anycast|nat) continue ;;
        fe[89ab]?:*|ff??:*) continue ;;  # IPv6 link-local and multicast
      esac
      dst=${route[0]}; dev="*"
      for i in "${!route[@]}"; do [ "${route[i]}" = dev ] && dev=${route[i + 1]}; done
      [ -n "${ours[$dev]+set}" ] && continue
      case "$dst" in */*) ;; *:*) dst=$dst/128 ;; *) dst=$dst/32 ;; esac
      if [ "${dst#*/}" != 0 ] && nsgen_overlap "$dst" "$subnet"; then
        nsgen_say "network $net: subnet $subnet overlaps the host's route to $dst (dev $dev); choose a subnet the host does not use; nothing was changed"
        return 1
      fi
    done <<<"${routes[$family]}"
  done
  return 0
}

# Undo a table's rules (the TOOL-restore text on standard input; TOOL: iptables or ip6tables): one
# transaction; when that fails (a rule is already gone, say), each rule that is still there, one
# by one, and each chain that is still there and the topology's own (it holds a rule with the
# topology's comment, or a rule of it jumped to it): a chain of the same name that someone else
# made is left alone.
nsgen_tables_undo() {
  local tool=$1 text table=filter line failed=0 tag="" target i status listing
  local -a words
  local -A ours=()
  text=$(cat)
  if "$tool-restore" -w --noflush 2>/dev/null <<<"$text"; then return 0; fi
  while IFS= read -r line; do
    case "$line" in '*'*) table=${line#\*}; continue ;; -*) ;; *) continue ;; esac
    read -r -a words <<<"$line"
    # status 1 (or a jump to a chain that is gone): already gone; any other failure is an error
    if [ "${words[0]}" = -D ]; then
      target=""
      for i in "${!words[@]}"; do
        case "${words[i]}" in --comment) tag=${words[i + 1]} ;; -j) target=${words[i + 1]} ;; esac
      done
      "$tool" -w -t "$table" -C "${words[@]:1}" 2>/dev/null; status=$?
      if [ "$status" = 2 ] && [ -n "$target" ] && { "$tool" -w -t "$table" -S "$target" >/dev/null 2>&1; [ "$?" = 1 ]; }; then status=1; fi
    else
      listing=$("$tool" -w -t "$table" -S "${words[1]}" 2>/dev/null); status=$?
    fi
    if [ "$status" = 1 ]; then continue; fi
    if [ "$status" != 0 ]; then nsgen_say "$tool -t $table: cannot tell whether this is still there: $line"; failed=1; continue; fi
    # a chain is known by its table and name: a jump reaches a chain of its own table only
    case "${words[0]}" in
      -D) ours[$table/$target]=1 ;;
      -F)
        if [ -z "${ours[$table/${words[1]}]+set}" ] && ! grep -qE -- "--comment \"?$tag\"?( |\$)" <<<"$listing"; then continue; fi
        ours[$table/${words[1]}]=1 ;;
      -X) [ -n "${ours[$table/${words[1]}]+set}" ] || continue ;;
    esac
    "$tool" -w -t "$table" "${words[@]}" || failed=1
  done <<<"$text"
  return "$failed"
}

# Undo IPv4 rules: nsgen_tables_undo through iptables.
iptables_undo() { nsgen_tables_undo iptables; }

# Undo IPv6 rules: nsgen_tables_undo through ip6tables.
ip6tables_undo() { nsgen_tables_undo ip6tables; }

# What an iptables-save text holds, for a person: policies that drop, and the number of rules.
nsgen_summary() {
  awk '/^\*/ { t = substr($1, 2) } /^:/ && ($2 == "DROP" || $2 == "REJECT") { p = p (p ? ", " : "") t " " substr($1, 2) " policy " $2 }
       /^-A/ { n++ } END { if (n) p = p (p ? ", " : "") n " rule(s)"; print p }'
}

# A warning when the other backend of TOOL (iptables, or ip6tables for IPv6) than the one nsgen
# writes through holds rules (nothing when TOOL is not installed).
nsgen_other_backend() {
  local tool=$1 version found="" mine other=""
  version=$("$tool" -V 2>/dev/null) || version=""
  case "$version" in
    *nf_tables*)
      mine=$tool-nft
      # read, never loaded: no legacy table is made by looking (ip_tables_names, ip6_tables_names)
      if [ -n "$(cat "/proc/net/${tool%tables}_tables_names" 2>/dev/null)" ]; then found=$("$tool-legacy-save" 2>/dev/null | nsgen_summary); other=$tool-legacy; fi ;;
    *legacy*)
      mine=$tool-legacy
      found=$("$tool-nft-save" 2>/dev/null | nsgen_summary); other=$tool-nft ;;
  esac
  if [ -n "$found" ]; then
    nsgen_say "warning: $other also holds rules on this host ($found), and nsgen writes through $mine: a packet must pass both, so $other's rules can cut the networks off; move them to $mine, or make $other the $tool nsgen runs"
  fi
  return 0
}

# A warning (never a refusal) when another firewall than the one nsgen writes to can drop its
# networks' traffic. Words: 6 when the topology has IPv6, nftables when it writes through nftables.
# For iptables, a packet must pass both iptables backends (both ip6tables backends, for IPv6), and
# every nft base chain (of the ip, ip6 and inet families alike). For nftables, the FORWARD chains
# of iptables (either backend) let nsgen's marked packets through (forward_pass), where the program
# that writes them is installed; every other nft base chain on the forward hook can still drop.
other_firewall() {
  local table="" chain="" line word six=0 nft=0 family tool
  local -A passed=()
  for word in "${1-}" "${2-}"; do
    case "$word" in 6) six=1 ;; nftables) nft=1 ;; esac
  done
  if [ "$nft" = 0 ]; then
    passed=([ip filter]=1 [ip6 filter]=1)
    nsgen_other_backend iptables
    if [ "$six" = 1 ]; then nsgen_other_backend ip6tables; fi
  else
    for family in ip ip6; do
      tool=${family}tables
      if command -v "$tool-nft" >/dev/null 2>&1 || [[ $("$tool" -V 2>/dev/null) == *nf_tables* ]]; then passed[$family filter]=1; fi
    done
  fi
  while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    case "$line" in
      "table "*) table=${line#table }; table=${table% \{} ;;
      "chain "*) chain=${line#chain }; chain=${chain% \{} ;;
      *"hook forward"*"policy drop"*)
        if [ -z "${passed[$table]+set}" ]; then nsgen_say "warning: nft table $table, chain $chain: policy drop on the forward hook"; fi ;;
    esac
  done <<<"$(nft list ruleset 2>/dev/null)"
  return 0
}

if [ "$(id -u)" -ne 0 ]; then die "this script changes the host's network: run it as root (sudo bash $0)"; fi
for tool in flock:util-linux ip:iproute2 ip6tables:iptables ip6tables-restore:iptables iptables:iptables iptables-restore:iptables nsenter:util-linux sysctl:procps; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "required tool not found: ${tool%%:*} (nothing was changed; on Debian and Ubuntu: apt install ${tool#*:})"
done
# Everything this script makes gets the modes it asks for (0755 folders, 0644 files).
umask 022

# One nsgen at a time on this host: setups and teardowns wait for each other.
# (File descriptor 9 holds the lock; processes started below do not inherit it.)
if [ -L /run/nsgen.lock ]; then die 'the lock file /run/nsgen.lock is a symbolic link: it is not nsgen'"'"'s; nothing was changed'; fi
exec 9>/run/nsgen.lock
flock -w 60 9 || die 'another nsgen setup or teardown still holds /run/nsgen.lock'
trap 'exit 130' INT
trap 'exit 143' TERM
# Whether a link exists is looked up in one listing of the host's links, taken now, instead of
# one `ip link show` a link (this script holds the lock: nothing else adds links meanwhile).
declare -A nsgen_link=()
while read -r _ nsgen_name _; do nsgen_name=${nsgen_name%:}; nsgen_link[${nsgen_name%@*}]=1; done < <(ip -o link show)
has_link() { [ -n "${nsgen_link[$1]+set}" ]; }

# Before anything changes (and under the lock, so that two setups cannot both pass them):
# what the host must allow, what nsgen keeps and publishes, and no resource of the same name
# that is not this topology's own.
if ! grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1 && ! test -w /proc/sys/net/ipv4/ip_forward; then die 'net.ipv4.ip_forward is off and cannot be turned on: /proc/sys/net/ipv4/ip_forward is not writable (is /proc/sys read-only here?); nothing was changed'; fi
if ! grep -qx 1 /proc/sys/net/ipv6/conf/all/forwarding >/dev/null 2>&1 && ! test -w /proc/sys/net/ipv6/conf/all/forwarding; then die 'net.ipv6.conf.all.forwarding is off and cannot be turned on: /proc/sys/net/ipv6/conf/all/forwarding is not writable (is IPv6 disabled on this host, or /proc/sys read-only?); nothing was changed'; fi
state_ok jumbo || exit 1
subnets_free 0x6e88e5c0 jumbo storage=172.28.0.0/24 storage=fd00:28::/64 mgmt=172.29.0.0/24 || exit 1
other_firewall 6 || exit 1
if test -e /run/nsgen/jumbo/topology.json && ! grep -qF '"digest": "af149c01e0b75811"' /run/nsgen/jumbo/topology.json; then
  die 'topology jumbo is up with another definition (recorded in /run/nsgen/jumbo/topology.json): bring it to this one with `sudo nsgen run -f FILE`, or tear it down first with the teardown script rendered while it is up (nsgen render --teardown); nothing was changed'
fi
if has_link br-storag-a3f9f && ! link_ours br-storag-a3f9f 0x6e88e5c0 jumbo >/dev/null 2>&1; then die 'link br-storag-a3f9f already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if has_link br-mgmt-7160c && ! link_ours br-mgmt-7160c 0x6e88e5c0 jumbo >/dev/null 2>&1; then die 'link br-mgmt-7160c already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if test -e /run/netns/nas && ! netns_ours jumbo nas /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then die 'network namespace nas already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if test -e /run/netns/client && ! netns_ours jumbo client /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then die 'network namespace client already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if test -e /run/netns/monitor && ! netns_ours jumbo monitor /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then die 'network namespace monitor already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if group_has_links 0x6e88e5c0 >/dev/null 2>&1 && ! group_ours 0x6e88e5c0 jumbo br-storag-a3f9f br-mgmt-7160c ve-nas-ce03d ve-nas-a155b ve-client-92738 ve-monito-8ff49 >/dev/null 2>&1; then die 'a link in device group 0x6e88e5c0 (another topology'"'"'s name hashes alike: rename one) already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if has_link ve-nas-ce03d && ! link_ours ve-nas-ce03d 0x6e88e5c0 jumbo >/dev/null 2>&1; then die 'link ve-nas-ce03d already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if has_link ve-nas-a155b && ! link_ours ve-nas-a155b 0x6e88e5c0 jumbo >/dev/null 2>&1; then die 'link ve-nas-a155b already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if has_link ve-client-92738 && ! link_ours ve-client-92738 0x6e88e5c0 jumbo >/dev/null 2>&1; then die 'link ve-client-92738 already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if has_link ve-monito-8ff49 && ! link_ours ve-monito-8ff49 0x6e88e5c0 jumbo >/dev/null 2>&1; then die 'link ve-monito-8ff49 already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if iptables -w -t filter -S NSGEN-jumbo >/dev/null 2>&1 && ! test -e /run/nsgen/jumbo/topology.json; then die 'iptables chain NSGEN-jumbo (table filter) already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if ip6tables -w -t filter -S NSGEN-jumbo >/dev/null 2>&1 && ! test -e /run/nsgen/jumbo/topology.json; then die 'ip6tables chain NSGEN-jumbo (table filter) already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if test -e /etc/netns/nas/hosts && ! grep -qF '# Written by nsgen for topology jumbo;' /etc/netns/nas/hosts >/dev/null 2>&1; then die 'file /etc/netns/nas/hosts already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if test -e /etc/netns/client/hosts && ! grep -qF '# Written by nsgen for topology jumbo;' /etc/netns/client/hosts >/dev/null 2>&1; then die 'file /etc/netns/client/hosts already exists and was not made by nsgen topology jumbo; nothing was changed'; fi
if test -e /etc/netns/monitor/hosts && ! grep -qF '# Written by nsgen for topology jumbo;' /etc/netns/monitor/hosts >/dev/null 2>&1; then die 'file /etc/netns/monitor/hosts already exists and was not made by nsgen topology jumbo; nothing was changed'; fi

# If any command fails (or the script is interrupted), undo what this run did, newest first.
# A step with nothing of its own to undo (an address, a route) goes away with an earlier step.
# A step that goes away with another (a veth pair with its namespace) is undone by itself only
# when that other step was not begun by this run. The state directory goes last, and only when
# everything else could be undone: it holds what a teardown needs to finish the job.
nsgen_failed=0
undo_0() {
  if [ "$nsgen_failed" -ne 0 ]; then return 0; fi
  if state_ours jumbo >/dev/null 2>&1; then
    rm -rf /run/nsgen/jumbo
  fi || nsgen_failed=1
  if test -d /run/nsgen; then
    rmdir --ignore-fail-on-non-empty /run/nsgen
  fi || nsgen_failed=1
}
undo_1() {
  if test -d /run/nsgen/.ip_forward/users && ! group_has_links 0x6e88e5c0 >/dev/null 2>&1; then
    rmdir --ignore-fail-on-non-empty /run/nsgen/.ip_forward/users
  fi || nsgen_failed=1
  if test -e /run/nsgen/.ip_forward/before && test ! -d /run/nsgen/.ip_forward/users && ! cmp -s /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
    cp /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward
  fi || nsgen_failed=1
  if test -d /run/nsgen/.ip_forward && test ! -d /run/nsgen/.ip_forward/users; then
    rm -rf /run/nsgen/.ip_forward
  fi || nsgen_failed=1
}
undo_2() {
  if test -d /run/nsgen/.ipv6_forwarding/users && ! group_has_links 0x6e88e5c0 >/dev/null 2>&1; then
    rmdir --ignore-fail-on-non-empty /run/nsgen/.ipv6_forwarding/users
  fi || nsgen_failed=1
  if test -e /run/nsgen/.ipv6_forwarding/before && test ! -d /run/nsgen/.ipv6_forwarding/users && ! cmp -s /run/nsgen/.ipv6_forwarding/before /proc/sys/net/ipv6/conf/all/forwarding >/dev/null 2>&1; then
    cp /run/nsgen/.ipv6_forwarding/before /proc/sys/net/ipv6/conf/all/forwarding
  fi || nsgen_failed=1
  if test -d /run/nsgen/.ipv6_forwarding && test ! -d /run/nsgen/.ipv6_forwarding/users; then
    rm -rf /run/nsgen/.ipv6_forwarding
  fi || nsgen_failed=1
}
undo_3() {
  if nsgen_began 11; then return 0; fi
  if link_ours br-storag-a3f9f 0x6e88e5c0 jumbo >/dev/null 2>&1; then
    ip link delete br-storag-a3f9f
  fi || nsgen_failed=1
}
undo_5() {
  if nsgen_began 11; then return 0; fi
  if link_ours br-mgmt-7160c 0x6e88e5c0 jumbo >/dev/null 2>&1; then
    ip link delete br-mgmt-7160c
  fi || nsgen_failed=1
}
undo_8() {
  if netns_ours jumbo nas /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    ip netns delete nas
  fi || nsgen_failed=1
}
undo_9() {
  if netns_ours jumbo client /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    ip netns delete client
  fi || nsgen_failed=1
}
undo_10() {
  if netns_ours jumbo monitor /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    ip netns delete monitor
  fi || nsgen_failed=1
}
undo_11() {
  delete_links 0x6e88e5c0 jumbo br-storag-a3f9f br-mgmt-7160c ve-nas-ce03d ve-nas-a155b ve-client-92738 ve-monito-8ff49 || nsgen_failed=1
}
undo_12() {
  if netns_ours jumbo nas /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    stop_processes nas
  fi || nsgen_failed=1
}
undo_13() {
  if netns_ours jumbo client /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    stop_processes client
  fi || nsgen_failed=1
}
undo_14() {
  if netns_ours jumbo monitor /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    stop_processes monitor
  fi || nsgen_failed=1
}
undo_15() {
  if nsgen_began 11; then return 0; fi
  if link_ours ve-nas-ce03d 0x6e88e5c0 jumbo >/dev/null 2>&1; then
    ip link delete ve-nas-ce03d
  fi || nsgen_failed=1
}
undo_16() {
  if nsgen_began 11; then return 0; fi
  if link_ours ve-nas-a155b 0x6e88e5c0 jumbo >/dev/null 2>&1; then
    ip link delete ve-nas-a155b
  fi || nsgen_failed=1
}
undo_17() {
  if nsgen_began 11; then return 0; fi
  if link_ours ve-client-92738 0x6e88e5c0 jumbo >/dev/null 2>&1; then
    ip link delete ve-client-92738
  fi || nsgen_failed=1
}
undo_18() {
  if nsgen_began 11; then return 0; fi
  if link_ours ve-monito-8ff49 0x6e88e5c0 jumbo >/dev/null 2>&1; then
    ip link delete ve-monito-8ff49
  fi || nsgen_failed=1
}
undo_36() {
  rm -f /run/nsgen/.ip_forward/users/jumbo || nsgen_failed=1
}
undo_37() {
  rm -f /run/nsgen/.ipv6_forwarding/users/jumbo || nsgen_failed=1
}
undo_38() {
  iptables_undo <<'NSGEN_EOF' || nsgen_failed=1
*raw
# packets for 127.0.0.0/8 that did not start on this host stop here, before any NAT
-D PREROUTING ! -i lo -d 127.0.0.0/8 -m comment --comment nsgen:jumbo -j DROP
COMMIT
NSGEN_EOF
}
undo_39() {
  iptables_undo <<'NSGEN_EOF' || nsgen_failed=1
*filter
# forwarded packets go through NSGEN-jumbo first
-D FORWARD -m comment --comment nsgen:jumbo -j NSGEN-jumbo
# the chain NSGEN-jumbo and all its rules
-F NSGEN-jumbo
-X NSGEN-jumbo
COMMIT
NSGEN_EOF
}
undo_40() {
  iptables_undo <<'NSGEN_EOF' || nsgen_failed=1
*nat
# network storage reaches out as the host
-D POSTROUTING -s 172.28.0.0/24 ! -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j MASQUERADE
# network mgmt reaches out as the host
-D POSTROUTING -s 172.29.0.0/24 ! -o br-mgmt-7160c -m comment --comment nsgen:jumbo -j MASQUERADE
COMMIT
NSGEN_EOF
}
undo_41() {
  ip6tables_undo <<'NSGEN_EOF' || nsgen_failed=1
*filter
# forwarded packets go through NSGEN-jumbo first
-D FORWARD -m comment --comment nsgen:jumbo -j NSGEN-jumbo
# the chain NSGEN-jumbo and all its rules
-F NSGEN-jumbo
-X NSGEN-jumbo
COMMIT
NSGEN_EOF
}
undo_42() {
  ip6tables_undo <<'NSGEN_EOF' || nsgen_failed=1
*nat
# network storage reaches out as the host
-D POSTROUTING -s fd00:28::/64 ! -o br-storag-a3f9f -m comment --comment nsgen:jumbo -j MASQUERADE
COMMIT
NSGEN_EOF
}
undo_43() {
  if grep -qF '# Written by nsgen for topology jumbo;' /etc/netns/nas/hosts >/dev/null 2>&1; then
    rm -f /etc/netns/nas/hosts
  fi || nsgen_failed=1
  if test -d /etc/netns/nas && netns_ours jumbo nas /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    rmdir --ignore-fail-on-non-empty /etc/netns/nas
  fi || nsgen_failed=1
}
undo_44() {
  if grep -qF '# Written by nsgen for topology jumbo;' /etc/netns/client/hosts >/dev/null 2>&1; then
    rm -f /etc/netns/client/hosts
  fi || nsgen_failed=1
  if test -d /etc/netns/client && netns_ours jumbo client /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    rmdir --ignore-fail-on-non-empty /etc/netns/client
  fi || nsgen_failed=1
}
undo_45() {
  if grep -qF '# Written by nsgen for topology jumbo;' /etc/netns/monitor/hosts >/dev/null 2>&1; then
    rm -f /etc/netns/monitor/hosts
  fi || nsgen_failed=1
  if test -d /etc/netns/monitor && netns_ours jumbo monitor /run/nsgen/jumbo/namespaces >/dev/null 2>&1; then
    rmdir --ignore-fail-on-non-empty /etc/netns/monitor
  fi || nsgen_failed=1
}
undo_46() {
  rm -f /run/nsgen/jumbo/up || nsgen_failed=1
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
    if [ "$nsgen_failed" -ne 0 ]; then nsgen_say 'undoing it left errors (see above); the state directory /run/nsgen/jumbo is kept for the teardown'; fi
  fi
  exit "$status"
}
trap rollback EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

steps
trap - EXIT INT TERM
nsgen_say 'topology jumbo is up'
