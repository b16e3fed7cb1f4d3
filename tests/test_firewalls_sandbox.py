"""A second firewall beside the one nsgen writes to, on real kernel objects in a sandbox: rules of
the other iptables backend, or an nft base chain that drops on the forward hook, can cut nsgen's
networks off; setup says so, and `nsgen check` fails on it."""

from __future__ import annotations

import pytest

from tests.drive import NSGEN, Driver, example_text

BRIDGE = example_text("bridge.yaml")

SECOND = {
    "iptables-legacy": ("iptables-legacy -P FORWARD DROP",
                        "iptables-legacy also holds rules on this host (filter FORWARD policy DROP), and nsgen writes through iptables-nft",
                        "iptables-legacy -P FORWARD ACCEPT"),
    "nft table": ("nft add table inet guard && nft add chain inet guard screen '{ type filter hook forward priority 0; policy drop; }'",
                  "nft table inet guard, chain screen: policy drop on the forward hook",
                  "nft delete table inet guard"),
}


@pytest.mark.parametrize("mode", ["script", "run"])
@pytest.mark.parametrize("second", SECOND)
def test_a_second_firewall_is_named_at_setup_and_fails_the_check(sandbox, tmp_path, mode, second):
    sb = sandbox
    make, warning, remove = SECOND[second]
    sb.sh(make)
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, BRIDGE)
    done = driver.up()
    assert f"warning: {warning}" in done.stderr, done.stderr
    check = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert check.returncode == 1
    assert f"FAIL  firewall   {warning}" in check.stdout, check.stdout
    # the networks are indeed cut off: the world does not reach the published port
    assert sb.in_ns("world", ["curl", "-s", "-m", "2", "http://198.51.100.1:8080/echo"], check=False).returncode != 0
    driver.down()
    assert sb.snapshot() == before
    sb.sh(remove)
    driver.up()
    assert "warning" not in driver.up().stderr
    assert sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False).returncode == 0
    driver.down()
