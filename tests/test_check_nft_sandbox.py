"""check, check --probe and teardown by marks with the nftables backend, on real kernel objects in a sandbox.

`nsgen check` reads the topology's table once (`nft -j list table`) and compares it with the plan's
table: green after `nsgen run`, and each drift (a map or set element deleted, a chain flushed, a
rule deleted, an element added, the table deleted) is one FAIL line that names it. A teardown with
no record finds the table by its comment, and leaves a same-named table without it alone.
"""

from __future__ import annotations

import re

import pytest

from tests.drive import NSGEN, Driver, wait_for
from tests.sandbox import WORLD_ADDR, WORLD_ADDR6

TOPOLOGY = """\
name: nftchk
host:
  firewall: nftables
networks:
  front:
    subnet: [10.60.0.0/24, "fd00:60::/64"]
    bridge: br-front
  back:
    subnet: [10.61.0.0/24, "fd00:61::/64"]
    bridge: br-back
    internal: true
containers:
  web:
    networks: [front, back]
    ports: ["8080:80", "9000-9001:9000-9001", "5353:53/udp"]
    processes:
      - nsgen echo-server --port 80
      - nsgen echo-server --port 9000
      - nsgen echo-server --port 9001
  db:
    networks: [back]
"""
TABLE = "inet nsgen-nftchk"
PASS_RULE = ["FORWARD", "-m", "mark", "--mark", "0x10000/0x10000", "-m", "comment", "--comment", "nsgen:nftchk", "-j", "ACCEPT"]


def check(sb, driver, *args):
    return sb.run([*NSGEN, "check", "-f", str(driver.topology), *args], check=False)


def failures(done) -> list[str]:
    return [line for line in done.stdout.splitlines() if not line.startswith(("PASS  ", "SKIP  "))]


def assert_green(done) -> int:
    """The check passed whole; how many checks it made."""
    assert done.returncode == 0, done.stdout + done.stderr
    assert failures(done) == []
    found = re.fullmatch(r"topology nftchk matches this host: (\d+) checks passed\n", done.stderr)
    assert found, done.stderr
    return int(found.group(1))


def assert_drift(done, total: int, lines: list[str]) -> None:
    assert done.returncode == 1
    assert failures(done) == lines
    assert done.stderr == f"topology nftchk: {len(lines)} of {total} checks failed\n"


def up(sb, tmp_path) -> Driver:
    driver = Driver(sb, tmp_path, "run", TOPOLOGY)
    done = driver.up()
    assert "firewall: nftables (one inet table, nsgen-nftchk), as the topology says" in done.stderr
    for port in (80, 9000, 9001):
        assert wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", f"http://10.60.0.2:{port}/echo"]).returncode == 0
    return driver


