"""nsgen's nftables backend beside the host's other firewalls, on real kernel objects in a sandbox:
Docker's iptables layout (the bridge driver of Docker 28, and of Docker 27 before it), a ufw-like
one, Docker's through iptables-legacy, each with FORWARD's policy DROP in both families. nsgen's
networks are forwarded (an accept in nsgen's own base chain does not override a drop in
iptables', so one rule of nsgen's own lets the packets that nsgen's table marked through), the
policy stays DROP, every rule of theirs is the same before setup, while it is up and after
teardown, and teardown leaves nothing of nsgen's. A user's own nft tables and iptables rules
are left as they were too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.drive import NSGEN, Driver, curl, echo_ok, example_text, ping, wait_for
from tests.sandbox import HOST_ADDR, HOST_ADDR6, WEB_ADDR, WEB_ADDR6, WORLD_NS
from tests.test_builtins_sandbox import PYTHON, ROOT, both, functions

DUAL = example_text("dual-stack.yaml") + "host:\n  firewall: nftables\n"
TAG = "nsgen:dual-lab"
PASS = f'-A FORWARD -m mark --mark 0x10000/0x10000 -m comment --comment "{TAG}" -j ACCEPT'

# Docker 28's bridge driver (moby daemon/libnetwork/drivers/bridge, iptabler): docker0 with a
# container publishing its port 80 as the host's 9000, FORWARD's policy set to DROP when the
# daemon turned forwarding on.
DOCKER28 = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-INTERNAL - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER ! -i docker0 -o docker0 -j DROP
-A DOCKER-BRIDGE -o docker0 -j DOCKER
-A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-INTERNAL
-A DOCKER-FORWARD -j DOCKER-BRIDGE
-A DOCKER-FORWARD -i docker0 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"""
# The same daemon's ip6tables (docker0 has no IPv6 of its own): its chains, FORWARD's policy DROP.
DOCKER28_6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-INTERNAL - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-INTERNAL
-A DOCKER-FORWARD -j DOCKER-BRIDGE
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER
COMMIT
"""
# Docker 27 and before: the isolation chains, FORWARD's rules of each network.
DOCKER27 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"""
# ufw enabled with its defaults (incoming deny, routed deny): INPUT and FORWARD DROP, its chains.
UFW = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-after-forward - [0:0]
:ufw-after-input - [0:0]
:ufw-after-logging-forward - [0:0]
:ufw-before-forward - [0:0]
:ufw-before-input - [0:0]
:ufw-before-logging-forward - [0:0]
:ufw-reject-forward - [0:0]
:ufw-track-forward - [0:0]
-A INPUT -j ufw-before-input
-A INPUT -j ufw-after-input
-A FORWARD -j ufw-before-logging-forward
-A FORWARD -j ufw-before-forward
-A FORWARD -j ufw-after-forward
-A FORWARD -j ufw-after-logging-forward
-A FORWARD -j ufw-reject-forward
-A FORWARD -j ufw-track-forward
-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-forward -p icmp -m icmp --icmp-type 3 -j ACCEPT
-A ufw-before-forward -p icmp -m icmp --icmp-type 11 -j ACCEPT
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
COMMIT
"""
UFW6 = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw6-after-forward - [0:0]
:ufw6-after-input - [0:0]
:ufw6-after-logging-forward - [0:0]
:ufw6-before-forward - [0:0]
:ufw6-before-input - [0:0]
:ufw6-before-logging-forward - [0:0]
:ufw6-reject-forward - [0:0]
:ufw6-track-forward - [0:0]
-A INPUT -j ufw6-before-input
-A INPUT -j ufw6-after-input
-A FORWARD -j ufw6-before-logging-forward
-A FORWARD -j ufw6-before-forward
-A FORWARD -j ufw6-after-forward
-A FORWARD -j ufw6-after-logging-forward
-A FORWARD -j ufw6-reject-forward
-A FORWARD -j ufw6-track-forward
-A ufw6-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT
-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j ACCEPT
-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 3 -j ACCEPT
-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 4 -j ACCEPT
-A ufw6-before-input -i lo -j ACCEPT
-A ufw6-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 133 -m hl --hl-eq 255 -j ACCEPT
-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 134 -m hl --hl-eq 255 -j ACCEPT
-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT
-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m hl --hl-eq 255 -j ACCEPT
-A ufw6-before-input -m conntrack --ctstate INVALID -j DROP
COMMIT
"""

