"""Diagram draws a resolved topology as a picture (text, Mermaid, Graphviz DOT, SVG); it knows nothing of commands.

Every picture shows the same things: the host with its gateway addresses and bridges, each
container (a namespace) with its interfaces and addresses, the veth links between them, and the
way out: masquerading (NAT), plain routing and published ports. `text_picture` is the tree that
heads the setup script; `mermaid` and `dot` draw one graph, built once by `graph`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from nsgen.errors import NsgenError
from nsgen.models import Network, PublishedPort, Topology

FORMATS = ("text", "mermaid", "dot", "svg")


def _network_line(net: Network) -> str:
    traits = [net.driver if net.driver == "veth" else f"bridge {net.bridge}", str(net.subnet), f"gateway {net.gateway}"]
    if net.internal:
        traits.append("internal")
    elif net.masquerade:
        traits.append("masquerade")
    else:
        traits.append("routed, no NAT")
    return f"network {net.name} ({', '.join(traits)})"


def _port(p: PublishedPort) -> str:
    return f"{p.host_ip or '*'}:{p.host_port}->{p.container_port}/{p.protocol}"


def text_picture(topology: Topology) -> str:
    """A small tree: the host, each network under it, each container's link under its network."""
    forward = "on" if topology.host.ip_forward else "off"
    lines = [f"host (ip_forward {forward})"]
    networks = list(topology.networks.values())
    for n, net in enumerate(networks):
        last_net = n == len(networks) - 1
        lines.append(("└── " if last_net else "├── ") + _network_line(net))
        stem = "    " if last_net else "│   "
        members = topology.members(net.name)
        if not members:
            lines.append(stem + "└── (no containers)")
        for m, (c, a) in enumerate(members):
            branch = "└── " if m == len(members) - 1 else "├── "
            host_end = f"{a.host_interface} {net.gateway}/{a.prefixlen}" if net.driver == "veth" else a.host_interface
            line = f"{host_end} <──veth──> {c.name}: {a.interface} {a.address}/{a.prefixlen}"
            if c.default_attachment is a and c.ports:
                line += "  published " + ", ".join(_port(p) for p in c.ports)
            lines.append(stem + branch + line)
    for c in topology.containers.values():
        for p in c.processes:
            lines.append(f"{c.name} runs: {' '.join(p.argv)}")
        if c.dns:
            lines.append(f"{c.name} resolves through: {', '.join(c.dns)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# One graph for the drawing formats


@dataclass
class Node:
    id: str
    kind: str  # host, bridge, container, outside
    lines: list[str]


@dataclass
class Edge:
    a: str
    b: str
    label: str
    kind: str  # link (a veth pair), gateway (host to its bridge), nat, routed, published (outside to host)


@dataclass
class Graph:
    name: str
    host_label: str
    host_nodes: list[Node] = field(default_factory=list)  # drawn inside the host's box
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _command(argv: tuple[str, ...]) -> str:
    """A process as a short line: its program's file name, then its arguments (quoted as needed)."""
    return shlex.join((argv[0].rsplit("/", 1)[-1], *argv[1:]))


def graph(topology: Topology) -> Graph:
    """Nodes and edges of the topology: the host and its bridges, the containers, the outside."""
    t = topology
    g = Graph(t.name, f"host (ip_forward {'on' if t.host.ip_forward else 'off'})")
    host_lines = ["host"]
    for net in t.networks.values():
        if net.driver == "veth":
            for c, a in t.members(net.name):
                host_lines.append(f"{a.host_interface} {net.gateway}/{net.subnet.prefixlen} (gateway of {net.name})")
        else:
            host_lines.append(f"{net.bridge} {net.gateway}/{net.subnet.prefixlen} (gateway of {net.name})")
    g.host_nodes.append(Node("host", "host", host_lines))
    bridge_ids: dict[str, str] = {}
    for i, net in enumerate(t.networks.values()):
        if net.driver != "bridge":
            continue
        bridge_ids[net.name] = f"bridge{i}"
        kind = "internal" if net.internal else "masquerade" if net.masquerade else "routed, no NAT"
        g.host_nodes.append(Node(bridge_ids[net.name], "bridge", [f"bridge {net.bridge}", f"network {net.name} {net.subnet}", kind]))
        g.edges.append(Edge("host", bridge_ids[net.name], f"gateway {net.gateway}/{net.subnet.prefixlen}", "gateway"))
    container_ids = {name: f"container{i}" for i, name in enumerate(t.containers)}
    for name, c in t.containers.items():
        lines = [f"{name} (netns)"]
        lines += [f"{a.interface} {a.address}/{a.prefixlen}" for a in c.attachments]
        lines += [f"runs: {_command(p.argv)}" for p in c.processes]
        if c.dns:
            lines.append(f"dns: {', '.join(c.dns)}")
        if c.ports:
            lines.append(f"published: {', '.join(_port(p) for p in c.ports)}")
        g.nodes.append(Node(container_ids[name], "container", lines))
    for net in t.networks.values():
        for c, a in t.members(net.name):
            if net.driver == "veth":
                label = f"{net.name}: {a.host_interface} ↔ {a.interface}"
                g.edges.append(Edge("host", container_ids[c.name], label, "link"))
            else:
                label = f"{a.host_interface} ↔ {a.interface}"
                g.edges.append(Edge(bridge_ids[net.name], container_ids[c.name], label, "link"))
    out_edges = []
    for net in t.networks.values():
        if net.internal:
            continue
        if net.masquerade:
            out_edges.append(Edge("outside", "host", f"masquerade {net.subnet}", "nat"))
        else:
            out_edges.append(Edge("outside", "host", f"routed {net.subnet} (no NAT)", "routed"))
    for c in t.containers.values():
        a = c.default_attachment
        for p in c.ports:
            where = str(p.host_ip) if p.host_ip else "*"
            label = f"published {where}:{p.host_port}/{p.protocol} → {c.name} {a.address if a else '?'}:{p.container_port}"
            out_edges.append(Edge("outside", "host", label, "published"))
    if out_edges:
        g.nodes.append(Node("outside", "outside", ["outside"]))
        g.edges.extend(out_edges)
    return g


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
}
DOT_EDGE_STYLE = {
    "link": "",
    "gateway": "",
    "nat": ', style="dashed"',
    "routed": ', style="dashed"',
    "published": ', style="bold", dir="forward"',
}


