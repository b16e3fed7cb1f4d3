"""Diagrams: every format carries the topology's facts and is accepted by its consumer
(DOT and SVG by Graphviz, Mermaid checked structurally), including hostile process words."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

from nsgen.diagram import dot, draw, graph, mermaid, text_picture
from nsgen.models import port_runs
from nsgen.render import render
from tests.helpers import EXAMPLES, example_plan, plan_of, topology

EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))

HOSTILE = """
name: odd
networks:
  n: {driver: veth, subnet: 10.9.0.0/24}
  m: {subnet: 10.10.0.0/24, masquerade: false}
containers:
  c:
    networks: [n]
    ports: ["127.0.0.1:9000:90", "5353:53/udp"]
    processes:
      - ["sh", "-c", "echo \\"$x\\" | tr a b; end", "<b>&amp;</b>", "back\\\\slash", "a`b`#c"]
  end:
    networks: [m]
"""


def facts(text: str) -> list[str]:
    """What every picture of a topology must show."""
    t = topology(text)
    found = []
    for net in t.networks.values():
        found += [f"{g}/{s.prefixlen}" for s, g in net.families]
        if net.bridge:
            found.append(net.bridge)
    for c in t.containers.values():
        found.append(c.name)
        for a in c.attachments:
            net = t.networks[a.network]
            found += [a.interface, *(f"{x}/{n}" for x, n, _g in a.addresses), a.host_interface or str(net.parent)]
        for first, last in port_runs(c.ports):  # a range is shown once, LOW-HIGH
            found += [f"{first.host_port}", f"{last.host_port}"]
    return found


def example_text(name: str) -> str:
    return (EXAMPLES / name).read_text()


# -- text ------------------------------------------------------------------------------------

@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_text_is_the_picture_that_heads_the_setup_script(example):
    plan = example_plan(example)
    picture = draw(plan.topology, "text")
    assert picture == text_picture(plan.topology) + "\n"
    setup = render(plan)
    for line in picture.splitlines():
        assert f"# {line}\n" in setup


# -- DOT and SVG -----------------------------------------------------------------------------

def graphviz() -> str:
    found = shutil.which("dot")
    if not found:
        pytest.fail("Graphviz's dot is not installed (Debian: apt install graphviz; .ci/run installs it)")
    return found


@pytest.mark.parametrize("text", [*(example_text(e) for e in EXAMPLE_FILES), HOSTILE], ids=[*EXAMPLE_FILES, "hostile"])
def test_dot_is_accepted_by_graphviz_and_shows_everything(text):
    source = dot(topology(text))
    done = subprocess.run([graphviz(), "-Tsvg"], input=source, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    svg = ET.fromstring(done.stdout)  # well-formed XML
    assert svg.tag.endswith("svg")
    shown = " ".join(el.text or "" for el in svg.iter() if el.tag.endswith("text"))
    for fact in facts(text):
        assert fact in shown, fact
    # the layout's canonical form names exactly our nodes: nothing was split or invented
    canon = subprocess.run([graphviz(), "-Tcanon"], input=source, capture_output=True, text=True, check=True).stdout
    for node in graph(topology(text)).nodes:
        assert re.search(rf"^\s*{node.id}\s+\[", canon, re.M), node.id


def test_hostile_words_stay_inside_their_labels():
    svg = subprocess.run([graphviz(), "-Tsvg"], input=dot(topology(HOSTILE)), capture_output=True, text=True, check=True).stdout
    texts = [el.text or "" for el in ET.fromstring(svg).iter() if el.tag.endswith("text")]
    (line,) = [t for t in texts if t.startswith("runs: ")]
    assert line == """runs: sh -c 'echo "$x" | tr a b; end' '<b>&amp;</b>' 'back\\slash' 'a`b`#c'"""


# -- the DOT drawing's structure, as Graphviz reads it -------------------------------------------

@dataclass
class Layout:
    """What `dot -Tjson` makes of a DOT source: graph attributes, nodes, clusters and edges by name."""

    attrs: dict
    nodes: dict[str, dict]
    clusters: dict[str, set[str]]
    edges: list[tuple[str, str, dict]]

    def drawn_edges(self) -> list[tuple[str, str, dict]]:
        """The visible edges of the drawing, the legend's samples left out."""
        return [e for e in self.edges if e[2].get("style") != "invis" and not e[0].startswith("legend")]

    def legend(self) -> dict[tuple, str]:
        """Each legend sample's line style (colour, style, direction) and the text it explains."""
        return {style_of(attrs): self.nodes[head]["label"] for tail, head, attrs in self.edges if tail.startswith("legend") and tail == head + "a"}


def style_of(attrs: dict) -> tuple:
    return attrs.get("color"), attrs.get("style"), attrs.get("dir")


def layout(source: str) -> Layout:
    done = subprocess.run([graphviz(), "-Tjson"], input=source, capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)
    names = {o["_gvid"]: o["name"] for o in data["objects"][data["_subgraph_cnt"] :]}
    nodes = {o["name"]: o for o in data["objects"][data["_subgraph_cnt"] :]}
    clusters = {o["name"]: {names[n] for n in o.get("nodes", [])} for o in data["objects"][: data["_subgraph_cnt"]] if o["name"].startswith("cluster")}
    edges = [(names[e["tail"]], names[e["head"]], e) for e in data["edges"]]
    return Layout({k: v for k, v in data.items() if isinstance(v, str)}, nodes, clusters, edges)


