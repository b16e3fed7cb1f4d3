"""A topology unlike the examples: a veth network and bridges side by side, names with dots, a
container on three networks, a port published on a veth network, no DNS of its own."""

from __future__ import annotations

import json

import pytest

from tests.drive import Driver, wait_for
from tests.sandbox import HOST_ADDR, WEB_ADDR, WORLD_NS

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

MIXED = """
name: lab.v2
networks:
  solo:
    driver: veth
    subnet: 10.50.0.0/30
  front.net:
    subnet: 10.51.0.0/24
    gateway: 10.51.0.254
  inner:
    subnet: 10.52.0.0/24
    internal: true
  plain:
    subnet: 10.53.0.0/24
    masquerade: false
containers:
  edge.1:
    networks: [solo]
    ports: ["9090:8000", "127.0.0.1:9091:8000"]
    processes: ["nsgen echo-server -p 8000"]
  hub:
    networks:
      front.net: {}
      inner: {address: 10.52.0.100}
      plain: {interface: lan9}
  leaf:
    networks: [inner]
"""


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_mixed_topology(sandbox, tmp_path, mode):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, MIXED)
    driver.up()
    assert wait_for(sb, ["ip", "netns", "exec", "edge.1", "curl", "-sf", "http://127.0.0.1:8000/echo"]).returncode == 0
    # the veth network: the container is at .2, the host end holds .1; masqueraded to the world
    assert sb.in_ns("edge.1", ["curl", "-sf", "--max-time", "3", f"http://{WEB_ADDR}/"]).stdout.strip() == HOST_ADDR
    # its published port from the world, from the host, and at localhost only from the host
    for ns, url in ((WORLD_NS, f"http://{HOST_ADDR}:9090/echo"), (None, f"http://{HOST_ADDR}:9090/echo"), (None, "http://127.0.0.1:9091/echo")):
        argv = ["curl", "-sf", "--max-time", "3", url]
        out = sb.run(argv if ns is None else ["ip", "netns", "exec", ns, *argv]).stdout
        assert json.loads(out)["body"] == "Echo response"
    assert sb.run(["ip", "netns", "exec", WORLD_NS, "curl", "-sf", "--max-time", "1", f"http://{HOST_ADDR}:9091/echo"], check=False).returncode != 0
    # hub: default route through front.net's own gateway .254; three interfaces named as asked
    route = sb.run(["ip", "-n", "hub", "route", "show", "default"]).stdout
    assert "via 10.51.0.254 dev eth0" in route
    links = sb.run(["ip", "-n", "hub", "-br", "link"]).stdout
    assert all(name in links for name in ("eth0", "eth1", "lan9"))
    assert sb.in_ns("hub", ["ping", "-c1", "-W2", "10.52.0.2"]).returncode == 0  # leaf, on the internal network
    # leaf, on the internal network only, reaches nothing outside; edge.1 does not reach leaf
    assert sb.in_ns("leaf", ["ping", "-c1", "-W1", WEB_ADDR], check=False).returncode != 0
    assert sb.in_ns("edge.1", ["ping", "-c1", "-W1", "10.52.0.2"], check=False).returncode != 0
    driver.down()
    assert sb.snapshot() == before


def test_host_routes_read_from_proc_are_what_ip_route_shows(sandbox):
    """The overlap check reads /proc/net/route; `ip -j route` must see the same main table."""
    sandbox.sh(
        "ip link add b1 type bridge && ip addr add 10.9.8.1/24 dev b1 && ip link set b1 up && "
        "ip route add 192.0.2.128/25 dev b1 && ip route add 10.250.0.0/16 via 10.9.8.2 && "
        "ip route add 203.0.113.7 dev b1 && ip route add 10.251.0.0/16 via 10.9.8.3 table 100"
    )
    code = "from nsgen.hostinfo import host_routes, _ip_routes; import json; print(json.dumps([sorted(host_routes()), sorted(_ip_routes())]))"
    from_proc, from_ip = json.loads(sandbox.run(["python3", "-c", code]).stdout)
    assert from_proc == from_ip
    assert ["203.0.113.7", "b1"] in from_proc and ["10.250.0.0/16", "b1"] in from_proc
    assert not any(dst.startswith("10.251.") for dst, _ in from_proc)  # another table: not the main one
