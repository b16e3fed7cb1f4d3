"""Networks across hosts, proven on simulated hosts (nsgen/sandbox/hosts.py: each its own network
and mount namespaces, its own /run, joined by an underlay on 192.0.2.0/24): each host runs its own
part, through its rendered script or `nsgen run`; containers on different hosts reach each other
by address and by name, over TCP, with full-size packets; overlays with different VNIs stay apart;
traffic to the world leaves through the container's own host; each host's teardown leaves that
host exactly as it was while the others keep working; a failure at any command of a host's setup
leaves that host as it was."""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.faults import Faults
from tests.helpers import EXAMPLES

NSGEN = [sys.executable, "-m", "nsgen"]
OVERLAY = (EXAMPLES / "overlay.yaml").read_text()


def ping(host, ns: str, address: str, *extra: str) -> bool:
    """One ping from inside ns on host answered (in up to 3 tries: the first may wait for a neighbour)."""
    argv = ["ping", "-c", "1", "-W", "2", *extra, address]
    return any(host.in_ns(ns, argv, check=False).returncode == 0 for _ in range(3))


def curl(host, ns: str | None, url: str) -> str | None:
    argv = ["curl", "-sf", "--max-time", "3", url]
    for _ in range(30):  # a process started by setup may still be binding its port
        done = host.run(argv if ns is None else ["ip", "netns", "exec", ns, *argv], check=False)
        if done.returncode == 0:
            return done.stdout.strip()
        time.sleep(0.2)
    return None


def echoed(body: str | None) -> bool:
    return body is not None and json.loads(body)["body"] == "Echo response"


def write(tmp_path, text: str):
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return path


def scripts(host, topology, tmp_path):
    """Host's setup and teardown scripts, rendered on that host."""
    setup, teardown = tmp_path / f"{host.name}.setup.sh", tmp_path / f"{host.name}.teardown.sh"
    host.run([*NSGEN, "render", "-f", topology, "--host", host.name, "-o", setup])
    host.run([*NSGEN, "render", "-f", topology, "--host", host.name, "--teardown", "-o", teardown])
    return setup, teardown


def test_two_hosts_through_their_scripts(hosts2, tmp_path):
    h1, h2 = hosts2
    topology = write(tmp_path, OVERLAY)
    before = {h.name: h.snapshot() for h in hosts2}
    made = {h.name: scripts(h, topology, tmp_path) for h in hosts2}
    for h in hosts2:
        h.run(["bash", made[h.name][0]])

    # by address and by name, both ways, and over TCP
    assert ping(h1, "web", "10.50.0.3") and ping(h1, "web", "api") and ping(h2, "api", "web")
    assert echoed(curl(h1, "web", "http://api:8000/echo")) and echoed(curl(h2, "api", "http://web:8000/echo"))
    # a full-size packet crosses without fragmenting (MTU 1450: 1500 less VXLAN's 50 bytes); one byte more does not fit
    assert ping(h1, "web", "api", "-M", "do", "-s", "1422")
    assert h1.in_ns("web", ["ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1423", "api"], check=False).returncode != 0
    # each container goes out through its own host, masqueraded there
    assert curl(h1, "web", "http://203.0.113.10/") == "192.0.2.11"
    assert curl(h2, "api", "http://203.0.113.10/") == "192.0.2.12"
    # each host publishes its own containers' ports: h1's 8080 is web's, reached from h2 over the underlay
    assert echoed(curl(h2, None, "http://192.0.2.11:8080/echo"))
    # web's gateway is its own host's bridge, though h2's holds the same address
    bridge = next(line.split(":")[1].strip() for line in h1.run(["ip", "-o", "link", "show", "type", "bridge"]).stdout.splitlines())
    mac = json.loads(h1.run(["ip", "-j", "link", "show", bridge]).stdout)[0]["address"]
    assert f"10.50.0.1 dev eth0 lladdr {mac}" in h1.in_ns("web", ["ip", "neigh", "show", "10.50.0.1"]).stdout

    # h1 goes: it is as before; h2 still works on its own
    h1.run(["bash", made["h1"][1]])
    assert h1.snapshot() == before["h1"]
    assert curl(h2, "api", "http://203.0.113.10/") == "192.0.2.12"
    assert not ping(h2, "api", "web")
    h1.run(["bash", made["h1"][1]])  # twice: nothing left to do, no error
    h2.run(["bash", made["h2"][1]])
    assert h2.snapshot() == before["h2"]


