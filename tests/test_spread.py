"""A topology across hosts (nsgen/spread.py): what each host's part holds, the rules its input
obeys (each broken one an exact line), and the CLI's --host. No root: nothing here runs."""

from __future__ import annotations

import ipaddress

import pytest

from nsgen import record, spread
from nsgen.plan import compile_plan
from nsgen.render import render
from tests.helpers import EXAMPLES, topology

THREE = """\
name: three
hosts:
  h1: {address: 192.0.2.11}
  h2: {address: 192.0.2.12}
  h3: {address: 192.0.2.13}
networks:
  front: {subnet: 10.50.0.0/24, overlay: {vni: 4242}}
  back: {subnet: "fd00:60::/64", overlay: {vni: 4343, port: 8472}, mtu: 1400}
  local: {subnet: 10.70.0.0/24}
containers:
  a: {host: h1, networks: [front, local], ports: ["8080:80"]}
  b: {host: h2, networks: {front: {aliases: [bee]}, back: {}}, ports: ["8080:80"]}
  c: {host: h3, networks: {back: {mac_address: "02:00:00:00:00:0c"}}}
  d: {host: h1, networks: [back]}
"""


def test_each_host_gets_its_containers_their_networks_and_what_it_must_know_of_the_others():
    whole = topology(THREE)
    assert [(m.name, str(m.address)) for m in whole.hosts] == [("h1", "192.0.2.11"), ("h2", "192.0.2.12"), ("h3", "192.0.2.13")]
    h1 = spread.part(whole, "h1")
    assert (h1.on_host, str(h1.underlay)) == ("h1", "192.0.2.11")
    assert list(h1.containers) == ["a", "d"] and list(h1.networks) == ["front", "back", "local"]
    front = h1.networks["front"].overlay
    assert front is not None and (front.vni, front.port, str(front.local)) == (4242, 4789, "192.0.2.11")
    assert [str(p) for p in front.peers] == ["192.0.2.12"]
    assert [(m.container, m.host, str(m.underlay), m.mac, str(m.address), m.aliases) for m in front.remote] == [
        ("b", "h2", "192.0.2.12", "02:42:0a:32:00:03", "10.50.0.3", ("bee",))]
    back = h1.networks["back"].overlay
    assert back is not None and back.port == 8472 and [str(p) for p in back.peers] == ["192.0.2.12", "192.0.2.13"]
    # an IPv6-only member's MAC address comes from the last four bytes of its address; one given is kept
    assert [(m.container, m.mac, str(m.address6)) for m in back.remote] == [
        ("b", "02:42:00:00:00:02", "fd00:60::2"), ("c", "02:00:00:00:00:0c", "fd00:60::3")]
    h3 = spread.part(whole, "h3")
    assert list(h3.containers) == ["c"] and list(h3.networks) == ["back"]
    assert [m.container for m in h3.networks["back"].overlay.remote] == ["b", "d"]


def test_an_overlay_carries_the_hosts_mtu_less_vxlans_headers_unless_it_says_its_own():
    whole = topology(THREE)
    assert (whole.networks["front"].mtu, whole.networks["back"].mtu, whole.networks["local"].mtu) == (1450, 1400, None)
    six = topology(THREE.replace("192.0.2.1", "2001:db8::1"))
    assert six.networks["front"].mtu == 1430  # IPv6 carries 20 more bytes of header


def test_each_host_publishes_its_own_containers_ports():
    whole = topology(THREE)  # a and b both publish 8080, on different hosts
    assert [p.host_port for p in spread.part(whole, "h2").containers["b"].ports] == [8080]


def test_a_part_is_recorded_and_read_back_whole():
    part = spread.part(topology(THREE), "h2")
    assert record.from_text(record.text(part)) == part


def test_a_topology_on_one_host_keeps_its_digest():
    tutorial = topology((EXAMPLES / "tutorial.yaml").read_text())
    assert not tutorial.hosts and '"hosts"' not in record.text(tutorial)
    assert all(c.host == "" for c in tutorial.containers.values())


def test_the_plan_of_a_host_makes_its_vxlan_devices_and_names_the_remote_containers():
    plan = compile_plan(spread.part(topology(THREE), "h1"))
    steps = {s.id: s for s in plan.steps}
    vx = steps["vxlan:back"]
    device = spread.part(topology(THREE), "h1").networks["back"].overlay.device
    assert vx.commands[0].argv[-11:] == ("mtu", "1400", "type", "vxlan", "id", "4343", "local", "192.0.2.11", "dstport", "8472", "nolearning")
    assert [c.argv for c in vx.commands[1:]] == [("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", device, "dst", peer)
                                                 for peer in ("192.0.2.12", "192.0.2.13")]
    remote = steps["vxlan-remote:back"]
    assert remote.commands[0].input == (f"fdb replace 02:42:00:00:00:02 dev {device} dst 192.0.2.12 self permanent\n"
                                        f"fdb replace 02:42:00:00:00:02 dev {device} master static\n"
                                        f"fdb replace 02:00:00:00:00:0c dev {device} dst 192.0.2.13 self permanent\n"
                                        f"fdb replace 02:00:00:00:00:0c dev {device} master static\n")
    assert "local" not in {s.id.split(":", 1)[1] for s in plan.steps if s.id.startswith("vxlan")}
    guard = [g.argv for g in plan.guards if g.argv[0] == "address_here"]
    assert guard == [("address_here", "h1", "192.0.2.11")]
    hosts_file = next(c.input for c in steps["hosts:a"].commands if c.input)
    assert "10.50.0.3\tb bee\n" in hosts_file  # b is on h2: a reaches it by name across the overlay


