#!/usr/bin/env bash
# nsgen 0.1.0: setup (batched) of topology overlay
#
# host h1 (192.0.2.11, ip_forward on)
# └── network front (bridge br-front-2f7a6, 10.50.0.0/24, gateway 10.50.0.1, masquerade, mtu 1450)
#     ├── ve-web-4883c <──veth──> web: eth0 10.50.0.2/24 mac 02:42:0a:32:00:02  published *:8080->8000/tcp
#     └── vx-front-e5866 <──VXLAN 4242, UDP 4789──> h2 (192.0.2.12): api 10.50.0.3
# web runs: nsgen echo-server --port 8000
#
# Undo: nsgen render --teardown --host h1 > cleanup.sh && sudo bash cleanup.sh (or: sudo nsgen run --teardown --host h1)
# firewall: nftables, as NSGEN_FIREWALL says (the topology names none)
#
# The steps come first, in the tutorial's order; the helper functions, the lock, the checks and the rollback that run them are at the end of the script.
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
#
# Batched: consecutive ip commands that run in the same place share one `ip -batch` process,
# whose lines are those commands; the firewall tables are one iptables-restore. Every step is
# still named below, and a failure still undoes what this run began.
steps() {

# Record what topology overlay is, in /run/nsgen/overlay/topology.json: teardown and later runs undo exactly what is up. Its processes' pids and logs live beside it.
begin 0 state
install -D -m 0644 /dev/stdin /run/nsgen/overlay/topology.json <<'NSGEN_EOF'
{"format": 1, "digest": "fc5856d0881214a8", "name": "overlay", "host": {"ip_forward": true, "persist": false, "firewall": "nftables", "firewall_why": "firewall: nftables, as NSGEN_FIREWALL says (the topology names none)"}, "hosts": [{"name": "h1", "address": "192.0.2.11"}, {"name": "h2", "address": "192.0.2.12"}], "on_host": "h1",
"networks": [
  {"name": "front", "driver": "bridge", "subnet": "10.50.0.0/24", "gateway": "10.50.0.1", "masquerade": true, "internal": false, "bridge": "br-front-2f7a6", "mtu": 1450, "overlay": {"vni": 4242, "port": 4789, "device": "vx-front-e5866", "local": "192.0.2.11", "peers": ["192.0.2.12"], "remote": [{"container": "api", "host": "h2", "underlay": "192.0.2.12", "mac": "02:42:0a:32:00:03", "address": "10.50.0.3", "address6": null}]}}
],
"containers": [
  {"name": "web", "attachments": [{"network": "front", "interface": "eth0", "host_interface": "ve-web-4883c", "address": "10.50.0.2", "prefixlen": 24, "gateway": "10.50.0.1", "mac_address": "02:42:0a:32:00:02"}], "dns": [], "dns_source": "host", "processes": [{"argv": ["nsgen", "echo-server", "--port", "8000"], "ready": ["tcp", "8000"], "ready_timeout": 10.0}], "ports": [{"host_ip": null, "host_port": 8080, "container_port": 8000, "protocol": "tcp", "spec": "8080:8000"}], "host": "h1"}
]}
NSGEN_EOF

# Teardown puts net.ipv4.ip_forward back to the value it had before the first nsgen topology turned it on, once no topology needs forwarding and this one's devices are gone.
# Create bridge br-front-2f7a6 for network front: a virtual switch for its containers, with a MAC address of its own, 02:05:3e:07:f8:8d: one it took from a port would change as ports come and go, and the kernel would drop the neighbour entries that say where the other hosts' containers are.
# Give br-front-2f7a6 the gateway address 10.50.0.1/24, mark it as topology overlay's (alias nsgen:overlay), set its MTU to 1450 (its own, whatever its ports) and bring it up: the host is the network's router.
# Create VXLAN device vx-front-e5866 for network front (VNI 4242, UDP port 4789, from this host's 192.0.2.11), MTU 1450: the network's frames travel in it to the other hosts, which are sent a copy of every broadcast (one all-zeros forwarding entry each: 192.0.2.12). It learns nothing: the topology says where each container is.
begin 1 ip_forward:restore
begin 2 bridge:front
begin 3 bridge-up:front
begin 4 vxlan:front
ip -batch - <<'NSGEN_EOF'
link add br-front-2f7a6 group 0x6eff3cbe address 02:05:3e:07:f8:8d type bridge
addr replace 10.50.0.1/24 dev br-front-2f7a6
link set br-front-2f7a6 alias nsgen:overlay mtu 1450 up
link add vx-front-e5866 group 0x6eff3cbe mtu 1450 type vxlan id 4242 local 192.0.2.11 dstport 4789 nolearning
NSGEN_EOF

bridge fdb append 00:00:00:00:00:00 dev vx-front-e5866 dst 192.0.2.12

# Plug vx-front-e5866 into bridge br-front-2f7a6, mark it (alias nsgen:overlay); as a bridge port it learns nothing and suppresses neighbour requests (the bridge answers them from the entries below, and keeps its own gateway's to itself); bring it up.
begin 5 vxlan-up:front
ip -batch - <<'NSGEN_EOF'
link set vx-front-e5866 master br-front-2f7a6 alias nsgen:overlay addrgenmode none
link set vx-front-e5866 type bridge_slave learning off neigh_suppress on
link set vx-front-e5866 up
NSGEN_EOF

# Tell vx-front-e5866 and br-front-2f7a6 where the containers on other hosts are (api on h2): each MAC address behind its host's address, and each container address at its MAC address, so no request for them needs to cross.
begin 6 vxlan-remote:front
bridge -batch - <<'NSGEN_EOF'
fdb replace 02:42:0a:32:00:03 dev vx-front-e5866 dst 192.0.2.12 self permanent
fdb replace 02:42:0a:32:00:03 dev vx-front-e5866 master static
NSGEN_EOF

ip neigh replace 10.50.0.3 lladdr 02:42:0a:32:00:03 dev br-front-2f7a6 nud permanent

# Note which namespaces this setup is about to create, in /run/nsgen/overlay/namespaces: until each carries the topology's mark (the alias of its lo), that note tells it from someone else's.
begin 7 namespaces
install -m 0644 /dev/stdin /run/nsgen/overlay/namespaces <<'NSGEN_EOF'
web
NSGEN_EOF

# Create the network namespace web: the container's own interfaces, routes and firewall.
begin 8 netns:web
ip netns add web

# Teardown deletes every host device of topology overlay at once: its bridges and veth host ends are in device group 0x6eff3cbe and carry the alias nsgen:overlay, and deleting one end of a veth pair deletes the other.
# Teardown stops every process still running in web before the namespace is deleted.
# Create the veth pair ve-web-4883c (host) <-> eth0 (in web, with MAC address 02:42:0a:32:00:02), its inner end made directly inside the namespace, both ends with MTU 1450.
# Plug ve-web-4883c into bridge br-front-2f7a6 (it has no address of its own, not even IPv6 link-local) with hairpin on, so web reaches its own published ports; mark it (alias nsgen:overlay) and bring it up.
begin 9 devices
begin 10 reap:web
begin 11 veth:web:front
begin 12 host-end:web:front
ip -batch - <<'NSGEN_EOF'
link add ve-web-4883c group 0x6eff3cbe mtu 1450 type veth peer name eth0 mtu 1450 address 02:42:0a:32:00:02 netns web
link set ve-web-4883c master br-front-2f7a6 alias nsgen:overlay addrgenmode none up
link set ve-web-4883c type bridge_slave hairpin on
NSGEN_EOF

# Bring up lo in web, so that a server listening on localhost answers inside it; its alias nsgen:overlay marks the namespace as this topology's.
# Give eth0 in web the address 10.50.0.2/24 (and no IPv6 link-local one) and bring it up.
# Send web's traffic for everywhere else to the host at 10.50.0.1, from 10.50.0.2.
begin 13 lo:web
begin 14 addr:web:front
begin 15 route:web
nsenter --net=/run/netns/web ip -batch - <<'NSGEN_EOF'
link set lo alias nsgen:overlay up
addr replace 10.50.0.2/24 dev eth0
link set eth0 addrgenmode none up
route replace default via 10.50.0.1 dev eth0 src 10.50.0.2
NSGEN_EOF

# Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.
begin 16 ip_forward
mkdir -p /run/nsgen/.ip_forward/users

if test ! -e /run/nsgen/.ip_forward/before; then
  cp /proc/sys/net/ipv4/ip_forward /run/nsgen/.ip_forward/before
fi

touch /run/nsgen/.ip_forward/users/overlay

if ! grep -qx 1 /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  sysctl -q -w net.ipv4.ip_forward=1
fi

# One nftables table, inet nsgen-overlay, holds every rule of both families and is made in one transaction. Loopback stays loopback: packets for 127.0.0.0/8 that arrive on any interface but lo are dropped before NAT (raw_prerouting), so ports published on 127.0.0.1 and host services bound to it are reached from the host only. Forwarded packets go through the chain networks: replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal. What it accepts carries the mark 0x00010000. NAT: masquerade in nat_postrouting; published ports in the chain published_ports (from nat_prerouting and nat_output, for local destinations), one map lookup a family and protocol, however many ports there are.
begin 17 nftables
nft -f - <<'NSGEN_EOF'
# the table is made anew: one that is there (an older definition of it) goes in the same transaction
add table inet nsgen-overlay
delete table inet nsgen-overlay
table inet nsgen-overlay {
	comment "nsgen:overlay"
	map dnat_ip_tcp {
		type inet_service . ipv4_addr : ipv4_addr . inet_service
		flags interval
		elements = {
			8080 . 0.0.0.0/0 comment "published port 8080:8000 goes to web" : 10.50.0.2 . 8000
		}
	}
	set published_ip {
		type ifname . ipv4_addr . inet_proto . inet_service
		elements = {
			"br-front-2f7a6" . 10.50.0.2 . tcp . 8000 comment "connections to web's published port 8080:8000"
		}
	}
	chain networks {
		oifname "br-front-2f7a6" ct state established,related meta mark set meta mark | 0x00010000 accept comment "replies into network front"
		ct status dnat oifname . ip daddr . meta l4proto . th dport @published_ip meta mark set meta mark | 0x00010000 accept comment "connections to published ports (ip)"
		iifname "br-front-2f7a6" oifname "br-front-2f7a6" meta mark set meta mark | 0x00010000 accept comment "traffic within network front"
		oifname "br-front-2f7a6" drop comment "nothing else into network front"
		iifname "br-front-2f7a6" oifgroup & 0xff000000 != 0x6e000000 meta mark set meta mark | 0x00010000 accept comment "traffic out of network front, unless it is headed into another container network"
	}
	chain published_ports {
		dnat ip to tcp dport . ip daddr map @dnat_ip_tcp comment "published TCP ports (ip)"
	}
	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname != "lo" ip daddr 127.0.0.0/8 drop comment "packets for 127.0.0.0/8 that did not start on this host stop here, before any NAT"
	}
	chain filter_forward {
		type filter hook forward priority filter - 10; policy accept;
		meta nfproto ipv4 jump networks comment "forwarded packets go through networks first"
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		meta nfproto ipv4 fib daddr type local jump published_ports comment "connections from elsewhere to this host's addresses: published ports in published_ports"
	}
	chain nat_output {
		type nat hook output priority -100; policy accept;
		meta nfproto ipv4 fib daddr type local jump published_ports comment "connections from this host to its own addresses: published ports in published_ports"
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.50.0.0/24 oifname != "br-front-2f7a6" masquerade comment "network front reaches out as the host"
		ip saddr 10.50.0.0/24 oifname "br-front-2f7a6" ct status dnat masquerade comment "a container of front reaching a published port of its own network: replies come back through the host"
		ip saddr 127.0.0.0/8 oifname "br-front-2f7a6" masquerade comment "the host reaching a published port of front at 127.0.0.1"
	}
}
NSGEN_EOF