def plain(label: str) -> str:
    """An edge label as written, without the no-break spaces that pad its lines."""
    return label.replace("\xa0", "")


def test_dot_is_laid_out_top_to_bottom_with_a_box_per_network():
    drawing = layout(dot(topology(example_text("bridge.yaml"))))
    assert drawing.attrs["rankdir"] == "TB"
    legend = {"legend0a", "legend0", "legend1a", "legend1", "legend2a", "legend2", "legend3a", "legend3"}
    assert drawing.clusters == {"cluster_network0": {"bridge0", "container0", "container1"}, "cluster_network1": {"bridge1", "container2"}, "cluster_legend": legend}
    assert [drawing.nodes[n]["label"].split("\\l")[0] for n in ("container0", "container1", "container2")] == ["web (netns)", "app (netns)", "db (netns)"]
    assert [n["label"] for n in drawing.nodes.values() if n["name"].startswith("legend") and not n["name"].endswith("a")] == [
        "veth pair (host end ↔ container end)", "the host's bridge, holding the gateway", "masquerade (NAT) to the outside",
        "published port, to the container serving it"]
    # app, on both networks, is drawn in its first network's box and joined to both bridges
    assert sorted((a, b) for a, b, _ in drawing.drawn_edges() if b == "container1") == [("bridge0", "container1"), ("bridge1", "container1")]


@pytest.mark.parametrize("text,published", [
    (example_text("bridge.yaml"), [("host", "container0", "web", "published\\n*:8080/tcp\\n→ 172.20.0.2:8000")]),
    (example_text("pod.yaml"), [("host", "container0", "pod-1", "published\\n*:8081/tcp\\n→ 10.88.0.2:8000")]),
    (HOSTILE, [("host", "container0", "c", "published\\n127.0.0.1:9000/tcp\\n→ 10.9.0.2:90"),
               ("host", "container0", "c", "published\\n*:5353/udp\\n→ 10.9.0.2:53")]),
    (example_text("ports.yaml"), [("host", "container0", "left", "published\\n*:8080-8082/tcp\\n→ 172.22.0.2:8000-8002"),
                                  ("host", "container0", "left", "published\\n127.0.1.2:1716/tcp\\n→ 172.22.0.2:8000"),
                                  ("host", "container1", "right", "published\\n127.0.1.3:1716/tcp\\n→ 172.22.0.3:8000")]),
], ids=["bridge", "pod", "hostile", "ports"])
def test_a_published_port_is_an_arrow_from_the_host_to_the_container_serving_it(text, published):
    drawing = layout(dot(topology(text)))
    arrows = [(a, b, drawing.nodes[b]["label"].split(" (netns)")[0], plain(e["label"])) for a, b, e in drawing.drawn_edges() if e.get("dir") == "forward"]
    assert arrows == published


@pytest.mark.parametrize("text", [*(example_text(e) for e in EXAMPLE_FILES), HOSTILE], ids=[*EXAMPLE_FILES, "hostile"])
def test_each_line_style_has_one_meaning_and_the_legend_names_it(text):
    for compact in (False, True):
        drawing = layout(dot(topology(text), compact=compact))
        legend = drawing.legend()
        assert len(set(legend.values())) == len(legend), legend  # no two samples look alike
        used = {style_of(e) for _, _, e in drawing.drawn_edges()}
        assert used == set(legend), (used, legend)  # every style drawn is explained, and only those


def test_the_legend_says_what_each_edge_of_the_bridge_example_is():
    drawing = layout(dot(topology(example_text("bridge.yaml"))))
    meaning = drawing.legend()
    by_meaning: dict[str, list[tuple[str, str]]] = {}
    for a, b, e in drawing.drawn_edges():
        by_meaning.setdefault(meaning[style_of(e)], []).append((a, b))
    assert {text: sorted(edges) for text, edges in by_meaning.items()} == {
        "masquerade (NAT) to the outside": [("outside", "host")],
        "the host's bridge, holding the gateway": [("host", "bridge0"), ("host", "bridge1")],
        "published port, to the container serving it": [("host", "container0")],
        "veth pair (host end ↔ container end)": [("bridge0", "container0"), ("bridge0", "container1"), ("bridge1", "container1"), ("bridge1", "container2")],
    }


def svg_size(source: str) -> tuple[float, float]:
    """The width and height, in points, of the SVG Graphviz lays out from a DOT source."""
    done = subprocess.run([graphviz(), "-Tsvg"], input=source, capture_output=True, text=True, check=True)
    root = ET.fromstring(done.stdout)
    return float(root.get("width").removesuffix("pt")), float(root.get("height").removesuffix("pt"))


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_each_example_is_shown_at_full_size_880_px_wide(example):
    width, height = svg_size(dot(topology(example_text(example))))
    assert width <= 660 and height <= 700, (width, height)  # 660 pt are 880 px


