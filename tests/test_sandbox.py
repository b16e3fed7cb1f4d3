"""The sandbox fixture itself: its world answers, its snapshot sees changes, close() leaves nothing.

Every command that changes something runs inside a sandbox; this file only *reads* the real host
(to prove it unchanged).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.sandbox import (
    DNS_ADDR,
    DNS_ADDR6,
    HOST_ADDR,
    HOST_ADDR6,
    WEB_ADDR,
    WEB_ADDR6,
    WORLD_ADDR6,
    Sandbox,
    SandboxCommandError,
    SandboxError,
)

TESTS = Path(__file__).resolve().parent


def read_only(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def real_host_state() -> dict[str, object]:
    """What no test may change on the real host, read from outside any sandbox."""
    iptables = [line for line in read_only("iptables-save").splitlines() if not line.startswith("#")]
    return {
        "netns": read_only("ip", "netns", "list"),
        "links": sorted(link["ifname"] for link in json.loads(read_only("ip", "-j", "link", "show"))),
        "iptables": iptables,
        "nft": read_only("nft", "list", "ruleset") if shutil.which("nft") else None,
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text(),
        "/etc/netns exists": os.path.lexists("/etc/netns"),
        "/run/nsgen exists": os.path.lexists("/run/nsgen"),
        "/run/netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else None,
        "/etc/resolv.conf": Path("/etc/resolv.conf").read_text(),
        "/etc/hosts": Path("/etc/hosts").read_text(),
    }


def gone(pid: int) -> bool:
    """Exited (a zombie holds no namespace and counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def add_probe(sandbox: Sandbox, *, masquerade: bool) -> None:
    """A namespace `probe` routed through the sandbox host, with its own resolv.conf.

    Its link cannot be in 198.51.100.0/24: world0 holds that whole /24, and a second connected
    route for part of it would be ambiguous. It takes 203.0.113.128/30 instead: the rest of
    203.0.113.0/24 stays behind the default route, where the world's two /32 addresses are.
    The world has no route back to 203.0.113.128/30, exactly like the Internet and a private
    network: only masquerading (or nothing) gets an answer home.
    """
    sandbox.sh(textwrap.dedent("""\
        set -e
        ip netns add probe
        ip link add probe0 type veth peer name eth0 netns probe
        ip addr add 203.0.113.129/30 dev probe0
        ip link set probe0 up
        ip -n probe link set lo up
        ip -n probe addr add 203.0.113.130/30 dev eth0
        ip -n probe link set eth0 up
        ip -n probe route add default via 203.0.113.129
        mkdir -p /etc/netns/probe
        echo "nameserver 203.0.113.53" > /etc/netns/probe/resolv.conf
        sysctl -q -w net.ipv4.ip_forward=1
    """))
    if masquerade:
        sandbox.run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "203.0.113.128/30",
                     "-o", "world0", "-j", "MASQUERADE"])


# -- the world -------------------------------------------------------------------------------

def test_world_web_server_answers_the_callers_address(sandbox: Sandbox) -> None:
    assert sandbox.run(["curl", "-sS", "--max-time", "5", f"http://{WEB_ADDR}/"]).stdout == f"{HOST_ADDR}\n"
    assert sandbox.run(["curl", "-sS", "--max-time", "5", f"http://{WEB_ADDR}/any/path?x=1"]).stdout.strip() == HOST_ADDR
    sandbox.run(["ping", "-c", "1", "-W", "2", WEB_ADDR])


def test_world_dns_answers_dig(sandbox: Sandbox) -> None:
    def dig(*args: str) -> str:
        return sandbox.run(["dig", "+time=2", "+tries=1", f"@{DNS_ADDR}", *args]).stdout

    assert dig("+short", "web.world.test").split() == [WEB_ADDR]
    assert dig("+short", "DNS.World.Test.").split() == [DNS_ADDR]
    assert "status: NXDOMAIN" in dig("nope.world.test")
    assert "status: NXDOMAIN" in dig("example.com")
    assert dig("+short", "AAAA", "web.world.test").split() == [WEB_ADDR6]
    assert dig("+short", "A", "example.test").split() == [WEB_ADDR]
    assert dig("+short", "AAAA", "example.test").split() == [WEB_ADDR6]
    nodata = dig("dns.world.test", "AAAA")  # a name with an A record only
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata


