"""outbound_addr on real kernel objects: a network's traffic leaves the host from the address it
names (SNAT) instead of the uplink's (masquerade), as the world's web server sees it."""

from __future__ import annotations

import re

import pytest

from nsgen.sandbox.host import WORLD_LINK
from tests import fw
from tests.drive import NSGEN, Driver, curl
from tests.sandbox import HOST_ADDR, HOST_ADDR6, WEB_ADDR, WEB_ADDR6

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

OUTBOUND, OUTBOUND6 = "198.51.100.7", "2001:db8:100::7"

TOPOLOGY = f"""\
name: out
networks:
  front:
    subnet: [172.30.0.0/24, fd00:30::/64]
    outbound_addr: [{OUTBOUND}, "{OUTBOUND6}"]
  plain:
    subnet: 172.31.0.0/24
containers:
  web:
    networks: [front]
    dns: [203.0.113.53]
  other:
    networks: [plain]
    dns: [203.0.113.53]
"""


def second_address(sb, six: bool = True) -> None:
    sb.run(["ip", "addr", "add", f"{OUTBOUND}/24", "dev", WORLD_LINK])
    if six:
        sb.run(["ip", "addr", "add", f"{OUTBOUND6}/64", "dev", WORLD_LINK, "nodad"])


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_traffic_leaves_from_the_outbound_address(sandbox, tmp_path, mode, firewall_backend):
    sb = sandbox
    second_address(sb)
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, TOPOLOGY)
    driver.up()
    # the world's web server answers with the caller's address
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == OUTBOUND
    assert curl(sb, "web", f"http://[{WEB_ADDR6}]/").strip() == OUTBOUND6
    # a network without it is masqueraded to the uplink's own address
    assert curl(sb, "other", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    rules = fw.rules(sb, "out")
    if firewall_backend == "iptables":
        assert re.search(rf"-A POSTROUTING -s 172\.30\.0\.0/24 ! -o br-\S+ .*-j SNAT --to-source {OUTBOUND}$", rules, re.M), rules
        assert re.search(r"-A POSTROUTING -s 172\.31\.0\.0/24 ! -o br-\S+ .*-j MASQUERADE$", rules, re.M), rules
        assert re.search(rf"-A POSTROUTING -s fd00:30::/64 ! -o br-\S+ .*-j SNAT --to-source {OUTBOUND6}$", rules, re.M), rules
    else:
        assert re.search(rf'ip saddr 172\.30\.0\.0/24 oifname != "br-\S+" snat ip to {OUTBOUND} ', rules), rules
        assert re.search(r'ip saddr 172\.31\.0\.0/24 oifname != "br-\S+" masquerade ', rules), rules
        assert re.search(rf'ip6 saddr fd00:30::/64 oifname != "br-\S+" snat ip6 to {OUTBOUND6} ', rules), rules
    if mode == "run":
        checked = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
        assert checked.returncode == 0, checked.stdout
        assert f"the host holds {OUTBOUND} (outbound address of front)" in checked.stdout
    driver.down()
    assert sb.snapshot() == before  # the SNAT rules are gone with the rest


def test_without_outbound_addr_it_leaves_as_the_uplink(sandbox, tmp_path):
    sb = sandbox
    second_address(sb, six=False)  # IPv6 masquerade would pick either address of the uplink
    driver = Driver(sb, tmp_path, "script", TOPOLOGY.replace(f"    outbound_addr: [{OUTBOUND}, \"{OUTBOUND6}\"]\n", ""))
    driver.up()
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    assert curl(sb, "web", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    driver.down()


@pytest.mark.parametrize("mode", ["script", "run"])
def test_an_outbound_address_the_host_lost_is_refused_before_anything_changes(sandbox, tmp_path, mode):
    """The script checks before it changes anything; `nsgen run` validates again when it runs."""
    sb = sandbox
    second_address(sb)
    driver = Driver(sb, tmp_path, mode, TOPOLOGY)  # rendered while the host has it
    sb.run(["ip", "addr", "del", f"{OUTBOUND}/24", "dev", WORLD_LINK])
    before = sb.snapshot()
    done = driver.up(check=False)
    assert done.returncode != 0
    said = {"script": "(traffic can leave only with one of its own addresses); nothing was changed",
            "run": ": traffic can leave only with an address the host has (add it to one of its interfaces first)"}
    assert f"networks.front.outbound_addr: {OUTBOUND} is not an address of this host {said[mode]}".replace("host :", "host:") in done.stderr
    assert "Traceback" not in done.stderr
    assert sb.snapshot() == before


def test_validation_refuses_an_address_the_host_does_not_have(sandbox, tmp_path):
    sb = sandbox
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    done = sb.run([*NSGEN, "validate", "-f", str(tmp_path / "t.yaml")], check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 't.yaml'}: networks.front.outbound_addr: {address} is not an address of this host: traffic can leave "
        "only with an address the host has (add it to one of its interfaces first)" for address in (OUTBOUND, OUTBOUND6)]
