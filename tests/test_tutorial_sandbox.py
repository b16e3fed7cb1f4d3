"""The tutorial, end to end on real kernel objects: through the scripts and through `nsgen run`,
with either firewall backend."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import only_backend
from tests.drive import NSGEN, Driver, example_text, wait_for
from tests.fw import iptables_hits, nft_rules
from tests.sandbox import DNS_ADDR, HOST_ADDR, WEB_ADDR

pytestmark = pytest.mark.usefixtures("firewall_backend")
TUTORIAL = example_text("tutorial.yaml")


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_tutorial_end_to_end(sandbox, tmp_path, mode, firewall_backend):
    before = sandbox.snapshot()
    driver = Driver(sandbox, tmp_path, mode, TUTORIAL)
    driver.up()
    # curl localhost:8000/echo inside the namespace returns the tutorial's JSON
    echo = wait_for(sandbox, ["ip", "netns", "exec", "container-1", "curl", "-sf", "--max-time", "2", "localhost:8000/echo"])
    assert echo.returncode == 0, echo.stderr
    body = json.loads(echo.stdout)
    assert body["body"] == "Echo response"
    assert body["header"]["Host"] == ["localhost:8000"]
    assert all(isinstance(v, list) for v in body["header"].values())

    # the host pings and curls the container; the container pings its gateway
    sandbox.run(["ping", "-c", "1", "-W", "2", "172.18.0.2"])
    assert json.loads(sandbox.run(["curl", "-sf", "--max-time", "2", "172.18.0.2:8000/echo"]).stdout)["body"] == "Echo response"
    sandbox.in_ns("container-1", ["ping", "-c", "1", "-W", "2", "172.18.0.1"])

    # the container reaches the world, which sees the host's address (masquerade)
    seen = sandbox.in_ns("container-1", ["curl", "-sf", "--max-time", "3", f"http://{WEB_ADDR}/"]).stdout.strip()
    assert seen == HOST_ADDR
    if firewall_backend == "iptables":
        assert iptables_hits(sandbox, "nat", "POSTROUTING", "MASQUERADE") > 0  # real packets hit the rule
    else:  # the rule is the table's; nothing else masquerades on this host
        assert 'ip saddr 172.18.0.0/24 oifname != "vethc1" masquerade' in nft_rules(sandbox, "tutorial")

    # a name resolves through the configured DNS server
    assert sandbox.in_ns("container-1", ["cat", "/etc/resolv.conf"]).stdout.splitlines()[-1] == f"nameserver {DNS_ADDR}"
    hosts = sandbox.in_ns("container-1", ["getent", "ahostsv4", "web.world.test"]).stdout
    assert hosts.split()[0] == WEB_ADDR

    # a second setup changes nothing
    state = sandbox.snapshot()
    again = driver.up()
    assert again.returncode == 0
    assert sandbox.snapshot() == state

    driver.down()
    driver.down()  # safe to run twice
    assert sandbox.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_teardown_when_nothing_was_set_up(sandbox, tmp_path, mode):
    before = sandbox.snapshot()
    Driver(sandbox, tmp_path, mode, TUTORIAL).down()
    assert sandbox.snapshot() == before


def test_ip_forward_is_restored_to_its_previous_value(sandbox, tmp_path):
    sandbox.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    driver = Driver(sandbox, tmp_path, "run", TUTORIAL)
    driver.up()
    driver.down()
    assert sandbox.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    sandbox.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
    driver.up()
    assert sandbox.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    driver.down()
    assert sandbox.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"


def test_foreign_namespace_is_refused_and_kept(sandbox, tmp_path):
    sandbox.run(["ip", "netns", "add", "container-1"])
    before = sandbox.snapshot()
    for mode in ("script", "run"):
        driver = Driver(sandbox, tmp_path, mode, TUTORIAL)
        done = driver.up(check=False)
        assert done.returncode != 0
        assert "network namespace container-1 already exists and was not made by nsgen topology tutorial" in done.stderr
        assert sandbox.snapshot() == before
        driver.down()
        assert sandbox.snapshot() == before  # teardown of a topology that is not up leaves it alone


def test_a_failing_setup_undoes_itself(sandbox, tmp_path, firewall_backend):
    before = sandbox.snapshot()
    # A firewall tool that fails (iptables-restore, or nft -f) makes setup fail after namespaces, links and forwarding exist.
    tool, loads = ("iptables-restore", "true") if firewall_backend == "iptables" else ("nft", '[ "$1" = -f ]')
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / tool).write_text(f'#!/bin/sh\nif {loads}; then echo "{tool}: simulated failure" >&2; exit 4; fi\nPATH=/usr/sbin:/usr/bin:/sbin:/bin exec {tool} "$@"\n')
    (shim / tool).chmod(0o755)
    env = {"PATH": f"{shim}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for mode in ("script", "run"):
        driver = Driver(sandbox, tmp_path, mode, TUTORIAL)
        argv = ["bash", str(driver.setup_sh)] if mode == "script" else [*NSGEN, "run", "-f", str(driver.topology)]
        done = sandbox.run(argv, check=False, env=env)
        assert done.returncode != 0
        assert "simulated failure" in done.stderr
        assert sandbox.snapshot() == before, mode


def test_same_kernel_state_as_the_tutorials_own_commands(sandbox, tmp_path, firewall_backend):
    """Without processes, nsgen builds what the tutorial's hand-typed commands build."""
    only_backend(firewall_backend, "iptables", "the tutorial types iptables commands; its rule is compared with iptables-save")
    tutorial_by_hand = f"""
set -e
ip netns add container-1
ip netns exec container-1 ip link set lo up
ip link add veth1 type veth peer name vethc1
ip link set veth1 netns container-1
ip netns exec container-1 ip addr add 172.18.0.2/24 dev veth1
ip addr add 172.18.0.1/24 dev vethc1
ip netns exec container-1 ip link set veth1 up
ip link set vethc1 up
ip netns exec container-1 ip r add default via 172.18.0.1 dev veth1 src 172.18.0.2
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 172.18.0.0/24 ! -o vethc1 -j MASQUERADE
mkdir -p /etc/netns/container-1
echo "nameserver {DNS_ADDR}" > /etc/netns/container-1/resolv.conf
"""
    undo_by_hand = """
iptables -t nat -D POSTROUTING -s 172.18.0.0/24 ! -o vethc1 -j MASQUERADE
ip netns delete container-1
rm -r /etc/netns/container-1
sysctl -w net.ipv4.ip_forward=0
"""

    def kernel_state():
        snap = sandbox.snapshot()
        inside = sandbox.sh(
            "ip -n container-1 -br link | awk '{print $1, $2}' | sed 's/@[^ ]*//';"
            "ip -n container-1 -br addr | awk '{print $1, $3}' | sed 's/@[^ ]*//';"
            "ip -n container-1 route; grep -v '^#' /etc/netns/container-1/resolv.conf"
        ).stdout
        nat = [re.sub(r' -m comment --comment "?[^ "]*"?', "", r) for r in snap["iptables"] if "POSTROUTING" in r and "-A" in r]
        keep = {k: snap[k] for k in ("netns", "links", "addresses", "routes", "sysctl")}
        return keep, nat, inside

    sandbox.sh(tutorial_by_hand)
    by_hand = kernel_state()
    sandbox.sh(undo_by_hand)
    text = TUTORIAL.replace("    processes:\n      - nsgen echo-server --port 8000\n", "")
    driver = Driver(sandbox, tmp_path, "run", text)
    driver.up()
    assert kernel_state() == by_hand
    driver.down()