# Where iptables' FORWARD chain can drop (its policy is DROP, or it holds rules: Docker, ufw), one rule of nsgen's own at its top accepts the packets that the table accepted (they carry the mark 0x00010000); elsewhere nothing.
begin 18 firewall:pass
forward_pass add iptables nsgen:overlay 0x00010000

# Let br-front-2f7a6 carry connections from localhost to published ports (route_localnet); the setting goes away with br-front-2f7a6. Nothing else for 127.0.0.0/8 gets in through it: the loopback guard above drops it.
begin 19 route_localnet:br-front-2f7a6
sysctl -q -w net/ipv4/conf/br-front-2f7a6/route_localnet=1

# Give web the names of the containers it shares a network with: ip netns exec shows /etc/netns/web/hosts as /etc/hosts inside.
begin 20 hosts:web
if test ! -e /etc/netns/web/hosts; then
  install -D -m 0644 /dev/null /etc/netns/web/hosts
fi

dd of=/etc/netns/web/hosts status=none <<'NSGEN_EOF'
# Written by nsgen for topology overlay; the names web sees.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
10.50.0.2	web
10.50.0.3	api
NSGEN_EOF

# Start `nsgen echo-server --port 8000` in web, detached; output in /run/nsgen/overlay/web.0.log; the `sh -c` in front records its pid in /run/nsgen/overlay/web.0.pid and, when it ends, its exit status in /run/nsgen/overlay/web.0.exit.
begin 21 process:web:0
rm -f /run/nsgen/overlay/web.0.pid /run/nsgen/overlay/web.0.exit /run/nsgen/overlay/web.0.shim

