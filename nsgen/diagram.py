"""Diagram draws a resolved topology as a picture (text, Mermaid, Graphviz DOT, SVG); it knows nothing of commands.

Every picture shows the same things: the host with its gateway addresses and bridges, each
container (a namespace) with its interfaces and addresses, the veth links between them, and the
way out: masquerading (NAT), plain routing and published ports. `text_picture` is the tree that
heads the setup script; `mermaid` and `dot` draw one graph, built once by `graph`, top to bottom:
the outside, the host, then a box per network holding its bridge and its containers. One line
style means one thing (EDGE_MEANING), and the DOT drawing ends with a legend of the styles it
uses. A published port is an arrow from the host to the container that serves it. Past
BOXES_UP_TO containers, DOT draws each network as one table with a row per container, so that
hundreds of containers stay readable at the width of a README (880 px).

A topology across hosts (its `hosts`, drawn whole) is drawn a box per host, named with its
address, around its host node, its own networks and its part of each overlay network (the bridge
with its VXLAN device, and the host's containers on it); each overlay network is drawn once,
outside the hosts' boxes, joined to its bridge on each host. One host's part of such a topology
(what heads that host's setup script) is drawn as a topology without hosts.
"""

from __future__ import annotations

import html
import shlex
from dataclasses import dataclass, field

from nsgen.errors import NsgenError
from nsgen.models import Attachment, Container, Network, Process, PublishedPort, Topology, port_runs, run_shown

FORMATS = ("text", "mermaid", "dot", "svg")


def _kind(net: Network) -> str:
    """How the network reaches out: internal, masquerade (as its outbound addresses), routed, or on the parent's LAN."""
    if net.internal:
        return "internal"
    if net.direct:
        return "on the LAN, no NAT"
    if net.masquerade:
        return "masquerade" + (f" as {', '.join(map(str, net.outbound_addr))}" if net.outbound_addr else "")
    return "routed, no NAT"


def _device(net: Network) -> str:
    return f"{net.driver} on {net.parent}" if net.direct else net.driver if net.driver == "veth" else f"bridge {net.bridge}"


def _network_line(net: Network) -> str:
    gateways = ", ".join(str(g) for _s, g in net.families)
    router = " (the LAN's router)" if net.direct else ""
    traits = [_device(net), net.subnets_shown, f"gateway {gateways}{router}", _kind(net)]
    return f"network {net.name} ({', '.join([*traits, *_link_traits(net)])})"


def _link_traits(net: Network) -> list[str]:
    """What a network's links and routes have besides the defaults: its MTU, no default route, its routes."""
    traits = [f"mtu {net.mtu}"] if net.mtu is not None else []
    if net.no_default_route and not net.internal:
        traits.append("no default route")
    return traits + [f"route {r.shown}" for r in net.routes]


def _interface(a: Attachment) -> str:
    """A container's interface with its addresses (and its MAC address when one is given)."""
    return f"{a.interface} {a.shown}" + (f" mac {a.mac_address}" if a.mac_address else "")


def _ports(ports: tuple[PublishedPort, ...]) -> str:
    """Each as written: a range once (`*:8080-8082->80-82/tcp`), not a line a port."""
    return ", ".join(run_shown(first, last) for first, last in port_runs(ports))


def _forwarding(t: Topology) -> str:
    """`ip_forward on` (and `, IPv6 forwarding on` when a network has IPv6)."""
    forward = "on" if t.host.ip_forward else "off"
    six = f", IPv6 forwarding {forward}" if any(net.subnet6 for net in t.networks.values()) else ""
    return f"ip_forward {forward}{six}"


def _host_line(t: Topology) -> str:
    if t.on_host:  # one host's part of a topology across hosts
        return f"host {t.on_host} ({t.underlay}, {_forwarding(t)})"
    return f"host ({_forwarding(t)})"


def _remote(net: Network) -> Tree:
    """In one host's part: the other hosts an overlay network reaches through its VXLAN device, with their containers."""
    ov = net.overlay
    if ov is None or ov.local is None:
        return []
    rows: Tree = []
    for peer in ov.peers:
        members = [m for m in ov.remote if m.underlay == peer]
        shown = ", ".join(f"{m.container} {' '.join(map(str, m.addresses))}" for m in members)
        rows.append((f"{ov.device} <──VXLAN {ov.vni}, UDP {ov.port}──> {members[0].host} ({peer}): {shown}", []))
    return rows or [(f"{ov.device} (VXLAN {ov.vni}, UDP {ov.port}): no other host yet", [])]


Tree = list[tuple[str, "Tree"]]  # lines, each with the lines under it


def _tree(items: Tree, stem: str = "") -> list[str]:
    """A tree's lines, drawn with box-drawing branches."""
    out = []
    for n, (line, children) in enumerate(items):
        last = n == len(items) - 1
        out.append(stem + ("└── " if last else "├── ") + line)
        out += _tree(children, stem + ("    " if last else "│   "))
    return out


