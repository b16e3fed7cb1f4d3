"""`nsgen check --probe` on a dual-stack topology, on real kernel objects inside a sandbox: the
gateways, neighbours, the outside and published ports are probed in both families, and a broken
IPv6 way out fails the IPv6 probe of the outside alone."""

from __future__ import annotations

import pytest

from tests.drive import NSGEN, Driver, example_text, wait_for
from tests.sandbox import DNS_ADDR, DNS_ADDR6, WEB_ADDR, WEB_ADDR6, WORLD_ADDR, WORLD_ADDR6

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

V4_PROBES = (
    "web → gateway 172.20.0.1 (front, ping)",
    "web → gateway 172.21.0.1 (back, ping)",
    "web → neighbour db 172.21.0.10 (back, ping)",
    "db → neighbour web 172.21.0.2 (back, ping)",
    "host → published 127.0.0.1:8080 → web 172.20.0.2:8000",
    "web → published 172.20.0.1:8080 → web 172.20.0.2:8000",
)
V6_PROBES = (
    "web → gateway fd00:20::1 (front, ping)",
    "web → gateway fd00:21::1 (back, ping)",
    "db → gateway fd00:21::1 (back, ping)",
    "web → neighbour db fd00:21::10 (back, ping)",
    "db → neighbour web fd00:21::2 (back, ping)",
    "host → published [fd00:20::1]:8080 → web [fd00:20::2]:8000",
    "web → published [fd00:20::1]:8080 → web [fd00:20::2]:8000",
)
OUTSIDE4 = "web → outside {} (masqueraded through front, ping)"
OUTSIDE6 = "web → outside {} (IPv6, masqueraded through front, ping)"


def check(sb, driver, *args):
    return sb.run([*NSGEN, "check", "-f", str(driver.topology), *args], check=False)


def probes(done) -> dict[str, str]:
    """what -> the status and detail of each probe line."""
    found = {}
    for line in done.stdout.splitlines():
        status, kind, rest = line[:4], line[6:15].strip(), line[17:]
        if kind == "probe":
            what, _, detail = rest.partition(": ")
            found[what] = f"{status} {detail}".strip()
    return found


def assert_green(done, outside4: str, outside6: str) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line for line in done.stdout.splitlines() if not line.startswith("PASS  ")] == []
    found = probes(done)
    for what in (*V4_PROBES, *V6_PROBES, OUTSIDE4.format(outside4), OUTSIDE6.format(outside6)):
        assert found.get(what) == "PASS", (what, done.stdout)
    # db is on the internal network alone: it is not probed towards the outside in either family
    assert not [what for what in found if what.startswith("db → outside")]


def test_probe_covers_both_families_and_names_a_broken_ipv6_way_out(sandbox, tmp_path):
    sb = sandbox
    before = sb.snapshot()
    text = example_text("dual-stack.yaml")
    assert DNS_ADDR6 in text and DNS_ADDR in text  # the world's resolvers instead of the example's public ones
    driver = Driver(sb, tmp_path, "run", text)
    driver.up()
    wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sfg", "http://[fd00:20::2]:8000/echo"])
    wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "http://172.20.0.2:8000/echo"])

    # the outside defaults to the host's default gateway of each family
    assert_green(check(sb, driver, "--probe"), WORLD_ADDR, WORLD_ADDR6)
    # or one target a family, given as two --probe-target
    assert_green(check(sb, driver, "--probe-target", WEB_ADDR, "--probe-target", WEB_ADDR6), WEB_ADDR, WEB_ADDR6)
    # a name serves both families (resolved inside the container: A and AAAA)
    assert_green(check(sb, driver, "--probe-target", "example.test"), "example.test", "example.test")

    # no IPv6 default route in web: the IPv6 way out fails, the IPv4 one still works
    sb.run(["ip", "-n", "web", "-6", "route", "del", "default"])
    broken = check(sb, driver, "--probe")
    assert broken.returncode != 0
    failed = [line for line in broken.stdout.splitlines() if not line.startswith("PASS  ")]
    assert len(failed) == 2, broken.stdout
    assert failed[0] == "FAIL  route      web: IPv6 default via fd00:20::1 dev eth0: no default route"
    assert failed[1].startswith(f"FAIL  probe      {OUTSIDE6.format(WORLD_ADDR6)}: "), failed
    found = probes(broken)
    assert found[OUTSIDE4.format(WORLD_ADDR)] == "PASS"
    assert all(found[what] == "PASS" for what in (*V4_PROBES, *V6_PROBES))

    sb.run(["ip", "-n", "web", "-6", "route", "add", "default", "via", "fd00:20::1", "dev", "eth0"])
    assert_green(check(sb, driver, "--probe"), WORLD_ADDR, WORLD_ADDR6)
    driver.down()
    assert sb.snapshot() == before