FOUR_WIDE = """
name: four
networks:
  lan: {subnet: 10.5.0.0/24}
containers:
  web-frontend: {networks: [lan], ports: ["80:8080"], processes: ["nsgen echo-server --port 8080"]}
  api-server: {networks: [lan], ports: ["127.0.0.1:9000:9000"], processes: ["nsgen echo-server --port 9000"]}
  worker: {networks: [lan], processes: ["nsgen echo-server --port 7000"]}
  cache: {networks: [lan], dns: [1.1.1.1]}
"""


def test_boxes_too_wide_for_one_row_wrap_in_rows_of_two():
    source = dot(topology(FOUR_WIDE))
    drawing = layout(source)
    rows = {name: float(drawing.nodes[name]["pos"].split(",")[1]) for name in ("container0", "container1", "container2", "container3")}
    assert rows["container0"] == rows["container1"] > rows["container2"] == rows["container3"]
    assert svg_size(source)[0] <= 660


def many_containers(count: int = 200) -> str:
    """Three bridge networks; container i on network i % 3, every tenth also on the next network;
    four publish a port (c007, c057, c107, c157)."""
    networks = ["front", "mid", "back"]
    lines = ["name: many", "networks:", *(f"  {net}: {{subnet: 10.{k + 1}.0.0/24}}" for k, net in enumerate(networks)), "containers:"]
    for i in range(count):
        on = [networks[i % 3], *([networks[(i + 1) % 3]] if i % 10 == 0 else [])]
        ports = f', ports: ["{8000 + i}:80"]' if i % 50 == 7 else ""
        lines.append(f"  c{i:03d}: {{networks: [{', '.join(on)}]{ports}}}")
    return "\n".join(lines) + "\n"


def test_two_hundred_containers_are_a_table_per_network():
    source = dot(topology(many_containers()))
    drawing = layout(source)
    assert {name for name in drawing.nodes if not name.startswith("legend")} == {"outside", "host", "network0", "network1", "network2"}
    for k in range(3):  # a row per container on the network, its first or its second
        rows = set(re.findall(r'PORT="container(\d+)"', drawing.nodes[f"network{k}"]["label"]))
        assert rows == {str(i) for i in range(200) if i % 3 == k or (i % 10 == 0 and (i + 1) % 3 == k)}
    arrows = sorted((b, e["headport"], plain(e["label"])) for a, b, e in drawing.drawn_edges() if a == "host" and e.get("dir") == "forward")
    assert arrows == [
        ("network0", "container57:w", "published\\n*:8057/tcp\\n→ 10.1.0.23:80"),
        ("network1", "container157_end:e", "published\\n*:8157/tcp\\n→ 10.2.0.60:80"),
        ("network1", "container7:w", "published\\n*:8007/tcp\\n→ 10.2.0.5:80"),
        ("network2", "container107:w", "published\\n*:8107/tcp\\n→ 10.3.0.41:80"),
    ]
    assert sorted((b, e.get("headport")) for a, b, e in drawing.drawn_edges() if e.get("dir") == "none") == [("network0", "n"), ("network1", "n"), ("network2", "n")]


def test_two_hundred_containers_render_readably_and_quickly():
    source = dot(topology(many_containers()))
    start = time.monotonic()
    width, height = svg_size(source)
    assert time.monotonic() - start < 20
    assert width <= 660 and height <= 2400, (width, height)  # full size at 880 px; about 20 pt a row


# -- Mermaid ---------------------------------------------------------------------------------

LABEL = r'"([^"]*)"'
SHAPES = {"[": "]", "[/": "/]", "(": ")", "((": "))", "{{": "}}"}
NODE = re.compile(r"^(\w+)(\(\(|\[/|\[|\(|\{\{)" + LABEL + r"(\)\)|/\]|\]|\)|\}\})$")
SUBGRAPH = re.compile(rf"^subgraph (\w+)\[{LABEL}\]$")
EDGE = re.compile(rf"^(\w+) (---|===|-\.->|<-\.->|==>|<-->)(?:\|{LABEL}\|)? (\w+)$")
RESERVED = {"end", "subgraph", "graph", "flowchart", "style", "classDef", "class", "click", "linkStyle"}


@dataclass
class Flowchart:
    nodes: dict[str, str]  # node or subgraph id: label
    edges: list[tuple[str, str, str, str]]  # from, arrow, to, label
    inside: dict[str, str]  # node id: the subgraph it is declared in