def test_rendering_a_host_that_has_no_overlay_peers_yet_still_works():
    text = THREE.replace("  d: {host: h1, networks: [back]}\n", "")
    plan = compile_plan(spread.part(topology(text), "h1"))
    assert "vxlan:front" in {s.id for s in plan.steps}
    assert render(plan).startswith("#!/usr/bin/env bash")


BASE = """\
name: lab
hosts:
  h1: {address: 192.0.2.11}
  h2: {address: 192.0.2.12}
networks:
  front: {subnet: 10.50.0.0/24, overlay: {vni: 4242}}
containers:
  web: {host: h1, networks: [front]}
  api: {host: h2, networks: [front]}
"""

CASES = [
    ("overlay: {vni: 4242}", "overlay: {vni: 0}",
     "networks.front.overlay.vni: 0 is outside 1-16777215, the VXLAN network identifiers (24 bits; 0 is reserved)"),
    ("overlay: {vni: 4242}", "overlay: {vni: 16777216}",
     "networks.front.overlay.vni: 16777216 is outside 1-16777215, the VXLAN network identifiers (24 bits; 0 is reserved)"),
    ("overlay: {vni: 4242}", "overlay: {vni: '7'}", "networks.front.overlay.vni: must be a whole number (1-16777215), got '7'"),
    ("overlay: {vni: 4242}", "overlay: {port: 4789}",
     "networks.front.overlay.vni: is required: the VXLAN network identifier (1-16777215) that tells this overlay's frames from another's"),
    ("overlay: {vni: 4242}", "overlay: {vni: 1, port: 70000}", "networks.front.overlay.port: 70000 is not a UDP port (1-65535; VXLAN's is 4789)"),
    ("overlay: {vni: 4242}", "overlay: {vni: 1, mtu: 1400}", "networks.front.overlay.mtu: unknown key 'mtu'; 'mtu' is a key of a network (under networks.<name>): check its indentation"),
    ("overlay: {vni: 4242}", "overlay: 4242", "networks.front.overlay: must be a mapping like {vni: 4242}, got 4242"),
    ("overlay: {vni: 4242}}", "overlay: {vni: 4242}}\n  back: {subnet: 10.60.0.0/24, overlay: {vni: 4242}}",
     "networks.back.overlay.vni: 4242 is already the VNI of network 'front'; each overlay needs its own"),
    ("{subnet: 10.50.0.0/24, overlay", "{subnet: 10.50.0.0/24, driver: veth, overlay",
     "networks.front.overlay: an overlay stretches a bridge across hosts, and network 'front' has driver veth: use driver: bridge\n"
     "error: t.yaml: networks.front: a veth network joins exactly one container to the host, but web, api all attach to it; use driver: bridge"),
    ("api: {host: h2,", "api: {host: h3,", "containers.api.host: 'h3' is not one of the hosts listed under hosts (h1, h2)"),
    ("api: {host: h2,", "api: {", "containers.api.host: is required: the topology spans hosts h1, h2; name the one the container runs on"),
    ("h2: {address: 192.0.2.12}", "h2: {address: 192.0.2.11}",
     "hosts.h2.address: 192.0.2.11 is already the address of host 'h1'; each host has its own"),
    ("h2: {address: 192.0.2.12}", "h2: {address: 127.0.0.1}", "hosts.h2.address: 127.0.0.1 is a loopback address, which other hosts cannot send to"),
    ("h2: {address: 192.0.2.12}", "h2: {address: 192.0.2}", "hosts.h2.address: '192.0.2' is not an IP address (like 172.18.0.2 or fd00:18::2)"),
    ("h2: {address: 192.0.2.12}", "h2: {}", "hosts.h2.address: is required: the address the other hosts reach this one at (like 192.0.2.11)"),
    ("h2: {address: 192.0.2.12}", "h2: {address: 192.0.2.12, port: 1}", "hosts.h2.port: unknown key 'port'; known keys: address"),
    ("h2: {address: 192.0.2.12}", "h2: {address: 192.0.2.12}\n  'h 3': {address: 192.0.2.13}",
     "hosts.h 3: host name 'h 3' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("h2: {address: 192.0.2.12}", 'h2: {address: "2001:db8::12"}',
     "hosts: mixes IPv4 and IPv6 addresses: VXLAN between hosts travels over one family; give every host an address of the same family"),
    ("  front: {subnet: 10.50.0.0/24, overlay: {vni: 4242}}", "  front: {subnet: 10.50.0.0/24}",
     "networks.front: web (on h1) and api (on h2) both attach to it, but it is not an overlay: a network spans hosts only with "
     "overlay: {vni: N}; otherwise each host needs a network of its own"),
]