def test_the_sandbox_host_resolves_through_the_world(sandbox: Sandbox) -> None:
    # getent hosts asks for IPv6 first: the name's AAAA answer, or else its A answer
    assert sandbox.run(["getent", "hosts", "web.world.test"]).stdout.split() == [WEB_ADDR6, "web.world.test"]
    assert sandbox.run(["getent", "hosts", "dns.world.test"]).stdout.split() == [DNS_ADDR, "dns.world.test"]
    assert sandbox.run(["getent", "ahostsv4", "web.world.test"]).stdout.split()[0] == WEB_ADDR
    assert sandbox.run(["getent", "hosts", "nope.world.test"], check=False).returncode == 2


# -- the world over IPv6 ---------------------------------------------------------------------

def test_world_answers_over_ipv6_at_once(sandbox: Sandbox) -> None:
    """Right after the start: nodad addresses are never tentative, and neighbour discovery does
    not wait for a late carrier (world0's ifindex is not its peer's)."""
    ping = sandbox.run(["ping", "-6", "-c", "1", "-W", "2", WEB_ADDR6]).stdout
    rtt = float(ping.split(" time=")[1].split()[0])
    assert rtt < 500, ping  # a lost first neighbour solicitation costs a 1000 ms retry
    assert sandbox.run(["curl", "-sS", "-6", "--max-time", "5", f"http://[{WEB_ADDR6}]/"]).stdout == f"{HOST_ADDR6}\n"
    assert sandbox.run(["curl", "-sS", "--max-time", "5", f"http://[{WEB_ADDR6}]/any/path?x=1"]).stdout == f"{HOST_ADDR6}\n"
    assert sandbox.run(["curl", "-sS", "--max-time", "5", f"http://{WEB_ADDR}/"]).stdout == f"{HOST_ADDR}\n"
    for ns in (None, "world"):
        show = ["ip", "-6", "addr", "show", "scope", "global", "tentative"]  # link-local ones go through DAD
        assert (sandbox.run(show) if ns is None else sandbox.in_ns(ns, show)).stdout == ""


def test_world_dns_answers_aaaa_over_both_families(sandbox: Sandbox) -> None:
    for server in (DNS_ADDR6, DNS_ADDR):  # IPv6, and the host's resolver (IPv4)
        def dig(*args: str, server: str = server) -> str:
            return sandbox.run(["dig", "+time=2", "+tries=1", f"@{server}", *args]).stdout

        assert dig("AAAA", "example.test", "+short").split() == [WEB_ADDR6]
        assert dig("A", "example.test", "+short").split() == [WEB_ADDR]
        assert dig("AAAA", "web.world.test", "+short").split() == [WEB_ADDR6]
        assert dig("A", "web.world.test", "+short").split() == [WEB_ADDR]
        nodata = dig("AAAA", "dns.world.test")
        assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata
        assert "status: NXDOMAIN" in dig("AAAA", "nope.world.test")
    assert sandbox.run(["cat", "/etc/resolv.conf"]).stdout.splitlines()[1] == f"nameserver {DNS_ADDR}"
    # through the host's resolver, by name, over either family
    for family, caller in (("-6", HOST_ADDR6), ("-4", HOST_ADDR)):
        assert sandbox.run(["curl", "-sS", family, "--max-time", "5", "http://example.test/"]).stdout == f"{caller}\n"


