"""Models are the records every later stage reads, and the limits their fields obey; they know
nothing of commands or shells, of the host, nor of how the user's file is checked.

A `Topology` holds only decided values: nothing in it is optional or "default" (`resolve` decides
them). The limits (name caps, the names `ip` and the kernel reserve, the keys each level of the
file takes) are here because the resolution, the JSON Schema and the plan all read them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

IFNAME_MAX = 15  # IFNAMSIZ - 1: the kernel's limit, in bytes
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # use fullmatch: with match, "$" lets a trailing newline through
TOPOLOGY_NAME_MAX = 20  # the per-topology chain NSGEN-<name> must fit iptables' 28 characters
# A container name is its namespace's: `ip netns add|exec|delete NAME`, `ip -n NAME` and `netns NAME`
# read a name by its place, so subcommand words (help, list, add, exec, all, ...) are names there too.
NAMESPACE_NAME_MAX = 64
NETWORK_NAME_MAX = 64
DRIVERS = ("bridge", "veth", "macvlan", "ipvlan")
FIREWALLS = ("iptables", "nftables", "auto")  # host.firewall: auto picks one of the others on the machine that renders or runs
DIRECT_DRIVERS = ("macvlan", "ipvlan")  # containers on a host interface's own LAN: the host is not their router
PROTOCOLS = ("tcp", "udp", "sctp")
BRIDGE_MAX_PORTS = 1024  # BR_MAX_PORTS in the kernel
MTU_MIN, MTU_MAX = 68, 65535  # the least an IPv4 link may carry (RFC 791); ETH_MAX_MTU for a bridge and a veth
MTU6_MIN = 1280  # the least an IPv6 link may carry (RFC 8200)
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
VNI_MIN, VNI_MAX = 1, 16777215  # a VXLAN network identifier is 24 bits; 0 is reserved
VXLAN_PORT = 4789  # IANA's VXLAN port (the kernel's default is Linux's old 8472: nsgen always names it)
VXLAN_OVERHEAD = {4: 50, 6: 70}  # outer Ethernet (14) + IP (20 or 40) + UDP (8) + VXLAN (8) header bytes
UNDERLAY_MTU = 1500  # what a host's network is assumed to carry, unless a network's mtu says otherwise
HOST_NAME_MAX = 32  # a host's name in `hosts` (it names a script: HOST.setup.sh)


# ----------------------------------------------------------------------------------------------
# The resolved topology: what every later stage reads. Nothing here is optional or "default".


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SUBNET6_MAX_PREFIX = 126  # an IPv6 network needs its subnet-router anycast address, a gateway and a container


class PublishedPort(NamedTuple):
    # None: every host address of each family the container has; 0.0.0.0 every IPv4 address,
    # :: every IPv6 address (as in Docker); otherwise that one address
    host_ip: IPAddress | None
    host_port: int
    container_port: int
    protocol: str
    spec: str  # as the user wrote it, for messages and comments

    @property
    def address(self) -> IPAddress | None:
        """The one host address it is published on; None: every address (of a family, or of both)."""
        return None if self.host_ip is None or self.host_ip.is_unspecified else self.host_ip

    @property
    def ranged(self) -> bool:
        """Whether it is one port of a range (`8080-8082:80-82`: no address holds a '-')."""
        return "-" in self.spec

    @property
    def shown(self) -> str:
        """HOST_IP:PORT->PORT/PROTOCOL, `*` for every address, an IPv6 host IP in brackets."""
        host = "*" if self.host_ip is None else f"[{self.host_ip}]" if self.host_ip.version == 6 else str(self.host_ip)
        return f"{host}:{self.host_port}->{self.container_port}/{self.protocol}"

    def versions(self, available: tuple[int, ...]) -> tuple[int, ...]:
        """The families it is published on, of those its container's network has."""
        return tuple(v for v in available if self.host_ip is None or self.host_ip.version == v)

    def overlaps(self, other: PublishedPort) -> bool:
        """Whether both take the same host port of one protocol at a common address: every address
        (None) meets any, 0.0.0.0 any IPv4 address and :: any IPv6 one, else the same address."""
        if (self.protocol, self.host_port) != (other.protocol, other.host_port):
            return False
        if self.host_ip is None or other.host_ip is None or self.host_ip == other.host_ip:
            return True
        return self.host_ip.version == other.host_ip.version and (self.host_ip.is_unspecified or other.host_ip.is_unspecified)


def port_runs(ports: tuple[PublishedPort, ...] | list[PublishedPort]) -> list[tuple[PublishedPort, PublishedPort]]:
    """The ports as the user wrote them: (first, last) of each run of ports that one range
    (`8080-8082:80-82`) published, (p, p) for a single port."""
    runs: list[tuple[PublishedPort, PublishedPort]] = []
    for p in ports:
        if runs:
            first, last = runs[-1]
            if (p.spec, p.host_ip, p.protocol) == (last.spec, last.host_ip, last.protocol) and \
                    (p.host_port, p.container_port) == (last.host_port + 1, last.container_port + 1):
                runs[-1] = (first, p)
                continue
        runs.append((p, p))
    return runs