def check_mermaid(source: str) -> Flowchart:
    """A structural check of the flowchart subset nsgen writes; returns its nodes, edges and subgraphs.

    Every line is a header, a subgraph opening or closing, a node or an edge; brackets pair up;
    every node is declared once with an identifier Mermaid cannot misread; every edge joins
    declared nodes; labels hold no quote and no markup but <br/> (markup is entity-coded).
    """
    lines = source.splitlines()
    assert lines[0] == "flowchart TB"
    chart = Flowchart({}, [], {})
    open_subgraphs: list[str] = []
    for row in lines[1:]:
        line = row.strip()
        assert line, "blank line"
        if line == "end":
            assert open_subgraphs, "end without subgraph"
            open_subgraphs.pop()
            continue
        ident = None
        if m := SUBGRAPH.match(line):
            ident, label = m.groups()
        elif m := NODE.match(line):
            ident, opening, label, closing = m.groups()
            assert SHAPES[opening] == closing, line
        elif m := EDGE.match(line):
            a, arrow, label, b = m.groups()
            chart.edges.append((a, arrow, b, label or ""))
        else:
            raise AssertionError(f"not a flowchart line: {line!r}")
        label = label or ""
        assert "<" not in label.replace("<br/>", "") and ">" not in label.replace("<br/>", ""), label
        assert not re.search(r"#(?!(?:quot|lt|gt|amp|\d+);)", label), f"a bare # in {label!r}"
        if ident is not None:
            assert ident not in chart.nodes, f"{ident} declared twice"
            assert ident not in RESERVED and re.fullmatch(r"[A-Za-z]\w*", ident), ident
            chart.nodes[ident] = label
            if open_subgraphs:
                chart.inside[ident] = open_subgraphs[-1]
            if line.startswith("subgraph "):
                open_subgraphs.append(ident)
    assert not open_subgraphs, "unclosed subgraph"
    for a, _, b, _ in chart.edges:
        assert a in chart.nodes and b in chart.nodes, (a, b)
    return chart


def unescape(label: str) -> str:
    import html

    return html.unescape(re.sub(r"#(\w+);", lambda m: f"&#{m.group(1)};" if m.group(1).isdigit() else f"&{m.group(1)};", label))


@pytest.mark.parametrize("text", [*(example_text(e) for e in EXAMPLE_FILES), HOSTILE], ids=[*EXAMPLE_FILES, "hostile"])
def test_mermaid_is_structurally_sound_and_shows_everything(text):
    chart = check_mermaid(mermaid(topology(text)))
    shown = " ".join(unescape(label) for label in [*chart.nodes.values(), *(e[3] for e in chart.edges)])
    for fact in facts(text):
        assert fact in shown, fact
    t = topology(text)
    links = [e for e in chart.edges if e[1] == "---"]
    assert len(links) == sum(len(c.attachments) for c in t.containers.values())


def test_mermaid_draws_a_subgraph_per_network_and_arrows_that_say_what_they_are():
    chart = check_mermaid(mermaid(topology(example_text("bridge.yaml"))))
    assert chart.inside == {"bridge0": "network0", "container0": "network0", "container1": "network0", "bridge1": "network1", "container2": "network1"}
    assert [unescape(chart.nodes[n]) for n in ("network0", "network1")] == ["network front 172.20.0.0/24<br/>bridge, masquerade", "network back 172.21.0.0/24<br/>bridge, internal"]
    assert [(a, arrow, b) for a, arrow, b, _ in chart.edges if arrow != "---"] == [
        ("host", "===", "bridge0"), ("host", "===", "bridge1"), ("host", "-.->", "outside"), ("host", "==>", "container0")]
    assert chart.edges[-1][3] == "published<br/>*:8080/tcp<br/>→ 172.20.0.2:8000"


def test_the_readme_shows_the_tutorial_in_mermaid_as_nsgen_draws_it():
    readme = (EXAMPLES.parent / "README.md").read_text()
    (sample,) = re.findall(r"^```mermaid\n(.*?)^```$", readme, re.DOTALL | re.MULTILINE)
    assert sample == mermaid(topology(example_text("tutorial.yaml")))


def test_mermaid_hostile_words_are_entity_coded():
    chart = check_mermaid(mermaid(topology(HOSTILE)))
    (label,) = [unescape(v) for v in chart.nodes.values() if "runs:" in v]
    assert """runs: sh -c 'echo "$x" | tr a b; end' '<b>&amp;</b>' 'back\\slash' 'a`b`#c'""" in label


def test_the_drawing_shows_nat_routing_and_published_ports():
    g = graph(topology(HOSTILE))
    assert [(e.a, e.b, e.label, e.kind) for e in g.edges if e.kind not in ("link", "gateway")] == [
        ("outside", "host", "masquerade\n10.9.0.0/24", "nat"),
        ("outside", "host", "routed, no NAT\n10.10.0.0/24", "routed"),
        ("host", "container0", "published\n127.0.0.1:9000/tcp\n→ 10.9.0.2:90", "published"),
        ("host", "container0", "published\n*:5353/udp\n→ 10.9.0.2:53", "published"),
    ]
    internal = graph(plan_of("name: i\nnetworks: {n: {subnet: 10.1.0.0/24, internal: true}}\ncontainers: {c: {networks: [n]}}\n").topology)
    assert "outside" not in [n.id for n in internal.nodes]


# -- the command -----------------------------------------------------------------------------

def test_diagram_defaults_to_text_of_the_tutorial(cli):
    result = cli("diagram")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith("host (ip_forward on)\n")
    assert "vethc1 172.18.0.1/24 <──veth──> container-1: veth1 172.18.0.2/24" in result.stdout


@pytest.mark.parametrize("fmt,start", [("mermaid", "flowchart TB\n"), ("dot", 'digraph "nsgen bridge-lab" {\n')])
def test_diagram_formats(cli, fmt, start):
    result = cli("diagram", "-f", str(EXAMPLES / "bridge.yaml"), "--format", fmt)
    assert result.exit_code == 0 and result.stdout.startswith(start)


