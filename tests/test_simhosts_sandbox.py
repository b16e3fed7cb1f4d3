"""Simulated hosts inside the sandbox (nsgen/sandbox/hosts.py): an underlay they share, and
namespaces, files and processes each of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.sandbox import WEB_ADDR, Sandbox, SandboxError, SimulatedHost, simulated_hosts

TESTS = Path(__file__).resolve().parent
QUIET = "</dev/null >/dev/null 2>&1"


def gone(pid: int) -> bool:
    """Exited (a zombie holds no namespace and counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def pings(host: SimulatedHost, address: str) -> bool:
    # a few tries: the first packet may wait for neighbour discovery on a busy machine
    return host.run(["ping", "-c", "1", "-W", "2", address], check=False).returncode == 0 or \
        host.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", address], check=False).returncode == 0


def netns(where: Sandbox | SimulatedHost) -> list[str]:
    return [line.split()[0] for line in where.run(["ip", "netns", "list"]).stdout.splitlines()]


def test_hosts_have_their_names_and_addresses(hosts3) -> None:
    assert [(h.name, h.address) for h in hosts3] == [
        ("h1", "192.0.2.11"), ("h2", "192.0.2.12"), ("h3", "192.0.2.13"),
    ]
    h1, h2, h3 = hosts3
    shown = h3.run(["ip", "-br", "addr", "show", "dev", "eth0"]).stdout
    assert "192.0.2.13/24" in shown and "2001:db8:2::13/64" in shown
    assert "default via 192.0.2.1 dev eth0" in h3.run(["ip", "route"]).stdout
    assert "default via 2001:db8:2::1 dev eth0" in h3.run(["ip", "-6", "route"]).stdout
    assert "UP" in h1.run(["ip", "-br", "link", "show", "dev", "lo"]).stdout
    assert "nameserver 203.0.113.53" in h2.run(["cat", "/etc/resolv.conf"]).stdout


def test_hosts_ping_each_other_over_the_underlay(hosts3) -> None:
    h1, h2, h3 = hosts3
    assert pings(h1, h2.address)
    assert pings(h2, h3.address)
    assert pings(h3, "2001:db8:2::11")
    assert pings(h1, "192.0.2.1")


def test_a_host_starts_from_pinned_sysctls_and_empty_tables(hosts2) -> None:
    h1, _ = hosts2
    snap = h1.snapshot()
    assert "net.ipv4.ip_forward = 0" in snap["sysctl"]
    assert "net.ipv4.conf.all.rp_filter = 2" in snap["sysctl"]
    assert "net.ipv6.conf.all.forwarding = 0" in snap["sysctl"]
    assert h1.run(["cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]).stdout.strip() == "2"
    assert "filter :FORWARD ACCEPT" in snap["iptables"] and "nat :POSTROUTING ACCEPT" in snap["iptables"]
    assert not [line for line in snap["iptables"] + snap["ip6tables"] if " -A " in line]
    assert snap["netns"] == [] and snap["processes"] == [] and snap["forward_policy"] == ["ACCEPT"]


def test_a_namespace_or_a_file_on_one_host_is_not_on_another(sandbox: Sandbox, hosts2) -> None:
    h1, h2 = hosts2
    h1.run(["ip", "netns", "add", "x"])
    assert netns(h1) == ["x"]
    assert netns(h2) == []
    assert netns(sandbox) == ["world"]
    h1.sh("mkdir -p /run/nsgen && echo one > /run/nsgen/mark && echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/99-h1.conf")
    assert h1.run(["cat", "/run/nsgen/mark"]).stdout == "one\n"
    assert h2.run(["test", "-e", "/run/nsgen/mark"], check=False).returncode == 1
    assert sandbox.run(["test", "-e", "/run/nsgen/mark"], check=False).returncode == 1
    assert h2.run(["ls", "-A", "/etc/sysctl.d"]).stdout == ""
    assert sandbox.run(["ls", "-A", "/etc/sysctl.d"]).stdout == ""


def test_a_host_reaches_the_world_with_its_own_address(sandbox: Sandbox, hosts2) -> None:
    h1, h2 = hosts2
    curl = ["curl", "-sS", "--max-time", "5", f"http://{WEB_ADDR}/"]
    assert h1.run(curl).stdout.strip() == "192.0.2.11"
    assert h2.run(curl).stdout.strip() == "192.0.2.12"
    assert h2.run(["curl", "-sSg", "--max-time", "5", "http://[2001:db8:113::10]/"]).stdout.strip() == "2001:db8:2::12"
    assert h1.run(["dig", "+short", "web.world.test"]).stdout.split() == [WEB_ADDR]
    # a namespace behind h1, masqueraded by h1: the world sees h1's underlay address
    h1.sh(textwrap.dedent("""\
        set -e
        ip netns add app
        ip link add app0 type veth peer name eth0 netns app
        ip addr add 10.77.0.1/24 dev app0
        ip link set app0 up
        ip -n app addr add 10.77.0.2/24 dev eth0
        ip -n app link set eth0 up
        ip -n app route add default via 10.77.0.1
        sysctl -q -w net.ipv4.ip_forward=1
        iptables -t nat -A POSTROUTING -s 10.77.0.0/24 -o eth0 -j MASQUERADE
    """))
    assert h1.in_ns("app", curl).stdout.strip() == "192.0.2.11"
    # the sandbox host itself is left as it was: no NAT of its own
    assert not [line for line in sandbox.snapshot()["iptables"] if " -A " in line]


def test_snapshot_of_a_host_sees_a_change_and_its_undoing(sandbox: Sandbox, hosts2) -> None:
    h1, h2 = hosts2
    before, before2, box_before = h1.snapshot(), h2.snapshot(), sandbox.snapshot()
    assert h1.snapshot() == before
    h1.sh(textwrap.dedent(f"""\
        set -e
        ip netns add snap
        ip link add snap0 type veth peer name eth0 netns snap
        ip addr add 10.88.0.1/30 dev snap0
        ip link set snap0 up
        iptables -A FORWARD -i snap0 -j ACCEPT
        sysctl -q -w net.ipv4.ip_forward=1
        mkdir -p /etc/netns/snap /run/nsgen/snap
        echo "nameserver 203.0.113.53" > /etc/netns/snap/resolv.conf
        echo '{{}}' > /run/nsgen/snap/state.json
        ip netns exec snap sleep 311 {QUIET} &
    """))
    assert wait_until(lambda: list(h1.processes().values()) == ["sleep 311"])
    after = h1.snapshot()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"netns", "links", "addresses", "routes", "iptables", "nft", "sysctl", "files", "processes"}
    assert after["netns"] == ["snap"]
    assert after["processes"] == ["[netns snap] sleep 311"]
    assert "/run/nsgen/snap/state.json (file 0644): '{}\\n'" in after["files"]
    assert h2.snapshot() == before2
    assert sandbox.snapshot() == box_before

    (sleeper,) = h1.processes()
    h1.run(["kill", str(sleeper)])
    h1.sh(textwrap.dedent("""\
        set -e
        rm -r /run/nsgen /etc/netns/snap
        sysctl -q -w net.ipv4.ip_forward=0
        iptables -D FORWARD -i snap0 -j ACCEPT
        ip link del snap0
        ip netns del snap
    """))
    assert wait_until(lambda: gone(sleeper))
    assert h1.snapshot() == before


def test_vxlan_between_two_hosts(hosts2) -> None:
    h1, h2 = hosts2
    for me, other, x in ((h1, h2, 1), (h2, h1, 2)):
        me.sh(textwrap.dedent(f"""\
            set -e
            ip link add vx42 type vxlan id 42 dstport 4789 nolearning local {me.address}
            ip addr add 10.99.0.{x}/24 dev vx42
            bridge fdb append 00:00:00:00:00:00 dev vx42 dst {other.address}
            ip link set vx42 up
        """))
    assert pings(h1, "10.99.0.2")
    assert pings(h2, "10.99.0.1")


def test_nsgen_runs_on_a_host(hosts2) -> None:
    h1, _ = hosts2
    done = h1.run([sys.executable, "-m", "nsgen", "--help"], cwd=TESTS.parent)
    assert "Usage" in done.stdout


def test_closing_the_sandbox_leaves_no_process(sandbox_factory) -> None:
    box = sandbox_factory()
    hosts = simulated_hosts(box, 2)
    h1, h2 = hosts
    h1.sh(f"sleep 321 {QUIET} & ip netns add p; ip netns exec p sleep 322 {QUIET} &")
    h2.sh(f"setsid sh -c 'sleep 323 & wait' {QUIET} &")
    assert wait_until(lambda: sorted(h1.processes().values()) == ["sleep 321", "sleep 322"])
    expected2 = ["sh -c 'sleep 323 & wait'", "sleep 323"]
    assert wait_until(lambda: sorted(h2.processes().values()) == expected2)
    everyone = [h1.pid, h2.pid, *h1.processes(), *h2.processes(), box.pid, *box.world_pids.values()]
    box.close()
    assert [pid for pid in everyone if not gone(pid)] == []
    assert h1.closed and h2.closed
    with pytest.raises(SandboxError):
        h1.run(["true"])


def test_closing_the_hosts_leaves_the_sandbox(sandbox: Sandbox) -> None:
    hosts = simulated_hosts(sandbox, 2)
    hosts[0].sh(f"sleep 331 {QUIET} &")
    assert wait_until(lambda: list(hosts[0].processes().values()) == ["sleep 331"])
    pids = [hosts[0].pid, hosts[1].pid, *hosts[0].processes()]
    hosts.close()
    assert [pid for pid in pids if not gone(pid)] == []
    assert sandbox.run(["curl", "-sS", "--max-time", "5", f"http://{WEB_ADDR}/"]).stdout.strip() == "198.51.100.1"
    with pytest.raises(SandboxError, match="already has simulated hosts"):
        simulated_hosts(sandbox, 1)


def test_a_killed_owner_leaves_no_host_behind(sandbox_factory) -> None:
    """Each holder notices its owner's death (its stdin closes) and kills its host itself."""
    sandbox_factory().close()  # a sandbox can be made here (or skip); the owner below makes its own
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""\
            import sys, time
            sys.path.insert(0, {str(TESTS.parent)!r})
            from nsgen.sandbox import Sandbox, simulated_hosts
            box = Sandbox()
            h1, h2 = simulated_hosts(box, 2)
            h1.sh("sleep 341 </dev/null >/dev/null 2>&1 &")
            while not h1.processes():
                time.sleep(0.01)
            print(box.pid, h1.pid, h2.pid, *h1.processes(), flush=True)
            time.sleep(300)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert owner.stdout is not None
        pids = [int(pid) for pid in owner.stdout.readline().split()]
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    assert len(pids) == 4
    assert wait_until(lambda: all(gone(pid) for pid in pids))


def test_a_wrong_count_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="count 0 is out of range"):
        simulated_hosts(sandbox, 0)
