"""IPv6 and dual stack on real kernel objects, on a host whose FORWARD policy is DROP in both
families: addresses and routes per family, ping -6 between containers, both families masqueraded
to the world, AAAA through an IPv6 resolver, published ports over IPv6, isolation and internal
networks for IPv6, and a teardown that leaves ip6tables and IPv6 forwarding as they were."""

from __future__ import annotations

import pytest

from tests import fw
from tests.drive import NSGEN, Driver, curl, echo_ok, example_text, ping, wait_for
from tests.sandbox import DNS_ADDR6, HOST_ADDR, HOST_ADDR6, WEB_ADDR, WEB_ADDR6, WORLD_NS

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

LAB = """
name: lab6
networks:
  front:
    subnet: [172.20.0.0/24, "fd00:20::/64"]
  side:
    subnet: ["fd00:22::/64", 172.22.0.0/24]
  back:
    subnet: [172.21.0.0/24, "fd00:21::/64"]
    internal: true
containers:
  web:
    networks: [front]
    ports: ["8080:8000", "[::]:8081:8000", "9000:9000/udp"]
    dns: ["2001:db8:113::53"]
    processes:
      - nsgen echo-server --port 8000
  app:
    networks: [front, back]
  other:
    networks: [side]
  db:
    networks:
      back:
        address: [172.21.0.10, "fd00:21::10"]
"""
WEB6, APP6, APP_BACK6, OTHER6, DB6 = "fd00:20::2", "fd00:20::3", "fd00:21::2", "fd00:22::2", "fd00:21::10"


@pytest.fixture
def drop_host(sandbox):
    """A host like one running Docker: FORWARD drops by default, in both families."""
    sandbox.run(["iptables", "-P", "FORWARD", "DROP"])
    sandbox.run(["ip6tables", "-P", "FORWARD", "DROP"])
    return sandbox