# name: (iptables text, ip6tables text, the backend they are loaded through)
LAYOUTS = {
    "docker28": (DOCKER28, DOCKER28_6, "nft"),
    "docker27": (DOCKER27, DOCKER28_6, "nft"),
    "ufw": (UFW, UFW6, "nft"),
    "docker28-legacy": (DOCKER28, DOCKER28_6, "legacy"),
}


def saved(sb, tool: str) -> list[str]:
    """TOOL-save's rules and chains, without its dated comments and counters."""
    text = sb.run([f"{tool}-save"]).stdout
    return [re.sub(r" \[\d+:\d+\]$", "", line) for line in text.splitlines() if not line.startswith("#")]


def load(sb, layout: str) -> list[str]:
    """Make docker0 and load the layout; the programs (iptables-nft or iptables-legacy, and ip6tables') it is in."""
    four, six, backend = LAYOUTS[layout]
    sb.run(["ip", "link", "add", "docker0", "type", "bridge"])
    sb.run(["ip", "addr", "add", "172.17.0.1/16", "dev", "docker0"])
    programs = [f"iptables-{backend}", f"ip6tables-{backend}"]
    for program, text in zip(programs, (four, six)):
        sb.run([f"{program}-restore", "--noflush"], input=text)
    return programs


def pass_packets(sb, program: str) -> int:
    """How many packets the first rule of PROGRAM's FORWARD chain (nsgen's) let through."""
    listed = sb.run([program, "-w", "-L", "FORWARD", "1", "-v", "-x", "-n"]).stdout.split()
    return int(listed[0])


def diagnose(sb, programs: list[str]) -> str:
    """What a failed ping leaves to read: each FORWARD chain with its counters, the container's routes, conntrack."""
    argvs = [[p, "-w", "-L", "FORWARD", "-v", "-x", "-n"] for p in programs]
    argvs += [["ip", "-n", "web", "route"], ["ip", "route"], ["ip", "-s", "neigh"], ["ip", "-n", WORLD_NS, "-s", "neigh"],
              ["ip", "-n", WORLD_NS, "route"], ["ip", "-s", "link"], ["conntrack", "-L"], ["nft", "list", "ruleset"]]
    return "\n".join(sb.run(argv, check=False).stdout for argv in argvs) + sb.log()[-3000:]


