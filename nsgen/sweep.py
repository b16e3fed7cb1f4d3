"""Sweep finds what a topology left on this host when there is no record of it, by its marks
alone, and plans the removal of exactly that.

Without `/run/nsgen/<name>/` (an admin's `rm`, a cleaner of /run) a teardown cannot know from a
record what is up, and the topology file may have changed since. What nsgen makes still says
whose it is: namespaces whose lo carries the alias `nsgen:<name>`, host devices in the topology's
device group with that alias, firewall rules with the comment `nsgen:<name>` and the chains
`NSGEN-<name>` (among them the FORWARD rule that lets the nftables table's marked packets through),
the nftables table `inet nsgen-<name>` that carries the comment `nsgen:<name>`, resolv.conf and
hosts files and the sysctl.d file that begin with nsgen's line for the topology, and its entry
among the users of forwarding. The plan returned undoes those, in the order a teardown would,
and nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NamedTuple

from nsgen.builtins import Host, in_group, marked_namespaces
from nsgen.names import (
    FORWARD6_DIR,
    FORWARD_DIR,
    LOCK_FILE,
    NETNS_ETC,
    STATE_ROOT,
    SYSCTL_DIR,
    chain_name,
    device_group,
    mark,
    nft_table,
    resolv_mark,
    rule_tag,
    state_dir,
)
from nsgen.plan import Command, Step, restore_forwarding

TABLES = ("raw", "filter", "nat")  # in setup order: a teardown removes published ports first, the loopback guard last


class SweepPlan(NamedTuple):
    """What a teardown needs of a plan, for what was found on the host."""

    name: str
    steps: tuple[Step, ...]
    tools: tuple[str, ...]
    found: tuple[str, ...]  # what was found, for a person

    @property
    def state_dir(self) -> str:
        return state_dir(self.name)

    @property
    def lock_file(self) -> str:
        return LOCK_FILE


def _saved(table: str, program: str = "iptables-save") -> list[str]:
    try:
        done = subprocess.run((program, "-t", table), capture_output=True, text=True)
    except FileNotFoundError:
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


def _unquoted(line: str, tag: str) -> str:
    return line.replace(f'"{tag}"', tag)


def firewall(name: str, program: str = "iptables-save") -> tuple[list[tuple[str, str]], list[str], list[int]]:
    """(table, restore text) of the rules and chains of the topology (in iptables-save's or
    ip6tables-save's tables), what they are, and the UDP ports it published."""
    tag, chain = rule_tag(name), chain_name(name)
    texts, found, udp = [], [], []
    for table in TABLES:
        rules, inside = [], False
        for line in _saved(table, program):
            words = _unquoted(line, tag).split()
            if words[:1] != ["-A"]:
                continue
            ours = "--comment" in words[:-1] and words[words.index("--comment") + 1] == tag
            if ours and words[1] != chain:
                rules.append("-D " + " ".join(words[1:]))
            inside = inside or (ours and words[1] == chain)
            if ours and "DNAT" in words and "-p" in words[:-1] and words[words.index("-p") + 1] == "udp" and "--dport" in words[:-1]:
                udp.append(int(words[words.index("--dport") + 1]))
        # a chain of the topology's name is its own when it holds one of its rules or one jumps to it
        has_chain = inside or any(r.endswith(f"-j {chain}") for r in rules)
        body = rules + ([f"-F {chain}", f"-X {chain}"] if has_chain else [])
        if body:
            texts.append((table, "\n".join([f"*{table}", *body, "COMMIT"]) + "\n"))
            six = " (IPv6)" if program.startswith("ip6") else ""
            found.append(f"{len(rules)} rule(s){' and chain ' + chain if has_chain else ''} in table {table}{six}")
    return texts, found, sorted(set(udp))


def nft(name: str) -> tuple[bool, list[int]]:
    """Whether the topology's nftables table (inet nsgen-<name>, with its comment nsgen:<name>) is
    here, and the UDP ports it publishes (the keys of its maps dnat_ip_udp and dnat_ip6_udp). A
    table of that name without the comment is not the topology's: it is not found."""
    from nsgen.builtins import nft_ours
    from nsgen.check_nft import element, parse

    if not shutil.which("nft") or not nft_ours(nft_table(name), rule_tag(name)):
        return False, []
    try:
        done = subprocess.run(("nft", "-j", "list", "table", "inet", nft_table(name)), capture_output=True, text=True)
        maps = parse(done.stdout).collections if done.returncode == 0 else {}
    except (ValueError, KeyError, StopIteration, AttributeError):
        maps = {}
    udp = {element(entry, True)[0][0] for m in ("dnat_ip_udp", "dnat_ip6_udp") for entry in maps.get(m, {}).get("elem", [])}
    return True, sorted(int(port) for port in udp if port.isdigit())


def _files(name: str) -> list[tuple[str, str]]:
    """(file, the first words that make it nsgen's) of the files the topology wrote."""
    files = []
    try:
        folders = sorted(os.listdir(NETNS_ETC))
    except OSError:
        folders = []
    for folder in folders:
        for conf in (f"{NETNS_ETC}/{folder}/hosts", f"{NETNS_ETC}/{folder}/resolv.conf"):
            try:
                with open(conf) as f:
                    if f.readline().startswith(resolv_mark(name)):
                        files.append((conf, resolv_mark(name)))
            except OSError:
                continue
    conf = f"{SYSCTL_DIR}/60-nsgen-{name}.conf"
    if os.path.exists(conf):
        files.append((conf, f"# Written by nsgen for topology {name}."))
    return files


def plan(name: str) -> SweepPlan:
    group, host = device_group(name), Host()
    namespaces = marked_namespaces(name)
    links = sorted(n for n, link in (in_group(host.links(), group) or {}).items() if link.alias == mark(name))
    tables, rules, udp = firewall(name)
    tables6, rules6, udp6 = firewall(name, "ip6tables-save") if shutil.which("ip6tables-save") else ([], [], [])
    in_nft, udp_nft = nft(name)
    rules, udp = rules + rules6, sorted({*udp, *udp6, *udp_nft})
    files = _files(name)
    me, me6 = f"{FORWARD_DIR}/users/{name}", f"{FORWARD6_DIR}/users/{name}"
    steps: list[Step] = []

    def add(sid: str, summary: str, *undo: Command) -> None:
        steps.append(Step(id=sid, section="Found", summary=summary, commands=(), undo=undo))

    # Listed in setup order: a teardown undoes them newest first.
    add("ip_forward:restore", "Put net.ipv4.ip_forward back when no topology needs forwarding any more.", *restore_forwarding(group))
    add("ipv6_forwarding:restore", "Put net.ipv6.conf.all.forwarding back when no topology needs IPv6 forwarding any more.",
        *restore_forwarding(group, 6))
    for ns in namespaces:
        add(f"netns:{ns}", f"Delete namespace {ns} (its lo carries {mark(name)}).", Command(("ip", "netns", "delete", ns)))
    if links:
        add("devices", f"Delete the links of device group {group} that carry {mark(name)}: {', '.join(links)}.",
            Command(("delete_links", group, name), builtin=True))
    if namespaces:
        add("reap", f"Stop the processes in {', '.join(namespaces)}.", Command(("stop_processes", *namespaces), builtin=True))
    if os.path.exists(me):
        add("ip_forward", "No longer count this topology among the users of forwarding.", Command(("rm", "-f", me)))
    if os.path.exists(me6):
        add("ipv6_forwarding", "No longer count this topology among the users of IPv6 forwarding.", Command(("rm", "-f", me6)))
    if udp:  # after the rules that publish them are gone
        add("conntrack", f"Forget the connection-tracking entries of UDP ports {', '.join(map(str, udp))}.",
            Command(("conntrack_flush", "udp", *map(str, udp)), builtin=True))
    for table, text in tables:
        add(f"firewall:{table}", f"Remove the {table} rules tagged {rule_tag(name)}.", Command(("iptables_undo",), input=text, builtin=True))
    for table, text in tables6:
        add(f"firewall6:{table}", f"Remove the {table} rules (IPv6) tagged {rule_tag(name)}.",
            Command(("ip6tables_undo",), input=text, builtin=True))
    if in_nft:  # made after the iptables rules (FORWARD's pass rule among them): undone before them
        add("nftables", f"Delete the nftables table inet {nft_table(name)} (it carries the comment {rule_tag(name)}).",
            Command(("nft_undo", nft_table(name), rule_tag(name)), builtin=True))
    for conf, head in files:
        folder = os.path.dirname(conf)
        add(f"file:{conf}", f"Remove {conf}, which nsgen wrote for topology {name}.",
            Command(("rm", "-f", conf), only_if=(("grep", "-qF", head, conf),)),
            *([Command(("rmdir", "--ignore-fail-on-non-empty", folder))] if folder.startswith(NETNS_ETC + "/") else []))
    sdir = state_dir(name)
    steps.insert(0, Step(id="state", section="Found", summary=f"Remove what is left of {sdir} (when it is root's), and the state root if empty.",
                         commands=(), final=True,
                         undo=(Command(("rm", "-rf", sdir), only_if=(("state_ours", name),)),
                               Command(("rmdir", "--ignore-fail-on-non-empty", STATE_ROOT), only_if=(("test", "-d", STATE_ROOT),)))))
    tools = (("conntrack",) * bool(udp) + ("ip", "iptables", "iptables-restore") + ("ip6tables", "ip6tables-restore") * bool(tables6)
             + ("nft",) * in_nft)
    found = [f"namespace {ns}" for ns in namespaces] + [f"link {n}" for n in links] + rules
    found += [f"nftables table inet {nft_table(name)}"] * in_nft + [f"file {c}" for c, _ in files]
    if os.path.exists(me):
        found.append(f"its entry among the users of forwarding ({me})")
    if os.path.exists(me6):
        found.append(f"its entry among the users of IPv6 forwarding ({me6})")
    return SweepPlan(name, tuple(steps), tools, tuple(found))
