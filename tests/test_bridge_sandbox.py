"""Bridge networks on real kernel objects, on a host whose FORWARD policy is DROP: reachability,
isolation, internal networks, published ports from everywhere they should work, pods."""

from __future__ import annotations

import pytest

from tests.drive import Driver, curl, echo_ok, example_text, ping, wait_for
from tests.sandbox import HOST_ADDR, WEB_ADDR, WORLD_NS

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

BRIDGE = example_text("bridge.yaml")
WEB, APP, DB = "172.20.0.2", "172.20.0.3", "172.21.0.10"
APP_BACK = "172.21.0.2"


def reaches(sb, ns: str | None, address: str) -> bool:
    """One ping gets up to three tries of two seconds (a busy host can be slow to answer the
    first ARP); a "does not reach" answer therefore means six seconds of silence."""
    return ping(sb, ns, address)


def blocked(sb, ns: str | None, address: str) -> bool:
    return not ping(sb, ns, address, tries=1, wait="1")


@pytest.fixture(params=[True, False], ids=["br_netfilter", "no_br_netfilter"])
def drop_host(sandbox, request):
    """A sandbox host like one running Docker or ufw: FORWARD drops by default."""
    sandbox.run(["iptables", "-P", "FORWARD", "DROP"])
    setting = "1" if request.param else "0"
    sandbox.run(["sh", "-c", f"[ ! -e /proc/sys/net/bridge ] || sysctl -q -w net.bridge.bridge-nf-call-iptables={setting}"])
    return sandbox


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_bridge_example(drop_host, tmp_path, mode):
    sb = drop_host
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, BRIDGE)
    driver.up()
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", f"http://{WEB}:8000/echo"]).stdout)

    # the bridge holds the gateway; the veth host ends carry no address
    assert "172.20.0.1/24" in sb.run(["ip", "-br", "addr", "show", "br-front"]).stdout
    ports = sb.run(["ip", "-o", "link", "show", "master", "br-front"]).stdout
    assert ports.count("master br-front") == 2
    for line in sb.run(["ip", "-br", "-4", "addr"]).stdout.splitlines():
        assert not line.startswith("ve-"), line
    # IPv4 networks: neither end of a veth pair has an IPv6 address (no link-local chatter)
    assert [line for line in sb.run(["ip", "-o", "-6", "addr"]).stdout.splitlines() if " ve-" in line] == []
    for ns in ("web", "app", "db"):
        assert "inet6" not in sb.run(["ip", "-n", ns, "-o", "-6", "addr", "show", "dev", "eth0"]).stdout
        assert "addrgenmode none" in sb.run(["ip", "-n", ns, "-d", "link", "show", "eth0"]).stdout

    # one network: both ways; the container on both networks reaches both
    assert reaches(sb, "web", APP) and reaches(sb, "app", WEB)
    assert reaches(sb, "app", DB) and reaches(sb, "db", APP_BACK)
    # nothing crosses between networks
    assert blocked(sb, "web", DB)
    assert blocked(sb, "db", WEB)
    # the non-internal network reaches the world, which sees the host's address
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    assert curl(sb, "app", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    # the internal network reaches nothing outside, not even the host's other side
    assert blocked(sb, "db", WEB_ADDR) and blocked(sb, "db", HOST_ADDR)

    # the published port: from the world, from the host (its address and localhost),
    # from a neighbour on the same bridge, and from its own container (hairpin)
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    assert echo_ok(curl(sb, None, f"http://{HOST_ADDR}:8080/echo"))
    assert echo_ok(curl(sb, None, "http://127.0.0.1:8080/echo"))
    assert echo_ok(curl(sb, "app", f"http://{HOST_ADDR}:8080/echo"))
    assert echo_ok(curl(sb, "web", f"http://{HOST_ADDR}:8080/echo"))
    assert echo_ok(curl(sb, "web", "http://172.20.0.1:8080/echo"))
    # an unpublished port is not reachable from outside, even with a route to the container
    sb.run(["ip", "-n", WORLD_NS, "route", "add", "172.20.0.0/24", "via", HOST_ADDR])
    assert curl(sb, WORLD_NS, f"http://{WEB}:8000/echo", timeout=1) is None
    assert curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8000/echo", timeout=1) is None
    sb.run(["ip", "-n", WORLD_NS, "route", "del", "172.20.0.0/24", "via", HOST_ADDR])

    driver.down()
    driver.down()
    after = sb.snapshot()
    assert after == before
    assert after["forward_policy"] == before["forward_policy"] and "DROP" in " ".join(after["forward_policy"])


def test_port_bound_to_localhost_is_not_reachable_from_outside(drop_host, tmp_path):
    sb = drop_host
    text = BRIDGE.replace('ports: ["8080:8000"]', 'ports: ["127.0.0.1:9000:8000", "8080:8000"]')
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", text)
    driver.up()
    wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", f"http://{WEB}:8000/echo"])
    assert echo_ok(curl(sb, None, "http://127.0.0.1:9000/echo"))
    assert curl(sb, None, f"http://{HOST_ADDR}:9000/echo", timeout=1) is None
    assert curl(sb, WORLD_NS, f"http://{HOST_ADDR}:9000/echo", timeout=1) is None
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    driver.down()
    assert sb.snapshot() == before


def test_udp_port_and_no_masquerade(sandbox, tmp_path):
    """`masquerade: false` routes without NAT (the world sees the container's own address);
    a UDP port published as 5353:53/udp reaches a UDP server in the container."""
    sb = sandbox
    text = f"""
name: plain
networks:
  lan: {{subnet: 172.30.0.0/24, masquerade: false}}
containers:
  dnsbox:
    networks: [lan]
    ports: ["5353:53/udp"]
    processes:
      - ["python3", "-S", "{sb_world_dns()}", "--address", "0.0.0.0", "--port", "53"]
"""
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "script", text)
    driver.up()
    sb.run(["ip", "-n", WORLD_NS, "route", "add", "172.30.0.0/24", "via", HOST_ADDR])
    assert curl(sb, "dnsbox", f"http://{WEB_ADDR}/").strip() == "172.30.0.2"
    answer = wait_for(sb, ["ip", "netns", "exec", WORLD_NS, "dig", "+short", "+time=1", "+tries=1", "-p", "5353", f"@{HOST_ADDR}", "web.world.test"])
    assert answer.stdout.strip() == WEB_ADDR
    sb.run(["ip", "-n", WORLD_NS, "route", "del", "172.30.0.0/24", "via", HOST_ADDR])
    driver.down()
    assert sb.snapshot() == before