@pytest.mark.parametrize("mode", ["script", "run"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_networks_are_forwarded_beside_another_firewall_whose_forward_policy_drops(sandbox, tmp_path, layout, mode):
    sb = sandbox
    programs = load(sb, layout)
    before, rules = sb.snapshot(), {p: saved(sb, p) for p in programs}
    driver = Driver(sb, tmp_path, mode, DUAL)
    assert "warning" not in driver.up().stderr  # iptables' FORWARD chains (either backend) are nsgen's to pass
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "http://172.20.0.2:8000/echo"]).stdout)
    # the containers reach the world, which sees the host's address (masquerade), in both families (the
    # first answer waited for, as a loaded machine can take its time)
    reached = wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "--max-time", "2", f"http://{WEB_ADDR}/"])
    assert reached.returncode == 0, diagnose(sb, programs)
    assert ping(sb, "web", WEB_ADDR), diagnose(sb, programs)
    assert ping(sb, "web", WEB_ADDR6), diagnose(sb, programs)
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    assert curl(sb, "web", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    # the published port answers the world, in both families
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    assert echo_ok(curl(sb, WORLD_NS, f"http://[{HOST_ADDR6}]:8080/echo"))
    # through nsgen's one rule at the top of each FORWARD chain, whose policy is still DROP; every rule
    # of theirs is as it was
    for program in programs:
        now = saved(sb, program)
        assert ":FORWARD DROP" in now
        assert [line for line in now if line != PASS] == rules[program]
        first = next(line for line in now if line.startswith("-A FORWARD"))
        assert first == PASS, now
        assert pass_packets(sb, program) > 0
    check = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert check.returncode == 0, check.stdout
    driver.down()
    for program in programs:
        assert saved(sb, program) == rules[program]
    assert sb.snapshot() == before
    assert "nsgen" not in sb.run(["nft", "list", "ruleset"]).stdout


def test_nsgens_rule_is_what_lets_the_networks_through_and_outlives_a_docker_restart(sandbox, tmp_path):
    sb = sandbox
    load(sb, "docker28")
    driver = Driver(sb, tmp_path, "run", DUAL)
    driver.up()
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "http://172.20.0.2:8000/echo"]).stdout)
    # Docker restarting puts its jumps back at the top of FORWARD and sets its policy to DROP again
    sb.sh("iptables -D FORWARD -j DOCKER-FORWARD && iptables -D FORWARD -j DOCKER-USER && "
          "iptables -I FORWARD 1 -j DOCKER-FORWARD && iptables -I FORWARD 1 -j DOCKER-USER && iptables -P FORWARD DROP")
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    # without nsgen's rule, the accept of nsgen's own base chain does not get a packet past iptables' DROP
    sb.run(["iptables", "-D", "FORWARD", "-m", "mark", "--mark", "0x10000/0x10000", "-m", "comment", "--comment", TAG, "-j", "ACCEPT"])
    assert curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo", timeout=1) is None
    assert curl(sb, "web", f"http://{WEB_ADDR}/", timeout=1) is None
    assert echo_ok(curl(sb, WORLD_NS, f"http://[{HOST_ADDR6}]:8080/echo"))  # ip6tables' rule is still there
    done = sb.run([*NSGEN, "run", "-f", str(driver.topology)])  # a second run puts it back
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo")), done.stderr
    driver.down()
    assert "nsgen" not in sb.run(["iptables-save"]).stdout + sb.run(["nft", "list", "ruleset"]).stdout


# A user's own firewall: an inet table with an input and a forward chain that accept, an ip table
# with a set, and rules of their own in iptables' INPUT, FORWARD and POSTROUTING (both families).
USER_NFT = """table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		iif "lo" accept
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
	}
}
table ip guard {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.7, 192.0.2.9 }
	}
	chain prerouting {
		type filter hook prerouting priority -5; policy accept;
		ip saddr @blocked drop
	}
}
"""
USER_IPTABLES = ("iptables -A INPUT -p tcp --dport 22 -j ACCEPT && iptables -A FORWARD -s 192.0.2.0/24 -j DROP && "
                 "iptables -t nat -A POSTROUTING -s 10.99.0.0/16 -o eth9 -j MASQUERADE && "
                 "ip6tables -A FORWARD -s 2001:db8:9::/48 -j DROP")