@pytest.mark.usefixtures("firewall_backend")
def test_two_hosts_through_nsgen_run(hosts2, tmp_path):
    h1, h2 = hosts2
    topology = write(tmp_path, OVERLAY)
    before = {h.name: h.snapshot() for h in hosts2}
    h1.run([*NSGEN, "run", "-f", topology, "--host", "h1"])
    done = h2.run([*NSGEN, "run", "-f", topology])  # no --host: h2 is the host whose address this one has
    assert "topology overlay is up" in done.stderr, done.stderr
    assert ping(h1, "web", "api") and echoed(curl(h2, "api", "http://web:8000/echo"))
    again = h2.run([*NSGEN, "run", "-f", topology])  # again: every step found done
    assert "topology overlay is up" in again.stderr
    assert ping(h2, "api", "web")
    for h in hosts2:  # each host's check finds its part as set up, and reaches the other host's containers
        checked = h.run([*NSGEN, "check", "--probe", "-f", topology], check=False)
        assert checked.returncode == 0 and "FAIL" not in checked.stdout, checked.stdout + checked.stderr
        assert "PASS  overlay" in checked.stdout and " → remote " in checked.stdout, checked.stdout
    # the wrong host is refused before anything changes
    wrong = h1.run([*NSGEN, "run", "-f", topology, "--host", "h2"], check=False)
    assert wrong.returncode == 1
    assert "hosts.h2.address: 192.0.2.12 is not an address of this host, so this is not host h2" in wrong.stderr
    h1.run([*NSGEN, "run", "--teardown", "-f", topology])
    assert h1.snapshot() == before["h1"]
    h2.run([*NSGEN, "run", "--teardown", "-f", topology])
    assert h2.snapshot() == before["h2"]


def test_a_container_added_on_one_host_is_reached_from_the_other_once_each_runs_again(hosts2, tmp_path):
    h1, h2 = hosts2
    topology = write(tmp_path, OVERLAY)
    before = {h.name: h.snapshot() for h in hosts2}
    for h in hosts2:
        h.run([*NSGEN, "run", "-f", topology])
    write(tmp_path, OVERLAY + "  cache:\n    host: h2\n    networks: [front]\n")
    for h in (h2, h1):
        done = h.run([*NSGEN, "run", "-f", topology])
        assert "changing it" in done.stderr, done.stderr
    assert ping(h1, "web", "cache") and ping(h2, "cache", "web") and ping(h2, "api", "cache")
    assert echoed(curl(h1, "web", "http://api:8000/echo"))
    for h in hosts2:
        h.run([*NSGEN, "run", "--teardown", "-f", topology])
        assert h.snapshot() == before[h.name]


THREE = """\
name: three
hosts:
  h1: {address: 192.0.2.11}
  h2: {address: 192.0.2.12}
  h3: {address: 192.0.2.13}
networks:
  blue: {subnet: 10.61.0.0/24, overlay: {vni: 100}}
  red: {subnet: 10.62.0.0/24, overlay: {vni: 200, port: 4790}}
containers:
  b1: {host: h1, networks: [blue]}
  b2: {host: h2, networks: [blue]}
  b3: {host: h3, networks: [blue]}
  r1: {host: h1, networks: [red]}
  r3: {host: h3, networks: [red]}
"""


