"""The iptables backend: the firewall's rules (rules.py) written for iptables (IPv4) and ip6tables
(IPv6), one `iptables-restore --noflush` a table and family.

Every rule lives in the topology's own chain, except the jumps into it and the rules that must
sit in a built-in chain (masquerade, the loopback guard). Each table is loaded in one transaction
(all of it or none) and removed the same way (rule by rule, whatever is there, when that fails);
each rule carries the topology's comment and sits under a comment that says what it is for."""

from __future__ import annotations

import re
from typing import NamedTuple

from nsgen.names import chain_name, record_path, rule_tag
from nsgen.plan.firewall.rules import Rule, Table
from nsgen.plan.steps import Argv, B, C, Check, Step


class Family(NamedTuple):
    iptables: str
    restore: str
    undo: str  # the builtin that removes a table's rules
    step: str  # the prefix of its steps' ids
    shown: str  # said in summaries


FAMILIES = {
    4: Family("iptables", "iptables-restore", "iptables_undo", "firewall", ""),
    6: Family("ip6tables", "ip6tables-restore", "ip6tables_undo", "firewall6", " (IPv6)"),
}
_HOOKS = {"prerouting": "PREROUTING", "forward": "FORWARD", "output": "OUTPUT", "postrouting": "POSTROUTING"}
_VERDICTS = {"accept": "ACCEPT", "drop": "DROP", "masquerade": "MASQUERADE", "snat": "SNAT", "dnat": "DNAT"}
_UNSAFE_IN_RESTORE = re.compile(r"[\s\"'#]")


def _not(flag: bool) -> Argv:
    return ("!",) if flag else ()


def words(rule: Rule, tag: Argv, chain: str) -> Argv:
    """The rule's matches and target, as iptables takes them (without the chain)."""
    w: list[str] = []
    if rule.in_dev:
        w += [*_not(rule.not_in_dev), "-i", rule.in_dev]
    if rule.src:
        w += ["-s", rule.src]
    if rule.out_dev:
        w += [*_not(rule.not_out_dev), "-o", rule.out_dev]
    if rule.dst:
        w += [*_not(rule.not_dst), "-d", rule.dst]
    if rule.protocol:
        w += ["-p", rule.protocol]
    if rule.dport is not None:
        w += ["--dport", str(rule.dport)]
    if rule.ctstate:
        w += ["-m", "conntrack", "--ctstate", ",".join(rule.ctstate)]
    if rule.not_to_group:
        w += ["-m", "devgroup", "!", "--dst-group", rule.not_to_group]
    if rule.to_local:
        w += ["-m", "addrtype", "--dst-type", "LOCAL"]
    w += [*tag, "-j", chain if rule.verdict == "jump" else _VERDICTS[rule.verdict]]
    if rule.to:
        w += ["--to-source" if rule.verdict == "snat" else "--to-destination", rule.to]
    return tuple(w)


def _line(action: str, chain: str, rule: Argv) -> str:
    """One iptables-restore line. Every value here is validated (names, addresses, numbers, the
    tag), so none holds whitespace or quotes; a value that did would be a bug, and is refused."""
    for word in rule:
        if not word or _UNSAFE_IN_RESTORE.search(word):
            raise ValueError(f"cannot place {word!r} in an iptables-restore line")
    return " ".join((action, chain, *rule))


def step(table: Table, topology: str) -> Step:
    """One table's rules of one family as one transaction, and its undo as another.

    Everything of the topology in a table is added at once or not at all, so a single probe (its
    chain, or its first rule) tells whether the table is done."""
    fam, chain = FAMILIES[table.version], chain_name(topology)
    tag = ("-m", "comment", "--comment", rule_tag(topology))
    placed = [(chain if r.in_chain else _HOOKS[r.hook], r, words(r, tag, chain)) for r in table.rules]
    body = [p for p in placed if p[1].verdict != "jump"]
    jumps = [p for p in placed if p[1].verdict == "jump"]
    hooked = [p for p in body if not p[1].in_chain]
    chains = (chain,) if table.chained else ()
    setup = [f"*{table.stage}", *(f":{c} - [0:0]" for c in chains)]
    for where, r, argv in [*body, *jumps]:
        setup += [f"# {r.why}", _line("-I", where, ("1", *argv)) if r.first else _line("-A", where, argv)]
    teardown = [f"*{table.stage}"]
    for where, r, argv in [*jumps, *hooked]:
        teardown += [f"# {r.why}", _line("-D", where, argv)]
    if chains:
        teardown += [f"# the chain {chain} and all its rules", f"-F {chain}", f"-X {chain}"]
    if chains:
        exists: Argv = (fam.iptables, "-w", "-t", table.stage, "-S", chain)
    else:
        exists = (fam.iptables, "-w", "-t", table.stage, "-C", hooked[0][0], *hooked[0][2])
    checks = [Check("firewall", f"{table.stage} chain {c} exists{fam.shown}", (fam.iptables, "-w", "-t", table.stage, "-S", c)) for c in chains]
    for where, _r, argv in [*body, *jumps]:
        shown = " ".join(_untagged(argv, tag))
        checks.append(Check("firewall", f"{table.stage} {where}: {shown}{fam.shown}", (fam.iptables, "-w", "-t", table.stage, "-C", where, *argv)))
    return Step(
        id=f"{fam.step}:{table.stage}",
        section="Firewall",
        summary=table.summary if table.version == 4 else f"IPv6 (ip6tables), as for IPv4. {table.summary}",
        commands=(C(fam.restore, "-w", "--noflush", input="\n".join([*setup, "COMMIT"]) + "\n"),),
        undo=(B(fam.undo, input="\n".join([*teardown, "COMMIT"]) + "\n"),),
        probe=(exists,),
        resource=f"{fam.iptables} chain {chain} (table {table.stage})" if chains else None,
        # A chain of this topology's name is its own when the topology is recorded as up.
        ours=(("test", "-e", record_path(topology)),) if chains else (),
        checks=tuple(checks),
    )


def _untagged(argv: Argv, tag: Argv) -> list[str]:
    """The rule's words without the topology's comment (what a person reads)."""
    i = next(i for i in range(len(argv)) if argv[i:i + len(tag)] == tag)
    return [*argv[:i], *argv[i + len(tag):]]