def _member_line(net: Network, c: Container, a: Attachment) -> str:
    """A container's link on a network: the host end, the kind of link, its interface and addresses."""
    host_end = f"{a.host_interface} {net.gateways_shown}" if net.driver == "veth" else a.host_interface or net.parent
    line = f"{host_end} <──{net.driver if net.direct else 'veth'}──> {c.name}: {_interface(a)}"
    if a.aliases:
        line += f"  also named {', '.join(a.aliases)}"
    if c.default_attachment is a and c.ports:
        line += "  published " + _ports(c.ports)
    return line


def _members(net: Network, members: list[tuple[Container, Attachment]], empty: str = "(no containers)") -> Tree:
    return [(_member_line(net, c, a), []) for c, a in members] or [(empty, [])]


def text_picture(topology: Topology) -> str:
    """A small tree: the host, each network under it, each container's link under its network.
    Across hosts: each host, its own networks and its part of each overlay network under it; then
    each overlay network once, with the containers on it host by host."""
    t = topology
    if across(t):
        lines = [f"hosts ({_forwarding(t)})", *_tree(_across_tree(t))]
    else:
        lines = [_host_line(t), *_tree([(_network_line(net), [*_members(net, t.members(net.name)), *_remote(net)])
                                        for net in t.networks.values()])]
    for c in t.containers.values():
        for p in c.processes:
            lines.append(f"{c.name} runs: {' '.join(p.argv)}{_as(p)}")
        if c.dns:
            lines.append(f"{c.name} resolves through: {', '.join(c.dns)}")
        if c.sysctls:
            lines.append(f"{c.name} sets: {', '.join(f'{k}={v}' for k, v in c.sysctls)}")
    return "\n".join(lines)


def _across_tree(t: Topology) -> Tree:
    """A topology across hosts: a branch per host, then one per network on no host, one per overlay network."""
    address = {m.name: m.address for m in t.hosts}
    tree: Tree = []
    for m in t.hosts:
        own: Tree = []
        for net in t.networks.values():
            here = [(c, a) for c, a in t.members(net.name) if c.host == m.name]
            if here and net.overlay is None:
                own.append((_network_line(net), _members(net, here)))
            elif here and net.overlay is not None:
                peers = sorted({c.host for c, _a in t.members(net.name)} - {m.name}, key=list(address).index)
                to = ", ".join(f"{p} at {address[p]}" for p in peers) or "no other host yet"
                own.append((f"overlay {net.name} (bridge {net.bridge}, VXLAN device {net.overlay.device} to {to})", _members(net, here)))
        tree.append((f"host {m.name} ({m.address})", own or [("(no containers)", [])]))
    for net in t.networks.values():
        if net.overlay is None and not t.members(net.name):
            tree.append((_network_line(net), [("(no containers: on no host)", [])]))
    for net in t.networks.values():
        if net.overlay is not None:
            tree.append((_overlay_line(net), _overlay_hosts(t, net)))
    return tree


def _overlay_line(net: Network) -> str:
    assert net.overlay is not None
    traits = [f"VXLAN {net.overlay.vni}, UDP port {net.overlay.port}", net.subnets_shown,
              f"bridge {net.bridge} and gateway {', '.join(str(g) for _s, g in net.families)} on each host", _kind(net)]
    return f"overlay network {net.name} ({', '.join([*traits, *_link_traits(net)])})"


def _overlay_hosts(t: Topology, net: Network) -> Tree:
    """The containers on an overlay network, a line per host: `h1 (192.0.2.11): web 10.50.0.2, db 10.50.0.4`."""
    tree: Tree = []
    for m in t.hosts:
        here = [f"{c.name} {' '.join(str(x) for x, _n, _g in a.addresses)}" for c, a in t.members(net.name) if c.host == m.name]
        if here:
            tree.append((f"{m.name} ({m.address}): {', '.join(here)}", []))
    return tree or [("(no containers)", [])]


def _as(p: Process) -> str:
    """` (as uid 65534 gid 65534)` for a process that runs as another user than root; else ""."""
    return f" (as uid {p.user[0]} gid {p.user[1]})" if p.user else ""


# ----------------------------------------------------------------------------------------------
# One graph for the drawing formats


@dataclass
class Node:
    id: str
    kind: str  # host, bridge, container, outside, empty (stands in a network without containers), overlay
    lines: list[str]
    group: str | None = None  # the group (Group.id) the node is drawn in: a network's, or a host's


@dataclass
class Edge:
    a: str  # drawn above b
    b: str
    label: str
    kind: str  # one of EDGE_MEANING
    network: str | None = None  # the network a link or gateway belongs to


@dataclass(frozen=True)
class Site:
    """Where a network is drawn: on the host, or on one of the hosts of a topology across hosts
    (an overlay network on each host that has containers on it)."""

    host: str  # the node id of the host it is on
    machine: str | None = ""  # that host's name in `hosts`; "": the topology lists no hosts; None: on no host
    suffix: str = ""  # after the ids of the network's group and bridge there: an overlay's part on host k is "h{k}"
    parent: str | None = None  # the host's box


