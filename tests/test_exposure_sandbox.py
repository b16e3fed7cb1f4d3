"""What a published port exposes, tried as an attacker would, on real kernel objects in a sandbox:
a neighbour on the uplink and a container of another topology sending to 127.0.0.1, a container
reaching for the host's loopback-only services, `0.0.0.0` as a host address, a UDP flow that
began before its port was published, and host ports that someone else already holds."""

from __future__ import annotations

import time

import pytest

from tests import fw
from tests.drive import NSGEN, Driver, wait_for

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

LOOPBACK = """
name: lo-lab
networks:
  n: {subnet: 172.30.0.0/24}
containers:
  c1:
    networks: [n]
    ports: ["127.0.0.1:9000:8000"]
    processes: [nsgen echo-server --port 8000]
"""

# Any published port turns route_localnet on for its network's bridge.
OTHER = """
name: other
networks:
  o: {subnet: 172.31.0.0/24}
containers:
  evil:
    networks: [o]
    ports: ["8090:8000"]
"""

MODES = ["script", "batch", "run"]


def route_loopback_out(sb, ns: str, via: str, dev: str) -> None:
    """Make namespace `ns` send packets for 127.0.0.1 to `via`, as a hostile neighbour can."""
    sb.sh(f"ip -n {ns} route del local 127.0.0.0/8 dev lo table local; ip -n {ns} route del local 127.0.0.1 dev lo table local; "
          f"ip netns exec {ns} sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.{dev}.route_localnet=1; "
          f"ip -n {ns} route add 127.0.0.1/32 via {via} dev {dev}")


def passive_opens(sb, ns: str) -> int:
    """How many connections the namespace has answered with a SYN-ACK (Tcp PassiveOpens)."""
    rows = [line.split() for line in sb.in_ns(ns, ["cat", "/proc/net/snmp"]).stdout.splitlines() if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("PassiveOpens")])


def drivers(sb, tmp_path, *pairs):
    made = []
    for i, (mode, text) in enumerate(pairs):
        (tmp_path / str(i)).mkdir()
        made.append(Driver(sb, tmp_path / str(i), mode, text))
    return made


@pytest.mark.parametrize("mode", MODES)
def test_a_port_published_on_loopback_is_reached_from_the_host_only(sandbox, tmp_path, mode, firewall_backend):
    sb = sandbox
    before = sb.snapshot()
    lab, other = drivers(sb, tmp_path, (mode, LOOPBACK), ("run", OTHER))
    lab.up()
    other.up()
    if firewall_backend == "nftables":  # nsgen's nft rules count nothing: witnesses just before and after its guard (priority raw, -300)
        for name, priority in (("before_guard", -301), ("after_guard", -299)):
            fw.nft_witness(sb, name, "prerouting", priority, 'iifname != "lo" ip daddr 127.0.0.1 tcp dport 9000')
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:9000/echo"]).returncode == 0  # the host reaches it
    opened = passive_opens(sb, "c1")
    route_loopback_out(sb, "world", "198.51.100.1", "host0")  # a neighbour on the uplink
    route_loopback_out(sb, "evil", "172.31.0.1", "eth0")  # a container of another topology
    for ns in ("world", "evil"):
        done = sb.in_ns(ns, ["curl", "-s", "-m", "2", "http://127.0.0.1:9000/echo"], check=False)
        assert done.returncode != 0, (ns, done.stdout)
    assert passive_opens(sb, "c1") == opened, "a SYN from outside the host reached the container"
    tracked = sb.run(["conntrack", "-L", "-d", "127.0.0.1"], check=False).stdout
    assert "198.51.100.2" not in tracked and "172.31.0.2" not in tracked
    if firewall_backend == "iptables":
        dropped = sb.run(["iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-n", "-x"]).stdout
        assert any(line.split()[0] != "0" for line in dropped.splitlines() if "nsgen:lo-lab" in line)  # the loopback guard counted them
    else:  # they came, and the guard (iptables' raw table, at the same priority, is empty) dropped them
        assert fw.nft_counted(sb, "before_guard") > 0 and fw.nft_counted(sb, "after_guard") == 0
        sb.run(["nft", "delete", "table", "inet", "before_guard"])
        sb.run(["nft", "delete", "table", "inet", "after_guard"])
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:9000/echo"]).returncode == 0  # still there for the host
    other.down()
    lab.down()
    after = sb.snapshot()
    assert (after["iptables"], after["links"], after["nft"]) == (before["iptables"], before["links"], before["nft"])


LOOPBACK_SERVICE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 6000))
while True:
    data, peer = s.recvfrom(100)
    with open(sys.argv[1], "ab") as f:
        f.write(data + b"\\n")
