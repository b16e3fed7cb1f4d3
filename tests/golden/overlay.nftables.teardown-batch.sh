#!/usr/bin/env bash
# nsgen 0.1.0: teardown (batched) of topology overlay
#
# host h1 (192.0.2.11, ip_forward on)
# └── network front (bridge br-front-2f7a6, 10.50.0.0/24, gateway 10.50.0.1, masquerade, mtu 1450)
#     ├── ve-web-4883c <──veth──> web: eth0 10.50.0.2/24 mac 02:42:0a:32:00:02  published *:8080->8000/tcp
#     └── vx-front-e5866 <──VXLAN 4242, UDP 4789──> h2 (192.0.2.12): api 10.50.0.3
# web runs: nsgen echo-server --port 8000
#
# Removes exactly what the setup script (or nsgen run) made, newest first; safe to run twice or after a failed setup. When something cannot be removed, it says what is left and keeps the state directory, so that running it again finishes the job.
# firewall: nftables, as NSGEN_FIREWALL says (the topology names none)
#
# The steps come first, in the tutorial's order; the helper functions, the lock and the report that run them are at the end of the script.
# Values are single-quoted on purpose: nothing in them is expanded.
# shellcheck disable=SC2016,SC1003
#
# Batched: what can share a process does (the namespaces deleted in one `ip -batch`, their
# processes stopped in one call, the firewall tables removed in one run); each line still runs
# only when what it removes is the topology's own.
steps() {

# Unmark topology overlay as up: it is being taken down.
rm -f /run/nsgen/overlay/up || nsgen_failed=1

# Stop process 0 of web, with every other process in web.
nsgen_names=()
if netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then nsgen_names+=(web); fi
if [ "${#nsgen_names[@]}" -gt 0 ]; then stop_processes "${nsgen_names[@]}" || nsgen_failed=1; fi

# Remove the hosts file of web (when nsgen wrote it) and its folder (when empty).
if grep -qF '# Written by nsgen for topology overlay;' /etc/netns/web/hosts >/dev/null 2>&1; then
  rm -f /etc/netns/web/hosts
fi || nsgen_failed=1
if test -d /etc/netns/web && netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then
  rmdir --ignore-fail-on-non-empty /etc/netns/web
fi || nsgen_failed=1

# Remove nsgen's rule from iptables' FORWARD chain (when it is there).
forward_pass del iptables nsgen:overlay 0x00010000 || nsgen_failed=1

# Delete the nftables table of topology overlay (when it is nsgen's), in one transaction.
nft_undo nsgen-overlay nsgen:overlay || nsgen_failed=1

# No longer count topology overlay among the users of forwarding.
rm -f /run/nsgen/.ip_forward/users/overlay || nsgen_failed=1

# Stop the processes still running in web: TERM, then KILL after 3 seconds.
nsgen_names=()
if netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then nsgen_names+=(web); fi
if [ "${#nsgen_names[@]}" -gt 0 ]; then stop_processes "${nsgen_names[@]}" || nsgen_failed=1; fi

# Delete the bridges and veth pairs of topology overlay: every device of group 0x6eff3cbe that carries its alias, in one call.
delete_links 0x6eff3cbe overlay br-front-2f7a6 ve-web-4883c || nsgen_failed=1

# Delete the network namespace web (when its lo carries the topology's mark).
nsgen_lines=()
if netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then nsgen_lines+=('netns delete web'); fi
if [ "${#nsgen_lines[@]}" -gt 0 ]; then printf '%s\n' "${nsgen_lines[@]}" | ip -batch - || nsgen_failed=1; fi

# Put net.ipv4.ip_forward back to its value from before the first nsgen topology, once no topology needs forwarding and this one's devices are gone.
if test -d /run/nsgen/.ip_forward/users && ! group_has_links 0x6eff3cbe >/dev/null 2>&1; then
  rmdir --ignore-fail-on-non-empty /run/nsgen/.ip_forward/users
fi || nsgen_failed=1
if test -e /run/nsgen/.ip_forward/before && test ! -d /run/nsgen/.ip_forward/users && ! cmp -s /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward >/dev/null 2>&1; then
  cp /run/nsgen/.ip_forward/before /proc/sys/net/ipv4/ip_forward
fi || nsgen_failed=1
if test -d /run/nsgen/.ip_forward && test ! -d /run/nsgen/.ip_forward/users; then
  rm -rf /run/nsgen/.ip_forward
fi || nsgen_failed=1

# Remove the state directory /run/nsgen/overlay: last, and only when everything else is gone (a second teardown needs it).
if [ "$nsgen_failed" -eq 0 ]; then
  if state_ours overlay >/dev/null 2>&1; then
    rm -rf /run/nsgen/overlay
  fi || nsgen_failed=1
  if test -d /run/nsgen; then
    rmdir --ignore-fail-on-non-empty /run/nsgen
  fi || nsgen_failed=1
fi
}

# ==== How this script runs the steps above ====
set -uo pipefail

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

# A command that fails is reported, and the rest still runs; the exit status says whether all went well.
nsgen_failed=0
nsgen_note_ours overlay 0x6eff3cbe
steps
if [ "$nsgen_failed" -ne 0 ]; then
  nsgen_say 'teardown of overlay could not undo everything (see above); still there:'
  if ip link show br-front-2f7a6 >/dev/null 2>&1 && link_ours br-front-2f7a6 0x6eff3cbe overlay >/dev/null 2>&1; then nsgen_say '  link br-front-2f7a6'; fi
  if ip link show vx-front-e5866 >/dev/null 2>&1 && link_ours vx-front-e5866 0x6eff3cbe overlay >/dev/null 2>&1; then nsgen_say '  link vx-front-e5866'; fi
  if test -e /run/netns/web && netns_ours overlay web /run/nsgen/overlay/namespaces >/dev/null 2>&1; then nsgen_say '  network namespace web'; fi
  if group_has_links 0x6eff3cbe >/dev/null 2>&1 && group_ours 0x6eff3cbe overlay br-front-2f7a6 ve-web-4883c >/dev/null 2>&1; then nsgen_say '  a link in device group 0x6eff3cbe (another topology'"'"'s name hashes alike: rename one)'; fi
  if ip link show ve-web-4883c >/dev/null 2>&1 && link_ours ve-web-4883c 0x6eff3cbe overlay >/dev/null 2>&1; then nsgen_say '  link ve-web-4883c'; fi
  if nft list table inet nsgen-overlay >/dev/null 2>&1 && nft_ours nsgen-overlay nsgen:overlay >/dev/null 2>&1; then nsgen_say '  nftables table inet nsgen-overlay'; fi
  if test -e /etc/netns/web/hosts && grep -qF '# Written by nsgen for topology overlay;' /etc/netns/web/hosts >/dev/null 2>&1; then nsgen_say '  file /etc/netns/web/hosts'; fi
  die 'its state directory /run/nsgen/overlay is kept: run the teardown again to finish the job'
fi
nsgen_say 'topology overlay is down'
