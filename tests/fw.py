"""A topology's firewall as a sandbox host holds it, whichever backend wrote it (the
`firewall_backend` fixture of conftest.py chooses): its rules as text, and the packets a rule
of iptables has counted (nsgen's nft rules carry no counters: there the traffic is the proof)."""

from __future__ import annotations

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