setsid ip netns exec web sh -c '"$@" & echo "$!" >"$0.pid"; wait "$!"; echo "$?" >"$0.exit"' /run/nsgen/overlay/web.0 nsgen echo-server --port 8000 >>/run/nsgen/overlay/web.0.log 2>&1 </dev/null 9>&- &
echo "$!" >/run/nsgen/overlay/web.0.shim

# Wait until every process runs and is ready (listening on its port, its file there, its check passing), or, with nothing to wait for, still runs after 0.5 s; one that ends or is not ready in time fails the setup, with its last lines of output.
begin 22 ready
wait_ready web /run/nsgen/overlay/web.0 10 tcp 1 8000 4 nsgen echo-server --port 8000

# Mark topology overlay as completely up.
begin 23 up
touch /run/nsgen/overlay/up
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

# This host has address $2: it is host $1 of a topology across hosts, whose part is set up here.
address_here() {
  local found
  if ! found=$(ip -o addr show to "$2"); then
    nsgen_say "cannot read this host's addresses (ip addr failed), so cannot tell whether it is host $1; nothing was changed"
    return 1
  fi
  [ -n "$found" ] && return 0
  nsgen_say "hosts.$1.address: $2 is not an address of this host, so this is not host $1; its part of the topology is set up on the host that has that address; nothing was changed"
  return 1
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

# Whether a port bound or published at $2 takes traffic for a port published at $1. Each is * (every
# address of both families: a dual-stack socket on [::], as ss shows it, a port published on every
# address), 0.0.0.0 (every IPv4 address), :: (every IPv6 address: a socket on [::] with
# IPV6_V6ONLY, an ip6tables DNAT for any destination) or one address.
nsgen_port_overlap() {
  local pair
  if [ "$1" = '*' ] || [ "$2" = '*' ] || [ "$1" = "$2" ]; then return 0; fi
  for pair in "$1 $2" "$2 $1"; do
    case "$pair" in "0.0.0.0 "*:*) ;; "0.0.0.0 "*|":: "*:*) return 0 ;; esac
  done
  return 1
}