@pytest.mark.parametrize("forward", ["ACCEPT", "DROP"])
def test_check_reads_the_nft_table_and_names_each_drift(sandbox, tmp_path, forward):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", forward])
    sb.run(["ip6tables", "-P", "FORWARD", forward])
    before = sb.snapshot()
    driver = up(sb, tmp_path)
    green = check(sb, driver)
    total = assert_green(green)
    lines = green.stdout.splitlines()
    for expected in (
        f"PASS  firewall   nftables: table {TABLE} is there",
        "PASS  firewall   nftables: base chain filter_forward (type filter, hook forward, priority -10, policy accept)",
        "PASS  firewall   nftables: base chain nat_prerouting (type nat, hook prerouting, priority -100, policy accept)",
        "PASS  firewall   nftables: chain networks (a regular chain)",
        "PASS  firewall   nftables: chain networks: nothing out of internal network back",
        "PASS  firewall   nftables: chain published_ports: published UDP ports (ip6)",
        "PASS  firewall   nftables: map dnat_ip_tcp holds 8080 . 0.0.0.0/0 : 10.60.0.2 . 80 (published port 8080:80 goes to web)",
        "PASS  firewall   nftables: map dnat_ip6_tcp holds 9001 . ::/0 : fd00:60::2 . 9001 (published port 9000-9001:9000-9001 (9001 to 9001) goes to web)",
        "PASS  firewall   nftables: map dnat_ip_udp holds 5353 . 0.0.0.0/0 : 10.60.0.2 . 53 (published port 5353:53/udp goes to web)",
        "PASS  firewall   nftables: set published_ip holds br-front . 10.60.0.2 . udp . 53 (connections to web's published port 5353:53/udp)",
        "PASS  firewall   nftables: set published_ip6 holds br-front . fd00:60::2 . tcp . 80 (connections to web's published port 8080:80)",
    ):
        assert expected in lines, expected
    nft_lines = [line for line in lines if line.startswith("PASS  firewall   nftables: ")]
    # the table; 7 chains with 9 + 4 + 1 + 1 + 1 + 2 + 5 rules; 2 x (3 + 1) map and 2 x 4 set elements
    assert len(nft_lines) == 1 + 7 + 23 + 8 + 8
    passes = [line for line in lines if "filter FORWARD: -m mark --mark 0x00010000/0x00010000 -j ACCEPT" in line]
    if forward == "DROP":  # nsgen's rule lets the table's marked packets through iptables' FORWARD, in each family
        assert passes == ["PASS  firewall   filter FORWARD: -m mark --mark 0x00010000/0x00010000 -j ACCEPT",
                          "PASS  firewall   filter FORWARD: -m mark --mark 0x00010000/0x00010000 -j ACCEPT (IPv6)"]
    else:  # FORWARD accepts everything: there is no such rule, and none is needed
        assert passes == []
        assert sb.run(["iptables", "-S", "FORWARD"]).stdout == "-P FORWARD ACCEPT\n"

    # a map element deleted; put back without its comment; put back as setup made it
    sb.sh(f"nft delete element {TABLE} dnat_ip_tcp '{{ 8080 . 0.0.0.0/0 }}'")
    assert_drift(check(sb, driver), total, [
        "FAIL  firewall   nftables: map dnat_ip_tcp lacks 8080 . 0.0.0.0/0 : 10.60.0.2 . 80 (published port 8080:80 goes to web)"])
    sb.sh(f"nft add element {TABLE} dnat_ip_tcp '{{ 8080 . 0.0.0.0/0 : 10.60.0.2 . 80 }}'")
    assert_drift(check(sb, driver), total, [
        'FAIL  firewall   nftables: map dnat_ip_tcp holds 8080 . 0.0.0.0/0 : 10.60.0.2 . 80 with the comment "", '
        'the plan with "published port 8080:80 goes to web"'])
    sb.sh(f"nft delete element {TABLE} dnat_ip_tcp '{{ 8080 . 0.0.0.0/0 }}' && nft add element {TABLE} dnat_ip_tcp "
          "'{ 8080 . 0.0.0.0/0 comment \"published port 8080:80 goes to web\" : 10.60.0.2 . 80 }'")
    assert assert_green(check(sb, driver)) == total

    # a set element deleted, and one the plan does not have
    sb.sh(f"nft delete element {TABLE} published_ip6 '{{ \"br-front\" . fd00:60::2 . tcp . 9000 }}'")
    sb.sh(f"nft add element {TABLE} published_ip '{{ \"br-front\" . 10.60.0.9 . tcp . 22 }}'")
    assert_drift(check(sb, driver), total + 1, [
        "FAIL  firewall   nftables: set published_ip holds br-front . 10.60.0.9 . tcp . 22, which the plan does not",
        "FAIL  firewall   nftables: set published_ip6 lacks br-front . fd00:60::2 . tcp . 9000 "
        "(connections to web's published port 9000-9001:9000-9001 (9000 to 9000))"])

    # one rule deleted (by its handle), then its whole chain flushed
    listed = sb.run(["nft", "-a", "list", "chain", *TABLE.split(), "nat_postrouting"]).stdout
    handle = re.search(r'comment "the host reaching a published port of front at 127\.0\.0\.1" # handle (\d+)', listed).group(1)
    sb.run(["nft", "delete", "rule", *TABLE.split(), "nat_postrouting", "handle", handle])
    sb.run(["nft", "flush", "chain", *TABLE.split(), "networks"])
    assert_drift(check(sb, driver), total + 1 - 8, [  # the flushed chain's 9 rules are one line
        "FAIL  firewall   nftables: chain networks has 0 rules, the plan has 9 (flushed?)",
        'FAIL  firewall   nftables: chain nat_postrouting lacks its rule "the host reaching a published port of front at 127.0.0.1"',
        "FAIL  firewall   nftables: set published_ip holds br-front . 10.60.0.9 . tcp . 22, which the plan does not",
        "FAIL  firewall   nftables: set published_ip6 lacks br-front . fd00:60::2 . tcp . 9000 "
        "(connections to web's published port 9000-9001:9000-9001 (9000 to 9000))"])

    # the table deleted: one line says so
    sb.run(["nft", "delete", "table", *TABLE.split()])
    gone = check(sb, driver)
    assert gone.returncode == 1
    assert failures(gone) == [f"FAIL  firewall   nftables: table {TABLE} is missing"]
    if forward == "DROP":  # and without nsgen's rule in FORWARD, that the policy drops is said too
        sb.run(["iptables", "-D", *PASS_RULE])
        assert failures(check(sb, driver)) == [
            f"FAIL  firewall   nftables: table {TABLE} is missing",
            "FAIL  firewall   filter FORWARD: -m mark --mark 0x00010000/0x00010000 -j ACCEPT: "
            "missing, and iptables' FORWARD chain can drop (policy DROP)"]
    driver.down()
    assert sb.snapshot() == before


