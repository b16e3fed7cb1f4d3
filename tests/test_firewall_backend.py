"""host.firewall: which backend a topology's rules are written for (iptables, nftables, auto), and
the nftables table the plan loads, without root (the sandbox tests prove it on the kernel)."""

from __future__ import annotations

import pytest

from nsgen import record
from nsgen.errors import ValidationError
from nsgen.plan.firewall import nftables
from nsgen.plan.firewall.rules import Rule, Table
from tests.helpers import example_plan, fixed_env, plan_of, topology

BASE = """
name: lab
networks:
  front: {subnet: [172.20.0.0/24, "fd00:20::/64"]}
  back: {subnet: 172.21.0.0/24, internal: true}
containers:
  web: {networks: [front, back], ports: ["8080:80", "127.0.0.1:8081:81", "9000-9001:9000-9001/udp"]}
"""


def with_host(host: str) -> str:
    return BASE + f"host: {host}\n"


def env_with(*programs: str, default: str = "iptables"):
    return fixed_env()._replace(which=lambda name: f"/usr/sbin/{name}" if name in programs else None,
                                default_firewall=lambda: default)


@pytest.mark.parametrize(("programs", "chosen", "why"), [
    (("nft",), "nftables", "firewall: auto chose nftables: nft is installed and iptables is not"),
    (("nft", "iptables"), "iptables", "firewall: auto chose iptables: iptables is installed (nft too)"),
    (("iptables",), "iptables", "firewall: auto chose iptables: iptables is installed"),
    ((), "iptables", "firewall: auto chose iptables: neither nft nor iptables is installed (setup will say which package to install)"),
])
def test_auto_picks_nftables_only_where_iptables_is_missing(programs, chosen, why):
    t = topology(with_host("{firewall: auto}"), env_with(*programs))
    assert (t.host.firewall, t.host.firewall_why) == (chosen, why)


def test_the_default_is_iptables_or_what_nsgen_firewall_names():
    assert topology(BASE, env_with()).host.firewall == "iptables"
    assert topology(BASE, env_with(default="nftables")).host.firewall == "nftables"
    # the topology's own word wins over the environment's
    assert topology(with_host("{firewall: iptables}"), env_with(default="nftables")).host.firewall == "iptables"


@pytest.mark.parametrize(("text", "env", "message"), [
    (with_host("{firewall: nft}"), env_with(), "host.firewall: 'nft' must be one of iptables, nftables, auto"),
    (BASE, env_with(default="pf"), "host.firewall (from NSGEN_FIREWALL): 'pf' must be one of iptables, nftables, auto"),
])
def test_a_backend_that_is_not_one_is_one_line_naming_it(text, env, message):
    with pytest.raises(ValidationError) as err:
        topology(text, env)
    assert str(err.value).strip().endswith(message), str(err.value)


def test_the_record_keeps_the_backend_and_the_iptables_digest_is_unchanged():
    nft = topology(with_host("{firewall: nftables}"), env_with())
    back = record.from_text(record.text(nft))
    assert back.host.firewall == "nftables"
    ipt = topology(BASE, env_with())
    assert '"firewall"' not in record.text(ipt)  # the default is not written: records made before read the same
    assert record.digest(ipt) != record.digest(nft)


def test_an_nftables_plan_loads_one_table_and_runs_no_iptables_restore():
    plan = plan_of(with_host("{firewall: nftables}"), env_with())
    firewall = [s for s in plan.steps if s.section == "Firewall"]
    assert [s.id for s in firewall] == ["conntrack:unpublished", "nftables", "firewall:pass", "firewall6:pass",
                                        "route_localnet:br-front-9215b", "conntrack:published"]
    (load,) = next(s for s in firewall if s.id == "nftables").commands
    assert load.argv == ("nft", "-f", "-")
    assert "iptables-restore" not in plan.tools and "nft" in plan.tools
    text = load.input or ""
    assert text.splitlines()[1:4] == ["add table inet nsgen-lab", "delete table inet nsgen-lab", "table inet nsgen-lab {"]
    # one map a family and protocol, each port an element of it
    assert "\t\t\t8080 . 0.0.0.0/0 comment \"published port 8080:80 goes to web\" : 172.20.0.2 . 80," in text
    assert "\t\t\t8081 . 127.0.0.1 comment \"published port 127.0.0.1:8081:81 goes to web\" : 172.20.0.2 . 81" in text
    assert text.count("dnat ip to udp dport . ip daddr map @dnat_ip_udp") == 1
    assert text.count("dnat ip6 to udp dport . ip6 daddr map @dnat_ip6_udp") == 1


def test_the_iptables_plans_of_the_examples_name_no_nftables():
    plan = example_plan("bridge.yaml")
    assert plan.topology.host.firewall == "iptables" or plan.topology.host.firewall_why
    if plan.topology.host.firewall == "iptables":
        assert not any(s.id in ("nftables", "firewall:pass") for s in plan.steps)


def rule(why: str, **kw) -> Rule:
    return Rule(why, "filter", "forward", "accept", **kw)


def test_a_rule_both_families_share_is_written_once_and_one_of_a_family_names_it():
    four = Table("filter", 4, (rule("a", out_dev="br0"), rule("v4 only", out_dev="br1"), rule("b", in_dev="br0"),
                               rule("jump", in_chain=False, first=True)._replace(verdict="jump")), "")
    six = Table("filter", 6, (rule("a", out_dev="br0"), rule("b", in_dev="br0"), rule("v6 addr", dst="fd00::2"),
                              rule("jump", in_chain=False, first=True)._replace(verdict="jump")), "")
    text = nftables.table_text([four, six], "lab")
    body = [line.strip() for line in text.splitlines() if "comment \"" in line and "nsgen:lab" not in line]
    mark = f"meta mark set meta mark | {nftables.FORWARD_MARK} accept"
    assert body == [
        f'oifname "br0" {mark} comment "a"',
        f'meta nfproto ipv4 oifname "br1" {mark} comment "v4 only"',
        f'iifname "br0" {mark} comment "b"',
        f'ip6 daddr fd00::2 {mark} comment "v6 addr"',
        'jump networks comment "jump"',
    ]


def test_a_value_that_cannot_stand_between_double_quotes_is_refused():
    bad = Table("filter", 4, (rule('say "hi"', out_dev="br0"),), "")
    with pytest.raises(ValueError, match="between double quotes"):
        nftables.table_text([bad], "lab")
