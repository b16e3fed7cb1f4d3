"""macvlan and ipvlan networks and outbound_addr in the plan, without root: what each step runs, what
is checked before setup, what the record keeps (tests/test_macvlan_sandbox.py and
tests/test_outbound_sandbox.py prove them on real kernel objects)."""

from __future__ import annotations

import ipaddress

import pytest

from nsgen import record
from nsgen.errors import ValidationError
from nsgen.plan import compile_plan
from nsgen.render import render
from tests.helpers import fixed_env, topology

LAN = """\
name: lan
networks:
  lan: {driver: macvlan, parent: eth0, subnet: [192.168.1.0/24, "2001:db8:1::/64"], gateway: [192.168.1.1, "2001:db8:1::1"]}
  front: {subnet: 172.30.0.0/24, outbound_addr: 198.51.100.7}
containers:
  a: {networks: [lan], dns: [1.1.1.1]}
  b: {networks: [front, lan], dns: [1.1.1.1]}
"""


def lan_topology(text: str = LAN, addresses=None):
    env = fixed_env()
    return topology(text, env._replace(addresses=lambda: addresses) if addresses is not None else env)


def argvs(plan, prefix: str) -> list[tuple[str, ...]]:
    return [c.argv for s in plan.steps if s.id.startswith(prefix) for c in s.commands]


def test_a_macvlan_interface_is_made_on_its_parent_inside_the_namespace():
    plan = compile_plan(lan_topology())
    assert argvs(plan, "macvlan:") == [
        ("ip", "link", "add", "eth0", "link", "eth0", "netns", "a", "type", "macvlan", "mode", "bridge"),
        ("ip", "link", "add", "eth1", "link", "eth0", "netns", "b", "type", "macvlan", "mode", "bridge"),
    ]
    assert [s.undo for s in plan.steps if s.id.startswith("macvlan:")] == [(), ()]  # it goes with its namespace
    # the host keeps nothing of it: the topology's devices are b's veth host end and front's bridge only
    devices = next(s for s in plan.steps if s.id == "devices")
    assert devices.undo[0].argv[3:] == (plan.topology.networks["front"].bridge, plan.topology.containers["b"].attachments[0].host_interface)
    # a's default routes go to the LAN's router, b's through the host (its first network)
    assert argvs(plan, "route:a") == [("ip", "-n", "a", "route", "replace", "default", "via", "192.168.1.1", "dev", "eth0", "src", "192.168.1.2")]
    assert argvs(plan, "route6:a") == [("ip", "-n", "a", "route", "replace", "default", "via", "2001:db8:1::1", "dev", "eth0")]
    assert argvs(plan, "route:b")[0][7] == "172.30.0.1"
    # no rule names the LAN, and the guard for free subnets leaves it out
    script = render(plan)
    assert "192.168.1.0/24" not in "".join(c.input or "" for s in plan.steps if s.id.startswith("firewall") for c in s.commands)
    assert "lan=192.168.1.0/24" not in script and "front=172.30.0.0/24" in script


def test_setup_checks_the_parent_the_driver_and_the_outbound_address_first():
    plan = compile_plan(lan_topology())
    assert [(r.any_of, r.message) for r in plan.requirements if "ip_forward" not in r.message] == [
        ((("ip", "link", "show", "eth0"),), "networks.lan.parent: interface 'eth0' does not exist on this host; nothing was changed"),
        ((("grep", "-qw", "macvlan_common_newlink", "/proc/kallsyms"), ("modprobe", "-q", "macvlan")),
         "driver macvlan: this kernel has no macvlan support (no module macvlan to load); nothing was changed"),
        ((("ip", "route", "get", "198.51.100.7", "from", "198.51.100.7"),),
         "networks.front.outbound_addr: 198.51.100.7 is not an address of this host (traffic can leave only with one of its own "
         "addresses); nothing was changed"),
    ]