def forwarding(sb) -> tuple[str, str]:
    return (sb.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip(),
            sb.run(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).stdout.strip())


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_dual_stack(drop_host, tmp_path, mode, firewall_backend):
    sb = drop_host
    before = sb.snapshot()
    assert forwarding(sb) == ("0", "0")
    driver = Driver(sb, tmp_path, mode, LAB)
    driver.up()
    assert forwarding(sb) == ("1", "1")
    # addresses of both families, no duplicate address detection pending, a default route per family
    addresses = sb.run(["ip", "-n", "web", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert "inet 172.20.0.2/24" in addresses and f"inet6 {WEB6}/64" in addresses and "tentative" not in addresses
    assert sb.run(["ip", "-n", "web", "-6", "route", "show", "default"]).stdout.startswith("default via fd00:20::1 dev eth0")
    assert sb.run(["ip", "-n", "web", "-4", "route", "show", "default"]).stdout.startswith("default via 172.20.0.1 dev eth0")
    assert sb.run(["ip", "-n", "db", "-6", "route", "show", "default"]).stdout == ""  # internal: no way out
    # ping -6 within a network, both ways, and on the internal one
    assert ping(sb, "web", APP6) and ping(sb, "app", WEB6)
    assert ping(sb, "app", DB6) and ping(sb, "db", APP_BACK6)
    # isolation between networks, for IPv6 as for IPv4
    assert not ping(sb, "web", OTHER6, tries=1, wait="1") and not ping(sb, "other", WEB6, tries=1, wait="1")
    assert not ping(sb, "other", "172.20.0.2", tries=1, wait="1")
    # both families masqueraded: the world sees the host's address of each
    assert curl(sb, "web", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    assert curl(sb, "other", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    # the internal network reaches nothing outside, in either family
    assert not ping(sb, "db", WEB_ADDR6, tries=1, wait="1") and not ping(sb, "db", HOST_ADDR6, tries=1, wait="1")
    # AAAA through the container's IPv6 resolver
    assert sb.run(["ip", "netns", "exec", "web", "dig", "+short", "+time=2", "AAAA", "example.test"]).stdout.strip() == WEB_ADDR6
    assert sb.run(["ip", "netns", "exec", "web", "cat", "/etc/resolv.conf"]).stdout.endswith(f"nameserver {DNS_ADDR6}\n")
    # published ports over IPv6: from the world, from the host, from a neighbour, from the container itself
    wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sfg", f"http://[{WEB6}]:8000/echo"])
    for port in (8080, 8081):
        assert echo_ok(curl(sb, WORLD_NS, f"http://[{HOST_ADDR6}]:{port}/echo")), port
        assert echo_ok(curl(sb, None, f"http://[{HOST_ADDR6}]:{port}/echo")), port
        assert echo_ok(curl(sb, "app", f"http://[{HOST_ADDR6}]:{port}/echo")), port
        assert echo_ok(curl(sb, "web", f"http://[{HOST_ADDR6}]:{port}/echo")), port
    # 8080 is published on every address of both families, 8081 on IPv6 only
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    assert curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8081/echo", timeout=1) is None
    # an unpublished port is not reachable over IPv6, even with a route to the container
    sb.run(["ip", "-n", WORLD_NS, "-6", "route", "add", "fd00:20::/64", "via", HOST_ADDR6])
    assert curl(sb, WORLD_NS, f"http://[{WEB6}]:8000/echo", timeout=1) is None
    sb.run(["ip", "-n", WORLD_NS, "-6", "route", "del", "fd00:20::/64", "via", HOST_ADDR6])
    # nsgen check sees the IPv6 addresses, routes and ip6tables rules
    check = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "web: IPv6 default via fd00:20::1 dev eth0" in check.stdout
    if firewall_backend == "iptables":  # the nftables table holds both families' rules: one check for it
        assert "(IPv6)" in check.stdout

    driver.down()
    driver.down()
    after = sb.snapshot()
    assert after == before
    assert forwarding(sb) == ("0", "0")
    assert "DROP" in sb.run(["ip6tables", "-S", "FORWARD"]).stdout


def test_ipv6_only_example(drop_host, tmp_path):
    sb = drop_host
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", example_text("ipv6-only.yaml"))
    driver.up()
    # IPv6 forwarding on, IPv4 forwarding left alone: the topology has no IPv4
    assert forwarding(sb) == ("0", "1")
    assert "inet " not in sb.run(["ip", "-n", "app", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert sb.run(["iptables-save"]).stdout.count("nsgen:v6-lab") == 0
    assert "ip saddr" not in fw.nft_rules(sb, "v6-lab") and "ipv4" not in fw.nft_rules(sb, "v6-lab")
    # the world first, before the container has sent anything: the host must find it on its own
    assert echo_ok(curl(sb, WORLD_NS, f"http://[{HOST_ADDR6}]:8080/echo"))
    assert curl(sb, "app", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    assert echo_ok(curl(sb, None, "http://[fd00:18::1]:8080/echo"))
    driver.down()
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_ipv6_without_masquerade_is_routed_unchanged(sandbox, tmp_path, mode):
    sb = sandbox
    text = """
name: routed6
networks:
  lan: {subnet: "fd00:30::/64", masquerade: false}
containers:
  box:
    networks: [lan]
"""
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, text)
    driver.up()
    sb.run(["ip", "-n", WORLD_NS, "-6", "route", "add", "fd00:30::/64", "via", HOST_ADDR6])
    assert curl(sb, "box", f"http://[{WEB_ADDR6}]/").strip() == "fd00:30::2"
    # routed, not published: a connection the world starts does not get in, as for IPv4
    assert not ping(sb, WORLD_NS, "fd00:30::2", tries=1, wait="1")
    sb.run(["ip", "-n", WORLD_NS, "-6", "route", "del", "fd00:30::/64", "via", HOST_ADDR6])
    driver.down()
    assert sb.snapshot() == before


def test_a_subnet_on_a_host_ipv6_route_is_refused(sandbox, tmp_path):
    sb = sandbox
    text = """
name: clash6
networks:
  lan: {subnet: "2001:db8:100::/64"}
containers:
  box:
    networks: [lan]
"""
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", text)
    done = driver.up(check=False)
    assert done.returncode == 1 and "overlaps the host's route to 2001:db8:100::/64 (dev world0)" in done.stderr, done.stderr
    assert sb.snapshot() == before


LOOPBACK = """
name: loop6
networks:
  front:
    subnet: [172.20.0.0/24, "fd00:20::/64"]
containers:
  web:
    networks: [front]
    ports: ["[::1]:8081:8000", "[::1]:5353:53/udp", "127.0.0.1:8082:8000"]
    processes:
      - nsgen echo-server --port 8000
      - ["python3", "-S", "{dns}", "--address", "::", "--port", "53", "--record", "example.test=2001:db8:113::10"]
"""


@pytest.mark.parametrize("mode", ["script", "run"])
def test_ports_published_on_ipv6_loopback(drop_host, tmp_path, mode):
    """[::1] is served by nsgen's port proxy (the kernel never forwards ::1): TCP and UDP, a second
    run leaves it alone, teardown stops it, and nothing else listens on the host."""
    sb = drop_host
    from nsgen.sandbox import world

    dns = f"{world.__path__[0]}/dns_server.py"
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, LOOPBACK.replace("{dns}", dns))
    driver.up()
    assert echo_ok(curl(sb, None, "http://[::1]:8081/echo"))
    assert echo_ok(curl(sb, None, "http://127.0.0.1:8082/echo"))
    answer = sb.run(["dig", "+short", "+time=2", "+tries=2", "-p", "5353", "@::1", "AAAA", "example.test"]).stdout.split()
    assert answer == [WEB_ADDR6]
    # published on [::1] only: not at the host's other addresses, from the host or the world
    assert curl(sb, None, f"http://[{HOST_ADDR6}]:8081/echo", timeout=1) is None
    assert curl(sb, WORLD_NS, f"http://[{HOST_ADDR6}]:8081/echo", timeout=1) is None
    # the proxy is one of the container's processes; a second run finds everything done
    ps = sb.run([*NSGEN, "ps", "--json"]).stdout
    assert "port-proxy" in ps
    probed = sb.run([*NSGEN, "check", "--probe", "-f", str(driver.topology)], check=False)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert "PASS  probe      host → published [::1]:8081 → web [fd00:20::2]:8000" in probed.stdout
    assert driver.up().returncode == 0
    assert echo_ok(curl(sb, None, "http://[::1]:8081/echo"))
    driver.down()
    driver.down()
    assert "8081" not in sb.run(["ss", "-ltn"]).stdout
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_dual_stack_topology_whose_state_directory_was_deleted_is_still_removed_whole(drop_host, tmp_path, mode):
    """With no record, teardown goes by the marks: ip6tables rules and chains and IPv6 forwarding too."""
    sb = drop_host
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, LAB)
    driver.up()
    sb.run(["rm", "-rf", "/run/nsgen/lab6"])  # an admin's rm, a cleaner of /run
    done = driver.down()
    if mode == "run":
        assert "no record of topology lab6 on this host; removing what carries its marks:" in done.stderr
        assert "(IPv6)" in done.stderr, done.stderr
    assert sb.snapshot() == before
    assert forwarding(sb) == ("0", "0")


def test_topologies_are_isolated_from_each_other_over_ipv6(drop_host, tmp_path):
    sb = drop_host
    before = sb.snapshot()
    texts = {
        "east": 'name: east\nnetworks: {n: {subnet: [10.41.0.0/24, "fd00:41::/64"]}}\ncontainers: {e1: {networks: [n]}}\n',
        "west": 'name: west\nnetworks: {n: {subnet: [10.42.0.0/24, "fd00:42::/64"]}}\ncontainers: {w1: {networks: [n]}}\n',
    }
    drivers = []
    for name, text in texts.items():
        (tmp_path / name).mkdir()
        drivers.append(Driver(sb, tmp_path / name, "run", text))
        drivers[-1].up()
    # each reaches the world, neither reaches the other, in either family
    assert curl(sb, "e1", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    assert curl(sb, "w1", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    assert not ping(sb, "e1", "fd00:42::2", tries=1, wait="1") and not ping(sb, "w1", "fd00:41::2", tries=1, wait="1")
    assert not ping(sb, "e1", "10.42.0.2", tries=1, wait="1")
    for driver in reversed(drivers):
        driver.down()
    assert sb.snapshot() == before


def test_nsgen_run_again_adds_and_removes_ipv6_on_a_topology_that_is_up(drop_host, tmp_path):
    """An edit while up: IPv6 added to a network, then taken away; what stays is left alone."""
    sb = drop_host
    before = sb.snapshot()
    v4 = example_text("bridge.yaml")
    dual = v4.replace("subnet: 172.20.0.0/24", 'subnet: [172.20.0.0/24, "fd00:20::/64"]')
    assert dual != v4
    driver = Driver(sb, tmp_path, "run", v4)
    driver.up()
    driver.topology.write_text(dual)
    done = driver.up()
    assert "change network front" in done.stderr, done.stderr
    assert f"inet6 {WEB6}/64" in sb.run(["ip", "-n", "web", "-o", "addr", "show", "dev", "eth0"]).stdout
    wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sfg", f"http://[{WEB6}]:8000/echo"])
    assert echo_ok(curl(sb, WORLD_NS, f"http://[{HOST_ADDR6}]:8080/echo"))
    assert curl(sb, "web", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    assert ping(sb, "app", WEB6)
    driver.topology.write_text(v4)
    driver.up()
    assert "inet6" not in sb.run(["ip", "-n", "web", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert forwarding(sb) == ("1", "0")  # no topology needs IPv6 forwarding any more: put back at once
    assert "nsgen:bridge-lab" not in sb.run(["ip6tables-save"]).stdout
    assert "ip6 " not in fw.nft_rules(sb, "bridge-lab") and "ipv6" not in fw.nft_rules(sb, "bridge-lab")
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    driver.down()
    assert sb.snapshot() == before
