"""macvlan and ipvlan networks on real kernel objects: containers on the host uplink's own LAN
(198.51.100.0/24, the world at 198.51.100.2 its router), reached directly at their own addresses,
without NAT, and nothing left on the host after teardown."""

from __future__ import annotations

import re

import pytest

from nsgen.sandbox.host import WORLD_LINK
from tests.drive import NSGEN, Driver, curl, echo_ok, ping, wait_for
from tests.sandbox import HOST_ADDR, WEB_ADDR, WORLD_ADDR, WORLD_NS

# The host has .1 and the gateway (the world) is .2: the first free addresses are .3 and .4.
A, B = "198.51.100.3", "198.51.100.4"


def lan(driver: str = "macvlan", parent: str | None = None) -> str:
    parent_line = f"\n    parent: {parent}" if parent else ""
    return f"""\
name: lan
networks:
  lan:
    driver: {driver}{parent_line}
    subnet: 198.51.100.0/24
    gateway: {WORLD_ADDR}
containers:
  a:
    networks: [lan]
    dns: [203.0.113.53]
    processes:
      - nsgen echo-server --port 8000
  b:
    networks: [lan]
    dns: [203.0.113.53]
"""


def kernel_has(sb, kind: str) -> bool:
    probe = f"ip link add nsgen-probe link {WORLD_LINK} type {kind} && ip link delete nsgen-probe"
    return sb.run(["sh", "-c", probe], check=False).returncode == 0


def on_the_lan(sb, driver: str) -> None:
    """The world (the LAN's router) reaches both containers at their own addresses, and they reach
    each other and the world with them: nothing is translated."""
    for ns, address in (("a", A), ("b", B)):
        kind = sb.run(["ip", "-n", ns, "-d", "link", "show", "eth0"]).stdout
        assert re.search(rf"\b{driver}\s+mode {'bridge' if driver == 'macvlan' else 'l2'}\b", kind), kind
        assert f"{address}/24" in sb.run(["ip", "-n", ns, "-br", "addr", "show", "eth0"]).stdout
        assert f"default via {WORLD_ADDR} dev eth0" in sb.run(["ip", "-n", ns, "route"]).stdout
        assert ping(sb, WORLD_NS, address)
        # the world's web server answers with the caller's address: the container's own
        assert curl(sb, ns, f"http://{WEB_ADDR}/").strip() == address
    assert ping(sb, "a", B) and ping(sb, "b", A)
    # TCP from the LAN straight to a server in a container, and from its neighbour
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", WORLD_NS, "curl", "-sf", f"http://{A}:8000/echo"]).stdout)
    assert echo_ok(curl(sb, "b", f"http://{A}:8000/echo"))
    # the known limitation of both drivers: the host does not reach its own children through the parent
    assert not ping(sb, None, A, tries=1, wait="1")


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_macvlan_containers_are_on_the_uplinks_lan(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    # the default parent: the interface of the host's default route, the sandbox's uplink
    driver = Driver(sb, tmp_path, mode, lan())
    driver.up()
    on_the_lan(sb, "macvlan")
    # nothing of it on the host: no device, no address, no route, no firewall rule, no forwarding
    up = sb.snapshot()
    for key in ("links", "addresses", "routes", "iptables", "ip6tables", "sysctl"):
        assert up[key] == before[key], key
    # a second setup finds everything done
    driver.up()
    assert sb.snapshot() == up
    driver.down()
    assert sb.snapshot() == before


def test_macvlan_with_its_parent_named(sandbox, tmp_path):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "script", lan(parent=WORLD_LINK))
    driver.up()
    on_the_lan(sb, "macvlan")
    driver.down()
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_parent_that_is_gone_at_setup_is_refused_before_anything_changes(sandbox, tmp_path, mode):
    sb = sandbox
    sb.run(["ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1"])
    driver = Driver(sb, tmp_path, mode, lan(parent="lan0"))  # rendered (or validated) while lan0 exists
    sb.run(["ip", "link", "delete", "lan0"])
    before = sb.snapshot()
    done = driver.up(check=False)
    assert done.returncode != 0
    assert "networks.lan.parent: interface 'lan0' does not exist on this host; nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_ipvlan(sandbox, tmp_path, mode):
    """Where the kernel has ipvlan: as macvlan (mode l2). Where it has not: one line before anything changes."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, lan("ipvlan"))
    if not kernel_has(sb, "ipvlan"):
        done = driver.up(check=False)
        assert done.returncode != 0
        assert "driver ipvlan: this kernel has no ipvlan support (no module ipvlan to load); nothing was changed" in done.stderr
        assert "Traceback" not in done.stderr
        assert sb.snapshot() == before
        return
    driver.up()
    on_the_lan(sb, "ipvlan")
    driver.down()
    assert sb.snapshot() == before


def test_nsgen_check_sees_a_macvlan_interface(sandbox, tmp_path):
    sb = sandbox
    driver = Driver(sb, tmp_path, "run", lan())
    driver.up()
    checked = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"a: eth0 is a macvlan interface on {WORLD_LINK}" in checked.stdout
    # replaced by a veth of the same name: check says so
    sb.run(["ip", "-n", "a", "link", "delete", "eth0"])
    sb.run(["ip", "-n", "a", "link", "add", "eth0", "type", "veth", "peer", "name", "x0"])
    checked = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert checked.returncode != 0
    assert f"a: eth0 is a macvlan interface on {WORLD_LINK}" in checked.stdout
    driver.down()
    assert HOST_ADDR in sb.run(["ip", "-br", "addr", "show", WORLD_LINK]).stdout


MIXED = f"""\
name: mixed
networks:
  lan:
    driver: macvlan
    subnet: [198.51.100.0/24, "2001:db8:100::/64"]
    gateway: [{WORLD_ADDR}, "2001:db8:100::2"]
  front:
    subnet: 172.30.0.0/24
containers:
  a:
    networks:
      lan: {{interface: {WORLD_LINK}}}   # the parent's own name, inside the namespace
    dns: [203.0.113.53]
  b:
    networks: [front, lan]
    dns: [203.0.113.53]
"""


def test_macvlan_beside_a_bridge_dual_stack_and_changed_while_up(sandbox, tmp_path):
    """A container on a bridge network first and the LAN second routes out through the host
    (masqueraded) and is still reached on the LAN; IPv6 on the LAN works as IPv4 does; a container
    added to the LAN while the topology is up joins it, and teardown leaves the host as it was."""
    sb = sandbox
    before = sb.snapshot()
    forwarding6 = ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]
    forwarding6_before = sb.run(forwarding6).stdout
    driver = Driver(sb, tmp_path, "run", MIXED)
    driver.up()
    assert curl(sb, "a", f"http://{WEB_ADDR}/").strip() == A
    assert curl(sb, "a", "http://[2001:db8:113::10]/").strip() == "2001:db8:100::3"
    assert ping(sb, WORLD_NS, "2001:db8:100::3")
    assert curl(sb, "b", f"http://{WEB_ADDR}/").strip() == HOST_ADDR  # its default route: front, masqueraded
    assert ping(sb, WORLD_NS, B) and ping(sb, "a", B)
    # IPv6 forwarding stays as it was: the host routes no IPv6 network of its own
    assert sb.run(forwarding6).stdout == forwarding6_before
    (tmp_path / "changed").mkdir()
    changed = Driver(sb, tmp_path / "changed", "run", MIXED + "  c: {networks: [lan], dns: [203.0.113.53]}\n")
    changed.up()
    assert ping(sb, WORLD_NS, "198.51.100.5") and ping(sb, "c", A)
    changed.down()
    assert sb.snapshot() == before