def test_the_sandbox_host_has_ipv6_through_the_world(sandbox: Sandbox) -> None:
    snapshot = sandbox.snapshot()
    assert "world0 inet6 2001:db8:100::1/64 scope global" in snapshot["addresses"]
    assert snapshot["routes6"] == [
        "type=local dst=2001:db8:100::1 dev=world0 table=local protocol=kernel metric=0",
        "type=local dst=::1 dev=lo table=local protocol=kernel metric=0",
        "type=multicast dst=ff00::/8 dev=world0 table=local protocol=kernel metric=256",
        "type=unicast dst=2001:db8:100::/64 dev=world0 table=main protocol=kernel metric=256",
        f"type=unicast dst=default gateway={WORLD_ADDR6} dev=world0 table=main metric=1024",
    ]
    assert snapshot["ip6tables"] == snapshot["iptables"]  # the same tables, empty, policies ACCEPT
    assert "filter :FORWARD ACCEPT" in snapshot["ip6tables"] and not any(" -A " in line for line in snapshot["ip6tables"])
    assert "net.ipv6.conf.all.forwarding = 0" in snapshot["sysctl"]
    assert "net.ipv6.conf.all.disable_ipv6 = 0" in snapshot["sysctl"]
    world = sandbox.in_ns("world", ["ip", "-6", "-br", "addr"]).stdout.split()
    assert world == ["lo", "UNKNOWN", "2001:db8:113::53/128", "2001:db8:113::10/128", "::1/128",
                     "host0@if100", "UP", "2001:db8:100::2/64", world[-1]]
    assert world[-1].startswith("fe80::")


def test_a_namespace_reaches_the_world_only_through_masquerading(sandbox: Sandbox) -> None:
    add_probe(sandbox, masquerade=False)
    unanswered = sandbox.in_ns("probe", ["curl", "-sS", "--max-time", "0.5", f"http://{WEB_ADDR}/"], check=False)
    assert unanswered.returncode == 28  # timed out: the world cannot answer 203.0.113.130

    sandbox.run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "203.0.113.128/30",
                 "-o", "world0", "-j", "MASQUERADE"])
    assert sandbox.in_ns("probe", ["curl", "-sS", "--max-time", "5", f"http://{WEB_ADDR}/"]).stdout.strip() == HOST_ADDR


def test_a_namespace_resolves_with_its_etc_netns_resolv_conf(sandbox: Sandbox) -> None:
    add_probe(sandbox, masquerade=True)
    assert sandbox.in_ns("probe", ["cat", "/etc/resolv.conf"]).stdout == "nameserver 203.0.113.53\n"
    assert sandbox.in_ns("probe", ["getent", "hosts", "web.world.test"]).stdout.split() == [WEB_ADDR6, "web.world.test"]
    assert sandbox.in_ns("probe", ["getent", "hosts", "dns.world.test"]).stdout.split() == [DNS_ADDR, "dns.world.test"]
    assert sandbox.in_ns("probe", ["getent", "hosts", "nope.world.test"], check=False).returncode == 2
    lookup = "import socket; print(socket.getaddrinfo('dns.world.test', 53, proto=socket.IPPROTO_UDP)[0][4][0])"
    assert sandbox.in_ns("probe", [sys.executable, "-c", lookup]).stdout.strip() == DNS_ADDR
    # the name has an IPv6 address too, but probe has no IPv6 route: curl falls back to IPv4 at once
    assert sandbox.in_ns("probe", ["curl", "-sS", "--max-time", "5", "http://web.world.test/"]).stdout.strip() == HOST_ADDR


# -- running commands ------------------------------------------------------------------------

def test_run_captures_text_and_raises_with_everything(sandbox: Sandbox) -> None:
    assert sandbox.run(["cat"], input="hello").stdout == "hello"
    assert sandbox.sh("echo $SANDBOX_TEST_VAR; echo oops >&2", env={"SANDBOX_TEST_VAR": "x"}).stdout == "x\n"
    assert sandbox.run(["pwd"]).stdout.strip() == os.getcwd()
    assert sandbox.run(["pwd"], cwd="/tmp").stdout.strip() == "/tmp"
    assert sandbox.run(["sh", "-c", "exit 3"], check=False).returncode == 3
    with pytest.raises(SandboxCommandError) as failure:
        sandbox.sh("echo out; echo err >&2; exit 4")
    assert isinstance(failure.value, AssertionError)
    assert (failure.value.argv, failure.value.returncode) == (["bash", "-c", "echo out; echo err >&2; exit 4"], 4)
    assert (failure.value.stdout, failure.value.stderr) == ("out\n", "err\n")
    assert "exit status 4" in str(failure.value) and "err" in str(failure.value)