# No host socket listens on a port the topology publishes (PROTOCOL:PORT:HOST..., split on the
# first two colons; HOST: *, an IPv4 address, or an IPv6 address in brackets), and no other DNAT
# (another topology's, another program's; IPv4 or IPv6) takes it, at an address that overlaps. ss
# shows a dual-stack socket on [::] as *, one with IPV6_V6ONLY as [::] (and, when it cannot ask the
# kernel, *: both families, as nsgen run takes it too). The sockets and the rules are read once
# each, into tables by protocol and port.
ports_free() {
  local tag=$1 spec protocol port ip line address holder i p d c t dnat save anywhere
  local -a words saves
  local -A bound=() forwarded=()
  shift
  for protocol in tcp udp sctp; do
    case " $* " in *" $protocol:"*) ;; *) continue ;; esac  # only the protocols the topology publishes
    while read -r -a words; do
      [ "${#words[@]}" -gt 4 ] || continue
      port=${words[3]##*:}; address=${words[3]%:*}
      address=${address#[}; address=${address%]}; address=${address%%%*}
      case "$address" in ::ffff:*.*) address=${address#::ffff:} ;; esac
      # an SCTP socket on [::]: whether it is IPV6_V6ONLY is not told, so it holds both families
      if [ "$protocol" = sctp ] && [ "$address" = :: ]; then address='*'; fi
      holder="a program"
      if [[ ${words[*]:5} =~ \(\(\"([^\"]*)\",pid=([0-9]+) ]]; then
        holder="${BASH_REMATCH[1]} (pid ${BASH_REMATCH[2]})"
        # the topology's own port proxy (root's nsgen port-proxy ... --tag TAG) holds its [::1] ports
        if [ "$(stat -c %u "/proc/${BASH_REMATCH[2]}" 2>/dev/null)" = 0 ] &&
           tr '\0' '\n' <"/proc/${BASH_REMATCH[2]}/cmdline" 2>/dev/null | grep -qxF -- port-proxy &&
           tr '\0' ' ' <"/proc/${BASH_REMATCH[2]}/cmdline" 2>/dev/null | grep -qF -- " --tag $tag "; then continue; fi
      fi
      bound[$protocol:$port]+="$address $holder"$'\n'
    done <<<"$(ss -H -l -n -p "--$protocol" 2>/dev/null)"
  done
  saves=(iptables-save:0.0.0.0 ip6tables-save:::)
  # the legacy backend's too, where the kernel holds its nat table (Docker's ports through iptables-legacy)
  if grep -qx nat /proc/net/ip_tables_names 2>/dev/null; then saves+=(iptables-legacy-save:0.0.0.0); fi
  if grep -qx nat /proc/net/ip6_tables_names 2>/dev/null; then saves+=(ip6tables-legacy-save:::); fi
  for save in "${saves[@]}"; do
    anywhere=${save#*:}; save=${save%%:*}
    while IFS= read -r line; do
      case "$line" in -A*DNAT*) ;; *) continue ;; esac
      read -r -a words <<<"${line//\"/}"
      p="" d=$anywhere c="" t="" dnat=0
      for i in "${!words[@]}"; do
        case "${words[i]}" in
          -p) p=${words[i + 1]} ;; --dport) t=${words[i + 1]} ;; -d) d=${words[i + 1]%/32}; d=${d%/128} ;;
          --comment) c=${words[i + 1]} ;; DNAT) dnat=1 ;;
        esac
      done
      if [ "$dnat" = 1 ] && [ "$c" != "$tag" ] && [ -n "$t" ]; then forwarded[$p:$t]+="$d"$'\x1f'"$c"$'\x1f'"$line"$'\n'; fi
    done <<<"$("$save" -t nat 2>/dev/null)"  # ip6tables-save missing: no IPv6 rule
  done
  # the ports nsgen topologies of the nftables backend publish: the elements of the maps
  # dnat_FAMILY_PROTOCOL of each table inet nsgen-* (the tag is the table's comment)
  c="-" t=""
  while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    case "$line" in
      "table inet nsgen-"*) c="" t="" ;;
      "table "*) c="-" t="" ;;
      'comment "nsgen:'*) if [ -z "$c" ]; then c=${line#comment \"}; c=${c%\"}; fi ;;
      "map dnat_"*_*) if [ "$c" != - ] && [ -n "$c" ]; then t=${line#map dnat_*_}; t=${t% \{}; fi ;;
      "}") t="" ;;
      *)
        [ -n "$t" ] && [ "$c" != "$tag" ] || continue
        read -r -a words <<<"${line#elements = \{ }"
        # PORT . ADDRESS : TARGET
        [[ ${#words[@]} -gt 2 && ${words[1]} = . && ${words[0]} =~ ^[0-9]+$ ]] || continue
        d=${words[2]}
        case "$d" in 0.0.0.0/0) d=0.0.0.0 ;; ::/0) d=:: ;; esac
        forwarded[$t:${words[0]}]+="$d"$'\x1f'"$c"$'\x1f'"$line"$'\n' ;;
    esac
  done <<<"$(nft list ruleset 2>/dev/null)"  # nft missing: no table of nsgen's
  for spec in "$@"; do
    protocol=${spec%%:*}; spec=${spec#*:}; port=${spec%%:*}; ip=${spec#*:}
    ip=${ip#[}; ip=${ip%]}
    [ -n "${bound[$protocol:$port]-}${forwarded[$protocol:$port]-}" ] || continue
    while read -r address holder; do
      if [ -z "$address" ] || ! nsgen_port_overlap "$ip" "$address"; then continue; fi
      case "$address" in *:*) address="[$address]" ;; esac
      nsgen_say "host port $port/$protocol is already in use: $holder listens on $address:$port; nothing was changed"
      return 1
    done <<<"${bound[$protocol:$port]-}"
    while IFS=$'\x1f' read -r d c line; do  # a separator no field holds (tab would fold empty fields)
      if [ -z "$d" ] || ! nsgen_port_overlap "$ip" "$d"; then continue; fi
      case "$c" in nsgen:*) holder="nsgen topology ${c#nsgen:}" ;; *) holder="another program's rule ($line)" ;; esac
      nsgen_say "host port $port/$protocol is already published by $holder; nothing was changed"
      return 1
    done <<<"${forwarded[$protocol:$port]-}"
  done
  return 0
}