def test_three_hosts_and_two_overlays_that_stay_apart(hosts3, tmp_path):
    topology = write(tmp_path, THREE)
    before = {h.name: h.snapshot() for h in hosts3}
    h1, h2, h3 = hosts3
    for h in hosts3:
        h.run([*NSGEN, "run", "-f", topology, "--host", h.name])
    for host, ns, other in ((h1, "b1", "b2"), (h1, "b1", "b3"), (h2, "b2", "b3"), (h3, "b3", "b1"), (h1, "r1", "r3"), (h3, "r3", "r1")):
        assert ping(host, ns, other), (ns, other)
    # blue and red share no frame: r1 sends r3's MAC address a frame on blue's bridge (b1's link, told
    # that r3 is there), and it never arrives (blue's VXLAN carries VNI 100 only, to blue's bridges)
    r3 = json.loads(h3.in_ns("r3", ["ip", "-j", "link", "show", "eth0"]).stdout)[0]["address"]
    h1.in_ns("b1", ["ip", "neigh", "replace", "10.62.0.3", "lladdr", r3, "dev", "eth0", "nud", "permanent"])
    h1.in_ns("b1", ["ip", "route", "add", "10.62.0.3/32", "dev", "eth0"])
    h1.run(["bridge", "fdb", "replace", r3, "dev", "vx-blue-" + _suffix(h1, "vx-blue-"), "dst", "192.0.2.13", "self", "permanent"])
    assert h1.in_ns("b1", ["ping", "-c", "2", "-W", "1", "10.62.0.3"], check=False).returncode != 0
    # h2 leaves; the others still reach each other
    h2.run([*NSGEN, "run", "--teardown", "-f", topology])
    assert h2.snapshot() == before["h2"]
    assert ping(h1, "b1", "b3") and ping(h3, "r3", "r1")
    for h in (h1, h3):
        h.run([*NSGEN, "run", "--teardown", "-f", topology])
        assert h.snapshot() == before[h.name]


def _suffix(host, prefix: str) -> str:
    """The rest of the name of host's one link whose name starts with prefix."""
    for line in host.run(["ip", "-o", "link", "show"]).stdout.splitlines():
        name = line.split(":")[1].strip().partition("@")[0]
        if name.startswith(prefix):
            return name[len(prefix):]
    raise AssertionError(f"no link {prefix}* on {host.name}")


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_failure_anywhere_in_a_hosts_setup_leaves_that_host_as_it_was(hosts2, tmp_path, mode):
    h1, h2 = hosts2
    topology = write(tmp_path, OVERLAY)
    h2.run([*NSGEN, "run", "-f", topology])  # the other host is up: h1's part is the one faulted
    setup, teardown = scripts(h1, topology, tmp_path)
    argv = ["bash", setup] if mode == "script" else [*NSGEN, "run", "-f", topology, "--host", "h1"]
    faults = Faults(h1, tmp_path / "faults")
    before = h1.snapshot()
    h1.run(argv, env=faults.env())
    total = faults.calls()
    assert ping(h1, "web", "api")
    h1.run(["bash", teardown])
    assert h1.snapshot() == before
    failed = 0
    for k in range(1, total + 1):
        done = h1.run(argv, env=faults.env(at=k), check=False)
        if done.returncode != 0:
            failed += 1
            # the tool's own message, or a refusal before any change (the host's addresses could not be read)
            assert "injected failure at call" in done.stderr or done.stderr.rstrip().endswith("nothing was changed"), (k, done.stderr)
        else:  # the call was a probe: "not there yet" is harmless
            h1.run(["bash", teardown])
        assert h1.snapshot() == before, f"call {k} of {total} left h1 changed"
    assert failed > total // 3
    h1.run(argv)  # and once more without a fault: it comes up
    assert ping(h1, "web", "api")


def test_nsgen_sandbox_tries_a_topology_across_hosts_on_simulated_hosts(sandbox, tmp_path):
    """`nsgen sandbox`, inside the test's sandbox: each host's part up on a simulated host of its
    own, at that host's address instead of the topology's; a command runs on the first."""
    text = OVERLAY.replace("192.0.2.11", "198.51.100.21").replace("192.0.2.12", "198.51.100.22")
    topology = write(tmp_path, text)
    before = sandbox.snapshot()
    done = sandbox.run([*NSGEN, "sandbox", "-f", topology], check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "host h1 is simulated host h1 at 192.0.2.11 instead of 198.51.100.21" in done.stderr
    assert "topology overlay is up on hosts h1, h2" in done.stderr
    assert "FAIL" not in done.stdout and done.stdout.count("matches this host") == 0  # the summaries go to stderr
    assert done.stderr.count("checks passed") == 2
    fetch = sandbox.run([*NSGEN, "sandbox", "-f", topology, "--", "ip", "netns", "exec", "web", "curl", "-sf", "--max-time", "3",
                         "http://api:8000/echo"], check=False)
    assert fetch.returncode == 0 and echoed(fetch.stdout), fetch.stdout + fetch.stderr
    assert sandbox.snapshot() == before