@pytest.mark.parametrize("old,new,expected", CASES, ids=[c[2].split(":")[0] + ":" + c[1][:20] for c in CASES])
def test_bad_input_is_one_exact_line(cli, tmp_path, old, new, expected):
    assert old in BASE
    (tmp_path / "t.yaml").write_text(BASE.replace(old, new, 1))
    result = cli("validate", "-f", "t.yaml")
    assert result.exit_code == 1
    assert result.stderr == f"error: t.yaml: {expected}\n"


def test_an_overlay_or_a_host_without_hosts_is_refused(cli, tmp_path):
    text = BASE.replace("hosts:\n  h1: {address: 192.0.2.11}\n  h2: {address: 192.0.2.12}\n", "")
    (tmp_path / "t.yaml").write_text(text)
    result = cli("validate", "-f", "t.yaml")
    like = "like hosts: {h1: {address: 192.0.2.11}, h2: {address: 192.0.2.12}}"
    assert result.exit_code == 1 and result.stderr == (
        f"error: t.yaml: networks.front.overlay: an overlay network spans hosts, but the topology lists none: add them ({like})\n"
        f"error: t.yaml: containers.web.host: names host 'h1', but the topology lists no hosts: list them ({like}), or leave host out\n"
        f"error: t.yaml: containers.api.host: names host 'h2', but the topology lists no hosts: list them ({like}), or leave host out\n")


def test_one_host_needs_no_host_on_its_containers():
    one = topology("name: one\nhosts: {h1: {address: 192.0.2.11}}\nnetworks: {n: {subnet: 10.1.0.0/24, overlay: {vni: 9}}}\n"
                   "containers: {c: {networks: [n]}}\n")
    assert one.containers["c"].host == "h1"


def test_validate_counts_each_hosts_steps(cli, tmp_path):
    (tmp_path / "t.yaml").write_text(BASE)
    result = cli("validate", "-f", "t.yaml")
    assert result.exit_code == 0
    assert result.stderr.startswith("topology lab is valid: 1 network(s), 2 container(s), across hosts h1 (")


def test_render_needs_a_host_and_knows_its_hosts(cli, tmp_path):
    (tmp_path / "t.yaml").write_text(BASE)
    result = cli("render", "-f", "t.yaml")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("error: topology lab spans hosts h1 (192.0.2.11), h2 (192.0.2.12): render one host's part with "
                             "--host NAME, or every host's with --host all -o DIR\n")
    result = cli("render", "-f", "t.yaml", "--host", "h9")
    assert result.exit_code == 1 and result.stderr == "error: --host h9: topology lab has no such host; its hosts: h1 (192.0.2.11), h2 (192.0.2.12)\n"
    result = cli("render", "-f", "t.yaml", "--host", "all")
    assert result.exit_code == 1 and "name the folder for them with -o DIR" in result.stderr
    result = cli("render", "-f", str(EXAMPLES / "tutorial.yaml"), "--host", "h1")
    assert result.exit_code == 1 and result.stderr.startswith("error: --host h1: topology tutorial lists no hosts")


def test_render_all_writes_each_hosts_setup_and_teardown(cli, tmp_path):
    (tmp_path / "t.yaml").write_text(BASE)
    result = cli("render", "-f", "t.yaml", "--host", "all", "-o", "out")
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["h1.setup.sh", "h1.teardown.sh", "h2.setup.sh", "h2.teardown.sh"]
    one = cli("render", "-f", "t.yaml", "--host", "h2")
    assert (tmp_path / "out" / "h2.setup.sh").read_text() == one.stdout
    assert "address_here h2 192.0.2.12" in one.stdout and "api" in one.stdout and "ip netns add web" not in one.stdout
    assert (tmp_path / "out" / "h1.setup.sh").stat().st_mode & 0o111


def test_a_host_is_found_by_its_address():
    whole = topology(BASE)
    assert spread.here(whole, [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("192.0.2.12")]) == "h2"
    assert spread.here(whole, [ipaddress.ip_address("192.0.2.99")]) is None
    assert spread.here(whole, None) is None


def test_a_hosts_boot_unit_runs_that_hosts_part(cli, tmp_path):
    (tmp_path / "t.yaml").write_text(BASE.replace("name: lab\n", "name: lab\nhost: {persist: true}\n"))
    result = cli("render", "--systemd", "-f", "t.yaml", "--host", "h2")
    assert result.exit_code == 0, result.stderr
    starts = [line for line in result.stdout.splitlines() if line.startswith(("ExecStart=", "ExecStop=", "# Install:"))]
    assert len(starts) == 3 and all(line.endswith(" --host h2") or " --host h2 -o " in line for line in starts), starts