"""


@pytest.mark.parametrize("published", [True, False], ids=["with-published-port", "without"])
@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_container_never_reaches_a_host_service_bound_to_loopback(sandbox, tmp_path, mode, published):
    sb = sandbox
    got = tmp_path / "received"
    got.write_text("")
    sb.sh(f"python3 -c '{LOOPBACK_SERVICE}' {got} >/dev/null 2>&1 &")
    wait_for(sb, ["sh", "-c", "ss -H -lun | grep -q 127.0.0.1:6000"])
    sb.sh("python3 -m http.server 6001 --bind 127.0.0.1 >/dev/null 2>&1 &")
    wait_for(sb, ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:6001/"])
    # conf.all.route_localnet on, as on a Kubernetes node: nothing of nsgen's may depend on it being off
    sb.run(["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"])
    text = LOOPBACK.replace('ports: ["127.0.0.1:9000:8000"]', 'ports: ["9000:8000"]' if published else "ports: []")
    (lab,) = drivers(sb, tmp_path, (mode, text))
    lab.up()
    route_loopback_out(sb, "c1", "172.30.0.1", "eth0")
    for _ in range(3):
        sb.in_ns("c1", ["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'secret', ('127.0.0.1', 6000))"])
    assert sb.in_ns("c1", ["curl", "-s", "-m", "2", "http://127.0.0.1:6001/"], check=False).returncode != 0
    sb.run(["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'from-host', ('127.0.0.1', 6000))"])
    wait_for(sb, ["grep", "-q", "from-host", str(got)])
    assert got.read_text() == "from-host\n", "a container's datagram reached a service bound to the host's loopback"
    if published:  # the published port keeps working from the host at 127.0.0.1
        assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:9000/echo"]).returncode == 0
    lab.down()


ZERO = LOOPBACK.replace('ports: ["127.0.0.1:9000:8000"]', 'ports: ["0.0.0.0:8080:8000"]')


@pytest.mark.parametrize("mode", MODES)
def test_zero_address_publishes_on_every_address(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    (lab,) = drivers(sb, tmp_path, (mode, ZERO))
    lab.up()
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/echo"]).returncode == 0
    assert sb.run(["curl", "-sf", "-m", "2", "http://198.51.100.1:8080/echo"], check=False).returncode == 0
    assert sb.in_ns("world", ["curl", "-sf", "-m", "2", "http://198.51.100.1:8080/echo"], check=False).returncode == 0
    assert "0.0.0.0" not in sb.run(["iptables-save", "-t", "nat"]).stdout
    assert "8080 . 0.0.0.0 " not in fw.nft_rules(sb, "lo-lab")  # any address (0.0.0.0/0), not 0.0.0.0 itself
    lab.down()
    assert sb.snapshot() == before


UDP_ECHO = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53)); "
            "[s.sendto(b'container:' + d, p) for d, p in iter(lambda: s.recvfrom(100), None)]")
UDP_TOPOLOGY = f"""
name: udp-lab
networks:
  n: {{subnet: 172.30.0.0/24}}
containers:
  dns:
    networks: [n]
    ports: ["5353:53/udp"]
    processes:
      - [python3, -c, "{UDP_ECHO}"]
"""

# A client that sends from one source port, again and again, as a resolver or a game does.
UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.2", 40053))
s.settimeout(0.05)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s.sendto(b"ping", ("198.51.100.1", 5353))
    try:
        data, _ = s.recvfrom(100)
        with open(sys.argv[1], "ab") as f:
            f.write(data + b"\\n")
    except OSError:
        pass
    time.sleep(0.05)
"""


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_a_udp_flow_that_began_before_the_port_was_published_reaches_the_container(sandbox, tmp_path, mode):
    sb = sandbox
    replies = tmp_path / "replies"
    replies.write_text("")
    # a host with a stateful firewall: the kernel tracks connections before nsgen loads a rule
    sb.run(["iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"])
    sb.sh(f"ip netns exec world python3 -c '{UDP_CLIENT}' {replies} 40 >/dev/null 2>&1 &")
    # the flow is tracked on the host before anything is published
    assert wait_for(sb, ["sh", "-c", "conntrack -L -p udp --orig-port-dst 5353 2>/dev/null | grep -q sport=40053"]).returncode == 0
    (lab,) = drivers(sb, tmp_path, (mode, UDP_TOPOLOGY))
    lab.up()
    assert wait_for(sb, ["grep", "-q", "container:ping", str(replies)], timeout=10).returncode == 0, "the flow still goes to the host"
    lab.down()
    # after teardown the flow is no longer steered to the container that is gone
    time.sleep(0.3)
    tracked = sb.run(["conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353"], check=False).stdout
    assert "172.30.0.2" not in tracked, tracked