def run_shown(first: PublishedPort, last: PublishedPort) -> str:
    """HOST_IP:PORT->PORT/PROTOCOL for a single port, HOST_IP:LOW-HIGH->LOW-HIGH/PROTOCOL for a range."""
    if first == last:
        return first.shown
    host = first.shown.rpartition(":")[0]
    return f"{host}:{first.host_port}-{last.host_port}->{first.container_port}-{last.container_port}/{first.protocol}"


class Attachment(NamedTuple):
    """One container's interface on one network."""

    network: str
    interface: str  # name inside the container's namespace
    host_interface: str | None  # the host end of the veth pair (a bridge port, or the gateway for veth); None: macvlan, ipvlan
    address: ipaddress.IPv4Address | None  # None: the network has no IPv4 subnet
    prefixlen: int
    gateway: ipaddress.IPv4Address | None
    address6: ipaddress.IPv6Address | None = None  # None: the network has no IPv6 subnet
    prefixlen6: int = 0
    gateway6: ipaddress.IPv6Address | None = None
    mac_address: str | None = None  # the container end's MAC address, lower case; None: the kernel's random one
    aliases: tuple[str, ...] = ()  # more names of its addresses, for the containers on its network

    @property
    def addresses(self) -> tuple[tuple[IPAddress, int, IPAddress], ...]:
        """(address, prefix length, gateway) for each family the network has, IPv4 first."""
        both = ((self.address, self.prefixlen, self.gateway), (self.address6, self.prefixlen6, self.gateway6))
        return tuple((a, n, g) for a, n, g in both if a is not None and g is not None)

    def address_of(self, version: int) -> IPAddress | None:
        return self.address if version == 4 else self.address6

    @property
    def shown(self) -> str:
        """Its addresses with their prefix lengths, for people: `172.20.0.2/24, fd00:20::2/64`."""
        return ", ".join(f"{a}/{n}" for a, n, _g in self.addresses)

    @property
    def first(self) -> IPAddress:
        """Its IPv4 address, or its IPv6 one on an IPv6-only network."""
        return self.addresses[0][0]


class Route(NamedTuple):
    """A static route a network gives its containers: to destination through gateway (an address
    inside the network's subnet of the same family)."""

    destination: IPNetwork
    gateway: IPAddress

    @property
    def shown(self) -> str:
        return f"{self.destination} via {self.gateway}"


class RemoteMember(NamedTuple):
    """A container on another host, on an overlay network: what this host's bridge is told of it."""

    container: str
    host: str
    underlay: IPAddress  # the address of the host it is on
    mac: str
    address: ipaddress.IPv4Address | None
    address6: ipaddress.IPv6Address | None
    aliases: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return tuple(a for a in (self.address, self.address6) if a is not None)


class Overlay(NamedTuple):
    """A bridge network stretched across hosts: its frames carried in VXLAN over the hosts' own
    network. `local`, `peers` and `remote` are filled in for one host's part of the topology."""

    vni: int
    port: int  # the UDP port VXLAN is sent to and received on
    device: str  # the VXLAN device, a port of the network's bridge
    local: IPAddress | None = None  # this host's underlay address
    peers: tuple[IPAddress, ...] = ()  # the other hosts that have containers on the network
    remote: tuple[RemoteMember, ...] = ()  # their containers on it


