"""check_nft without root: the table the nftables backend's plan expects, nft's JSON read back as the
plan writes it, and each difference as one line (the sandbox test proves it on a real table)."""

from __future__ import annotations

import json
import subprocess

from nsgen import check_nft
from nsgen.check import forward_drops
from nsgen.plan import compile_plan
from tests.helpers import EXAMPLES, topology

NFT = "host:\n  firewall: nftables\n"


def nft_plan(text: str):
    return compile_plan(topology(NFT + text))


def table_check(plan):
    (step,) = [s for s in plan.steps if s.id == "nftables"]
    return step.checks


def test_the_plan_expects_each_chain_rule_and_element_it_loads():
    plan = nft_plan((EXAMPLES / "bridge.yaml").read_text())
    table, *passes = table_check(plan)
    assert table.probe == ("nft", "-j", "list", "table", "inet", "nsgen-bridge-lab") and table.compare == "nft"
    assert [(c.probe[0], c.compare) for c in passes] == [("iptables", "where_forward_drops")]  # IPv4 only
    want = json.loads(table.text)
    assert (want["table"], want["comment"]) == ("nsgen-bridge-lab", "nsgen:bridge-lab")
    assert [(c["name"], c.get("hook"), c.get("prio"), len(c["rules"])) for c in want["chains"]] == [
        ("networks", None, None, 8), ("published_ports", None, None, 1), ("raw_prerouting", "prerouting", -300, 1),
        ("filter_forward", "forward", -10, 1), ("nat_prerouting", "prerouting", -100, 1), ("nat_output", "output", -100, 1),
        ("nat_postrouting", "postrouting", 100, 3)]
    assert want["chains"][0]["rules"][:2] == ["replies into network front", "connections to published ports (ip)"]
    assert want["collections"] == [
        {"name": "dnat_ip_tcp", "kind": "map", "type": ["inet_service", "ipv4_addr"], "map": ["ipv4_addr", "inet_service"],
         "flags": ["interval"], "elements": [{"key": ["8080", "0.0.0.0/0"], "value": ["172.20.0.2", "8000"],
                                              "comment": "published port 8080:8000 goes to web"}]},
        {"name": "published_ip", "kind": "set", "type": ["ifname", "ipv4_addr", "inet_proto", "inet_service"], "flags": [],
         "elements": [{"key": ["br-front", "172.20.0.2", "tcp", "8000"], "value": None,
                       "comment": "connections to web's published port 8080:8000"}]}]


PLAN = json.dumps({
    "table": "nsgen-t", "comment": "nsgen:t",
    "chains": [{"name": "networks", "rules": ["a", "b", "c"]},
               {"name": "nat_prerouting", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept", "rules": ["j"]}],
    "collections": [{"name": "dnat_ip6_tcp", "kind": "map", "type": ["inet_service", "ipv6_addr"], "map": ["ipv6_addr", "inet_service"],
                     "flags": ["interval"], "elements": [
                         {"key": ["8080", "::/0"], "value": ["fd00::2", "80"], "comment": "p8080"},
                         {"key": ["8081", "2001:db8::1"], "value": ["fd00::2", "81"], "comment": "p8081"}]}]})


def listing(rules: list[tuple[str, str | None]], elements: list, prio: int = -100) -> str:
    """nft -j list table, as nft 1.0.6 writes it (no comment on the table)."""
    items: list[dict] = [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "nsgen-t", "handle": 1}},
                         {"map": {"family": "inet", "name": "dnat_ip6_tcp", "table": "nsgen-t", "type": ["inet_service", "ipv6_addr"],
                                  "map": "ipv6_addr . inet_service", "flags": ["interval"], "elem": elements}},
                         {"chain": {"family": "inet", "table": "nsgen-t", "name": "networks", "handle": 2}},
                         {"chain": {"family": "inet", "table": "nsgen-t", "name": "nat_prerouting", "handle": 3, "type": "nat",
                                    "hook": "prerouting", "prio": prio, "policy": "accept"}}]
    for handle, (chain, comment) in enumerate(rules, 10):
        items.append({"rule": {"family": "inet", "table": "nsgen-t", "chain": chain, "handle": handle, "expr": [],
                               **({"comment": comment} if comment else {})}})
    return json.dumps({"nftables": items})