def ruleset(sb) -> str:
    """`nft list ruleset`, without its counters' values."""
    return re.sub(r"counter packets \d+ bytes \d+", "counter", sb.run(["nft", "list", "ruleset"]).stdout)


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_users_own_nft_tables_and_iptables_rules_are_left_as_they_were(sandbox, tmp_path, mode):
    sb = sandbox
    sb.run(["nft", "-f", "-"], input=USER_NFT)
    sb.sh(USER_IPTABLES)
    theirs = {table: sb.run(["nft", "list", "table", *table.split()]).stdout for table in ("inet filter", "ip guard")}
    before, nft, rules = sb.snapshot(), ruleset(sb), {p: saved(sb, p) for p in ("iptables", "ip6tables")}
    driver = Driver(sb, tmp_path, mode, DUAL)
    driver.up()
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "http://172.20.0.2:8000/echo"]).stdout)
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    assert curl(sb, "web", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
    for table, text in theirs.items():
        assert sb.run(["nft", "list", "table", *table.split()]).stdout == text
    for program in ("iptables", "ip6tables"):  # FORWARD holds rules: nsgen's one rule goes first
        now = saved(sb, program)
        assert [line for line in now if line != PASS] == rules[program]
        assert next(line for line in now if line.startswith("-A FORWARD")) == PASS
    driver.down()
    assert ruleset(sb) == nft
    for program in ("iptables", "ip6tables"):
        assert saved(sb, program) == rules[program]
    assert sb.snapshot() == before


# ----------------------------------------------------------------------------------------------
# What the guards read of the other backend: ports another topology publishes, other firewalls

PORTS = DUAL.replace('"8080:8000"', '"8080:8000", "[2001:db8:100::1]:8443:8000", "127.0.0.1:8444:8000", "9000-9001:9000-9001/udp"')
ELSEWHERE = """
name: elsewhere
networks:
  side:
    subnet: 172.30.0.0/24
containers:
  box:
    networks: [side]
    ports: ["{port}:80"]
"""


def test_ports_free_sees_the_ports_an_nftables_topology_publishes(sandbox, tmp_path):
    sb = sandbox
    (tmp_path / "dual.yaml").write_text(PORTS)
    sb.run([*NSGEN, "run", "-f", str(tmp_path / "dual.yaml")])
    theirs = "host port {}/{} is already published by nsgen topology dual-lab; nothing was changed"
    said = {spec: both(sb, "ports_free", "nsgen:elsewhere", spec) for spec in (
        "tcp:8080:*", "tcp:8080:127.0.0.1", "tcp:8080:[::1]", "tcp:8443:*", "tcp:8443:[2001:db8:100::1]", "tcp:8443:[::1]",
        "tcp:8443:127.0.0.1", "tcp:8444:127.0.0.1", "tcp:8444:127.0.0.2", "tcp:8444:[::1]", "udp:9001:*", "udp:9002:*", "tcp:9000:*")}
    assert said == {
        "tcp:8080:*": (1, theirs.format(8080, "tcp")), "tcp:8080:127.0.0.1": (1, theirs.format(8080, "tcp")),
        "tcp:8080:[::1]": (1, theirs.format(8080, "tcp")), "tcp:8443:*": (1, theirs.format(8443, "tcp")),
        "tcp:8443:[2001:db8:100::1]": (1, theirs.format(8443, "tcp")), "tcp:8443:[::1]": (0, ""), "tcp:8443:127.0.0.1": (0, ""),
        "tcp:8444:127.0.0.1": (1, theirs.format(8444, "tcp")), "tcp:8444:127.0.0.2": (0, ""), "tcp:8444:[::1]": (0, ""),
        "udp:9001:*": (1, theirs.format(9001, "udp")), "udp:9002:*": (0, ""), "tcp:9000:*": (0, ""),
    }
    assert both(sb, "ports_free", "nsgen:dual-lab", "tcp:8080:*", "udp:9001:*") == (0, "")  # its own


@pytest.mark.parametrize("backends", [("nftables", "iptables"), ("iptables", "nftables"), ("nftables", "nftables")])
@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_topology_of_either_backend_refuses_a_port_one_of_the_other_publishes(sandbox, tmp_path, backends, mode):
    sb = sandbox
    first, second = backends
    (tmp_path / "first.yaml").write_text(DUAL.replace("firewall: nftables", f"firewall: {first}"))
    sb.run([*NSGEN, "run", "-f", str(tmp_path / "first.yaml")])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, ELSEWHERE.format(port=8080) + f"host:\n  firewall: {second}\n")
    refused = driver.up(check=False)
    assert refused.returncode == 1
    assert "host port 8080/tcp is already published by nsgen topology dual-lab; nothing was changed" in refused.stderr
    assert sb.snapshot() == before
    driver = Driver(sb, tmp_path, mode, ELSEWHERE.format(port=8081) + f"host:\n  firewall: {second}\n")
    driver.up()
    driver.down()
    assert sb.snapshot() == before


def hide_iptables(tmp_path) -> str:
    """A PATH of every program of this one but iptables' (iptables*, ip6tables*, xtables*): what a
    host with nft and without iptables has."""
    hidden = tmp_path / "bin"
    hidden.mkdir(exist_ok=True)
    for folder in [*os.environ["PATH"].split(":"), "/usr/sbin", "/usr/bin", "/sbin", "/bin"]:
        for program in sorted(Path(folder).glob("*")) if Path(folder).is_dir() else []:
            if not program.name.startswith(("iptables", "ip6tables", "xtables")) and not (hidden / program.name).exists():
                (hidden / program.name).symlink_to(program)
    return str(hidden)