def test_the_sandbox_host_is_its_own(sandbox: Sandbox) -> None:
    links = {link["ifname"] for link in json.loads(sandbox.run(["ip", "-j", "link"]).stdout)}
    assert links == {"lo", "world0"}
    assert sandbox.run(["ip", "netns", "list"]).stdout.split()[0] == "world"
    assert sandbox.run(["cat", "/etc/resolv.conf"]).stdout.splitlines()[1] == f"nameserver {DNS_ADDR}"
    assert sandbox.run(["ls", "-A", "/etc/netns", "/etc/sysctl.d"]).stdout.split() == ["/etc/netns:", "/etc/sysctl.d:"]


# -- pinned sysctls: the same start whatever the machine's own values --------------------------

PINNED = {  # what nsgen reads (ip_forward) or writes, and what the tests' traffic depends on
    "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.forwarding": "0",
    "net.ipv4.conf.default.forwarding": "0",
    "net.ipv4.conf.all.route_localnet": "0",
    "net.ipv4.conf.default.route_localnet": "0",
    "net.ipv4.conf.all.rp_filter": "2",
    "net.ipv4.conf.default.rp_filter": "2",
    "net.ipv6.conf.all.forwarding": "0",
    "net.ipv6.conf.default.forwarding": "0",
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv6.conf.default.disable_ipv6": "0",
    "net.bridge.bridge-nf-call-iptables": "1",  # only where br_netfilter is loaded
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
READ_PINNED = (  # every pinned file, and the conf values of every interface, as "path value"
    "cd /proc/sys && for f in net/ipv4/ip_forward net/ipv4/conf/*/forwarding net/ipv4/conf/*/route_localnet "
    "net/ipv4/conf/*/rp_filter net/ipv6/conf/*/forwarding net/ipv6/conf/*/disable_ipv6 "
    "net/bridge/bridge-nf-call-ip*tables; do "
    '[ ! -e "$f" ] || echo "$f $(cat "$f")"; done'
)


def pinned_files(interfaces: tuple[str, ...], bridge: bool) -> dict[str, str]:
    """What READ_PINNED shows in a namespace with these interfaces: conf.default's values on each."""
    files = {}
    for key, value in PINNED.items():
        parts = key.split(".")
        if parts[2:4] == ["conf", "default"]:
            for name in ("default", *interfaces):
                files[f"net/{parts[1]}/conf/{name}/{parts[4]}"] = value
        elif parts[1] != "bridge" or bridge:
            files[key.replace(".", "/")] = value
    return files


def read_pinned(sandbox: Sandbox, ns: str | None = None) -> dict[str, str]:
    argv = ["bash", "-c", READ_PINNED]
    out = (sandbox.run(argv) if ns is None else sandbox.in_ns(ns, argv)).stdout
    return dict(line.split() for line in out.splitlines())


def test_a_new_sandbox_starts_from_pinned_sysctls(sandbox: Sandbox) -> None:
    bridge = sandbox.run(["test", "-d", "/proc/sys/net/bridge"], check=False).returncode == 0
    shown = {key: "(absent)" if key.startswith("net.bridge.") and not bridge else value for key, value in PINNED.items()}
    assert sandbox.snapshot()["sysctl"] == sorted(f"{key} = {value}" for key, value in shown.items())
    assert read_pinned(sandbox) == pinned_files(("lo", "world0"), bridge)
    assert read_pinned(sandbox, "world") == pinned_files(("lo", "host0"), bridge)


def test_pinning_overrides_what_a_new_namespace_inherits(sandbox: Sandbox) -> None:
    """As on a machine that forwards, checks rp_filter strictly and routes localnet: pinned again."""
    before = sandbox.snapshot()
    sandbox.sh(textwrap.dedent("""\
        set -e
        cd /proc/sys/net
        for conf in ipv4/conf/*; do echo 1 > $conf/forwarding; echo 1 > $conf/route_localnet; echo 1 > $conf/rp_filter; done
        for conf in ipv6/conf/*; do echo 1 > $conf/forwarding; done
        echo 1 > ipv6/conf/default/disable_ipv6  # not all's, nor an interface's: that drops their addresses
        [ ! -d bridge ] || echo 0 > bridge/bridge-nf-call-iptables
    """))
    assert sandbox.snapshot() != before
    pin = (f"import sys; sys.path.insert(0, {str(TESTS.parent)!r}); from nsgen.sandbox import host; "
           "host.PINNED_SYSCTLS['net.ipv4.no_such_key'] = '1'; host._pin_sysctls()")  # a missing key is skipped
    sandbox.run([sys.executable, "-S", "-c", pin])
    assert sandbox.snapshot() == before
    bridge = sandbox.run(["test", "-d", "/proc/sys/net/bridge"], check=False).returncode == 0
    assert read_pinned(sandbox) == pinned_files(("lo", "world0"), bridge)


def test_the_sandbox_writes_nothing_to_the_real_disk(sandbox: Sandbox) -> None:
    real = real_host_state()
    sandbox.sh("echo '203.0.113.99 scratch' >> /etc/hosts; mkdir -p /etc/netns/x /run/nsgen/x; touch /etc/sysctl.d/x.conf")
    assert "scratch" in sandbox.run(["cat", "/etc/hosts"]).stdout
    assert real_host_state() == real


def test_the_fixture_marks_its_tests(request: pytest.FixtureRequest, sandbox: Sandbox) -> None:
    assert request.node.get_closest_marker("sandbox") is not None


# -- snapshot --------------------------------------------------------------------------------

def test_snapshot_sees_changes_and_their_undoing(sandbox: Sandbox) -> None:
    before = sandbox.snapshot()
    assert before == sandbox.snapshot()
    assert before["netns"] == ["world"]
    assert before["forward_policy"] == ["ACCEPT"]
    assert "net.ipv4.ip_forward = 0" in before["sysctl"]
    assert before["processes"] == []

    sandbox.sh(textwrap.dedent("""\
        set -e
        ip netns add snap
        ip link add br-snap type bridge
        ip link add snap0 type veth peer name eth0 netns snap
        ip link set snap0 master br-snap
        ip addr add 203.0.113.129/30 dev br-snap
        ip link set br-snap up
        ip link set snap0 up
        iptables -N SNAP-TEST
        iptables -A FORWARD -m comment --comment "nsgen:snap" -j SNAP-TEST
        iptables -t nat -A POSTROUTING -s 203.0.113.128/30 -o world0 -j MASQUERADE
        iptables -P FORWARD DROP
        sysctl -q -w net.ipv4.ip_forward=1
        mkdir -p /etc/netns/snap /run/nsgen/snap
        echo "nameserver 203.0.113.53" > /etc/netns/snap/resolv.conf
        echo '{"links": ["snap0"]}' > /run/nsgen/snap/state.json
        ip netns exec snap sleep 300 </dev/null >/dev/null 2>&1 &
    """))
    after = sandbox.snapshot()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"netns", "links", "addresses", "routes", "iptables", "forward_policy", "nft",
                       "sysctl", "files", "processes"}
    assert after["netns"] == ["snap", "world"]
    assert "br-snap kind=bridge state=UP mtu=1500 master=-" in after["links"]
    assert "snap0 kind=veth state=UP mtu=1500 master=br-snap port=bridge" in after["links"]
    assert 'filter -A FORWARD -m comment --comment "nsgen:snap" -j SNAP-TEST' in after["iptables"]
    assert "filter :SNAP-TEST -" in after["iptables"]
    assert after["forward_policy"] == ["DROP"]
    assert "net.ipv4.ip_forward = 1" in after["sysctl"]
    assert "/etc/netns/snap/resolv.conf (file 0644): 'nameserver 203.0.113.53\\n'" in after["files"]
    assert "/run/nsgen/snap/ (dir 0755)" in after["files"]
    assert after["processes"] == ["[netns snap] sleep 300"]
    assert any("masquerade" in line for line in after["nft"])

    (sleeper,) = sandbox.processes()
    sandbox.run(["kill", str(sleeper)])
    sandbox.sh(textwrap.dedent("""\
        set -e
        rm -r /run/nsgen /etc/netns/snap
        sysctl -q -w net.ipv4.ip_forward=0
        iptables -P FORWARD ACCEPT
        iptables -t nat -D POSTROUTING -s 203.0.113.128/30 -o world0 -j MASQUERADE
        iptables -D FORWARD -m comment --comment "nsgen:snap" -j SNAP-TEST
        iptables -X SNAP-TEST
        ip link del snap0
        ip link del br-snap
        ip netns del snap
    """))
    deadline = time.monotonic() + 5
    while not gone(sleeper) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sandbox.snapshot() == before