# Whether the inet table NAME is there and carries the topology's comment TAG.
nft_ours() {
  local listed
  listed=$(nft list table inet "$1" 2>/dev/null) || return 1
  if grep -qxF -- "$(printf '\tcomment "%s"' "$2")" <<<"$listed"; then return 0; fi
  return 1
}

# Delete the inet table NAME in one transaction when it is the topology's own (it carries the
# comment TAG): one that is gone is no error, one that someone else made is left alone.
nft_undo() {
  local out
  if ! out=$(nft list table inet "$1" 2>&1); then
    case "$out" in *"No such file or directory"*) return 0 ;; esac
    nsgen_say "nft list table inet $1: $out"
    return 1
  fi
  if ! nft_ours "$1" "$2"; then
    nsgen_say "nftables table inet $1 does not carry the comment $2: it is not nsgen's, and is left alone"
    return 0
  fi
  if ! out=$(nft delete table inet "$1" 2>&1); then
    case "$out" in *"No such file or directory"*) return 0 ;; esac
    nsgen_say "nft delete table inet $1: $out"
    return 1
  fi
  return 0
}

# The programs that write the FORWARD chain of each backend of TOOL (iptables or ip6tables) that
# can hold one: TOOL-nft, and TOOL-legacy where the kernel holds its filter table (read from /proc,
# never loaded by looking); TOOL itself where neither is installed. One a line.
nsgen_pass_programs() {
  local nft=0 legacy=0
  if command -v "$1-nft" >/dev/null 2>&1; then nft=1; echo "$1-nft"; fi
  if command -v "$1-legacy" >/dev/null 2>&1; then
    legacy=1
    if grep -qx filter "/proc/net/${1%tables}_tables_names" 2>/dev/null; then echo "$1-legacy"; fi
  fi
  if [ "$nft$legacy" = 00 ] && command -v "$1" >/dev/null 2>&1; then echo "$1"; fi
  return 0
}

