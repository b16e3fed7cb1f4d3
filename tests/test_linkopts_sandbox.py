"""Link options on real kernel objects: a network's MTU (jumbo frames end to end, one byte more
refused), a container interface's fixed MAC address (what its neighbours learn), static routes
(through a container acting as a router, and through the network's gateway), and a network that
routes out but gives no default route."""

from __future__ import annotations

import json

import pytest

from tests.drive import NSGEN, Driver, curl, example_text, ping
from tests.sandbox import HOST_ADDR, HOST_ADDR6, WEB_ADDR, WORLD_ADDR, WORLD_NS

JUMBO = example_text("jumbo.yaml")
NAS, NAS6, NAS_MGMT, CLIENT, MONITOR = "172.28.0.10", "fd00:28::10", "172.29.0.2", "172.28.0.2", "172.29.0.3"


def link(sb, ns: str | None, name: str) -> dict:
    """`ip -j link show NAME` (on the host, or inside ns)."""
    argv = ["ip", *(["-n", ns] if ns else []), "-j", "link", "show", name]
    return json.loads(sb.run(argv).stdout)[0]


def fits(sb, ns: str, address: str, size: int) -> bool:
    """Whether a ping of `size` bytes of payload, not to be fragmented, is answered."""
    argv = ["ip", "netns", "exec", ns, "ping", "-M", "do", "-s", str(size), "-c", "1", "-W", "2", address]
    return any(sb.run(argv, check=False).returncode == 0 for _ in range(3))


def routes(sb, ns: str, *args: str) -> list[dict]:
    return json.loads(sb.run(["ip", "-n", ns, "-j", *args, "route", "show"]).stdout)