def test_snapshot_sees_ipv6_changes_and_their_undoing(sandbox: Sandbox) -> None:
    before = sandbox.snapshot()
    sandbox.sh(textwrap.dedent(f"""\
        set -e
        ip -6 addr add 2001:db8:100::99/64 dev world0 nodad
        ip -6 route add 2001:db8:200::/64 via {WORLD_ADDR6}
        ip6tables -A FORWARD -s 2001:db8:200::/64 -m comment --comment "nsgen:snap6" -j DROP
        ip6tables -t nat -N SNAP6-TEST
        sysctl -q -w net.ipv6.conf.all.forwarding=1
    """))
    after = sandbox.snapshot()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"addresses", "routes6", "ip6tables", "nft", "sysctl"}
    assert "world0 inet6 2001:db8:100::99/64 scope global" in after["addresses"]
    assert f"type=unicast dst=2001:db8:200::/64 gateway={WORLD_ADDR6} dev=world0 table=main metric=1024" in after["routes6"]
    assert "type=anycast dst=2001:db8:100:: dev=world0 table=local protocol=kernel metric=0" in after["routes6"]  # a router's
    assert 'filter -A FORWARD -s 2001:db8:200::/64 -m comment --comment "nsgen:snap6" -j DROP' in after["ip6tables"]
    assert "nat :SNAP6-TEST -" in after["ip6tables"]
    assert "net.ipv6.conf.all.forwarding = 1" in after["sysctl"]
    assert after["iptables"] == before["iptables"]

    sandbox.sh(textwrap.dedent(f"""\
        set -e
        sysctl -q -w net.ipv6.conf.all.forwarding=0
        ip6tables -t nat -X SNAP6-TEST
        ip6tables -D FORWARD -s 2001:db8:200::/64 -m comment --comment "nsgen:snap6" -j DROP
        ip -6 route del 2001:db8:200::/64 via {WORLD_ADDR6}
        ip -6 addr del 2001:db8:100::99/64 dev world0
    """))
    assert sandbox.snapshot() == before


