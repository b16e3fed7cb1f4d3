"""The nftables backend: the firewall's rules (rules.py) of both families in one `inet` table of
the topology's own, `nsgen-<topology>`, made by one `nft -f -` and removed by one `nft delete
table`, each one transaction (all of it or none).

Published ports are elements, not rules: DNAT looks the host port and address up in a map (one
a family and protocol) and the forward accept looks the container's address and port up in a set
(one a family), so the thousandth port costs a packet what the first does. The map's key is the
port first: it is a concatenation with an interval (an address may be 0.0.0.0/0), which the
kernel matches field by field (its pipapo set), and a first field that every element shares
(0.0.0.0/0) would make each lookup go through every element (benchmarks/firewall.py: 1000 ports
cost a new connection about 12 us more, address first). A rule both families
share is written once; one of a single family names it (`meta nfproto ipv4`) when its addresses
do not. Forwarded packets the table accepts carry nsgen's mark, which one iptables rule of
nsgen's own lets through an iptables FORWARD chain whose policy drops (Docker's, ufw's): an
accept in one base chain does not override a drop in another."""

from __future__ import annotations

import difflib
import json
import re
from typing import NamedTuple

from nsgen.names import FORWARD_MARK, nft_table, rule_tag
from nsgen.plan.firewall.rules import Rule, Table
from nsgen.plan.steps import B, C, Check, Step

# Where a rule of a stage and hook goes: a base chain of the table's own (name, type, priority).
# Forward runs just before iptables' FORWARD (priority filter), so the mark is there when it looks.
BASE = {
    ("raw", "prerouting"): ("raw_prerouting", "filter", "raw"),
    ("filter", "forward"): ("filter_forward", "filter", "filter - 10"),
    ("nat", "prerouting"): ("nat_prerouting", "nat", "dstnat"),
    ("nat", "output"): ("nat_output", "nat", "-100"),
    ("nat", "postrouting"): ("nat_postrouting", "nat", "srcnat"),
}
OWN = {"filter": "networks", "nat": "published_ports", "raw": "raw_rules"}  # a stage's regular chain (the jumps' target)
FAMILY = {4: "ip", 6: "ip6"}
NFPROTO = {4: "ipv4", 6: "ipv6"}
_SAFE = re.compile(r"[^\"\\\n]*")  # what may stand between double quotes in an nft file


class Element(NamedTuple):
    key: str
    value: str | None
    why: str


class Collection(NamedTuple):
    """A map (value given) or set of the table, and the one rule that looks packets up in it."""

    name: str
    type: str
    interval: bool
    elements: tuple[Element, ...]


def _q(text: str) -> str:
    if not _SAFE.fullmatch(text):
        raise ValueError(f"cannot place {text!r} between double quotes in an nft file")
    return f'"{text}"'


def _matches(r: Rule, v: int) -> list[str]:
    fam, w = FAMILY[v], []
    if r.in_dev:
        w.append(f"iifname {'!= ' if r.not_in_dev else ''}{_q(r.in_dev)}")
    if r.src:
        w.append(f"{fam} saddr {r.src}")
    if r.out_dev:
        w.append(f"oifname {'!= ' if r.not_out_dev else ''}{_q(r.out_dev)}")
    if r.dst:
        w.append(f"{fam} daddr {'!= ' if r.not_dst else ''}{r.dst}")
    if r.dport is not None:
        w.append(f"{r.protocol} dport {r.dport}")
    elif r.protocol:
        w.append(f"meta l4proto {r.protocol}")
    states = [s.lower() for s in r.ctstate if s != "DNAT"]
    if states:
        w.append("ct state " + ",".join(sorted(states)))
    if "DNAT" in r.ctstate:
        w.append("ct status dnat")
    if r.not_to_group:
        value, mask = r.not_to_group.split("/")
        w.append(f"oifgroup & {mask} != {value}")
    if r.to_local:
        w.append("fib daddr type local")
    return w


