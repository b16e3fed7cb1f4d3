"""check_overlay without root: the facts the overlay steps carry for `nsgen check`, and the VXLAN
device, forwarding entries and neighbour entries as iproute2 shows them (JSON captured from a real
host's part) compared with them, each difference named (the sandbox test proves it on real devices)."""

from __future__ import annotations

import copy
import json

import pytest

from nsgen import check_overlay, spread
from nsgen.check import _remote_probes
from nsgen.plan import compile_plan
from tests.helpers import EXAMPLES, example_plan, topology

TOPOLOGY = """\
name: ov
hosts:
  h1: {address: 192.0.2.11}
  h2: {address: 192.0.2.12}
networks:
  front:
    subnet: [10.50.0.0/24, 'fd00:50::/64']
    overlay: {vni: 4242}
  back: {subnet: 10.60.0.0/24}
containers:
  web: {host: h1, networks: [front, back]}
  api: {host: h2, networks: [front]}
"""

DEV, BR, MAC = "vx-front-27a92", "br-front-2d72a", "02:42:0a:32:00:03"

# `ip -j -d link show dev vx-front-27a92` on h1 after setup (counters and timers left out)
LINK = {
    "ifname": DEV, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1450, "master": BR, "address": "5e:9a:cf:bd:2a:ca",
    "linkinfo": {
        "info_kind": "vxlan",
        "info_data": {"id": 4242, "local": "192.0.2.11", "port_range": {"low": 0, "high": 0}, "port": 4789, "learning": False, "ttl": 0},
        "info_slave_kind": "bridge",
        "info_slave_data": {"state": "forwarding", "learning": False, "flood": True, "neigh_suppress": True, "isolated": False},
    },
    "ifalias": "nsgen:ov",
}
# `bridge -j fdb show dev vx-front-27a92` and `ip -j neigh show dev br-front-2d72a` on h1 after setup
FDB = [
    {"mac": MAC, "flags": [], "master": BR, "state": "static"},
    {"mac": "5e:9a:cf:bd:2a:ca", "flags": [], "master": BR, "state": "permanent"},
    {"mac": MAC, "dst": "192.0.2.12", "flags": ["self"], "state": "permanent"},
    {"mac": "00:00:00:00:00:00", "dst": "192.0.2.12", "flags": ["self"], "state": "permanent"},
]
NEIGH = [{"dst": "10.50.0.3", "lladdr": MAC, "state": ["PERMANENT"]}, {"dst": "fd00:50::3", "lladdr": MAC, "state": ["PERMANENT"]}]


def part(host: str = "h1"):
    return spread.part(topology(TOPOLOGY), host)


def overlay_checks(host: str = "h1"):
    return [c for s in compile_plan(part(host)).steps for c in s.checks if c.kind == "overlay"]


def facts(compare: str) -> dict:
    return json.loads(next(c.text for c in overlay_checks() if c.compare == compare) or "{}")


def vxlan(link: dict, returncode: int = 0, error: str = ""):
    return check_overlay.vxlan(facts("vxlan"), returncode, json.dumps([link]), error)


def entries(fdb: list, neigh: list):
    return check_overlay.entries(facts("fdb"), (0, json.dumps(fdb), ""), (0, json.dumps(neigh), ""))


def test_the_overlay_steps_carry_what_check_expects_of_the_device_and_the_entries():
    device, table = overlay_checks()
    assert device.probe == ("ip", "-j", "-d", "link", "show", "dev", DEV) and device.compare == "vxlan"
    assert json.loads(device.text or "") == {"device": DEV, "bridge": BR, "vni": 4242, "local": "192.0.2.11", "port": 4789, "mtu": 1450}
    assert table.probe == ("bridge", "-j", "fdb", "show", "dev", DEV) and table.compare == "fdb"
    assert json.loads(table.text or "") == {"device": DEV, "bridge": BR, "peers": ["192.0.2.12"], "remote": [
        {"container": "api", "mac": MAC, "dst": "192.0.2.12", "addresses": ["10.50.0.3", "fd00:50::3"]}]}
    assert check_overlay.neigh_argv(json.loads(table.text or "")) == ("ip", "-j", "neigh", "show", "dev", BR)
    assert "VNI 4242, local 192.0.2.11, port 4789, MTU 1450" in device.what


def test_a_part_without_remote_containers_expects_no_flooding_entries():
    text = TOPOLOGY.replace("api: {host: h2, networks: [front]}", "api: {host: h1, networks: [front]}")
    checks = [c for s in compile_plan(spread.part(topology(text), "h1")).steps for c in s.checks if c.kind == "overlay"]
    assert [c.compare for c in checks] == ["vxlan", "fdb"]
    assert json.loads(checks[1].text or "")["peers"] == [] and json.loads(checks[1].text or "")["remote"] == []


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_only_a_hosts_part_has_overlay_checks(name):
    plan = example_plan(name)  # of an example across hosts, its first host's part
    found = [c.compare for s in plan.steps for c in s.checks if c.kind == "overlay"]
    overlays = [net for net in plan.topology.networks.values() if net.overlay is not None]
    assert found == ["vxlan", "fdb"] * len(overlays) if plan.topology.hosts else found == []


def test_the_device_as_setup_leaves_it_passes():
    assert vxlan(LINK) == (True, "")


def broken(**changes) -> dict:
    link = copy.deepcopy(LINK)
    for path, value in changes.items():
        where = link
        *parents, key = path.split("__")
        for parent in parents:
            where = where[parent]
        where[key] = value
    return link