def halves(sb, name: str, *args: str, env: dict[str, str] | None = None) -> dict[str, subprocess.CompletedProcess[str]]:
    """Both halves of a builtin, as test_builtins_sandbox runs them, with `env` besides."""
    script = f"{functions()}\nset -uo pipefail\n\"$@\"\n"
    return {"shell": sb.run(["bash", "-c", script, "nsgen-builtin", name, *args], env=env, check=False),
            "python": sb.run([sys.executable, "-c", PYTHON, name, *args], check=False, env={"PYTHONPATH": str(ROOT), **(env or {})})}


def warnings(sb, *words: str, env: dict[str, str] | None = None) -> list[str]:
    """What other_firewall warns of, both halves agreeing."""
    said = {}
    for half, done in halves(sb, "other_firewall", *words, env=env).items():
        assert (half, done.returncode) == (half, 0)
        said[half] = [line.removeprefix("nsgen: warning: ") for line in done.stderr.splitlines()]
    assert said["shell"] == said["python"], said
    return said["python"]


def test_other_firewall_for_nftables_leaves_out_the_forward_chains_nsgens_rule_passes(sandbox, tmp_path):
    sb = sandbox
    load(sb, "docker28-legacy")
    sb.sh("iptables -P FORWARD DROP && ip6tables -P FORWARD DROP && nft add table inet guard && "
          "nft add chain inet guard screen '{ type filter hook forward priority 0; policy drop; }'")
    guard = "nft table inet guard, chain screen: policy drop on the forward hook"
    assert warnings(sb, "nftables", "6") == [guard]
    legacy = warnings(sb, "6")  # an iptables topology: both backends' rules must pass
    assert [line.split(" (")[0] for line in legacy] == ["iptables-legacy also holds rules on this host",
                                                        "ip6tables-legacy also holds rules on this host", guard]
    # where no iptables program can write iptables-nft's FORWARD chain, its drop is another firewall's
    hidden = {"PATH": hide_iptables(tmp_path)}
    assert sb.run(["bash", "-c", "command -v iptables ip6tables iptables-nft iptables-legacy"], env=hidden, check=False).stdout == ""
    assert sorted(warnings(sb, "nftables", "6", env=hidden)) == sorted([
        "nft table ip6 filter, chain FORWARD: policy drop on the forward hook",
        "nft table ip filter, chain FORWARD: policy drop on the forward hook",
        guard,
    ])


# ----------------------------------------------------------------------------------------------
# auto, on a host with nft and without iptables

LOGGER = """#!/bin/sh
echo "$0 $*" >> {log}
exit 3
"""


def trap_iptables(sb, tmp_path) -> Path:
    """Every iptables program of the sandbox (both backends' multi-call binaries) replaced, in its
    own mount namespace, by one that writes down how it was called and fails: the file it writes."""
    log = tmp_path / "iptables-calls"
    (tmp_path / "logger").write_text(LOGGER.format(log=log))
    (tmp_path / "logger").chmod(0o755)
    for binary in ("/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi"):
        sb.run(["mount", "--bind", str(tmp_path / "logger"), binary])
    return log


def untrap_iptables(sb) -> None:
    for binary in ("/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi"):
        sb.run(["umount", binary])


NO_HOST = DUAL.replace("host:\n  firewall: nftables\n", "")
# what changed between setup and teardown: the file names iptables now, or NSGEN_FIREWALL does
CHANGES = {
    "file": (DUAL.replace("firewall: nftables", "firewall: auto"), {}, DUAL.replace("firewall: nftables", "firewall: iptables"), {}),
    "env": (NO_HOST, {"NSGEN_FIREWALL": "auto"}, NO_HOST, {"NSGEN_FIREWALL": "iptables"}),
}
AUTO = "firewall: auto chose nftables: nft is installed and iptables is not"