@dataclass
class Group:
    """One network (of a topology across hosts: its part on one host), drawn as one box: its
    bridge and the containers whose first network it is. Or one host of a topology across hosts,
    drawn as a box around its host node and its networks."""

    id: str
    network: str  # "" for a host's box
    label: str
    parent: str | None = None  # the host's box it is drawn in (a topology across hosts)
    site: Site = Site("host")  # where the network is: its containers are those there


@dataclass
class Graph:
    name: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    machines: list[Group] = field(default_factory=list)  # a box per host, in a topology across hosts
    sites: dict[str, list[Site]] = field(default_factory=dict)  # by network name

    def members(self, group: Group) -> list[Node]:
        return [n for n in self.nodes if n.group == group.id]

    def inside(self, machine: Group | None) -> list[Group]:
        """The network groups drawn in a host's box (None: outside every host's box)."""
        return [group for group in self.groups if group.parent == (machine.id if machine else None)]


# One meaning per line style; the legend says them in this order.
EDGE_MEANING = {
    "link": "veth pair (host end ↔ container end)",
    "gateway": "the host's bridge, holding the gateway",
    "nat": "masquerade (NAT) to the outside",
    "routed": "routed to the outside, no NAT",
    "published": "published port, to the container serving it",
    "parent": "the host's interface that a macvlan or ipvlan network sits on",
    "lan": "on the parent's LAN: reached directly, no NAT",
    "vxlan": "an overlay network's bridge on a host, joined to the others by VXLAN",
}


def _command(argv: tuple[str, ...]) -> str:
    """A process as a short line: its program's file name, then its arguments (quoted as needed)."""
    return shlex.join((argv[0].rsplit("/", 1)[-1], *argv[1:]))


def container_ids(topology: Topology) -> dict[str, str]:
    """Each container's node id, by name: container0, container1, ... in file order."""
    return {name: f"container{i}" for i, name in enumerate(topology.containers)}


def _network_label(net: Network) -> str:
    return "\n".join([f"network {net.name} {net.subnets[0]}", *map(str, net.subnets[1:]), f"{net.driver}, {_kind(net)}", *_link_traits(net)])


def across(topology: Topology) -> bool:
    """Whether the topology is the whole of one across hosts (drawn a box per host), not one host's part."""
    return bool(topology.hosts) and not topology.on_host


def _sites(t: Topology, net: Network) -> list[Site]:
    """Where a network is drawn: on the host; across hosts, on the host of its containers (an
    overlay: on each host that has containers on it; a network without containers: nowhere)."""
    if not across(t):
        return [Site("host")]
    on = {c.host for c, _a in t.members(net.name)}
    return [Site(f"host{k}", m.name, f"h{k}" if net.overlay else "", f"machine{k}") for k, m in enumerate(t.hosts) if m.name in on]


def _on_site(t: Topology, net: Network, site: Site) -> list[tuple[Container, Attachment]]:
    if site.machine is None:
        return []
    return [(c, a) for c, a in t.members(net.name) if not site.machine or c.host == site.machine]


def _overlay_lines(t: Topology, net: Network) -> list[str]:
    """An overlay network's node: its subnets, VXLAN identifier and port, how it reaches out, between which hosts."""
    assert net.overlay is not None
    on = [site.machine for site in _sites(t, net) if site.machine]
    between = f"between {', '.join(on)}" if len(on) > 1 else f"on {on[0]} only" if on else "(no containers)"
    return [f"overlay network {net.name} {net.subnets[0]}", *map(str, net.subnets[1:]),
            f"VXLAN {net.overlay.vni}, UDP port {net.overlay.port}", ", ".join([_kind(net), *_link_traits(net)]), between]


def graph(topology: Topology) -> Graph:
    """Nodes, edges and groups: the outside, the host (or a box per host, holding its host node and
    networks), each network's bridge and containers, each overlay network once, between the hosts."""
    t = topology
    g = Graph(t.name)
    host_lines = {"host": [_host_line(t)]}
    if across(t):
        host_lines = {f"host{k}": [f"host {m.name}", _forwarding(t)] for k, m in enumerate(t.hosts)}
        g.machines = [Group(f"machine{k}", "", f"{m.name} ({m.address})") for k, m in enumerate(t.hosts)]
    for i, net in enumerate(t.networks.values()):
        g.sites[net.name] = sites = _sites(t, net)
        if net.overlay is not None and across(t):
            g.nodes.append(Node(f"overlay{i}", "overlay", _overlay_lines(t, net)))
            label = f"overlay {net.name}"  # its subnets and the rest are the overlay node's
        else:
            label = _network_label(net)
        for site in sites:
            group = Group(f"network{i}{site.suffix}", net.name, label, site.parent, site)
            g.groups.append(group)
            host_lines[site.host] += _network_nodes(t, g, i, site, group)
        if not sites:
            g.groups.append(Group(f"network{i}", net.name, label, site=Site("", None)))
            g.nodes.append(Node(f"empty{i}", "empty", ["(no containers: on no host)"], f"network{i}"))
    hosts = [Node(h, "host", lines, f"machine{k}" if across(t) else None) for k, (h, lines) in enumerate(host_lines.items())]
    g.nodes[:0] = hosts
    _add_containers(t, g)
    _add_way_out(t, g)
    return g