# add: in each backend of TOOL (iptables or ip6tables: its nft one, its legacy one where the kernel
# holds its filter table) whose FORWARD chain can drop (a policy other than ACCEPT, or rules:
# Docker's, ufw's), insert at its top one rule that accepts what nsgen's nftables table marked
# (MARK); del: remove that rule wherever it is. Nothing to do without TOOL.
forward_pass() {
  local action=$1 program listed
  local -a rule=(FORWARD -m mark --mark "$4/$4" -m comment --comment "$3" -j ACCEPT)
  while read -r program; do
    [ -n "$program" ] || continue
    if [ "$action" = del ]; then
      while "$program" -w -C "${rule[@]}" 2>/dev/null; do "$program" -w -D "${rule[@]}" || return 1; done
      continue
    fi
    listed=$("$program" -w -S FORWARD 2>/dev/null) || continue
    if [ "$listed" = "-P FORWARD ACCEPT" ] || "$program" -w -C "${rule[@]}" 2>/dev/null; then continue; fi
    "$program" -w -I FORWARD 1 "${rule[@]:1}" || return 1
  done <<<"$(nsgen_pass_programs "$2")"
  return 0
}

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

# Whether PID runs, in namespace NS (the same namespace: the same device and inode).
nsgen_runs() {
  local inside
  [ -n "$1" ] || return 1
  inside=$(stat -L -c %d:%i "/proc/$1/ns/net" 2>/dev/null) || return 1
  if [ "$inside" = "$(stat -L -c %d:%i /run/netns/"$2" 2>/dev/null)" ]; then return 0; fi
  return 1
}

# Whether process PID has not ended (a zombie has). The shell in front of a program is asked only
# this: just started, it may not have entered the program's namespace yet.
nsgen_alive() {
  local stat
  [ -n "$1" ] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  case "${stat%% *}" in "" | Z | X) return 1 ;; esac
  return 0
}

# Whether the process recorded in PIDFILE still runs, inside namespace NS.
process_alive() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  if nsgen_runs "$pid" "$1"; then return 0; fi
  return 1
}

# Microseconds since the epoch, now or SECONDS (a decimal) from now.
nsgen_clock() { local now=${EPOCHREALTIME/./}; echo $(( now + $(awk -v s="${1:-0}" 'BEGIN { printf "%d", s * 1000000 }') )); }

# Whether the namespace of PID has a socket listening on PORT (tcp) or bound to it (udp), IPv4 or
# IPv6 (an IPv6 socket on [::] only is listed in tcp6 or udp6 alone; a host without IPv6 has neither).
nsgen_listening() {
  local state=0A file
  local -a files=()
  [ "$2" = udp ] && state=07
  for file in "/proc/$1/net/$2" "/proc/$1/net/${2}6"; do [ -e "$file" ] && files+=("$file"); done
  [ "${#files[@]}" -gt 0 ] || return 1
  if awk -v port="$(printf '%04X' "$3")" -v state="$state" \
      'FNR > 1 && $4 == state && substr($2, index($2, ":") + 1) == port { found = 1 } END { exit !found }' \
      "${files[@]}" 2>/dev/null; then return 0; fi
  return 1
}