def _verdict(r: Rule, v: int) -> str:
    if r.verdict == "jump":
        return f"jump {OWN[r.stage]}"
    if r.verdict in ("snat", "dnat"):
        return f"{r.verdict} {FAMILY[v]} to {r.to}"
    if r.verdict == "accept" and r.stage == "filter":  # iptables' FORWARD lets what carries the mark through
        return f"meta mark set meta mark | {FORWARD_MARK} accept"
    return r.verdict


def _text(r: Rule, v: int) -> tuple[str, bool]:
    """The rule as nft writes it, and whether its matches name its family already."""
    own = bool(r.src or r.dst or r.verdict in ("snat", "dnat"))
    return " ".join([*_matches(r, v), _verdict(r, v), f"comment {_q(r.why)}"]), own


def _any(v: int) -> str:
    return "0.0.0.0/0" if v == 4 else "::/0"


def _split_target(to: str) -> tuple[str, str]:
    address, _, port = to.rpartition(":")
    return address.strip("[]"), port


class _Family:
    """One family's rules sorted into chains, maps and sets."""

    def __init__(self, v: int):
        self.v = v
        self.chains: dict[str, list[tuple[str, bool]]] = {}
        self.maps: dict[str, list[Element]] = {}
        self.accepted: list[Element] = []

    def add(self, r: Rule) -> None:
        fam, v = FAMILY[self.v], self.v
        chain = OWN[r.stage] if r.in_chain else BASE[(r.stage, r.hook)][0]
        if r.verdict == "dnat" and r.in_chain and r.to and r.protocol and r.dport is not None:
            address, port = _split_target(r.to)
            name = f"dnat_{fam}_{r.protocol}"
            if name not in self.maps:
                self.maps[name] = []
                lookup = f"dnat {fam} to {r.protocol} dport . {fam} daddr map @{name} comment {_q(f'published {r.protocol.upper()} ports ({fam})')}"
                self.chains.setdefault(chain, []).append((lookup, True))
            self.maps[name].append(Element(f"{r.dport} . {r.dst or _any(v)}", f"{address} . {port}", r.why))
        elif r.verdict == "accept" and r.ctstate == ("DNAT",) and r.dport is not None and r.out_dev and r.dst:
            if not self.accepted:
                lookup = (f"ct status dnat oifname . {fam} daddr . meta l4proto . th dport @published_{fam} "
                          f"{_verdict(r, v)} comment {_q(f'connections to published ports ({fam})')}")
                self.chains.setdefault(chain, []).append((lookup, True))
            self.accepted.append(Element(f"{_q(r.out_dev)} . {r.dst} . {r.protocol} . {r.dport}", None, r.why))
        else:
            self.chains.setdefault(chain, []).append(_text(r, v))

    def collections(self) -> list[Collection]:
        fam, addr = FAMILY[self.v], "ipv4_addr" if self.v == 4 else "ipv6_addr"
        found = [Collection(name, f"inet_service . {addr} : {addr} . inet_service", True, tuple(elements))
                 for name, elements in self.maps.items()]
        if self.accepted:
            found.append(Collection(f"published_{fam}", f"ifname . {addr} . inet_proto . inet_service", False, tuple(self.accepted)))
        return found


def _merge(four: list[tuple[str, bool]], six: list[tuple[str, bool]]) -> list[str]:
    """One chain's rules of both families, each family's in its own order: a rule both have at
    a place both keep is written once; any other names its family unless its addresses do."""
    a, b = [t for t, _ in four], [t for t, _ in six]
    merged: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            merged += a[i1:i2]
            continue
        merged += [t if own else f"meta nfproto ipv4 {t}" for t, own in four[i1:i2]]
        merged += [t if own else f"meta nfproto ipv6 {t}" for t, own in six[j1:j2]]
    return merged


def _collection(c: Collection) -> list[str]:
    kind = "map" if c.elements[0].value is not None else "set"
    lines = [f"\t{kind} {c.name} {{", f"\t\ttype {c.type}"]
    if c.interval:
        lines.append("\t\tflags interval")
    shown = [f"{e.key} comment {_q(e.why)}" + (f" : {e.value}" if e.value is not None else "") for e in c.elements]
    lines.append("\t\telements = {")
    lines += [f"\t\t\t{s}," for s in shown[:-1]] + [f"\t\t\t{shown[-1]}", "\t\t}", "\t}"]
    return lines