def _network_nodes(t: Topology, g: Graph, i: int, site: Site, group: Group) -> list[str]:
    """Network i's bridge (or parent) on a site, its edge from the host (and an overlay's to the
    overlay); returns the lines its host node gets (the gateways a veth network's host ends hold)."""
    net = list(t.networks.values())[i]
    n = f"{i}{site.suffix}"
    if net.driver == "bridge":
        gateways = [f"gateway {gw}/{s.prefixlen}" for s, gw in net.families]
        vxlan = [f"vxlan {net.overlay.device}"] if net.overlay is not None and site.machine else []
        g.nodes.append(Node(f"bridge{n}", "bridge", [f"bridge {net.bridge}", *gateways, *vxlan], group.id))
        g.edges.append(Edge(site.host, f"bridge{n}", "", "gateway", net.name))
        if vxlan and net.overlay is not None:
            g.edges.append(Edge(f"bridge{n}", f"overlay{i}", f"VXLAN {net.overlay.vni}", "vxlan", net.name))
    elif net.direct:
        routers = [f"LAN router {gw}/{s.prefixlen}" for s, gw in net.families]
        g.nodes.append(Node(f"parent{n}", "bridge", [f"{net.parent} ({net.driver} parent)", *routers], group.id))
        g.edges.append(Edge(site.host, f"parent{n}", "", "parent", net.name))
    members = _on_site(t, net, site)
    if not members:
        g.nodes.append(Node(f"empty{n}", "empty", ["(no containers)"], group.id))
    if net.driver == "veth":
        return [f"{a.host_interface} {net.gateways_shown} (gateway of {net.name})" for _, a in members]
    return []


def _host_of(t: Topology) -> dict[str, str]:
    """Each container's host node id, by container name."""
    ids = {m.name: f"host{k}" for k, m in enumerate(t.hosts)} if across(t) else {}
    return {name: ids.get(c.host, "host") for name, c in t.containers.items()}


def _add_containers(t: Topology, g: Graph) -> None:
    """A node per container, in the group of its first network (on its host), each interface with
    the host end of its veth pair; an edge per veth pair, from the host (veth) or the bridge."""
    ids = container_ids(t)
    group_of = {(group.network, group.parent): group.id for group in g.groups}
    machine = {m.name: f"machine{k}" for k, m in enumerate(t.hosts)} if across(t) else {}
    for name, c in t.containers.items():
        lines = [f"{name} (netns)"]
        for a in c.attachments:
            net = t.networks[a.network]
            lines += [f"{a.interface} {a.shown}", *([f"mac {a.mac_address}"] if a.mac_address else []),
                      *([f"also {', '.join(a.aliases)}"] if a.aliases else []),
                      f"host end {a.host_interface}" if a.host_interface else f"{net.driver} on {net.parent}"]
        for p in c.processes:
            lines.append("runs: nsgen's port proxy for [::1]" if p.host_side else f"runs: {_command(p.argv)}")
            lines += [_as(p).strip(" ()")] if p.user else []
        if c.dns:
            lines.append(f"dns: {', '.join(c.dns)}")
        lines += [f"{k}={v}" for k, v in c.sysctls]  # its own sysctls
        first = c.default_attachment
        g.nodes.append(Node(ids[name], "container", lines, group_of[first.network, machine.get(c.host)] if first else machine.get(c.host)))
    for i, net in enumerate(t.networks.values()):
        for site in g.sites[net.name]:
            for c, _a in _on_site(t, net, site):
                n = f"{i}{site.suffix}"
                end = site.host if net.driver == "veth" else f"parent{n}" if net.direct else f"bridge{n}"
                g.edges.append(Edge(end, ids[c.name], "", "link", net.name))


