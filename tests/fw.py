"""A topology's firewall as a sandbox host holds it, whichever backend wrote it (the
`firewall_backend` fixture of conftest.py chooses): its rules as text, and the packets a rule
of iptables has counted (nsgen's nft rules carry no counters: there the traffic is the proof)."""

from __future__ import annotations

import json
import re

from nsgen.names import chain_name, nft_table, rule_tag
from tests.sandbox import Sandbox


def nft_rules(sb: Sandbox, topology: str) -> str:
    """`nft list table inet nsgen-<topology>`, or "" where there is no such table."""
    done = sb.run(["nft", "list", "table", "inet", nft_table(topology)], check=False)
    return done.stdout if done.returncode == 0 else ""


def iptables_rules(sb: Sandbox, topology: str) -> list[str]:
    """The lines of iptables-save and ip6tables-save that are the topology's (its tag or its chain)."""
    tag, chain = rule_tag(topology), chain_name(topology)
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        lines += [line for line in sb.run([tool]).stdout.splitlines() if tag in line or re.search(rf"(^:| ){re.escape(chain)}( |$)", line)]
    return lines


def rules(sb: Sandbox, topology: str) -> str:
    """Every rule of the topology the host holds, in either backend ("" when it has none)."""
    return "\n".join([*iptables_rules(sb, topology), *nft_rules(sb, topology).splitlines()])


def iptables_hits(sb: Sandbox, table: str, chain: str, target: str, tool: str = "iptables") -> int:
    """The packets the rules of `chain` with `target` (MASQUERADE, DNAT, ...) have counted."""
    listed = sb.run([tool, "-t", table, "-L", chain, "-v", "-n", "-x"]).stdout
    return sum(int(line.split()[0]) for line in listed.splitlines()[2:] if line.split()[2:3] == [target])


def nft_witness(sb: Sandbox, name: str, hook: str, priority: int, match: str) -> None:
    """A table of the test's own, inet NAME, whose one base chain counts the packets that `match`
    at `hook` and `priority` (it accepts them: what comes after decides). Two of them around a
    priority prove what happened there: counted before it, gone after it."""
    sb.run(["nft", "-f", "-"], input=f"table inet {name} {{\n\tchain seen {{\n\t\ttype filter hook {hook} priority {priority}; policy accept;\n"
                                      f"\t\t{match} counter\n\t}}\n}}\n")


def nft_counted(sb: Sandbox, name: str) -> int:
    """The packets the witness `name` has counted."""
    listed = json.loads(sb.run(["nft", "-j", "list", "table", "inet", name]).stdout)["nftables"]
    return sum(e["counter"]["packets"] for item in listed for e in item.get("rule", {}).get("expr", []) if "counter" in e)


def nft_take_rule(sb: Sandbox, topology: str, chain: str, needle: str) -> str:
    """Delete the first rule of the topology's nft chain that holds `needle` (as a person would,
    by its handle); its text, to put back with nft_put_back."""
    table = nft_table(topology)
    for line in sb.run(["nft", "-a", "list", "chain", "inet", table, chain]).stdout.splitlines():
        text, _, handle = line.strip().rpartition(" # handle ")
        if needle in text and handle.isdigit():
            sb.run(["nft", "delete", "rule", "inet", table, chain, "handle", handle])
            return text
    raise AssertionError(f"no rule with {needle!r} in chain {chain} of table inet {table}")


def nft_put_back(sb: Sandbox, topology: str, chain: str, text: str) -> None:
    """Put a rule back at the top of the topology's nft chain."""
    sb.run(["nft", "insert", "rule", "inet", nft_table(topology), chain, text])