@pytest.mark.parametrize("name,start", [("t.svg", "<?xml"), ("t.dot", "digraph "), ("t.gv", "digraph "), ("t.mmd", "flowchart TB"), ("t.txt", "host (")])
def test_diagram_format_follows_the_output_name(cli, tmp_path, name, start):
    graphviz()
    result = cli("diagram", "-o", name)
    assert result.exit_code == 0 and result.stdout == ""
    assert (tmp_path / name).read_text().startswith(start)
    if name.endswith(".svg"):
        ET.fromstring((tmp_path / name).read_text())


def test_diagram_svg_name_with_another_format_is_refused(cli, tmp_path):
    result = cli("diagram", "--format", "mermaid", "-o", "t.svg")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: t.svg is an SVG file name, but --format is mermaid; use --format svg (or another name)\n"
    assert not (tmp_path / "t.svg").exists()


def test_diagram_svg_without_graphviz_says_so(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cli("diagram", "--format", "svg")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: SVG output needs Graphviz's dot program, which is not installed")
    assert len(result.stderr.splitlines()) == 1


def test_diagram_bad_file_is_one_error_line(cli, tmp_path):
    (tmp_path / "t.yaml").write_text("name: x\nnetworks: {n: {subnet: 10.0.0.0/33}}\ncontainers: {c: {networks: [n]}}\n")
    result = cli("diagram", "-f", "t.yaml", "--format", "dot")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: t.yaml: networks.n.subnet: ")


def test_link_options_are_shown_in_every_format():
    """A network's MTU, its routes and no default route, and a container interface's MAC address."""
    t = topology(example_text("jumbo.yaml"))
    text = text_picture(t)
    assert ("network storage (bridge br-storag-a3f9f, 172.28.0.0/24, fd00:28::/64, gateway 172.28.0.1, fd00:28::1, masquerade, "
            "mtu 9000)") in text
    assert ("network mgmt (bridge br-mgmt-7160c, 172.29.0.0/24, gateway 172.29.0.1, masquerade, no default route, "
            "route 203.0.113.0/24 via 172.29.0.1)") in text
    assert "ve-nas-a155b <──veth──> nas: eth1 172.28.0.10/24, fd00:28::10/64 mac 02:42:ac:1c:00:0a" in text
    g = graph(t)
    assert [group.label for group in g.groups] == [
        "network storage 172.28.0.0/24\nfd00:28::/64\nbridge, masquerade\nmtu 9000",
        "network mgmt 172.29.0.0/24\nbridge, masquerade\nno default route\nroute 203.0.113.0/24 via 172.29.0.1",
    ]
    nas = next(n for n in g.nodes if n.lines[0] == "nas (netns)")
    assert nas.lines[1:] == ["eth0 172.29.0.2/24", "mac 02:42:ac:1d:00:0a", "host end ve-nas-ce03d",
                             "eth1 172.28.0.10/24, fd00:28::10/64", "mac 02:42:ac:1c:00:0a", "host end ve-nas-a155b"]
    for picture in (mermaid(t), dot(t)):
        assert "mtu 9000" in picture and "no default route" in picture and "02:42:ac:1c:00:0a" in picture


# -- a topology across hosts ---------------------------------------------------------------------

TWO_HOSTS = """
name: ov
hosts:
  h1: {address: 192.0.2.11}
  h2: {address: 192.0.2.12}
networks:
  front:
    subnet: 10.50.0.0/24
    overlay: {vni: 4242}
  back: {subnet: 10.60.0.0/24}
containers:
  web: {host: h1, networks: [front, back]}
  api: {host: h2, networks: [front], ports: ["8080:80"]}
"""

THREE_HOSTS = """
name: tri
hosts:
  h1: {address: 192.0.2.11}
  h2: {address: 192.0.2.12}
  h3: {address: 192.0.2.13}
networks:
  front: {subnet: 10.50.0.0/24, overlay: {vni: 4242}}
  back: {subnet: 10.51.0.0/24, internal: true, overlay: {vni: 4343, port: 8472}}
  local: {driver: veth, subnet: 10.60.0.0/24}
containers:
  web: {host: h1, networks: [front]}
  api: {host: h2, networks: [front, back], ports: ["8080:80"]}
  db: {host: h3, networks: [back, local]}
"""

# A host without containers, a network on no host, an IPv6 overlay whose containers are all on one host.
SPARSE = """
name: sparse
hosts:
  h1: {address: "2001:db8::11"}
  h2: {address: "2001:db8::12"}
networks:
  six: {subnet: "fd00:70::/64", overlay: {vni: 7}}
  unused: {subnet: 10.80.0.0/24}
containers:
  solo: {host: h1, networks: [six]}
"""

ACROSS = {"two": TWO_HOSTS, "three": THREE_HOSTS, "sparse": SPARSE}


def placed_facts(text: str) -> list[str]:
    """What every picture of a topology across hosts must show: the facts of the networks some host builds
    (a network without containers is on no host: it has no bridge and no gateway anywhere)."""
    t = topology(text)
    unplaced = [net for net in t.networks.values() if not t.members(net.name)]
    hidden = {f"{g}/{s.prefixlen}" for net in unplaced for s, g in net.families} | {net.bridge for net in unplaced}
    return [fact for fact in facts(text) if fact not in hidden]


def test_text_of_two_hosts_is_a_section_per_host_and_the_overlay_once():
    assert text_picture(topology(TWO_HOSTS)) + "\n" == """\
hosts (ip_forward on)
├── host h1 (192.0.2.11)
│   ├── overlay front (bridge br-front-2d72a, VXLAN device vx-front-27a92 to h2 at 192.0.2.12)
│   │   └── ve-web-57118 <──veth──> web: eth0 10.50.0.2/24 mac 02:42:0a:32:00:02
│   └── network back (bridge br-back-32f2a, 10.60.0.0/24, gateway 10.60.0.1, masquerade)
│       └── ve-web-3b889 <──veth──> web: eth1 10.60.0.2/24
├── host h2 (192.0.2.12)
│   └── overlay front (bridge br-front-2d72a, VXLAN device vx-front-27a92 to h1 at 192.0.2.11)
│       └── ve-api-be97d <──veth──> api: eth0 10.50.0.3/24 mac 02:42:0a:32:00:03  published *:8080->80/tcp
└── overlay network front (VXLAN 4242, UDP port 4789, 10.50.0.0/24, bridge br-front-2d72a and gateway 10.50.0.1 on each host, masquerade, mtu 1450)
    ├── h1 (192.0.2.11): web 10.50.0.2
    └── h2 (192.0.2.12): api 10.50.0.3
"""


def test_text_of_three_hosts_and_two_overlays():
    assert text_picture(topology(THREE_HOSTS)) + "\n" == """\
hosts (ip_forward on)
├── host h1 (192.0.2.11)
│   └── overlay front (bridge br-front-753e3, VXLAN device vx-front-eac65 to h2 at 192.0.2.12)
│       └── ve-web-f644c <──veth──> web: eth0 10.50.0.2/24 mac 02:42:0a:32:00:02
├── host h2 (192.0.2.12)
│   ├── overlay front (bridge br-front-753e3, VXLAN device vx-front-eac65 to h1 at 192.0.2.11)
│   │   └── ve-api-1fc29 <──veth──> api: eth0 10.50.0.3/24 mac 02:42:0a:32:00:03  published *:8080->80/tcp
│   └── overlay back (bridge br-back-162f7, VXLAN device vx-back-4aa3b to h3 at 192.0.2.13)
│       └── ve-api-5aa47 <──veth──> api: eth1 10.51.0.2/24 mac 02:42:0a:33:00:02
├── host h3 (192.0.2.13)
│   ├── overlay back (bridge br-back-162f7, VXLAN device vx-back-4aa3b to h2 at 192.0.2.12)
│   │   └── ve-db-3288e <──veth──> db: eth0 10.51.0.3/24 mac 02:42:0a:33:00:03
│   └── network local (veth, 10.60.0.0/24, gateway 10.60.0.1, masquerade)
│       └── ve-db-79ebc 10.60.0.1/24 <──veth──> db: eth1 10.60.0.2/24
├── overlay network front (VXLAN 4242, UDP port 4789, 10.50.0.0/24, bridge br-front-753e3 and gateway 10.50.0.1 on each host, masquerade, mtu 1450)
│   ├── h1 (192.0.2.11): web 10.50.0.2
│   └── h2 (192.0.2.12): api 10.50.0.3
└── overlay network back (VXLAN 4343, UDP port 8472, 10.51.0.0/24, bridge br-back-162f7 and gateway 10.51.0.1 on each host, internal, mtu 1450)
    ├── h2 (192.0.2.12): api 10.51.0.2
    └── h3 (192.0.2.13): db 10.51.0.3
"""


def test_mermaid_of_two_hosts_is_a_subgraph_per_host_and_the_overlay_between_them():
    assert mermaid(topology(TWO_HOSTS)) == """\
flowchart TB
  outside(("outside"))
  subgraph machine0["h1 (192.0.2.11)"]
    host0["host h1<br/>ip_forward on"]
    subgraph network0h0["overlay front"]
      bridge0h0[/"bridge br-front-2d72a<br/>gateway 10.50.0.1/24<br/>vxlan vx-front-27a92"/]
      container0("web (netns)<br/>eth0 10.50.0.2/24<br/>mac 02:42:0a:32:00:02<br/>host end ve-web-57118<br/>eth1 10.60.0.2/24<br/>host end ve-web-3b889")
    end
    subgraph network1["network back 10.60.0.0/24<br/>bridge, masquerade"]
      bridge1[/"bridge br-back-32f2a<br/>gateway 10.60.0.1/24"/]
    end
  end
  subgraph machine1["h2 (192.0.2.12)"]
    host1["host h2<br/>ip_forward on"]
    subgraph network0h1["overlay front"]
      bridge0h1[/"bridge br-front-2d72a<br/>gateway 10.50.0.1/24<br/>vxlan vx-front-27a92"/]
      container1("api (netns)<br/>eth0 10.50.0.3/24<br/>mac 02:42:0a:32:00:03<br/>host end ve-api-be97d")
    end
  end
  overlay0{{"overlay network front 10.50.0.0/24<br/>VXLAN 4242, UDP port 4789<br/>masquerade, mtu 1450<br/>between h1, h2"}}
  host0 === bridge0h0
  bridge0h0 <-->|"VXLAN 4242"| overlay0
  host1 === bridge0h1
  bridge0h1 <-->|"VXLAN 4242"| overlay0
  host0 === bridge1
  bridge0h0 --- container0
  bridge0h1 --- container1
  bridge1 --- container0
  host0 -.->|"masquerade<br/>10.50.0.0/24<br/>10.60.0.0/24"| outside
  host1 -.->|"masquerade<br/>10.50.0.0/24"| outside
  host1 ==>|"published<br/>*:8080/tcp<br/>→ 10.50.0.3:80"| container1
"""


def test_mermaid_of_three_hosts_and_two_overlays():
    assert mermaid(topology(THREE_HOSTS)) == """\
flowchart TB
  outside(("outside"))
  subgraph machine0["h1 (192.0.2.11)"]
    host0["host h1<br/>ip_forward on"]
    subgraph network0h0["overlay front"]
      bridge0h0[/"bridge br-front-753e3<br/>gateway 10.50.0.1/24<br/>vxlan vx-front-eac65"/]
      container0("web (netns)<br/>eth0 10.50.0.2/24<br/>mac 02:42:0a:32:00:02<br/>host end ve-web-f644c")
    end
  end
  subgraph machine1["h2 (192.0.2.12)"]
    host1["host h2<br/>ip_forward on"]
    subgraph network0h1["overlay front"]
      bridge0h1[/"bridge br-front-753e3<br/>gateway 10.50.0.1/24<br/>vxlan vx-front-eac65"/]
      container1("api (netns)<br/>eth0 10.50.0.3/24<br/>mac 02:42:0a:32:00:03<br/>host end ve-api-1fc29<br/>eth1 10.51.0.2/24<br/>mac 02:42:0a:33:00:02<br/>host end ve-api-5aa47")
    end
    subgraph network1h1["overlay back"]
      bridge1h1[/"bridge br-back-162f7<br/>gateway 10.51.0.1/24<br/>vxlan vx-back-4aa3b"/]
    end
  end
  subgraph machine2["h3 (192.0.2.13)"]
    host2["host h3<br/>ip_forward on<br/>ve-db-79ebc 10.60.0.1/24 (gateway of local)"]
    subgraph network1h2["overlay back"]
      bridge1h2[/"bridge br-back-162f7<br/>gateway 10.51.0.1/24<br/>vxlan vx-back-4aa3b"/]
      container2("db (netns)<br/>eth0 10.51.0.3/24<br/>mac 02:42:0a:33:00:03<br/>host end ve-db-3288e<br/>eth1 10.60.0.2/24<br/>host end ve-db-79ebc")
    end
    subgraph network2["network local 10.60.0.0/24<br/>veth, masquerade"]
    end
  end
  overlay0{{"overlay network front 10.50.0.0/24<br/>VXLAN 4242, UDP port 4789<br/>masquerade, mtu 1450<br/>between h1, h2"}}
  overlay1{{"overlay network back 10.51.0.0/24<br/>VXLAN 4343, UDP port 8472<br/>internal, mtu 1450<br/>between h2, h3"}}
  host0 === bridge0h0
  bridge0h0 <-->|"VXLAN 4242"| overlay0
  host1 === bridge0h1
  bridge0h1 <-->|"VXLAN 4242"| overlay0
  host1 === bridge1h1
  bridge1h1 <-->|"VXLAN 4343"| overlay1
  host2 === bridge1h2
  bridge1h2 <-->|"VXLAN 4343"| overlay1
  bridge0h0 --- container0
  bridge0h1 --- container1
  bridge1h1 --- container1
  bridge1h2 --- container2
  host2 --- container2
  host0 -.->|"masquerade<br/>10.50.0.0/24"| outside
  host1 -.->|"masquerade<br/>10.50.0.0/24"| outside
  host2 -.->|"masquerade<br/>10.60.0.0/24"| outside
  host1 ==>|"published<br/>*:8080/tcp<br/>→ 10.50.0.3:80"| container1
"""


@pytest.mark.parametrize("name", ACROSS)
def test_dot_across_hosts_is_accepted_by_graphviz_and_shows_everything(name):
    text = ACROSS[name]
    for compact in (False, True):
        source = dot(topology(text), compact=compact)
        done = subprocess.run([graphviz(), "-Tsvg"], input=source, capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert ET.fromstring(done.stdout).tag.endswith("svg")
    svg = subprocess.run([graphviz(), "-Tsvg"], input=dot(topology(text)), capture_output=True, text=True, check=True).stdout
    shown = " ".join(el.text or "" for el in ET.fromstring(svg).iter() if el.tag.endswith("text"))
    for fact in placed_facts(text):
        assert fact in shown, fact
    for m in topology(text).hosts:
        assert f"{m.name} ({m.address})" in shown


def test_dot_draws_a_cluster_per_host_around_its_networks_and_the_overlay_outside_them():
    drawing = layout(dot(topology(THREE_HOSTS)))
    assert drawing.clusters["cluster_machine0"] == {"host0", "bridge0h0", "container0"}
    assert drawing.clusters["cluster_machine1"] == {"host1", "bridge0h1", "container1", "bridge1h1"}
    assert drawing.clusters["cluster_machine2"] == {"host2", "bridge1h2", "container2"}  # local (veth) has no bridge
    assert drawing.clusters["cluster_network0h1"] == {"bridge0h1", "container1"}
    assert drawing.nodes["overlay0"]["label"] == "overlay network front 10.50.0.0/24\\nVXLAN 4242, UDP port 4789\\nmasquerade, mtu 1450\\nbetween h1, h2"
    assert not any(name.startswith("overlay") for members in drawing.clusters.values() for name in members)
    vxlan = sorted((a, b) for a, b, e in drawing.drawn_edges() if drawing.legend()[style_of(e)].startswith("an overlay network"))
    assert vxlan == [("bridge0h0", "overlay0"), ("bridge0h1", "overlay0"), ("bridge1h1", "overlay1"), ("bridge1h2", "overlay1")]
    # each host masquerades its own containers, and publishes its own ports
    nat = sorted((a, b, plain(e["label"])) for a, b, e in drawing.drawn_edges() if e.get("dir") == "back")
    assert nat == [("outside", "host0", "masquerade\\n10.50.0.0/24"), ("outside", "host1", "masquerade\\n10.50.0.0/24"),
                   ("outside", "host2", "masquerade\\n10.60.0.0/24")]
    assert [(a, b) for a, b, e in drawing.drawn_edges() if e.get("dir") == "forward"] == [("host1", "container1")]


def test_dot_tables_across_hosts_sit_in_their_hosts_cluster():
    drawing = layout(dot(topology(THREE_HOSTS), compact=True))
    assert drawing.clusters["cluster_machine1"] == {"host1", "network0h1", "network1h1"}
    assert 'PORT="container1"' in drawing.nodes["network0h1"]["label"] and "container0" not in drawing.nodes["network0h1"]["label"]
    assert sorted((a, b) for a, b, e in drawing.drawn_edges() if b.startswith("overlay")) == [
        ("network0h0", "overlay0"), ("network0h1", "overlay0"), ("network1h1", "overlay1"), ("network1h2", "overlay1")]


@pytest.mark.parametrize("name", ACROSS)
def test_each_line_style_across_hosts_has_one_meaning_and_the_legend_names_it(name):
    test_each_line_style_has_one_meaning_and_the_legend_names_it(ACROSS[name])


@pytest.mark.parametrize("name", ACROSS)
def test_mermaid_across_hosts_nests_networks_in_hosts_and_leaves_the_overlay_outside(name):
    text = ACROSS[name]
    chart = check_mermaid(mermaid(topology(text)))
    shown = " ".join(unescape(label) for label in [*chart.nodes.values(), *(e[3] for e in chart.edges)])
    for fact in placed_facts(text):
        assert fact in shown, fact
    t = topology(text)
    assert len([e for e in chart.edges if e[1] == "---"]) == sum(len(c.attachments) for c in t.containers.values())
    for k, m in enumerate(t.hosts):
        assert unescape(chart.nodes[f"machine{k}"]) == f"{m.name} ({m.address})"
        assert chart.inside[f"host{k}"] == f"machine{k}"
    for i, c in enumerate(t.containers.values()):
        group = chart.inside[f"container{i}"]
        assert chart.inside[group] == f"machine{[m.name for m in t.hosts].index(c.host)}"
    overlays = [n for n in chart.nodes if n.startswith("overlay")]
    assert overlays and not any(n in chart.inside for n in overlays)


def test_a_hosts_part_is_drawn_as_one_host():
    """The picture heading one host's setup script: that host only, named with its address, each
    overlay network's VXLAN device joined to the other hosts and their containers on it."""
    from nsgen.spread import part

    picture = text_picture(part(topology(TWO_HOSTS), "h2"))
    assert picture == "\n".join([
        "host h2 (192.0.2.12, ip_forward on)",
        "└── network front (bridge br-front-2d72a, 10.50.0.0/24, gateway 10.50.0.1, masquerade, mtu 1450)",
        "    ├── ve-api-be97d <──veth──> api: eth0 10.50.0.3/24 mac 02:42:0a:32:00:03  published *:8080->80/tcp",
        "    └── vx-front-27a92 <──VXLAN 4242, UDP 4789──> h1 (192.0.2.11): web 10.50.0.2",
    ])


def test_diagram_of_a_topology_across_hosts(cli, tmp_path):
    (tmp_path / "ov.yaml").write_text(TWO_HOSTS)
    result = cli("diagram", "-f", "ov.yaml")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == text_picture(topology(TWO_HOSTS)) + "\n"
    result = cli("diagram", "-f", "ov.yaml", "--format", "mermaid")
    assert result.exit_code == 0 and "subgraph machine1[" in result.stdout