def table_text(tables: list[Table], topology: str) -> str:
    """The `nft -f` text that makes the topology's table with every rule of `tables`."""
    families = {4: _Family(4), 6: _Family(6)}
    for table in tables:
        for r in sorted(table.rules, key=lambda r: r.verdict == "jump"):  # the jumps after the hook's own rules
            families[table.version].add(r)
    name = nft_table(topology)
    lines = ["# the table is made anew: one that is there (an older definition of it) goes in the same transaction",
             f"add table inet {name}", f"delete table inet {name}",
             f"table inet {name} {{", f"\tcomment {_q(rule_tag(topology))}"]
    for fam in families.values():
        for c in fam.collections():
            lines += _collection(c)
    names = [*OWN.values(), *(base[0] for base in BASE.values())]  # regular chains first: the jumps name them
    for name in names:
        four, six = families[4].chains.get(name, []), families[6].chains.get(name, [])
        if not four and not six:
            continue
        head = next(([f"\t\ttype {kind} hook {hook} priority {prio}; policy accept;"]
                     for (_s, hook), (n, kind, prio) in BASE.items() if n == name), [])
        if head or (four and six):
            rules = _merge(four, six)
        else:  # a regular chain of one family: only that family's jumps reach it, which say so
            rules = [t for t, _own in four or six]
        lines += [f"\tchain {name} {{", *head, *(f"\t\t{t}" for t in rules), "\t}"]
    return "\n".join([*lines, "}"]) + "\n"


# nft's names of base chain priorities (families ip, ip6 and inet) as numbers: `nft -j` lists the numbers
PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
_COMMENT = re.compile(r' comment "([^"\\\n]*)"$')


def _priority(text: str) -> int:
    """A base chain's priority as `nft -j` lists it: `filter - 10` is -10, `dstnat` is -100."""
    words = text.split()
    value = PRIORITIES[words[0]] if words[0] in PRIORITIES else int(words[0])
    if len(words) == 3:
        value += int(words[2]) if words[1] == "+" else -int(words[2])
    return value


def _parts(text: str) -> list[str]:
    """An element's key or value as its parts, unquoted: `"br-x" . 10.0.0.2 . tcp . 80`."""
    return [part.strip('"') for part in text.split(" . ")]


def expected(tables: list[Table], topology: str) -> dict:
    """The table that `table_text` writes, as data `nsgen check` compares with `nft -j list table`:
    {"table", "comment", "chains": [{"name", "rules": [each rule's comment, in order], and for a base
    chain "type", "hook", "prio" (a number), "policy"}], "collections": [{"name", "kind" (map or set),
    "type": [key types], "map": [value types] (a map), "flags", "elements": [{"key": [parts],
    "value": [parts] or None, "comment"}]}]}."""
    families = {4: _Family(4), 6: _Family(6)}
    for table in tables:
        for r in sorted(table.rules, key=lambda r: r.verdict == "jump"):  # as table_text sorts them
            families[table.version].add(r)
    collections = []
    for fam in families.values():
        for c in fam.collections():
            key, _, value = c.type.partition(" : ")
            collections.append({
                "name": c.name, "kind": "map" if value else "set", "type": key.split(" . "),
                **({"map": value.split(" . ")} if value else {}), "flags": ["interval"] if c.interval else [],
                "elements": [{"key": _parts(e.key), "value": None if e.value is None else _parts(e.value), "comment": e.why}
                             for e in c.elements]})
    chains = []
    for name in [*OWN.values(), *(base[0] for base in BASE.values())]:  # table_text's order
        four, six = families[4].chains.get(name, []), families[6].chains.get(name, [])
        if not four and not six:
            continue
        chain: dict = {"name": name}
        for (_stage, hook), (n, kind, prio) in BASE.items():
            if n == name:
                chain.update(type=kind, hook=hook, prio=_priority(prio), policy="accept")
        chain["rules"] = [m.group(1) if (m := _COMMENT.search(text)) else "" for text in _merge(four, six)]
        chains.append(chain)
    return {"table": nft_table(topology), "comment": rule_tag(topology), "chains": chains, "collections": collections}