def sb_world_dns() -> str:
    from tests.sandbox import WORLD_DIR

    return f"{WORLD_DIR}/dns_server.py"


@pytest.mark.parametrize("mode", ["script", "run"])
def test_pod_processes_share_localhost(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, example_text("pod.yaml"))
    driver.up()
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "pod-1", "curl", "-sf", "http://localhost:8000/echo"]).stdout)
    sidecar = wait_for(sb, ["ip", "netns", "exec", "pod-1", "curl", "-sf", "-o", "/dev/null", "-w", "%{http_code}", "http://localhost:9000/"])
    assert sidecar.stdout == "200"
    # each process sees the other on localhost: the sidecar's port is the pod's own
    pids = sb.run(["ip", "netns", "pids", "pod-1"]).stdout.split()
    programs = [sb.run(["cat", f"/proc/{pid}/comm"]).stdout.strip() for pid in pids]
    assert len(programs) == 4 and programs.count("sh") == 2, programs  # two programs, each with the shell in front of it
    # the sidecar listens on the pod's loopback only; the published echo server is reachable from the host
    assert curl(sb, None, "http://10.88.0.2:9000/", timeout=1) is None
    assert echo_ok(curl(sb, None, f"http://{HOST_ADDR}:8081/echo"))
    driver.down()
    assert sb.snapshot() == before