class Network(NamedTuple):
    name: str
    driver: str
    subnet: ipaddress.IPv4Network | None  # None: IPv6 only
    gateway: ipaddress.IPv4Address | None
    masquerade: bool
    internal: bool
    bridge: str | None  # bridge device name (driver bridge only)
    subnet6: ipaddress.IPv6Network | None = None  # None: IPv4 only
    gateway6: ipaddress.IPv6Address | None = None
    parent: str | None = None  # the host interface a macvlan or ipvlan network's containers sit on (those drivers only)
    outbound_addr: tuple[IPAddress, ...] = ()  # the source its traffic leaves the host with (SNAT), one a family; (): masquerade
    mtu: int | None = None  # of the bridge and both ends of every veth pair; None: the kernel's default
    routes: tuple[Route, ...] = ()  # static routes installed in its containers
    no_default_route: bool = False  # routes out, but gives its containers no default route
    overlay: Overlay | None = None  # a bridge network that spans hosts (VXLAN); None: on one host

    @property
    def direct(self) -> bool:
        """Whether its containers sit on the parent's LAN (macvlan, ipvlan): the host neither routes nor filters them."""
        return self.driver in DIRECT_DRIVERS

    def outbound_of(self, version: int) -> IPAddress | None:
        """The source address its traffic of one family leaves the host with (None: masquerade)."""
        return next((a for a in self.outbound_addr if a.version == version), None)

    @property
    def families(self) -> tuple[tuple[IPNetwork, IPAddress], ...]:
        """(subnet, gateway) for each family the network has, IPv4 first."""
        both = ((self.subnet, self.gateway), (self.subnet6, self.gateway6))
        return tuple((s, g) for s, g in both if s is not None and g is not None)

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(s.version for s, _g in self.families)

    @property
    def subnets(self) -> tuple[IPNetwork, ...]:
        return tuple(s for s, _g in self.families)

    @property
    def subnets_shown(self) -> str:
        return ", ".join(map(str, self.subnets))

    @property
    def gateways_shown(self) -> str:
        """`172.20.0.1/24, fd00:20::1/64`"""
        return ", ".join(f"{g}/{s.prefixlen}" for s, g in self.families)

    @property
    def routes_out(self) -> bool:
        """Whether traffic from this network is forwarded by the host to other networks."""
        return not self.internal and not self.direct

    @property
    def gives_default_route(self) -> bool:
        """Whether its containers may take their default route through it."""
        return not self.internal and not self.no_default_route


SETPRIV = "setpriv"  # util-linux: what runs a process as another user (validation checks this host has it)
READY_TIMEOUT = 10.0  # seconds a process has to become ready, unless it says otherwise
READY_TIMEOUT_MAX = 3600.0


class Process(NamedTuple):
    argv: tuple[str, ...]
    # What tells that it is ready: ("tcp", PORT) or ("udp", PORT) listening inside its namespace,
    # ("file", PATH) existing, ("command", ARGV...) succeeding inside its namespace; () nothing
    # but running through its start window.
    ready: tuple[str, ...] = ()
    ready_timeout: float = READY_TIMEOUT
    host_side: bool = False  # started in the host's namespace (nsgen's port proxy), which it leaves for the container's
    environment: tuple[tuple[str, str], ...] = ()  # (NAME, value) added to its environment
    user: tuple[int, int, bool] | None = None  # (uid, gid, the uid's supplementary groups too); None: root
    working_dir: str = ""  # its working directory; "": the one `ip netns exec` leaves (the caller's)


class Container(NamedTuple):
    name: str  # also the network namespace's name
    attachments: tuple[Attachment, ...]
    dns: tuple[str, ...]  # nameservers written to /etc/netns/<name>/resolv.conf; empty: none written
    dns_source: str  # where the nameservers come from, for the resolv.conf header
    processes: tuple[Process, ...]
    ports: tuple[PublishedPort, ...]
    sysctls: tuple[tuple[str, str], ...] = ()  # (net.* key, value) set inside its namespace
    host: str = ""  # the host of the topology's `hosts` it runs on; "": the topology lists none

    @property
    def default_attachment(self) -> Attachment | None:
        """The attachment its ports are published on: the first network listed (it carries the default
        route too: a first network that is internal or has no_default_route publishes nothing)."""
        return self.attachments[0] if self.attachments else None


class Host(NamedTuple):
    ip_forward: bool
    persist: bool
    firewall: str = "iptables"  # the backend the rules are written for: iptables or nftables (auto is resolved)
    firewall_why: str = ""  # why auto chose it, said in the script's header and by nsgen run; "": the topology named it


class Machine(NamedTuple):
    """One of the hosts a topology spans: its name and the address other hosts reach it at."""

    name: str
    address: IPAddress


class Topology(NamedTuple):
    name: str
    networks: dict[str, Network]
    containers: dict[str, Container]
    host: Host
    warnings: tuple[str, ...] = ()
    # This host's name (containers share its UTS namespace), given 127.0.1.1 in every container's
    # hosts file as Debian's /etc/hosts has it: a program that looks it up (Python's getfqdn) gets
    # an answer at once instead of asking DNS; "": none
    hostname: str = ""
    hosts: tuple[Machine, ...] = ()  # the hosts it spans; (): this host only
    on_host: str = ""  # the host this is the part of (its containers and their networks); "": the whole topology

    @property
    def underlay(self) -> IPAddress | None:
        """This host's address among the hosts (None: not one host's part)."""
        return next((m.address for m in self.hosts if m.name == self.on_host), None)

    def members(self, network: str) -> list[tuple[Container, Attachment]]:
        return [(c, a) for c in self.containers.values() for a in c.attachments if a.network == network]

    def way_out(self, c: Container, version: int) -> Attachment | None:
        """The attachment that carries c's default route of a family: its first network that is not
        internal, not marked no_default_route, and has that family (None: no way out in that family)."""
        return next((a for a in c.attachments if self.networks[a.network].gives_default_route and a.address_of(version) is not None), None)

    def routes_of(self, c: Container, a: Attachment) -> tuple[Route, ...]:
        """The static routes of a's network that c takes: not those through c's own address there, nor
        those to a destination inside a subnet c is on (it reaches that directly; a route there would
        replace or cut into the subnet's own route)."""
        own = [s for b in c.attachments for s, _g in self.networks[b.network].families]
        return tuple(r for r in self.networks[a.network].routes if r.gateway != a.address_of(r.gateway.version)
                     and not any(s.version == r.destination.version and r.destination.subnet_of(s) for s in own))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# The raw form: the keys a user may write, with their types. Also the source of the JSON Schema.