def test_ipvlan_is_mode_l2_and_an_ipv6_outbound_address_is_looked_up_in_if_inet6():
    text = (LAN.replace("macvlan", "ipvlan").replace("subnet: 172.30.0.0/24, outbound_addr: 198.51.100.7",
                                                     'subnet: [172.30.0.0/24, "fd00:30::/64"], outbound_addr: "2001:db8::7"'))
    plan = compile_plan(lan_topology(text))
    assert argvs(plan, "ipvlan:a") == [("ip", "link", "add", "eth0", "link", "eth0", "netns", "a", "type", "ipvlan", "mode", "l2")]
    assert ("grep", "-q", "^20010db8000000000000000000000007 ", "/proc/net/if_inet6") in [p for r in plan.requirements for p in r.any_of]
    nat6 = next(s for s in plan.steps if s.id == "firewall6:nat").commands[0].input
    assert "-A POSTROUTING -s fd00:30::/64 ! -o " in nat6 and "-j SNAT --to-source 2001:db8::7" in nat6
    nat = next(s for s in plan.steps if s.id == "firewall:nat").commands[0].input
    assert "-s 172.30.0.0/24 ! -o " in nat and "-j MASQUERADE" in nat  # IPv4 has no outbound address: masqueraded


def test_snat_replaces_masquerade_and_teardown_removes_it():
    plan = compile_plan(lan_topology())
    step = next(s for s in plan.steps if s.id == "firewall:nat")
    bridge = plan.topology.networks["front"].bridge
    rule = f"POSTROUTING -s 172.30.0.0/24 ! -o {bridge} -m comment --comment nsgen:lan -j SNAT --to-source 198.51.100.7"
    assert f"-A {rule}" in step.commands[0].input and "MASQUERADE" not in step.commands[0].input
    assert f"-D {rule}" in step.undo[0].input
    assert any(c.probe[-4:] == ("-j", "SNAT", "--to-source", "198.51.100.7") for c in step.checks)


def test_the_host_addresses_on_the_lan_are_not_handed_out():
    t = lan_topology(addresses=[ipaddress.ip_address("192.168.1.2"), ipaddress.ip_address("2001:db8:1::2"),
                                ipaddress.ip_address("198.51.100.7")])
    assert [(a.address, a.address6) for c in t.containers.values() for a in c.attachments if a.network == "lan"] == [
        (ipaddress.ip_address("192.168.1.3"), ipaddress.ip_address("2001:db8:1::3")),
        (ipaddress.ip_address("192.168.1.4"), ipaddress.ip_address("2001:db8:1::4")),
    ]


def test_the_default_parent_is_the_default_routes_interface():
    env = fixed_env()._replace(routes=lambda: [("default", "wan0"), ("192.168.1.0/24", "wan0")])
    t = topology(LAN.replace("parent: eth0, ", ""), env)
    assert t.networks["lan"].parent == "wan0"  # and the LAN's route on it is no overlap
    six = fixed_env()._replace(routes6=lambda: [("default", "wan6")])
    assert topology(LAN.replace("parent: eth0, ", ""), six).networks["lan"].parent == "wan6"


def test_the_record_keeps_parent_and_outbound_addr():
    t = lan_topology()
    again = record.from_text(record.text(t))
    assert again == t
    assert again.networks["lan"].parent == "eth0" and again.containers["a"].attachments[0].host_interface is None
    assert again.networks["front"].outbound_addr == (ipaddress.ip_address("198.51.100.7"),)


def test_an_address_the_host_has_on_the_lan_is_refused():
    text = LAN.replace("a: {networks: [lan]", "a: {networks: {lan: {address: 192.168.1.9}}")
    with pytest.raises(ValidationError) as caught:
        lan_topology(text, addresses=[ipaddress.ip_address("192.168.1.9"), ipaddress.ip_address("198.51.100.7")])
    assert str(caught.value) == "containers.a.networks.lan.address: 192.168.1.9 is already an address of the host (on the parent's LAN)"