def listener(sb, protocol: str, address: str, port: int) -> str:
    """A host program holding a port; returns its pid."""
    kind = "SOCK_STREAM" if protocol == "tcp" else "SOCK_DGRAM"
    listen = "s.listen(); " if protocol == "tcp" else ""
    code = (f"import socket, time; s = socket.socket(socket.AF_INET, socket.{kind}); "
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('{address}', {port})); {listen}time.sleep(600)")
    pid = sb.sh(f'python3 -c "{code}" >/dev/null 2>&1 & echo $!').stdout.strip()
    flag = "-t" if protocol == "tcp" else "-u"
    wait_for(sb, ["sh", "-c", f"ss -H -l -n {flag} | grep -q ':{port} '"])
    return pid


def published(port_spec: str, name: str = "ports-lab", subnet: str = "172.30.0.0/24") -> str:
    return f"""
name: {name}
networks:
  n: {{subnet: {subnet}}}
containers:
  {name}-c:
    networks: [n]
    ports: ["{port_spec}"]
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_host_port_in_use_is_refused_before_any_change(sandbox, tmp_path, mode):
    sb = sandbox
    pid = listener(sb, "tcp", "0.0.0.0", 2222)  # an SSH server, say
    before = sb.snapshot()
    (lab,) = drivers(sb, tmp_path, (mode, published("2222:22")))
    done = lab.up(check=False)
    assert done.returncode != 0
    assert f"host port 2222/tcp is already in use: python3 (pid {pid}) listens on 0.0.0.0:2222; nothing was changed" in done.stderr
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_udp_port_held_on_one_address_is_refused_there_and_free_elsewhere(sandbox, tmp_path, mode):
    sb = sandbox
    pid = listener(sb, "udp", "127.0.0.1", 5300)
    before = sb.snapshot()
    (held,) = drivers(sb, tmp_path, (mode, published("127.0.0.1:5300:53/udp")))
    done = held.up(check=False)
    assert f"host port 5300/udp is already in use: python3 (pid {pid}) listens on 127.0.0.1:5300; nothing was changed" in done.stderr
    assert sb.snapshot() == before
    (tmp_path / "elsewhere").mkdir()
    free = Driver(sb, tmp_path / "elsewhere", mode, published("198.51.100.1:5300:53/udp", name="free-lab"))
    free.up()
    free.down()
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", MODES)
def test_a_port_another_topology_publishes_is_refused(sandbox, tmp_path, mode):
    sb = sandbox
    (first,) = drivers(sb, tmp_path, ("run", published("8080:8000", name="first")))
    first.up()
    before = sb.snapshot()
    (tmp_path / "second").mkdir()
    second = Driver(sb, tmp_path / "second", mode, published("8080:80", name="second", subnet="172.31.0.0/24"))
    done = second.up(check=False)
    assert done.returncode != 0
    assert "host port 8080/tcp is already published by nsgen topology first; nothing was changed" in done.stderr
    assert sb.snapshot() == before
    # a DNAT of another program's on the port counts as well
    first.down()
    sb.run(["iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.99.0.5:80"])
    done = second.up(check=False)
    assert "host port 8080/tcp is already published by another program's rule (-A PREROUTING" in done.stderr


def test_the_same_subnet_set_up_twice_at_once_comes_up_once(sandbox, tmp_path):
    """The host's routes are checked under the lock: of two topologies with one subnet started at
    the same moment, one comes up and the other is refused."""
    sb = sandbox
    before = sb.snapshot()
    for attempt in range(4):
        paths = []
        for name in ("twin-a", "twin-b"):
            path = tmp_path / f"{name}-{attempt}.yaml"
            path.write_text(published(f"{8100 + len(paths)}:80", name=name, subnet="172.29.0.0/24"))
            paths.append(path)
        run = " ".join(NSGEN)
        done = sb.sh(f"({run} run -q -f {paths[0]}; echo a=$?) & ({run} run -q -f {paths[1]}; echo b=$?) & wait", check=False)
        codes = sorted(line for line in done.stdout.split() if "=" in line)
        assert sorted(c.split("=")[1] for c in codes) == ["0", "1"], (attempt, done.stdout, done.stderr)
        assert "overlaps the host's route to 172.29.0.0/24" in done.stderr
        routes = sb.run(["ip", "-4", "route", "show", "172.29.0.0/24"]).stdout.strip().splitlines()
        assert len(routes) == 1, routes
        for path in paths:
            sb.run([*NSGEN, "run", "-q", "--teardown", "-f", str(path)])
        assert sb.snapshot() == before