def _add_way_out(t: Topology, g: Graph) -> None:
    """Masquerading and plain routing between each host and the outside, an edge each, naming the
    subnets; published ports, each an arrow from the host, whose port it is, that ends at the
    container serving it."""
    ids = container_ids(t)
    host_of = _host_of(t)
    edges = []
    for i, net in enumerate(t.networks.values()):
        if net.direct and not net.internal:
            edges += [Edge("outside", f"parent{i}{site.suffix}", "\n".join(["on the LAN, no NAT", net.subnets_shown]), "lan", net.name)
                      for site in g.sites[net.name]]
    for host in [node.id for node in g.nodes if node.kind == "host"]:
        on = [net for net in t.networks.values() if any(site.host == host for site in g.sites[net.name])]
        masqueraded = [net.subnets_shown + (f" as {', '.join(map(str, net.outbound_addr))}" if net.outbound_addr else "")
                       for net in on if net.masquerade and not net.internal]
        routed = [net.subnets_shown for net in on if not net.masquerade and not net.internal and not net.direct]
        if masqueraded:
            edges.append(Edge("outside", host, "\n".join(["masquerade", *masqueraded]), "nat"))
        if routed:
            edges.append(Edge("outside", host, "\n".join(["routed, no NAT", *routed]), "routed"))
    for name, c in t.containers.items():
        a = c.default_attachment
        for p, last in port_runs(c.ports):
            where = "*" if p.host_ip is None else f"[{p.host_ip}]" if p.host_ip.version == 6 else str(p.host_ip)
            inside = a.address6 if a and p.host_ip is not None and p.host_ip.version == 6 else a.first if a else "?"
            shown = f"[{inside}]" if ":" in str(inside) else str(inside)
            host_ports, ports = (str(p.host_port), str(p.container_port)) if p is last else \
                (f"{p.host_port}-{last.host_port}", f"{p.container_port}-{last.container_port}")
            label = f"published\n{where}:{host_ports}/{p.protocol}\n→ {shown}:{ports}"
            edges.append(Edge(host_of[name], ids[name], label, "published"))
    if any(e.a == "outside" for e in edges):
        g.nodes.insert(0, Node("outside", "outside", ["outside"]))
    g.edges.extend(edges)


# ----------------------------------------------------------------------------------------------
# Graphviz DOT


def _dot_escape(text: str) -> str:
    """Text for inside a DOT string: Graphviz reads backslash escapes (\\N, \\l) and HTML entities (&amp;)."""
    return text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _dot_string(text: str) -> str:
    return f'"{_dot_escape(text)}"'


def _dot_label(lines: list[str]) -> str:
    """Lines joined with DOT's left-justifying line break (each value escaped first)."""
    return '"' + "".join(f"{_dot_escape(line)}\\l" for line in lines) + '"'


DOT_NODE_STYLE = {
    "host": 'shape=box, style="rounded,filled", fillcolor="#e8eef7"',
    "bridge": 'shape=box, style="filled", fillcolor="#fdf1d6"',
    "container": 'shape=box, style="rounded,filled", fillcolor="#e6f4e6"',
    "outside": 'shape=ellipse, style="dashed"',
    "empty": 'shape=plaintext, fontcolor="#666666"',
    "overlay": 'shape=box, style="rounded,filled,bold", fillcolor="#f3e5f5", color="#6a1b9a"',
}
DOT_EDGE_STYLE = {
    "link": 'dir=none, color="#555555"',
    "gateway": 'dir=none, color="#555555:invis:#555555"',
    "nat": 'dir=back, style=dashed, color="#2e7d32", fontcolor="#2e7d32"',
    "routed": 'dir=both, style=dotted, color="#b35900", fontcolor="#b35900"',
    "published": 'dir=forward, style=bold, color="#1f5fbf", fontcolor="#1f5fbf"',
    "parent": 'dir=none, color="#7a4fb3:invis:#7a4fb3"',
    "lan": 'dir=both, style=dashed, color="#7a4fb3", fontcolor="#7a4fb3"',
    "vxlan": 'dir=both, style=bold, color="#6a1b9a", fontcolor="#6a1b9a"',
}
DOT_MACHINE_STYLE = 'labelloc=t; style="rounded,dashed"; color="#5a6b85"; penwidth=1.5; fontsize=12; fontname="Helvetica-Bold"'
DOT_CLUSTER_STYLE = 'labelloc=b; style="rounded,filled"; color="#9aa7b8"; fillcolor="#f7f9fc"; fontsize=11'
BOXES_UP_TO = 4  # containers drawn as boxes; beyond, each network is one table, a row per container
TABLES_PER_ROW = 3  # network tables side by side before the next row of them
WIDTH_BUDGET = 620  # points: a drawing this wide is shown at full size 880 px wide (660 pt)


def _dot_node(node: Node, indent: str) -> str:
    label = _dot_string(node.lines[0]) if node.kind in ("outside", "empty") else \
        _dot_lines("\n".join(node.lines)) if node.kind == "overlay" else _dot_label(node.lines)
    return f"{indent}{node.id} [{DOT_NODE_STYLE[node.kind]}, label={label}];"


def _dot_lines(text: str) -> str:
    """A DOT string of centred lines."""
    return '"' + "\\n".join(_dot_escape(line) for line in text.split("\n")) + '"'


def _dot_edge(a: str, b: str, label: str, kind: str) -> str:
    """An edge in the style of its kind; a label's lines are centred, padded with a no-break space
    on each side (Graphviz sets a label right beside its edge, and the next edge right beside it)."""
    padded = "\n".join(f"\u00a0{line}\u00a0" for line in label.split("\n"))
    labelled = f"label={_dot_lines(padded)}, " if label else ""
    below = "minlen=2, " if kind == "vxlan" else ""  # an overlay is drawn below its hosts' containers
    return f"  {a} -> {b} [{labelled}{below}{DOT_EDGE_STYLE[kind]}];"