def _checks(tables: list[Table], topology: str) -> tuple[Check, ...]:
    """The table, read once as JSON and compared with the plan's; and where iptables' (ip6tables')
    FORWARD can drop, the rule of nsgen's own there that lets the table's marked packets through
    (the rule builtins.forward_pass adds)."""
    name, tag = nft_table(topology), rule_tag(topology)
    data = json.dumps(expected(tables, topology), separators=(",", ":"))
    checks = [Check("firewall", f"nftables table inet {name} holds the plan's chains, rules and elements",
                    ("nft", "-j", "list", "table", "inet", name), text=data, compare="nft")]
    for version in sorted({t.version for t in tables}):
        tool, shown = ("iptables", "") if version == 4 else ("ip6tables", " (IPv6)")
        rule = ("-m", "mark", "--mark", f"{FORWARD_MARK}/{FORWARD_MARK}", "-m", "comment", "--comment", tag, "-j", "ACCEPT")
        checks.append(Check("firewall", f"filter FORWARD: -m mark --mark {FORWARD_MARK}/{FORWARD_MARK} -j ACCEPT{shown}",
                            (tool, "-w", "-C", "FORWARD", *rule), compare="where_forward_drops"))
    return tuple(checks)


def _summary(tables: list[Table], name: str) -> str:
    stages = {t.stage for t in tables}
    parts = [f"One nftables table, inet {name}, holds every rule of both families and is made in one transaction."]
    if "raw" in stages:
        parts.append("Loopback stays loopback: packets for 127.0.0.0/8 that arrive on any interface but lo are dropped before NAT "
                     "(raw_prerouting), so ports published on 127.0.0.1 and host services bound to it are reached from the host only.")
    if "filter" in stages:
        parts.append(f"Forwarded packets go through the chain {OWN['filter']}: replies and published connections into each network, "
                     "traffic within a bridge, nothing else in; traffic out of each network that is not internal. What it accepts "
                     f"carries the mark {FORWARD_MARK}.")
    if "nat" in stages:
        parts.append("NAT: masquerade in nat_postrouting; published ports in the chain "
                     f"{OWN['nat']} (from nat_prerouting and nat_output, for local destinations), one map lookup a family and "
                     "protocol, however many ports there are.")
    return " ".join(parts)


def step(tables: list[Table], topology: str) -> Step:
    """Every rule of the topology, of both families, as one table made in one transaction."""
    name, tag = nft_table(topology), rule_tag(topology)
    text = table_text(tables, topology)
    return Step(
        id="nftables",
        section="Firewall",
        summary=_summary(tables, name),
        commands=(C("nft", "-f", "-", input=text),),
        undo=(B("nft_undo", name, tag),),
        probe=(("nft", "list", "table", "inet", name),),
        replaces=True,
        resource=f"nftables table inet {name}",
        ours=(("nft_ours", name, tag),),
        checks=_checks(tables, topology),
    )


def forward_pass(version: int, topology: str) -> Step:
    """Where iptables' FORWARD can drop (a policy or a rule of its own: Docker, ufw), one rule of
    nsgen's own there lets through what the table accepted (it carries the mark)."""
    tool, shown = ("iptables", "") if version == 4 else ("ip6tables", " (IPv6)")
    return Step(
        id="firewall:pass" if version == 4 else "firewall6:pass",
        section="Firewall",
        summary=f"Where {tool}' FORWARD chain can drop (its policy is DROP, or it holds rules: Docker, ufw), one rule of nsgen's own "
        f"at its top accepts the packets that the table accepted (they carry the mark {FORWARD_MARK}); elsewhere nothing.{shown}",
        commands=(B("forward_pass", "add", tool, rule_tag(topology), FORWARD_MARK),),
        undo=(B("forward_pass", "del", tool, rule_tag(topology), FORWARD_MARK),),
    )