def check_passes(sb, driver: Driver) -> str:
    done = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_jumbo_example(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, JUMBO)
    driver.up()
    bridge = "br-storag-a3f9f"

    # MTU 9000 on the bridge, every host end and every container end of storage; mgmt keeps the kernel's
    assert link(sb, None, bridge)["mtu"] == 9000
    ports = json.loads(sb.run(["ip", "-j", "link", "show", "master", bridge]).stdout)
    assert sorted(p["mtu"] for p in ports) == [9000, 9000]
    assert link(sb, "nas", "eth1")["mtu"] == 9000 and link(sb, "client", "eth0")["mtu"] == 9000
    assert link(sb, "nas", "eth0")["mtu"] == 1500 and link(sb, None, "br-mgmt-7160c")["mtu"] == 1500
    # full-size frames cross the bridge unfragmented, in both families; one byte more does not fit
    assert fits(sb, "client", NAS, 9000 - 28)
    assert not fits(sb, "client", NAS, 9000 - 28 + 1)
    assert fits(sb, "client", NAS6, 9000 - 48)
    assert not fits(sb, "client", NAS6, 9000 - 48 + 1)

    # nas's MACs are the ones given (lower case), and its neighbours learn them
    assert link(sb, "nas", "eth1")["address"] == "02:42:ac:1c:00:0a"
    assert link(sb, "nas", "eth0")["address"] == "02:42:ac:1d:00:0a"
    assert ping(sb, None, NAS) and ping(sb, "client", NAS)
    assert "lladdr 02:42:ac:1c:00:0a" in sb.run(["ip", "neigh", "show", NAS, "dev", bridge]).stdout
    assert "lladdr 02:42:ac:1c:00:0a" in sb.run(["ip", "-n", "client", "neigh", "show", NAS]).stdout

    # nas is on [mgmt (no_default_route), storage]: its default routes go through storage
    assert [(r["gateway"], r["dev"]) for r in routes(sb, "nas", "-4") if r["dst"] == "default"] == [("172.28.0.1", "eth1")]
    assert [(r["gateway"], r["dev"]) for r in routes(sb, "nas", "-6") if r["dst"] == "default"] == [("fd00:28::1", "eth1")]
    # monitor is only on mgmt: no default route, yet its gateway and its neighbours answer
    assert [r for r in routes(sb, "monitor", "-4") if r["dst"] == "default"] == []
    assert ping(sb, "monitor", "172.29.0.1") and ping(sb, "monitor", NAS_MGMT) and ping(sb, "nas", MONITOR)
    assert sb.run(["ip", "netns", "exec", "monitor", "ping", "-c", "1", "-W", "1", HOST_ADDR], check=False).returncode != 0
    # mgmt's static route through its gateway: the one range it reaches outside, masqueraded as before
    assert any(r["dst"] == "203.0.113.0/24" and r["gateway"] == "172.29.0.1" and r["dev"] == "eth0" for r in routes(sb, "monitor", "-4"))
    assert curl(sb, "monitor", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    assert curl(sb, "nas", f"http://{WEB_ADDR}/").strip() == HOST_ADDR  # through mgmt's route, the more specific one
    assert curl(sb, "client", f"http://{WEB_ADDR}/").strip() == HOST_ADDR  # through storage's default route

    out = check_passes(sb, driver)
    assert f"PASS  link       bridge {bridge} has MTU 9000" in out
    assert "PASS  link       nas: eth1 has MAC address 02:42:ac:1c:00:0a" in out
    assert "PASS  route      monitor: 203.0.113.0/24 via 172.29.0.1 dev eth0" in out
    assert "PASS  route      nas: default via 172.28.0.1 dev eth1" in out
    assert "PASS  route      monitor: no default route" in out
    # drift is seen: another MTU, another MAC, a route gone
    sb.run(["ip", "-n", "client", "link", "set", "eth0", "mtu", "1500"])
    sb.run(["ip", "-n", "nas", "link", "set", "eth1", "address", "02:42:ac:1c:00:0b"])
    sb.run(["ip", "-n", "monitor", "route", "del", "203.0.113.0/24"])
    sb.run(["ip", "-n", "monitor", "route", "add", "default", "via", "172.29.0.1"])
    done = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert done.returncode == 1
    assert "FAIL  link       client: eth0 has MTU 9000: its MTU is 1500" in done.stdout
    assert "FAIL  link       nas: eth1 has MAC address 02:42:ac:1c:00:0a: its MAC address is 02:42:ac:1c:00:0b" in done.stdout
    assert "FAIL  route      monitor: 203.0.113.0/24 via 172.29.0.1 dev eth0: no route there" in done.stdout
    assert "FAIL  route      monitor: no default route: it has one: via 172.29.0.1 dev eth0" in done.stdout

    driver.down()
    driver.down()
    assert sb.snapshot() == before


ROUTED = """
name: routes
networks:
  front:
    subnet: [10.88.0.0/24, "fd00:88::/64"]
    mtu: 9002
    routes:
      - {destination: 10.89.0.0/16, gateway: 10.88.0.2}   # wider than back's subnet
      - {destination: "fd00:89::/64", gateway: "fd00:88::2"}
  back:
    driver: bridge
    subnet: [10.89.0.0/24, "fd00:89::/64"]
    internal: true
    routes:
      - {destination: 10.88.0.0/24, gateway: 10.89.0.2}
      - {destination: "fd00:88::/64", gateway: "fd00:89::2"}
containers:
  router:
    networks:
      front: {address: [10.88.0.2, "fd00:88::2"], mac_address: "02:00:00:00:88:02"}
      back: {address: [10.89.0.2, "fd00:89::2"], mac_address: "02:00:00:00:89:02"}
    sysctls: {net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1}   # a router: it forwards both families
  client:
    networks: [front]
  server:
    networks: [back]
"""


@pytest.mark.parametrize("mode", ["script", "run"])
def test_routes_through_a_router_container(sandbox, tmp_path, mode):
    """Each network's routes lead to the other network through the container on both (a router with
    forwarding on in its namespace); the router itself takes neither (it is on both networks)."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, ROUTED)
    driver.up()
    assert [r["dst"] for r in routes(sb, "router", "-4") if r.get("gateway") in ("10.88.0.2", "10.89.0.2")] == []
    assert any(r["dst"] == "10.89.0.0/16" and r["gateway"] == "10.88.0.2" and r["dev"] == "eth0" for r in routes(sb, "client", "-4"))
    assert any(r["dst"] == "fd00:88::/64" and r["gateway"] == "fd00:89::2" and r["dev"] == "eth0" for r in routes(sb, "server", "-6"))
    # the router forwards IPv6 (its own sysctls): it has a link-local address to ask for neighbours from
    assert "fe80::2/64" in sb.run(["ip", "-n", "router", "-6", "addr", "show", "dev", "eth0"]).stdout
    assert "inet6 fe80" not in sb.run(["ip", "-n", "client", "-6", "addr", "show", "dev", "eth0"]).stdout
    assert ping(sb, "client", "10.89.0.3") and ping(sb, "server", "10.88.0.3")
    assert ping(sb, "client", "fd00:89::3") and ping(sb, "server", "fd00:88::3")
    # without forwarding in the router, nothing crosses
    sb.run(["ip", "netns", "exec", "router", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"])
    assert sb.run(["ip", "netns", "exec", "client", "ping", "-c", "1", "-W", "1", "10.89.0.3"], check=False).returncode != 0
    sb.run(["ip", "netns", "exec", "router", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
    # the server sees the client's own address (routed, not masqueraded): its neighbour is the router's MAC
    assert "lladdr 02:00:00:00:89:02" in sb.run(["ip", "-n", "server", "neigh", "show", "10.89.0.2"]).stdout
    assert "lladdr 02:00:00:00:88:02" in sb.run(["ip", "-n", "client", "neigh", "show", "10.88.0.2"]).stdout
    # the client still goes out through its own default route, the server (internal) does not
    assert curl(sb, "client", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    assert sb.run(["ip", "netns", "exec", "server", "ping", "-c", "1", "-W", "1", WEB_ADDR], check=False).returncode != 0
    assert sb.run(["ip", "netns", "exec", WORLD_NS, "ping", "-c", "1", "-W", "1", "10.89.0.3"], check=False).returncode != 0
    check_passes(sb, driver)
    driver.down()
    assert sb.snapshot() == before


TUTORIAL = example_text("tutorial.yaml")


def test_veth_network_mtu_and_mac_and_a_change_while_up(sandbox, tmp_path):
    """The veth driver: the MTU on both ends (the host end holds the gateway), the MAC on the
    container's end; `nsgen run` with another MTU and MAC brings the host to them."""
    sb = sandbox
    before = sb.snapshot()
    text = TUTORIAL.replace("    masquerade: true ", "    mtu: 9000\n    masquerade: true ").replace(
        "        host_interface: vethc1 ", '        host_interface: vethc1\n        mac_address: "02:00:5E:10:00:01" ')
    driver = Driver(sb, tmp_path, "run", text)
    driver.up()
    assert link(sb, None, "vethc1")["mtu"] == 9000 and link(sb, "container-1", "veth1")["mtu"] == 9000
    assert link(sb, "container-1", "veth1")["address"] == "02:00:5e:10:00:01"
    sb.run(["ip", "netns", "exec", "container-1", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(9000 - 28), "172.18.0.1"])
    assert "lladdr 02:00:5e:10:00:01" in sb.run(["ip", "neigh", "show", "172.18.0.2", "dev", "vethc1"]).stdout
    assert sb.run(["ip", "netns", "exec", "container-1", "ping", "-c", "1", "-W", "1", "-M", "do", "-s", str(9000 - 27), "172.18.0.1"],
                  check=False).returncode != 0
    check_passes(sb, driver)

    driver.topology.write_text(text.replace("mtu: 9000", "mtu: 1400").replace("02:00:5E:10:00:01", "02:00:5e:10:00:02"))
    driver.up()
    assert link(sb, None, "vethc1")["mtu"] == 1400 and link(sb, "container-1", "veth1")["mtu"] == 1400
    assert link(sb, "container-1", "veth1")["address"] == "02:00:5e:10:00:02"
    assert fits(sb, "container-1", "172.18.0.1", 1400 - 28) and not fits(sb, "container-1", "172.18.0.1", 1400 - 27)
    check_passes(sb, driver)
    driver.down()
    assert sb.snapshot() == before


IPV6_ROUTES = """
name: six
networks:
  lan:
    subnet: "fd00:70::/64"
    mtu: 1280
    no_default_route: true
    routes:
      - {destination: "2001:db8:113::/64", gateway: "fd00:70::1"}
  out:
    subnet: [10.71.0.0/24, "fd00:71::/64"]
containers:
  only:
    networks: [lan]
  both:
    networks: [lan, out]
"""


def test_ipv6_only_network_with_a_route_and_no_default_route(sandbox, tmp_path):
    """An IPv6-only network: its route through the gateway reaches the world's IPv6 web server; a
    container only on it has no default route; one also on another network takes its default
    routes (both families) there."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "batch", IPV6_ROUTES)
    driver.up()
    assert [r for r in routes(sb, "only", "-6") if r["dst"] == "default"] == []
    assert any(r["dst"] == "2001:db8:113::/64" and r["gateway"] == "fd00:70::1" for r in routes(sb, "only", "-6"))
    assert curl(sb, "only", "http://[2001:db8:113::10]/").strip() == HOST_ADDR6  # masqueraded, as before
    assert sb.run(["ip", "netns", "exec", "only", "ping", "-c", "1", "-W", "1", "2001:db8:100::2"], check=False).returncode != 0
    assert [(r["gateway"], r["dev"]) for r in routes(sb, "both", "-6") if r["dst"] == "default"] == [("fd00:71::1", "eth1")]
    assert [(r["gateway"], r["dev"]) for r in routes(sb, "both", "-4") if r["dst"] == "default"] == [("10.71.0.1", "eth1")]
    assert ping(sb, "only", "fd00:70::1") and ping(sb, "only", "fd00:70::3")
    assert link(sb, "only", "eth0")["mtu"] == 1280
    check_passes(sb, driver)
    driver.down()
    assert sb.snapshot() == before


EXTREMES = """
name: ext
networks:
  big: {subnet: 10.80.0.0/24, mtu: 65535}
  small: {driver: veth, subnet: 10.81.0.0/24, mtu: 68}
  lonely: {subnet: 10.82.0.0/24, mtu: 9000, bridge: br-lonely}
containers:
  a: {networks: [big, small]}
  b: {networks: [big]}
"""


def test_the_smallest_and_largest_mtu(sandbox, tmp_path):
    """65535 on a bridge and 68 on a veth network (IPv4 only: below 1280 a link has no IPv6 at all,
    so it takes no addrgenmode either); full-size pings fit. A bridge keeps its MTU without ports."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "batch", EXTREMES)
    driver.up()
    assert link(sb, None, "br-big-7b2af")["mtu"] == 65535 and link(sb, "b", "eth0")["mtu"] == 65535
    assert link(sb, "a", "eth1")["mtu"] == 68 and link(sb, None, "ve-a-4adf4")["mtu"] == 68
    assert link(sb, None, "br-lonely")["mtu"] == 9000
    assert fits(sb, "a", "10.80.0.3", 65535 - 28) and fits(sb, "a", "10.81.0.1", 68 - 28)
    assert not fits(sb, "a", "10.81.0.1", 68 - 27)
    check_passes(sb, driver)
    for port in json.loads(sb.run(["ip", "-j", "link", "show", "master", "br-big-7b2af"]).stdout):  # its ports gone, it keeps its MTU
        sb.run(["ip", "link", "delete", port["ifname"]])
    assert link(sb, None, "br-big-7b2af")["mtu"] == 65535
    driver.down()
    assert sb.snapshot() == before


def test_routes_and_no_default_route_change_while_up(sandbox, tmp_path):
    """`nsgen run` with mgmt giving a default route again and another static route: monitor takes
    the default route and the new route, and loses the old one."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", JUMBO)
    driver.up()
    assert [r for r in routes(sb, "monitor", "-4") if r["dst"] == "default"] == []
    driver.topology.write_text(JUMBO.replace("    no_default_route: true ", "    no_default_route: false ")
                               .replace("{destination: 203.0.113.0/24, gateway: 172.29.0.1}", "{destination: 192.0.2.0/24, gateway: 172.29.0.1}"))
    driver.up()
    found = [(r["dst"], r.get("gateway")) for r in routes(sb, "monitor", "-4")]
    assert ("default", "172.29.0.1") in found and ("192.0.2.0/24", "172.29.0.1") in found and ("203.0.113.0/24", "172.29.0.1") not in found
    assert [(r["gateway"], r["dev"]) for r in routes(sb, "nas", "-4") if r["dst"] == "default"] == [("172.29.0.1", "eth0")]
    assert curl(sb, "monitor", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    check_passes(sb, driver)
    driver.down()
    assert sb.snapshot() == before


MACVLAN = f"""
name: lan
networks:
  lan: {{driver: macvlan, subnet: 198.51.100.0/24, gateway: {WORLD_ADDR}, mtu: 1400}}
containers:
  a: {{networks: {{lan: {{mac_address: "02:00:5E:00:53:03"}}}}}}
  b: {{networks: [lan]}}
"""


@pytest.mark.parametrize("mode", ["batch", "run"])
def test_macvlan_interface_mtu_and_mac(sandbox, tmp_path, mode):
    """A macvlan network's MTU and a container's MAC address, on its macvlan interface: the LAN's
    router learns that MAC, and full-size pings between the containers fit."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, MACVLAN)
    driver.up()
    assert link(sb, "a", "eth0")["mtu"] == 1400 and link(sb, "b", "eth0")["mtu"] == 1400
    assert link(sb, "a", "eth0")["address"] == "02:00:5e:00:53:03"
    assert ping(sb, WORLD_NS, "198.51.100.3")
    assert "lladdr 02:00:5e:00:53:03" in sb.run(["ip", "-n", WORLD_NS, "neigh", "show", "198.51.100.3"]).stdout
    assert fits(sb, "a", "198.51.100.4", 1400 - 28) and not fits(sb, "a", "198.51.100.4", 1400 - 27)
    check_passes(sb, driver)
    driver.down()
    assert sb.snapshot() == before