def test_check_probe_through_the_nft_table_behind_a_drop_policy(sandbox, tmp_path):
    """The probe is traffic: published ports of both families (one of a range among them) reached
    from the host and from the containers through the table's maps, and a deleted map element is a
    port that no longer answers."""
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    sb.run(["ip6tables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = up(sb, tmp_path)
    probed = check(sb, driver, "--probe")
    assert_green(probed)
    probes = [line for line in probed.stdout.splitlines() if "  probe  " in line]
    for expected in (
        "PASS  probe      web → gateway 10.60.0.1 (front, ping)",
        "PASS  probe      web → neighbour db fd00:61::3 (back, ping)",
        f"PASS  probe      web → outside {WORLD_ADDR} (masqueraded through front, ping)",  # the host's default gateways
        f"PASS  probe      web → outside {WORLD_ADDR6} (IPv6, masqueraded through front, ping)",
        "PASS  probe      host → published 127.0.0.1:8080 → web 10.60.0.2:80",
        "PASS  probe      host → published [fd00:60::1]:9001 → web [fd00:60::2]:9001",
        "PASS  probe      web → published 10.60.0.1:9000 → web 10.60.0.2:9000",
        "PASS  probe      web → published [fd00:60::1]:8080 → web [fd00:60::2]:80",
        "SKIP  probe      published 5353/udp → web 10.60.0.2:53: only TCP ports are probed",
    ):
        assert expected in probed.stdout.splitlines(), expected
    assert not any(line.startswith("PASS  probe      db → outside") for line in probes)  # db is internal

    sb.sh(f"nft delete element {TABLE} dnat_ip_tcp '{{ 8080 . 0.0.0.0/0 }}'")
    broken = check(sb, driver, "--probe")
    assert broken.returncode == 1
    found = failures(broken)
    assert found[0] == "FAIL  firewall   nftables: map dnat_ip_tcp lacks 8080 . 0.0.0.0/0 : 10.60.0.2 . 80 (published port 8080:80 goes to web)"
    assert [line.rsplit(": ", 1)[0] for line in found[1:]] == [  # the probes' lines without why
        "FAIL  probe      host → published 127.0.0.1:8080 → web 10.60.0.2:80",
        "FAIL  probe      web → published 10.60.0.1:8080 → web 10.60.0.2:80",
    ]
    assert "PASS  probe      web → published [fd00:60::1]:8080 → web [fd00:60::2]:80" in broken.stdout  # IPv6 has its own map
    driver.down()
    assert sb.snapshot() == before


def test_teardown_without_a_record_removes_the_table_by_its_comment_and_leaves_another_alone(sandbox, tmp_path):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    sb.run(["ip6tables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = up(sb, tmp_path)
    assert sb.run(["iptables", "-C", *PASS_RULE], check=False).returncode == 0
    sb.run(["rm", "-rf", "/run/nsgen/nftchk"])  # an admin's rm, a cleaner of /run
    done = driver.down()
    assert "no record of topology nftchk on this host; removing what carries its marks:" in done.stderr
    shown = done.stderr.splitlines()
    for found in (f"  nftables table {TABLE}", "  1 rule(s) in table filter", "  1 rule(s) in table filter (IPv6)"):
        assert found in shown, done.stderr
    assert sb.snapshot() == before  # the table, FORWARD's pass rules, the namespaces, links and processes

    # a table of the same name that does not carry the topology's comment is not nsgen's
    sb.run(["nft", "add", "table", *TABLE.split()])
    sb.run(["nft", "add", "chain", *TABLE.split(), "theirs"])
    theirs = sb.snapshot()
    done = driver.down()
    assert done.stderr == "topology nftchk is not up on this host: nothing carries its marks\n"
    assert sb.snapshot() == theirs
    # nor is it taken over by a setup: refused before anything changes
    refused = driver.up(check=False)
    assert refused.returncode == 1
    assert f"nftables table {TABLE} already exists and was not made by nsgen topology nftchk; nothing was changed" in refused.stderr
    assert sb.snapshot() == theirs
    sb.run(["nft", "delete", "table", *TABLE.split()])
    assert sb.snapshot() == before