def test_snapshot_keeps_rule_order_within_a_chain(sandbox: Sandbox) -> None:
    sandbox.sh("iptables -A INPUT -s 203.0.113.1 -j ACCEPT; iptables -A INPUT -s 203.0.113.2 -j DROP")
    first = sandbox.snapshot()
    sandbox.sh("iptables -D INPUT -s 203.0.113.1 -j ACCEPT; iptables -A INPUT -s 203.0.113.1 -j ACCEPT")
    second = sandbox.snapshot()
    assert sorted(first["iptables"]) == sorted(second["iptables"])
    assert first["iptables"] != second["iptables"]
    assert first["nft"] != second["nft"]


# -- the end ---------------------------------------------------------------------------------

def test_close_kills_every_process_and_leaves_the_real_host_alone(sandbox_factory) -> None:
    real = real_host_state()
    box = sandbox_factory()
    quiet = "</dev/null >/dev/null 2>&1"
    box.sh(textwrap.dedent(f"""\
        set -e
        sleep 301 {quiet} &
        setsid sh -c 'sleep 302 & wait' {quiet} &
        ip netns add probe
        ip netns exec probe sleep 303 {quiet} &
        ip netns add gone
        ip netns exec gone sleep 304 {quiet} &
        sleep 0.2
        ip netns del gone
    """))
    # only the network namespace, not the mount namespace: found by its network namespace
    outsider = subprocess.Popen(["nsenter", f"--target={box.pid}", "--net", "sleep", "305"])
    # (setsid execs: it is not a process group leader here)
    expected = ["sh -c 'sleep 302 & wait'", "sleep 301", "sleep 302", "sleep 303", "sleep 304", "sleep 305"]
    # Until each has exec'd its command: counting is not enough, on a busy machine the sixth can
    # still be `nsenter ... sleep 305` (or a shell's fork) for a moment.
    deadline = time.monotonic() + 5
    while sorted(box.processes().values()) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    processes = box.processes()
    commands = sorted(processes.values())
    assert commands == expected
    assert "[netns ?] sleep 304" in box.snapshot()["processes"]  # its namespace has no name any more
    everyone = [box.pid, *box.world_pids.values(), *processes]

    box.close()
    assert outsider.wait(timeout=5) == -9
    assert [pid for pid in everyone if not gone(pid)] == []
    assert box.closed
    box.close()  # idempotent
    with pytest.raises(SandboxError):
        box.run(["true"])
    assert real_host_state() == real