# Whether a process (PID, in NS) is ready: KIND tcp/udp PORT, file PATH, command WORD..., none.
nsgen_ready_now() {
  local pid=$1 ns=$2 kind=$3
  shift 3
  case "$kind" in
    tcp|udp) if nsgen_listening "$pid" "$kind" "$1"; then return 0; fi ;;
    file) if [ -e "$1" ]; then return 0; fi ;;
    command) if timeout 5 ip netns exec "$ns" "$@" </dev/null >/dev/null 2>&1; then return 0; fi ;;
    *) return 0 ;;
  esac
  return 1
}

# Wait for one process: NS BASE TIMEOUT KIND N VALUE... M WORD... (BASE.pid: the program's, written
# by the shell in front, BASE.shim: that shell's, BASE.exit, BASE.log). Prints what went wrong, and
# fails, when it ends or is not ready in time.
nsgen_wait_one() {
  local ns=$1 base=$2 timeout=$3 kind=$4 n=$5 m pid shim end window what=""
  local -a values argv
  values=("${@:6:n}"); m=${*:6+n:1}; argv=("${@:7+n:m}")
  end=$(nsgen_clock "$timeout")
  while :; do
    pid=$(cat "$base.pid" 2>/dev/null) || pid=""
    shim=$(cat "$base.shim" 2>/dev/null) || shim=""
    if nsgen_runs "$pid" "$ns"; then
      if nsgen_ready_now "$pid" "$ns" "$kind" "${values[@]}"; then
        [ "$kind" != none ] && return 0
        window=$(stat -c %.6Y "$base.pid")  # when it started
        if [ "$(nsgen_clock)" -ge $(( ${window/./} + 500000 )) ]; then return 0; fi
      fi
    elif ! nsgen_alive "$shim"; then  # neither the program nor the shell in front runs
      what="is not running"; break
    fi
    if [ "$(nsgen_clock)" -ge "$end" ]; then
      case "$kind" in tcp|udp|file) what="was not ready ($kind:${values[0]}) after $timeout s" ;;
        command) what="was not ready (its readiness check) after $timeout s" ;; *) what="was not ready (running) after $timeout s" ;; esac
      break
    fi
    sleep 0.02
  done
  if [ -e "$base.exit" ]; then what="ended with exit status $(cat "$base.exit")"; fi
  nsgen_say "the process \`${argv[*]}\` in $ns $what; the last lines of $base.log:"
  if [ -s "$base.log" ]; then tail -n 10 "$base.log" | sed 's/^/  /' >&2; else echo "  (no output)" >&2; fi
  return 1
}

# Wait until every process runs and is ready; fail with the first that ended or is not ready in time.
wait_ready() {
  local n m
  while [ "$#" -gt 0 ]; do
    nsgen_wait_one "$@" || return 1
    n=$5; m=${*:6+n:1}
    shift $(( 6 + n + m ))
  done
  return 0
}

if [ "$(id -u)" -ne 0 ]; then die "this script changes the host's network: run it as root (sudo bash $0)"; fi
for tool in bridge:iproute2 flock:util-linux ip:iproute2 nft:nftables nsenter:util-linux setsid:util-linux ss:iproute2 sysctl:procps; do
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
state_ok overlay || exit 1
address_here h1 192.0.2.11 || exit 1
subnets_free 0x6eff3cbe overlay front=10.50.0.0/24 || exit 1
ports_free nsgen:overlay 'tcp:8080:*' || exit 1
other_firewall nftables || exit 1
if test -e /run/nsgen/overlay/topology.json && ! grep -qF '"digest": "fc5856d0881214a8"' /run/nsgen/overlay/topology.json; then
  die 'topology overlay is up with another definition (recorded in /run/nsgen/overlay/topology.json): bring it to this one with `sudo nsgen run -f FILE`, or tear it down first with the teardown script rendered while it is up (nsgen render --teardown); nothing was changed'