@pytest.mark.parametrize(("changes", "said"), [
    ({"linkinfo__info_slave_data__learning": True}, "learning is on as a bridge port"),
    ({"linkinfo__info_slave_data__neigh_suppress": False}, "neigh_suppress is off as a bridge port"),
    ({"linkinfo__info_data__learning": True}, "it learns (nolearning is off)"),
    ({"linkinfo__info_data__id": 4243}, "its VNI is 4243"),
    ({"linkinfo__info_data__local": "192.0.2.99"}, "its local address is 192.0.2.99"),
    ({"linkinfo__info_data__port": 8472}, "its UDP port is 8472"),
    ({"mtu": 1500}, "its MTU is 1500"),
    ({"flags": ["BROADCAST", "MULTICAST"]}, "it is down"),
    ({"master": "br-other"}, f"its master is br-other, not {BR}"),
])
def test_each_difference_of_the_device_is_named(changes, said):
    assert vxlan(broken(**changes)) == (False, said)


def test_an_ipv6_local_address_is_read_as_iproute2_names_it():
    text = TOPOLOGY.replace("192.0.2.11", "2001:db8::11").replace("192.0.2.12", "2001:db8::12")
    (device,) = [c for s in compile_plan(spread.part(topology(text), "h1")).steps for c in s.checks if c.compare == "vxlan"]
    link = dict(copy.deepcopy(LINK), mtu=json.loads(device.text or "")["mtu"])  # IPv6's larger header leaves less
    del link["linkinfo"]["info_data"]["local"]
    link["linkinfo"]["info_data"]["local6"] = "2001:db8:0::11"
    assert check_overlay.vxlan(json.loads(device.text or ""), 0, json.dumps([link]), "") == (True, "")
    link["linkinfo"]["info_data"]["local6"] = "2001:db8::99"
    assert check_overlay.vxlan(json.loads(device.text or ""), 0, json.dumps([link]), "") == (False, "its local address is 2001:db8::99")


def test_several_differences_are_named_in_one_line():
    ok, detail = vxlan(broken(mtu=1500, linkinfo__info_slave_data__learning=True))
    assert not ok and detail == "its MTU is 1500; learning is on as a bridge port"


def test_a_device_out_of_the_bridge_is_named():
    link = copy.deepcopy(LINK)
    del link["master"], link["linkinfo"]["info_slave_kind"], link["linkinfo"]["info_slave_data"]
    assert vxlan(link) == (False, f"its master is none, not {BR}")


def test_a_missing_device_or_another_kind_of_device_is_named():
    assert check_overlay.vxlan(facts("vxlan"), 1, "", f'Device "{DEV}" does not exist.\n') == (False, "missing")
    assert vxlan(broken(linkinfo={"info_kind": "dummy"})) == (False, "it is a dummy device, not a VXLAN device")
    assert check_overlay.vxlan(facts("vxlan"), 0, "not json", "") == (False, "its output is not JSON")


def test_the_entries_as_setup_leaves_them_pass():
    assert entries(FDB, NEIGH) == (True, "")


def test_a_missing_flooding_entry_and_one_to_no_peer_are_named():
    fdb = [e for e in FDB if e["mac"] != "00:00:00:00:00:00"] + [{"mac": "00:00:00:00:00:00", "dst": "192.0.2.13", "flags": ["self"],
                                                                   "state": "permanent"}]
    assert entries(fdb, NEIGH) == (False, "no all-zeros entry to peer 192.0.2.12; an all-zeros entry to 192.0.2.13, which is no peer")


def test_a_remote_container_missing_from_the_device_or_the_bridge_is_named():
    self_only = [e for e in FDB if not (e["mac"] == MAC and "master" in e)]
    assert entries(self_only, NEIGH) == (False, f"api's {MAC} has no static entry in bridge {BR}")
    master_only = [e for e in FDB if not (e["mac"] == MAC and "self" in e["flags"])]
    assert entries(master_only, NEIGH) == (False, f"api's {MAC} has no entry on {DEV} (dst 192.0.2.12, self permanent)")


def test_a_remote_container_behind_the_wrong_host_is_named():
    fdb = [dict(e, dst="192.0.2.99") if e["mac"] == MAC and "dst" in e else e for e in FDB]
    assert entries(fdb, NEIGH) == (False, f"api's {MAC} is on {DEV} with dst 192.0.2.99 permanent, not dst 192.0.2.12 permanent")


def test_missing_and_wrong_neighbour_entries_are_named():
    neigh = [{"dst": "10.50.0.3", "lladdr": "02:42:0a:32:00:09", "state": ["REACHABLE"]}]
    assert entries(FDB, neigh) == (False, f"neighbour 10.50.0.3 (api) on {BR} is at 02:42:0a:32:00:09 (reachable), not permanent at {MAC}; "
                                          f"no neighbour fd00:50::3 (api) on {BR}")


def test_entries_that_cannot_be_listed_are_named():
    ok, detail = check_overlay.entries(facts("fdb"), (1, "", "Error: Cannot find device\n"), (0, json.dumps(NEIGH), ""))
    assert not ok and detail == f"cannot list the forwarding entries of {DEV}: Error: Cannot find device"


def test_the_probe_pings_each_remote_address_and_looks_up_one_remote_name():
    probes = _remote_probes(part())
    assert [what for what, _test, _why in probes] == [
        "web → remote api 10.50.0.3 on h2 (front, ping)",
        "web → remote api fd00:50::3 on h2 (front, ping)",
        "web → name api gives 10.50.0.3, fd00:50::3 (front, hosts file)",
    ]
    assert all(test is not None and not why for _what, test, why in probes)


def test_the_probe_has_nothing_remote_on_a_topology_on_one_host():
    assert _remote_probes(example_plan("bridge.yaml").topology) == []
    assert _remote_probes(topology(TOPOLOGY)) == []  # the whole topology: no host's part, nothing remote
