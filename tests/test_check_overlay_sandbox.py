"""check of one host's part of a topology across hosts, on real kernel objects inside a sandbox made
to look like h1 (it holds h1's underlay address): green right after `nsgen run --host h1`, each break
of the VXLAN device or its entries named in one FAIL line, the probe's line for a remote container
(none answers: there is no second host here), and a teardown that leaves the sandbox as it was."""

from __future__ import annotations

import re

from nsgen import spread
from tests.drive import NSGEN
from tests.helpers import topology

TOPOLOGY = """\
name: ov
hosts:
  h1: {address: 192.0.2.11}
  h2: {address: 192.0.2.12}
networks:
  front:
    subnet: [10.50.0.0/24, 'fd00:50::/64']
    overlay: {vni: 4242}
  back: {subnet: 10.60.0.0/24}
containers:
  web: {host: h1, networks: [front, back]}
  api: {host: h2, networks: [front]}
"""

MAC = "02:42:0a:32:00:03"  # api's, derived from its address


def devices() -> tuple[str, str]:
    """(VXLAN device, bridge) of network front on h1."""
    front = spread.part(topology(TOPOLOGY), "h1").networks["front"]
    assert front.overlay is not None and front.bridge is not None
    return front.overlay.device, front.bridge


def check(sb, path, *args):
    return sb.run([*NSGEN, "check", "-f", str(path), *args], check=False)


def failures(done) -> list[str]:
    return [line for line in done.stdout.splitlines() if not line.startswith("PASS  ")]


def lines(done, status: str, kind: str) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith(f"{status}  {kind:<9}  ")]


def test_check_of_a_hosts_part_is_green_after_setup_and_names_each_break(sandbox, tmp_path):
    sb = sandbox
    sb.run(["ip", "addr", "add", "192.0.2.11/32", "dev", "lo"])  # this host is h1
    before = sb.snapshot()
    path = tmp_path / "ov.yaml"
    path.write_text(TOPOLOGY)
    device, bridge = devices()
    vxlan = (f"VXLAN device {device} of front (VNI 4242, local 192.0.2.11, port 4789, MTU 1450) is up, a port of {bridge}, learns "
             "nothing and suppresses neighbour requests")
    entries = f"forwarding and neighbour entries of front (1 peer(s) on {device}, 1 remote container(s), 2 neighbour(s) on {bridge})"
    sb.run([*NSGEN, "run", "-f", str(path), "--host", "h1"])

    for chosen in (("--host", "h1"), ()):  # named, or the host whose address this one has
        green = check(sb, path, *chosen)
        assert green.returncode == 0 and failures(green) == [], failures(green)
        assert re.fullmatch(r"topology ov matches this host: \d+ checks passed\n", green.stderr), green.stderr
        assert lines(green, "PASS", "overlay") == [
            f"PASS  overlay    {vxlan}",
            f"PASS  overlay    {entries}",
        ]

    sb.run(["bridge", "fdb", "del", "00:00:00:00:00:00", "dev", device, "dst", "192.0.2.12"])
    sb.run(["ip", "link", "set", device, "type", "bridge_slave", "learning", "on"])
    sb.run(["ip", "neigh", "del", "fd00:50::3", "dev", bridge])
    broken = check(sb, path, "--host", "h1")
    assert broken.returncode == 1
    assert failures(broken) == [
        f"FAIL  overlay    {vxlan}: learning is on as a bridge port",
        f"FAIL  overlay    {entries}: no all-zeros entry to peer 192.0.2.12; no neighbour fd00:50::3 (api) on {bridge}",
    ]

    sb.run(["ip", "link", "set", device, "type", "bridge_slave", "learning", "off"])
    sb.run(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", device, "dst", "192.0.2.12"])
    sb.run(["ip", "neigh", "replace", "fd00:50::3", "lladdr", MAC, "dev", bridge, "nud", "permanent"])
    probed = check(sb, path, "--host", "h1", "--probe")
    remote = [line for line in probed.stdout.splitlines() if "→ remote" in line or "→ name" in line]
    assert remote == [  # api lives on h2, which this sandbox does not have: nothing answers
        "FAIL  probe      web → remote api 10.50.0.3 on h2 (front, ping): no reply",
        "FAIL  probe      web → remote api fd00:50::3 on h2 (front, ping): no reply",
        "PASS  probe      web → name api gives 10.50.0.3, fd00:50::3 (front, hosts file)",
    ], failures(probed)
    assert lines(probed, "PASS", "overlay") and not lines(probed, "FAIL", "overlay")

    sb.run([*NSGEN, "run", "--teardown", "-f", str(path), "--host", "h1"])
    assert sb.snapshot() == before
    gone = check(sb, path, "--host", "h1")
    assert f"FAIL  overlay    {vxlan}: missing" in gone.stdout.splitlines()