fi
if has_link br-front-2f7a6 && ! link_ours br-front-2f7a6 0x6eff3cbe overlay >/dev/null 2>&1; then die 'link br-front-2f7a6 already exists and was not made by nsgen topology overlay; nothing was changed'; fi
if has_link vx-front-e5866 && ! link_ours vx-front-e5866 0x6eff3cbe overlay >/dev/null 2>&1; then die 'link vx-front-e5866 already exists and was not made by nsgen topology overlay; nothing was changed'; fi
if test -e /run/netns/web && ! netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then die 'network namespace web already exists and was not made by nsgen topology overlay; nothing was changed'; fi
if group_has_links 0x6eff3cbe >/dev/null 2>&1 && ! group_ours 0x6eff3cbe overlay br-front-2f7a6 ve-web-4883c >/dev/null 2>&1; then die 'a link in device group 0x6eff3cbe (another topology'"'"'s name hashes alike: rename one) already exists and was not made by nsgen topology overlay; nothing was changed'; fi
if has_link ve-web-4883c && ! link_ours ve-web-4883c 0x6eff3cbe overlay >/dev/null 2>&1; then die 'link ve-web-4883c already exists and was not made by nsgen topology overlay; nothing was changed'; fi
if nft list table inet nsgen-overlay >/dev/null 2>&1 && ! nft_ours nsgen-overlay nsgen:overlay >/dev/null 2>&1; then die 'nftables table inet nsgen-overlay already exists and was not made by nsgen topology overlay; nothing was changed'; fi
if test -e /etc/netns/web/hosts && ! grep -qF '# Written by nsgen for topology overlay;' /etc/netns/web/hosts >/dev/null 2>&1; then die 'file /etc/netns/web/hosts already exists and was not made by nsgen topology overlay; nothing was changed'; fi

# A batched setup starts from nothing: when the topology is already (or partly) up, say so.
if test -e /run/nsgen/overlay/up; then
  nsgen_say 'topology overlay is already up; nothing to do'
  exit 0
fi
if test -d /run/nsgen/overlay; then
  die 'a previous setup of overlay did not finish: run the teardown first, or the default (not batched) setup script, which completes it'
fi

# If any command fails (or the script is interrupted), undo what this run did, newest first.
# A step with nothing of its own to undo (an address, a route) goes away with an earlier step.
# A step that goes away with another (a veth pair with its namespace) is undone by itself only
# when that other step was not begun by this run. The state directory goes last, and only when
# everything else could be undone: it holds what a teardown needs to finish the job.
nsgen_failed=0
undo_0() {
  if [ "$nsgen_failed" -ne 0 ]; then return 0; fi
  if state_ours overlay >/dev/null 2>&1; then
    rm -rf /run/nsgen/overlay
  fi || nsgen_failed=1
  if test -d /run/nsgen; then
    rmdir --ignore-fail-on-non-empty /run/nsgen
  fi || nsgen_failed=1
}
undo_1() {
  if test -d /run/nsgen/.ip_forward/users && ! group_has_links 0x6eff3cbe >/dev/null 2>&1; then
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
  if nsgen_began 9; then return 0; fi
  if link_ours br-front-2f7a6 0x6eff3cbe overlay >/dev/null 2>&1; then
    ip link delete br-front-2f7a6
  fi || nsgen_failed=1
}
undo_4() {
  if nsgen_began 9; then return 0; fi
  if link_ours vx-front-e5866 0x6eff3cbe overlay >/dev/null 2>&1; then
    ip link delete vx-front-e5866
  fi || nsgen_failed=1
}
undo_8() {
  if netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then
    ip netns delete web
  fi || nsgen_failed=1
}
undo_9() {
  delete_links 0x6eff3cbe overlay br-front-2f7a6 ve-web-4883c || nsgen_failed=1
}
undo_10() {
  if netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then
    stop_processes web
  fi || nsgen_failed=1
}
undo_11() {
  if nsgen_began 9; then return 0; fi
  if link_ours ve-web-4883c 0x6eff3cbe overlay >/dev/null 2>&1; then
    ip link delete ve-web-4883c
  fi || nsgen_failed=1
}
undo_16() {
  rm -f /run/nsgen/.ip_forward/users/overlay || nsgen_failed=1
}
undo_17() {
  nft_undo nsgen-overlay nsgen:overlay || nsgen_failed=1
}
undo_18() {
  forward_pass del iptables nsgen:overlay 0x00010000 || nsgen_failed=1
}
undo_20() {
  if grep -qF '# Written by nsgen for topology overlay;' /etc/netns/web/hosts >/dev/null 2>&1; then
    rm -f /etc/netns/web/hosts
  fi || nsgen_failed=1
  if test -d /etc/netns/web && netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then
    rmdir --ignore-fail-on-non-empty /etc/netns/web
  fi || nsgen_failed=1
}
undo_21() {
  if netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then
    stop_processes web
  fi || nsgen_failed=1
}
undo_23() {
  rm -f /run/nsgen/overlay/up || nsgen_failed=1
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
    if [ "$nsgen_failed" -ne 0 ]; then nsgen_say 'undoing it left errors (see above); the state directory /run/nsgen/overlay is kept for the teardown'; fi
  fi
  exit "$status"
}
trap rollback EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

steps
trap - EXIT INT TERM
nsgen_say 'topology overlay is up'