def dot(topology: Topology) -> str:
    """Graphviz DOT source: `nsgen diagram --format dot | dot -Tsvg > topology.svg`."""
    g = graph(topology)
    out = [
        f"graph {_dot_string('nsgen ' + g.name)} {{",
        f'  graph [rankdir=LR, fontname="Helvetica", labelloc=t, label={_dot_string("nsgen topology " + g.name)}];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
        "  subgraph cluster_host {",
        f'    label={_dot_string(g.host_label)}; style="rounded"; color="#7a8ca8";',
    ]
    for node in g.host_nodes:
        out.append(f"    {node.id} [{DOT_NODE_STYLE[node.kind]}, label={_dot_label(node.lines)}];")
    out.append("  }")
    for node in g.nodes:
        label = _dot_string(node.lines[0]) if node.kind == "outside" else _dot_label(node.lines)
        out.append(f"  {node.id} [{DOT_NODE_STYLE[node.kind]}, label={label}];")
    for e in g.edges:
        out.append(f"  {e.a} -- {e.b} [label={_dot_string(e.label)}{DOT_EDGE_STYLE[e.kind]}];")
    out.append("}")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# Mermaid

_MERMAID_ENTITIES = {'"': "#quot;", "#": "#35;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;", "|": "#124;"}


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: markup characters become entity codes."""
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in text.replace("\n", " "))


def _mermaid_label(lines: list[str]) -> str:
    return '"' + "<br/>".join(_mermaid_text(line) for line in lines) + '"'


MERMAID_SHAPE = {"host": ("[", "]"), "bridge": ("[/", "/]"), "container": ("(", ")"), "outside": ("((", "))")}
MERMAID_ARROW = {"link": "---", "gateway": "---", "nat": "-.-", "routed": "-.-", "published": "==>"}


def mermaid(topology: Topology) -> str:
    """A Mermaid flowchart, for Markdown that renders it (GitHub, GitLab, many editors)."""
    g = graph(topology)
    out = ["flowchart LR", f"  subgraph host_box[{_mermaid_label([g.host_label])}]"]
    for node in g.host_nodes:
        left, right = MERMAID_SHAPE[node.kind]
        out.append(f"    {node.id}{left}{_mermaid_label(node.lines)}{right}")
    out.append("  end")
    for node in g.nodes:
        left, right = MERMAID_SHAPE[node.kind]
        out.append(f"  {node.id}{left}{_mermaid_label(node.lines)}{right}")
    for e in g.edges:
        out.append(f"  {e.a} {MERMAID_ARROW[e.kind]}|{_mermaid_label([e.label])}| {e.b}")
    return "\n".join(out) + "\n"


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