def elem(key: list, value: list, comment: str | None) -> list:
    val = {"concat": key}
    return [{"elem": {"val": val, "comment": comment}} if comment else val, {"concat": value}]


ANY = {"prefix": {"addr": "::", "len": 0}}
GOOD = [elem([8080, ANY], ["fd00::2", 80], "p8080"),
        elem([{"range": [8081, 8081]}, {"prefix": {"addr": "2001:0db8:0:0::1", "len": 128}}], ["fd00:0::2", 81], "p8081")]
RULES = [("networks", "a"), ("networks", "b"), ("networks", "c"), ("nat_prerouting", "j")]


def failed(found: list[tuple[bool, str]]) -> list[str]:
    return [what for ok, what in found if not ok]


def test_nfts_json_reads_back_as_the_plan_writes_it():
    """A prefix of one address is the address, a range of one port the port, addresses canonical."""
    found = check_nft.compare(PLAN, 0, listing(RULES, GOOD), "")
    assert failed(found) == []
    assert [what for _ok, what in found] == [
        "nftables: table inet nsgen-t is there", "nftables: chain networks (a regular chain)", "nftables: chain networks: a",
        "nftables: chain networks: b", "nftables: chain networks: c",
        "nftables: base chain nat_prerouting (type nat, hook prerouting, priority -100, policy accept)", "nftables: chain nat_prerouting: j",
        "nftables: map dnat_ip6_tcp holds 8080 . ::/0 : fd00::2 . 80 (p8080)", "nftables: map dnat_ip6_tcp holds 8081 . 2001:db8::1 : fd00::2 . 81 (p8081)"]


def test_each_difference_is_one_line():
    rules = [("networks", "b"), ("networks", "a"), ("networks", None), ("nat_prerouting", "j"), ("nat_prerouting", "j")]
    elements = [elem([8080, ANY], ["fd00::3", 80], "p8080"), elem([9090, ANY], ["fd00::2", 90], None)]
    assert failed(check_nft.compare(PLAN, 0, listing(rules, elements, prio=0), "")) == [
        'nftables: chain networks lacks its rule "c"',
        'nftables: chain networks holds a rule the plan does not: "(a rule without a comment, handle 12)"',
        'nftables: chain networks holds its rules in another order than the plan: "b" where the plan has "a" (rule 1)',
        "nftables: chain nat_prerouting is type nat, hook prerouting, priority 0, policy accept; "
        "the plan's is type nat, hook prerouting, priority -100, policy accept",
        'nftables: chain nat_prerouting holds a rule the plan does not: "j"',
        "nftables: map dnat_ip6_tcp maps 8080 . ::/0 to fd00::3 . 80, the plan to fd00::2 . 80 (p8080)",
        "nftables: map dnat_ip6_tcp lacks 8081 . 2001:db8::1 : fd00::2 . 81 (p8081)",
        "nftables: map dnat_ip6_tcp holds 9090 . ::/0 : fd00::2 . 90, which the plan does not"]
    assert failed(check_nft.compare(PLAN, 0, listing([("nat_prerouting", "j")], []), "")) == [
        "nftables: chain networks has 0 rules, the plan has 3 (flushed?)", "nftables: map dnat_ip6_tcp has 0 elements, the plan has 2 (flushed?)"]
    gone = "Error: No such file or directory\nlist table inet nsgen-t\n                 ^^^^^^^\n"
    assert check_nft.compare(PLAN, 1, "", gone) == [(False, "nftables: table inet nsgen-t is missing")]
    assert check_nft.compare(PLAN, 127, "", "nft: command not found") == [
        (False, "nftables: table inet nsgen-t cannot be listed: nft: command not found")]


def test_the_forward_pass_rule_is_needed_only_where_forward_can_drop():
    def reader(stdout: str):
        return lambda argv: subprocess.CompletedProcess(argv, 0, stdout, "")

    assert forward_drops("iptables", reader("-P FORWARD ACCEPT\n")) == ""
    assert forward_drops("iptables", reader("-P FORWARD DROP\n")) == "policy DROP"
    assert forward_drops("ip6tables", reader("-P FORWARD ACCEPT\n-A FORWARD -j DOCKER-USER\n")) == "1 rule(s)"
    assert forward_drops("iptables", lambda argv: subprocess.CompletedProcess(argv, 127, "", "not found")) == ""

