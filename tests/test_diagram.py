"""Diagrams: every format carries the topology's facts and is accepted by its consumer
(DOT and SVG by Graphviz, Mermaid checked structurally), including hostile process words."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from nsgen.diagram import dot, draw, graph, mermaid, text_picture
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
        found.append(f"{net.gateway}/{net.subnet.prefixlen}")
        if net.bridge:
            found.append(net.bridge)
    for c in t.containers.values():
        found.append(c.name)
        for a in c.attachments:
            found += [a.interface, f"{a.address}/{a.prefixlen}", a.host_interface]
        for p in c.ports:
            found.append(f"{p.host_port}")
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
    g = graph(topology(text))
    for node in [*g.host_nodes, *g.nodes]:
        assert re.search(rf"^\s*{node.id}\s+\[", canon, re.M), node.id


def test_hostile_words_stay_inside_their_labels():
    svg = subprocess.run([graphviz(), "-Tsvg"], input=dot(topology(HOSTILE)), capture_output=True, text=True, check=True).stdout
    texts = [el.text or "" for el in ET.fromstring(svg).iter() if el.tag.endswith("text")]
    (line,) = [t for t in texts if t.startswith("runs: ")]
    assert line == """runs: sh -c 'echo "$x" | tr a b; end' '<b>&amp;</b>' 'back\\slash' 'a`b`#c'"""


# -- Mermaid ---------------------------------------------------------------------------------

LABEL = r'"([^"]*)"'
SHAPES = {"[": "]", "[/": "/]", "(": ")", "((": "))"}
NODE = re.compile(r"^(\w+)(\(\(|\[/|\[|\()" + LABEL + r"(\)\)|/\]|\]|\))$")
SUBGRAPH = re.compile(rf"^subgraph (\w+)\[{LABEL}\]$")
EDGE = re.compile(rf"^(\w+) (---|-\.-|==>)\|{LABEL}\| (\w+)$")
RESERVED = {"end", "subgraph", "graph", "flowchart", "style", "classDef", "class", "click", "linkStyle"}


def check_mermaid(source: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """A structural check of the flowchart subset nsgen writes; returns node labels and edges.

    Every line is a header, a subgraph opening or closing, a node or an edge; brackets pair up;
    every node is declared once with an identifier Mermaid cannot misread; every edge joins
    declared nodes; labels hold no quote and no markup but <br/> (markup is entity-coded).
    """
    lines = source.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    edges = []
    depth = 0
    for row in lines[1:]:
        line = row.strip()
        assert line, "blank line"
        if line == "end":
            depth -= 1
            assert depth >= 0, "end without subgraph"
            continue
        if m := SUBGRAPH.match(line):
            depth += 1
            label = m.group(2)
            ident = m.group(1)
        elif m := NODE.match(line):
            ident, opening, label, closing = m.groups()
            assert SHAPES[opening] == closing, line
        elif m := EDGE.match(line):
            a, _arrow, label, b = m.groups()
            edges.append((a, b, label))
            ident = None
        else:
            raise AssertionError(f"not a flowchart line: {line!r}")
        assert "<" not in label.replace("<br/>", "") and ">" not in label.replace("<br/>", ""), label
        assert not re.search(r"#(?!(?:quot|lt|gt|amp|\d+);)", label), f"a bare # in {label!r}"
        if ident is not None:
            assert ident not in nodes, f"{ident} declared twice"
            assert ident not in RESERVED and re.fullmatch(r"[A-Za-z]\w*", ident), ident
            nodes[ident] = label
    assert depth == 0, "unclosed subgraph"
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def unescape(label: str) -> str:
    import html

    return html.unescape(re.sub(r"#(\w+);", lambda m: f"&#{m.group(1)};" if m.group(1).isdigit() else f"&{m.group(1)};", label))


@pytest.mark.parametrize("text", [*(example_text(e) for e in EXAMPLE_FILES), HOSTILE], ids=[*EXAMPLE_FILES, "hostile"])
def test_mermaid_is_structurally_sound_and_shows_everything(text):
    nodes, edges = check_mermaid(mermaid(topology(text)))
    shown = " ".join(unescape(label) for label in [*nodes.values(), *(e[2] for e in edges)])
    for fact in facts(text):
        assert fact in shown, fact
    t = topology(text)
    links = [e for e in edges if "↔" in e[2]]
    assert len(links) == sum(len(c.attachments) for c in t.containers.values())


def test_mermaid_hostile_words_are_entity_coded():
    nodes, _ = check_mermaid(mermaid(topology(HOSTILE)))
    (label,) = [unescape(v) for v in nodes.values() if "runs:" in v]
    assert """runs: sh -c 'echo "$x" | tr a b; end' '<b>&amp;</b>' 'back\\slash' 'a`b`#c'""" in label


def test_the_drawing_shows_nat_routing_and_published_ports():
    g = graph(topology(HOSTILE))
    labels = {e.label: e.kind for e in g.edges}
    assert labels["masquerade 10.9.0.0/24"] == "nat"
    assert labels["routed 10.10.0.0/24 (no NAT)"] == "routed"
    assert labels["published 127.0.0.1:9000/tcp → c 10.9.0.2:90"] == "published"
    assert labels["published *:5353/udp → c 10.9.0.2:53"] == "published"
    internal = graph(plan_of("name: i\nnetworks: {n: {subnet: 10.1.0.0/24, internal: true}}\ncontainers: {c: {networks: [n]}}\n").topology)
    assert "outside" not in [n.id for n in internal.nodes]


# -- the command -----------------------------------------------------------------------------

def test_diagram_defaults_to_text_of_the_tutorial(cli):
    result = cli("diagram")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith("host (ip_forward on)\n")
    assert "vethc1 172.18.0.1/24 <──veth──> container-1: veth1 172.18.0.2/24" in result.stdout


@pytest.mark.parametrize("fmt,start", [("mermaid", "flowchart LR\n"), ("dot", 'graph "nsgen bridge-lab" {\n')])
def test_diagram_formats(cli, fmt, start):
    result = cli("diagram", "-f", str(EXAMPLES / "bridge.yaml"), "--format", fmt)
    assert result.exit_code == 0 and result.stdout.startswith(start)


@pytest.mark.parametrize("name,start", [("t.svg", "<?xml"), ("t.dot", "graph "), ("t.gv", "graph "), ("t.mmd", "flowchart LR"), ("t.txt", "host (")])
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