def test_close_cleans_up_after_a_dead_helper(sandbox_factory) -> None:
    box = sandbox_factory()
    box.sh("ip netns add probe; ip netns exec probe sleep 307 </dev/null >/dev/null 2>&1 &")
    deadline = time.monotonic() + 5
    while not box.processes() and time.monotonic() < deadline:
        time.sleep(0.01)
    everyone = [*box.world_pids.values(), *box.processes()]
    os.kill(box.pid, signal.SIGKILL)
    box.close()
    assert [pid for pid in everyone if not gone(pid)] == []


def test_two_sandboxes_live_side_by_side(sandbox_factory) -> None:
    real = real_host_state()
    one, two = sandbox_factory(), sandbox_factory()
    two_before = two.snapshot()
    one.sh("ip netns add only-in-one; sysctl -q -w net.ipv4.ip_forward=1; iptables -P FORWARD DROP")
    assert two.snapshot() == two_before
    assert one.snapshot()["netns"] == ["only-in-one", "world"]
    for box in (one, two):
        assert box.run(["curl", "-sS", "--max-time", "5", f"http://{WEB_ADDR}/"]).stdout.strip() == HOST_ADDR
    one.close()
    assert two.run(["dig", "+short", f"@{DNS_ADDR}", "web.world.test"]).stdout.split() == [WEB_ADDR]
    assert two.snapshot() == two_before
    two.close()
    assert real_host_state() == real


def test_a_killed_test_process_leaves_nothing_behind(sandbox_factory) -> None:
    """The helper notices its owner's death (its stdin closes) and kills the sandbox itself."""
    sandbox_factory().close()  # a sandbox can be made here (or skip); the owner below makes its own
    real = real_host_state()
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""\
            import sys, time
            sys.path.insert(0, {str(TESTS)!r})
            from sandbox import Sandbox
            box = Sandbox()
            box.sh("sleep 306 </dev/null >/dev/null 2>&1 &")
            while not box.processes():
                time.sleep(0.01)
            print(box.pid, *box.world_pids.values(), *box.processes(), flush=True)
            time.sleep(300)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        pids = [int(pid) for pid in owner.stdout.readline().split()]
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    assert len(pids) == 4
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [pid for pid in pids if not gone(pid)] == []
    assert real_host_state() == real