def dot(topology: Topology, compact: bool | None = None) -> str:
    """Graphviz DOT source, laid out top to bottom: `nsgen diagram --format dot | dot -Tsvg > t.svg`.

    Each network is a box holding its bridge and containers; past BOXES_UP_TO containers (or with
    compact=True), each network is one table with a row per container instead."""
    g = graph(topology)
    if compact is None:
        compact = len(topology.containers) > BOXES_UP_TO
    title = _dot_string("nsgen topology " + g.name)
    spacing = "nodesep=0.1, ranksep=0.25" if g.machines else "nodesep=0.25, ranksep=0.35"  # hosts' boxes take room of their own
    out = [
        f"digraph {_dot_string('nsgen ' + g.name)} {{",
        f"  graph [rankdir=TB, newrank=true, {spacing}, fontname=\"Helvetica\", labelloc=t, label={title}];",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    out += [_dot_node(node, "  ") for node in g.nodes if node.group is None]
    if compact:
        out += _dot_tables(topology, g)
        edges = _compact_edges(g)
        bottom = [group.id for group in g.groups[(len(g.groups) - 1) // TABLES_PER_ROW * TABLES_PER_ROW :]] if not g.machines else \
            [group.id for group in g.groups]
    else:
        lines, bottom = _dot_clusters(g)
        out += lines
        edges = [(e.a, e.b, "" if e.kind == "vxlan" else e.label, e.kind) for e in g.edges]
    out += [_dot_edge(*e) for e in edges]
    bottom = [node.id for node in g.nodes if node.kind == "overlay"] or bottom  # the overlays are drawn lowest
    out += _dot_legend([k for k in EDGE_MEANING if any(e[3] == k for e in edges)], bottom or ["host"])
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_clusters(g: Graph) -> tuple[list[str], list[str]]:
    """One cluster per network, holding its bridge and the containers whose first network it is
    (across hosts, inside a cluster per host, which holds its host node too); when one row of them
    all would be wider than WIDTH_BUDGET, each network's containers wrap into rows of two (an
    invisible edge puts a box below the one two places before it). Returns the lines and the
    nodes of each cluster's lowest row (the legend goes below them)."""
    boxes = {group.id: [node for node in g.members(group) if node.kind == "container"] for group in g.groups}
    one_row = sum(_box_width(node.lines) + 20 for members in boxes.values() for node in members)
    per_row = 2 if one_row > WIDTH_BUDGET else len(g.nodes)  # len(g.nodes): more than any network holds
    out, bottom = [], []
    for machine in g.machines:
        out.append(f"  subgraph cluster_{machine.id} {{")
        out.append(f"    label={_dot_lines(machine.label)}; {DOT_MACHINE_STYLE};")
        out += [_dot_node(node, "    ") for node in g.members(machine)]
        lines, lowest = _dot_network_clusters(g, g.inside(machine), boxes, per_row, "    ")
        out += [*lines, "  }"]
        bottom += lowest
    lines, lowest = _dot_network_clusters(g, g.inside(None), boxes, per_row, "  ")
    order = [node.id for machine in [*g.machines, None] for group in g.inside(machine) for node in g.members(group) if node.kind == "bridge"]
    return out + lines + _dot_in_order(order), bottom + lowest


def _dot_network_clusters(g: Graph, groups: list[Group], boxes: dict[str, list[Node]], per_row: int,
                          indent: str) -> tuple[list[str], list[str]]:
    out, bottom = [], []
    for group in groups:
        out.append(f"{indent}subgraph cluster_{group.id} {{")
        out.append(f"{indent}  label={_dot_lines(group.label)}; {DOT_CLUSTER_STYLE};")
        out += [_dot_node(node, indent + "  ") for node in g.members(group)]
        members = boxes[group.id]
        out += [f"{indent}  {above.id} -> {below.id} [style=invis];" for above, below in zip(members, members[per_row:])]
        out.append(f"{indent}}}")
        lowest = members[(len(members) - 1) // per_row * per_row :] if members else g.members(group)
        bottom += [node.id for node in lowest]
    return out, bottom


def _dot_in_order(ids: list[str]) -> list[str]:
    """Nodes side by side, left to right in the order given (the networks' order in the file)."""
    if len(ids) < 2:
        return []
    return [f"  {{ rank=same; {'; '.join(ids)}; }}", f"  {' -> '.join(ids)} [style=invis];"]


def _box_width(lines: list[str]) -> float:
    """About how wide Graphviz draws a box of these lines (points; 11 pt Helvetica, its margins)."""
    return 16 + 6.2 * max(len(line) for line in lines)


def _dot_legend(kinds: list[str], above: list[str]) -> list[str]:
    """The legend, below the drawing: a row for each line style the drawing uses, with its meaning.

    Each sample is an edge from an invisible point to the text, drawn with exactly the style of
    the drawing's edges. (Not between the ports of two HTML tables: Graphviz 2.43 mixes up the
    attributes of edges between neighbouring nodes' ports when the graph has edge labels.)"""
    if not kinds:
        return []
    out = ["  subgraph cluster_legend {", '    label="legend"; style="rounded"; color="#bbbbbb"; fontsize=10;']
    point = "shape=point, style=invis, width=0.01, height=0.01"
    for i, kind in enumerate(kinds):
        out += [
            f"    legend{i}a [{point}];",
            f"    legend{i} [shape=plaintext, fontsize=10, height=0.2, label={_dot_string(EDGE_MEANING[kind])}];",
            f"    {{ rank=same; legend{i}a; legend{i}; }}",
            f"    legend{i}a -> legend{i} [minlen=3, {DOT_EDGE_STYLE[kind]}];",
        ]
        if i:
            out.append(f"    legend{i - 1}a -> legend{i}a [style=invis];")
    out.append("  }")
    out += [f"  {node} -> legend0 [style=invis];" for node in above]
    return out


def _html(text: str) -> str:
    return html.escape(text, quote=True)


def _dot_tables(t: Topology, g: Graph) -> list[str]:
    """One table per network (across hosts, per network on each host, in a cluster per host that
    holds its host node too): its name, subnet, bridge and gateway, then a row per container
    (a container on two networks has a row in each); TABLES_PER_ROW tables side by side."""
    out = []
    for machine in [*g.machines, None]:
        groups = g.inside(machine)
        indent = "    " if machine else "  "
        if machine:
            out += [f"  subgraph cluster_{machine.id} {{", f"    label={_dot_lines(machine.label)}; {DOT_MACHINE_STYLE};"]
            out += [_dot_node(node, indent) for node in g.members(machine)]
        for group in groups:
            rows = _table_rows(t, t.networks[group.network], group.site)
            table = '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3" BGCOLOR="#f7f9fc">' + "".join(rows) + "</TABLE>"
            out.append(f"{indent}{group.id} [shape=plaintext, margin=0, fontsize=10, label=<{table}>];")
        for above, below in zip(groups, groups[TABLES_PER_ROW:]):
            out.append(f"{indent}{above.id} -> {below.id} [style=invis];")
        for row in range(0, len(groups), TABLES_PER_ROW):
            out += [indent[2:] + line for line in _dot_in_order([group.id for group in groups[row : row + TABLES_PER_ROW]])]
        out += ["  }"] if machine else []
    return out


def _addresses(a: Attachment) -> str:
    return ", ".join(str(x) for x, _n, _g in a.addresses)


def _table_head(net: Network, columns: int) -> list[str]:
    """A network table's first rows: the network, its kind, bridge and gateway; column titles."""
    gateway = f"gateway {net.gateways_shown}"
    head = [
        f"<B>network {_html(net.name)} {_html(net.subnets_shown)}</B>",
        _html(f"{_kind(net)}, {_device(net)}"),
        _html(gateway if net.bridge else f"{gateway} (the LAN's router)" if net.direct else f"{gateway} on the host ends"),
    ]
    titles = "".join(f'<TD ALIGN="LEFT"><FONT COLOR="#666666">{title}</FONT></TD>' for title in ["container", "address", "also on"][:columns])
    return [f'<TR><TD COLSPAN="{columns}" BGCOLOR="#fdf1d6">{"<BR/>".join(head)}</TD></TR>', f"<TR>{titles}</TR>"]


def _table_rows(t: Topology, net: Network, site: Site) -> list[str]:
    """A network's table rows: its head, then each container with its interface and address there
    and the other networks it is on. Containers with published ports come first, so that their
    arrows stay short. An arrow ends at a row's first cell from the left (the port is the
    container's node id) or at its last cell from the right (the node id and "_end")."""
    ids = container_ids(t)
    members = _on_site(t, net, site)
    members.sort(key=lambda member: not (member[0].ports and member[1] is member[0].default_attachment))
    others = {c.name: ", ".join(x.network for x in c.attachments if x is not a) for c, a in members}
    columns = 3 if any(others.values()) else 2
    rows = _table_head(net, columns)
    if not members:
        rows.append(f'<TR><TD COLSPAN="{columns}"><FONT COLOR="#666666">(no containers)</FONT></TD></TR>')
    for c, a in members:
        cells = [_html(c.name), f"{_html(a.interface)} {_html(_addresses(a))}", _html(others[c.name]) or " "][:columns]
        ports = [f' PORT="{ids[c.name]}"'] + [""] * (columns - 2) + [f' PORT="{ids[c.name]}_end"']
        rows.append("<TR>" + "".join(f'<TD{port} ALIGN="LEFT">{cell}</TD>' for port, cell in zip(ports, cells)) + "</TR>")
    return rows


def _compact_edges(g: Graph) -> list[tuple[str, str, str, str]]:
    """The graph's edges where each network is a table: a gateway ends at the top of its network's
    table; a veth pair from the host and a published port end at the container's row (a table's
    published ports alternately from the left and the right); the rows stand for the veth pairs on
    bridges."""
    table = {(group.network, group.site.host): group.id for group in g.groups}
    group_of = {node.id: node.group for node in g.nodes}
    hosts = {node.id for node in g.nodes if node.kind == "host"}
    arrows: dict[str, int] = {}
    out = []
    for e in g.edges:
        if e.kind in ("gateway", "parent", "lan") and e.network:
            out.append((e.a, f"{group_of[e.b]}:n", e.label, e.kind))
        elif e.kind == "vxlan":
            out.append((f"{group_of[e.a]}:s", e.b, "", e.kind))
        elif e.kind == "link" and e.a in hosts and e.network:
            out.append((e.a, f"{table[e.network, e.a]}:{e.b}:w", e.label, e.kind))
        elif e.kind == "published" and (group := group_of.get(e.b)):
            arrows[group] = arrows.get(group, 0) + 1
            port = f"{e.b}:w" if arrows[group] % 2 else f"{e.b}_end:e"
            out.append((e.a, f"{group}:{port}", e.label, e.kind))
        elif e.kind != "link":
            out.append((e.a, e.b, e.label, e.kind))
    return out


# ----------------------------------------------------------------------------------------------
# Mermaid

_MERMAID_ENTITIES = {'"': "#quot;", "#": "#35;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;", "|": "#124;"}


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: markup characters become entity codes."""
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in text.replace("\n", " "))


def _mermaid_label(lines: list[str]) -> str:
    return '"' + "<br/>".join(_mermaid_text(line) for line in lines) + '"'


MERMAID_SHAPE = {"host": ("[", "]"), "bridge": ("[/", "/]"), "container": ("(", ")"), "outside": ("((", "))"), "empty": ("[", "]"),
                 "overlay": ("{{", "}}")}
# The same meaning as DOT's styles; masquerading is written host -.-> outside, its arrow at the outside.
MERMAID_ARROW = {"link": "---", "gateway": "===", "nat": "-.->", "routed": "<-.->", "published": "==>", "parent": "===", "lan": "<-.->",
                 "vxlan": "<-->"}


def _mermaid_node(node: Node, indent: str) -> str:
    left, right = MERMAID_SHAPE[node.kind]
    return f"{indent}{node.id}{left}{_mermaid_label(node.lines)}{right}"


def mermaid(topology: Topology) -> str:
    """A Mermaid flowchart, for Markdown that renders it (GitHub, GitLab, many editors): top to
    bottom, one subgraph per network; across hosts, one per host around its networks, and each
    overlay network once, after them."""
    g = graph(topology)
    out = ["flowchart TB"]
    out += [_mermaid_node(node, "  ") for node in g.nodes if node.group is None and node.kind != "overlay"]
    for machine in g.machines:
        out.append(f"  subgraph {machine.id}[{_mermaid_label(machine.label.splitlines())}]")
        out += [_mermaid_node(node, "    ") for node in g.members(machine)]
        out += _mermaid_groups(g, g.inside(machine), "    ")
        out.append("  end")
    out += _mermaid_groups(g, g.inside(None), "  ")
    out += [_mermaid_node(node, "  ") for node in g.nodes if node.kind == "overlay"]
    for e in g.edges:
        a, b = (e.b, e.a) if e.kind == "nat" else (e.a, e.b)
        label = f"|{_mermaid_label(e.label.splitlines())}|" if e.label else ""
        out.append(f"  {a} {MERMAID_ARROW[e.kind]}{label} {b}")
    return "\n".join(out) + "\n"


def _mermaid_groups(g: Graph, groups: list[Group], indent: str) -> list[str]:
    out = []
    for group in groups:
        out.append(f"{indent}subgraph {group.id}[{_mermaid_label(group.label.splitlines())}]")
        out += [_mermaid_node(node, indent + "  ") for node in g.members(group)]
        out.append(f"{indent}end")
    return out


# ----------------------------------------------------------------------------------------------
# SVG, through Graphviz


def svg(topology: Topology) -> str:
    """The DOT drawing laid out by Graphviz's `dot` as SVG."""
    import shutil
    import subprocess

    program = shutil.which("dot")
    if program is None:
        raise NsgenError("SVG output needs Graphviz's dot program, which is not installed (Debian: apt install graphviz); "
                         "--format dot writes the source instead")
    done = subprocess.run([program, "-Tsvg"], input=dot(topology), capture_output=True, text=True)
    if done.returncode != 0:
        raise NsgenError(f"dot -Tsvg failed (exit status {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def draw(topology: Topology, fmt: str) -> str:
    """The picture in one of FORMATS, ending with a newline."""
    if fmt == "text":
        return text_picture(topology) + "\n"
    if fmt == "mermaid":
        return mermaid(topology)
    if fmt == "dot":
        return dot(topology)
    if fmt == "svg":
        return svg(topology)
    raise ValueError(f"unknown diagram format {fmt!r}")


def format_for(output: str | None) -> str | None:
    """The format an output file's name asks for (None: no opinion)."""
    if not output:
        return None
    suffix = output.rsplit(".", 1)[-1].lower() if "." in output else ""
    return {"svg": "svg", "dot": "dot", "gv": "dot", "mmd": "mermaid", "mermaid": "mermaid", "txt": "text"}.get(suffix)