TOPOLOGY_KEYS = {"name", "networks", "containers", "host", "hosts"}
NETWORK_KEYS = {"driver", "subnet", "gateway", "masquerade", "internal", "bridge", "parent", "outbound_addr", "mtu", "routes",
                "no_default_route", "overlay"}
CONTAINER_KEYS = {"networks", "dns", "processes", "ports", "sysctls", "host"}
HOSTS_ENTRY_KEYS = {"address"}
OVERLAY_KEYS = {"vni", "port"}
ATTACHMENT_KEYS = {"address", "interface", "host_interface", "mac_address", "aliases"}
ROUTE_KEYS = {"destination", "gateway"}
HOST_KEYS = {"ip_forward", "persist", "firewall"}
PROCESS_KEYS = {"command", "ready", "ready_timeout", "environment", "user", "working_dir"}
HOSTNAME_MAX = 253  # RFC 1123: a name of labels of at most 63 characters each
HOSTNAME_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
SYSCTL_KEY_RE = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)+")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOCALHOST_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")  # every hosts file nsgen writes gives them to lo


# ----------------------------------------------------------------------------------------------
# The names the kernel and iproute2 take for something else than a device.

# Words that iproute2's `ip` reads as keywords where nsgen writes a device name (`ip link add NAME
# ...`, `ip link set NAME ...`, `ip link show NAME`, `ip link delete NAME`): a device named `up` or
# `group` is never reached, and the error names another step. Taken from iproute2 v4.19 to v7.1:
# ip/iplink.c, iplink_parse() (the `ip link add/set/delete` arguments), and ip/ipaddress.c,
# ipaddr_list_flush_or_save() (`ip link show` and `ip addr show`: its keywords and the address flags
# it filters on, ifa_flag_data[]). ip/iproute.c reads a device only after `dev`, `oif` or `iif`,
# which take the next word whatever it is, so it adds none. `ip` also takes any abbreviation of the
# keywords it compares with matches() (`br` is `broadcast`, `t` is `txqueuelen`); those are listed
# apart, in the order iplink_parse() tries them, which is also the order `ip` resolves `a` in.
IP_KEYWORDS = frozenset(
    # ip/iplink.c, compared whole
    "up down name index brd qlen mtu inet xdpgeneric xdpdrv xdpoffload xdp netns multicast allmulticast "
    "promisc trailers arp carrier vf vrf group mode state protodown protodown_reason gso_max_size "
    "gso_max_segs gro_max_size gso_ipv4_max_size gro_ipv4_max_size parentdev dev "
    # ip/ipaddress.c, `ip link show` / `ip addr show`
    "to scope label master nomaster type proto novf dynamic primary secondary temporary nodad optimistic "
    "dadfailed home deprecated tentative permanent mngtmpaddr noprefixroute autojoin stable-privacy".split()
)
IP_ABBREVIATED_KEYWORDS = (
    "link", "address", "broadcast", "txqueuelen", "txqlen", "master", "nomaster", "dynamic", "type", "alias",
    "numtxqueues", "numrxqueues", "addrgenmode", "link-netns", "link-netnsid", "help",
)  # fmt: skip
# The kernel refuses these device names (EINVAL): net.ipv4.conf.all and .default are the settings
# of every interface and of new ones, not of a device.
KERNEL_RESERVED_IFNAMES = ("all", "default")


def ip_keyword(name: str) -> str | None:
    """The iproute2 keyword that `ip` reads `name` as where a device name stands, or None."""
    if name in IP_KEYWORDS:
        return name
    return next((keyword for keyword in IP_ABBREVIATED_KEYWORDS if keyword.startswith(name)), None)


def reserved_ifnames() -> list[str]:
    """Every interface name nsgen refuses besides `lo` (for the JSON Schema)."""
    abbreviations = {keyword[:n] for keyword in IP_ABBREVIATED_KEYWORDS for n in range(1, len(keyword) + 1)}
    return sorted(IP_KEYWORDS | abbreviations | set(KERNEL_RESERVED_IFNAMES))