@pytest.mark.parametrize("changed", CHANGES)
@pytest.mark.parametrize("mode", ["script", "run"])
def test_auto_chooses_nftables_without_iptables_and_teardown_keeps_to_the_recorded_backend(sandbox, tmp_path, mode, changed):
    sb = sandbox
    text, env, later, later_env = CHANGES[changed]
    topology, setup_sh, cleanup_sh = tmp_path / "topology.yaml", tmp_path / "setup.sh", tmp_path / "cleanup.sh"
    topology.write_text(text)
    hidden = {"PATH": hide_iptables(tmp_path)}
    before = sb.snapshot()
    log = trap_iptables(sb, tmp_path)
    try:
        assert sb.run(["/usr/sbin/iptables", "-V"], check=False).returncode == 3 and log.read_text() == "/usr/sbin/iptables -V\n"
        log.unlink()  # the trap holds
        if mode == "script":
            sb.run([*NSGEN, "render", "-f", str(topology), "-o", str(setup_sh)], env={**hidden, **env})
            assert f"\n# {AUTO}\n" in setup_sh.read_text()
            done = sb.run(["bash", str(setup_sh)], env=hidden)
        else:
            done = sb.run([*NSGEN, "run", "-f", str(topology)], env={**hidden, **env})
            assert AUTO in done.stderr.splitlines()
        assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "http://172.20.0.2:8000/echo"]).stdout)
        assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
        assert curl(sb, "web", f"http://[{WEB_ADDR6}]/").strip() == HOST_ADDR6
        assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
        assert echo_ok(curl(sb, WORLD_NS, f"http://[{HOST_ADDR6}]:8080/echo"))
        assert "table inet nsgen-dual-lab" in sb.run(["nft", "list", "tables"]).stdout
        # the file or NSGEN_FIREWALL says iptables now: teardown removes what the record says was set up
        topology.write_text(later)
        if mode == "script":
            rendered = sb.run([*NSGEN, "render", "--teardown", "-f", str(topology), "-o", str(cleanup_sh)], env={**hidden, **later_env})
            assert "note: the file no longer describes what is up" in rendered.stderr
            sb.run(["bash", str(cleanup_sh)], env=hidden)
        else:
            done = sb.run([*NSGEN, "run", "--teardown", "-f", str(topology)], env={**hidden, **later_env})
            assert "no longer describes what is up" in done.stderr
        assert not log.exists(), log.read_text()
    finally:
        untrap_iptables(sb)
    assert sb.snapshot() == before


def test_docker_started_after_setup_and_the_limit_of_a_drop_that_comes_later(sandbox, tmp_path):
    """Docker's first start finds forwarding on (nsgen turned it on) and leaves FORWARD's policy
    ACCEPT: nothing changes for nsgen's networks. A policy DROP set after setup (a Docker that set it
    once sets it at every start; ufw enabled later) cuts them off until nsgen runs again."""
    sb = sandbox
    driver = Driver(sb, tmp_path, "run", DUAL)
    driver.up()
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "http://172.20.0.2:8000/echo"]).stdout)
    assert PASS not in saved(sb, "iptables")  # FORWARD accepts everything: nothing of nsgen's there
    sb.run(["ip", "link", "add", "docker0", "type", "bridge"])
    sb.run(["iptables-restore", "--noflush"], input=DOCKER28.replace(":FORWARD DROP", ":FORWARD ACCEPT"))
    docker = saved(sb, "iptables")
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    assert curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo", timeout=1) is None
    sb.run([*NSGEN, "run", "-f", str(driver.topology)])
    assert echo_ok(curl(sb, WORLD_NS, f"http://{HOST_ADDR}:8080/echo"))
    assert curl(sb, "web", f"http://{WEB_ADDR}/").strip() == HOST_ADDR
    driver.down()
    sb.run(["iptables", "-P", "FORWARD", "ACCEPT"])
    assert saved(sb, "iptables") == docker
    assert "nsgen" not in sb.run(["nft", "list", "ruleset"]).stdout


@pytest.mark.parametrize("layout", ["docker28", "docker28-legacy"])
def test_ports_free_refuses_a_port_docker_publishes_through_either_iptables_backend(sandbox, layout):
    sb = sandbox
    load(sb, layout)
    docker = ("host port 9000/tcp is already published by another program's rule (-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9000 "
              "-j DNAT --to-destination 172.17.0.2:80); nothing was changed")
    assert both(sb, "ports_free", "nsgen:dual-lab", "tcp:9000:*") == (1, docker)
    assert both(sb, "ports_free", "nsgen:dual-lab", "tcp:9000:127.0.0.1") == (1, docker)
    assert both(sb, "ports_free", "nsgen:dual-lab", "tcp:9000:[::1]", "udp:9000:*", "tcp:9001:*") == (0, "")
