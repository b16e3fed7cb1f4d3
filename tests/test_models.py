"""Models: defaults resolved, and every broken rule reported with its path, its value and the rule."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from nsgen.errors import LoadError, ValidationError
from nsgen.hostinfo import Environment
from nsgen.load import load_file, parse_text
from nsgen.models import PublishedPort, port_runs, run_shown
from nsgen.resolve import resolve
from tests.helpers import EXAMPLES, fixed_env, topology

TUTORIAL = (EXAMPLES / "tutorial.yaml").read_text()


def problems(text: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        topology(text)
    return [f"{path}: {message}" if path else message for path, message in info.value.problems]


def test_tutorial_resolves_to_the_tutorial():
    t = topology(TUTORIAL)
    assert t.name == "tutorial"
    net = t.networks["link0"]
    assert (net.driver, str(net.subnet), str(net.gateway), net.masquerade) == ("veth", "172.18.0.0/24", "172.18.0.1", True)
    c = t.containers["container-1"]
    (a,) = c.attachments
    assert (a.interface, a.host_interface, str(a.address), a.prefixlen) == ("veth1", "vethc1", "172.18.0.2", 24)
    assert c.dns == ("1.1.1.1",)
    assert c.processes[0].argv == ("nsgen", "echo-server", "--port", "8000")
    assert t.host.ip_forward is True and t.host.persist is False


def test_defaults_are_derived_and_deterministic():
    text = """
name: lab
networks:
  front: {driver: veth, subnet: 10.10.0.0/24}
containers:
  web: {networks: [front]}
"""
    first, second = topology(text), topology(text)
    (a,) = first.containers["web"].attachments
    assert str(first.networks["front"].gateway) == "10.10.0.1"
    assert str(a.address) == "10.10.0.2"
    assert a.interface == "eth0"
    assert len(a.host_interface.encode()) <= 15
    assert first == second


def test_default_nsgen_program_is_absolute_for_sudo():
    env = Environment(which=lambda name: f"/opt/bin/{name}", resolv_conf=Path("/nonexistent"), routes=list)
    t = resolve(parse_text(TUTORIAL), env)
    assert t.containers["container-1"].processes[0].argv[0] == "/opt/bin/nsgen"


def test_process_string_is_split_like_a_shell_never_run_by_one():
    t = topology(TUTORIAL.replace("nsgen echo-server --port 8000", "'\"sh -c ''echo hi; rm -rf /''\" $HOME `x`'"))
    assert t.containers["container-1"].processes[0].argv == ("sh -c 'echo hi; rm -rf /'", "$HOME", "`x`")


# -- one broken rule at a time: (what is changed in the tutorial, the exact error line) ---------

CASES = [
    ("host_interface: vethc1", "host_interface: abcdefghijklmnop",
     "containers.container-1.networks.link0.host_interface: interface name 'abcdefghijklmnop' is 16 bytes long; the limit is 15"),
    ("interface: veth1", "interface: véthéééééééé",
     "containers.container-1.networks.link0.interface: interface name 'véthéééééééé' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("interface: veth1", "interface: 'a b'",
     "containers.container-1.networks.link0.interface: interface name 'a b' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("interface: veth1", "interface: -x",
     "containers.container-1.networks.link0.interface: interface name '-x' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("address: 172.18.0.2", "address: 10.0.0.5",
     "containers.container-1.networks.link0.address: 10.0.0.5 is not inside subnet 172.18.0.0/24 of network 'link0'"),
    ("address: 172.18.0.2", "address: 172.18.0.1",
     "containers.container-1.networks.link0.address: 172.18.0.1 is the gateway of network 'link0'"),
    ("address: 172.18.0.2", "address: 172.18.0.255",
     "containers.container-1.networks.link0.address: 172.18.0.255 is the broadcast address of 172.18.0.0/24"),
    ("address: 172.18.0.2", "address: 172.018.0.2",
     "containers.container-1.networks.link0.address: '172.018.0.2' is not an IP address (like 172.18.0.2 or fd00:18::2)"),
    ("address: 172.18.0.2", "adress: 172.18.0.2",
     "containers.container-1.networks.link0.adress: unknown key 'adress'; did you mean 'address'?"),
    ("    dns: [1.1.1.1]", "    dnss: [1.1.1.1]",
     "containers.container-1.dnss: unknown key 'dnss'; did you mean 'dns'?"),
    ("    dns: [1.1.1.1]", "    dns: [\"1.1.1.1\\nnameserver 6.6.6.6\"]",
     "containers.container-1.dns[0]: '1.1.1.1\\nnameserver 6.6.6.6' is not an IP address"),
    ("subnet: 172.18.0.0/24", "subnet: 172.18.0.1/24",
     "networks.link0.subnet: '172.18.0.1/24' has host bits set; the subnet is 172.18.0.0/24"),
    ("subnet: 172.18.0.0/24", "subnet: 172.18.0.0",
     "networks.link0.subnet: '172.18.0.0' has no prefix length; write it like 172.18.0.0/24 or fd00:18::/64"),
    ("subnet: 172.18.0.0/24", "subnet: 127.0.0.0/8",
     "networks.link0.subnet: 127.0.0.0/8 is a loopback range and cannot be a container network"),
    ("subnet: 172.18.0.0/24", "subnet: 224.0.0.0/24",
     "networks.link0.subnet: 224.0.0.0/24 is a multicast range and cannot be a container network"),
    ("subnet: 172.18.0.0/24", "subnet: 169.254.0.0/16",
     "networks.link0.subnet: 169.254.0.0/16 is a link-local range and cannot be a container network"),
    ("subnet: 172.18.0.0/24", "subnet: 172.18.0.0/31",
     "networks.link0.subnet: 172.18.0.0/31 is too small: a network needs at least a /30 (gateway and one container)"),
    ("subnet: 172.18.0.0/24", "subnet: [172.18.0.0/24, 172.19.0.0/24]",
     "networks.link0.subnet: lists two IPv4 subnets (172.18.0.0/24, 172.19.0.0/24); a network has at most one subnet per family"),
    ("subnet: 172.18.0.0/24", 'subnet: ["fd00:1::/64", "fd00:2::/64"]',
     "networks.link0.subnet: lists two IPv6 subnets (fd00:1::/64, fd00:2::/64); a network has at most one subnet per family"),
    ("subnet: 172.18.0.0/24", 'subnet: "fd00::/127"',
     "networks.link0.subnet: fd00::/127 is too small: an IPv6 network needs at least a /126 (its subnet-router anycast address, the gateway and one container)"),
    ("subnet: 172.18.0.0/24", 'subnet: "fe80::/64"',
     "networks.link0.subnet: fe80::/64 is a link-local range and cannot be a container network"),
    ("subnet: 172.18.0.0/24", 'subnet: "ff05::/64"',
     "networks.link0.subnet: ff05::/64 is a multicast range and cannot be a container network"),
    ("subnet: 172.18.0.0/24", 'subnet: "fd00::1/64"',
     "networks.link0.subnet: 'fd00::1/64' has host bits set; the subnet is fd00::/64"),
    ("subnet: 172.18.0.0/24", "subnet: []",
     "networks.link0.subnet: must be one subnet or a list of one IPv4 and one IPv6 subnet (like 172.18.0.0/24 or fd00:18::/64), got 0 items"),
    ("gateway: 172.18.0.1", 'gateway: "fd00::1"',
     "networks.link0.gateway: fd00::1 is an IPv6 address, but this network has no IPv6 subnet (its subnet: 172.18.0.0/24)"),
    ("address: 172.18.0.2", 'address: "fd00::2"',
     "containers.container-1.networks.link0.address: fd00::2 is an IPv6 address, but network 'link0' has no IPv6 subnet (its subnet: 172.18.0.0/24)"),
    ("gateway: 172.18.0.1", "gateway: 172.19.0.1",
     "networks.link0.gateway: 172.19.0.1 is not inside subnet 172.18.0.0/24"),
    ("gateway: 172.18.0.1", "gateway: 172.18.0.0",
     "networks.link0.gateway: 172.18.0.0 is the network address of 172.18.0.0/24, not a usable host address"),
    ("driver: veth", "driver: vxlan",
     "networks.link0.driver: 'vxlan' is not a known driver; known drivers: bridge, veth, macvlan, ipvlan"),
    ("masquerade: true", "masquerade: maybe",
     "networks.link0.masquerade: must be true or false, got 'maybe'"),
    ("name: tutorial", "name: 'a/b'",
     "name: topology name 'a/b' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("name: tutorial", "name: ..",
     "name: topology name '..' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("name: tutorial", "name: abcdefghijklmnopqrstuvwxy",
     "name: topology name 'abcdefghijklmnopqrstuvwxy' is 25 bytes long; the limit is 20"),
    ("  container-1:", "  'container;reboot':",
     "containers.container;reboot: container name 'container;reboot' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("      link0:\n        address", "      link9:\n        address",
     "containers.container-1.networks.link9: network 'link9' is not declared under 'networks' (declared: link0)"),
    ("  ip_forward: auto", "  ip_forward: sometimes",
     "host.ip_forward: 'sometimes' must be auto, true or false"),
    ("  persist: false", "  persist: 1",
     "host.persist: must be true or false, got 1"),
    ("      - nsgen echo-server --port 8000", "      - \"echo 'unclosed\"",
     "containers.container-1.processes[0]: \"echo 'unclosed\" cannot be split into words: No closing quotation"),
]


@pytest.mark.parametrize("old,new,expected", CASES, ids=[c[2].split(":")[0] + ":" + c[1][:20] for c in CASES])
def test_each_broken_rule_is_one_exact_line(old, new, expected):
    assert old in TUTORIAL
    assert problems(TUTORIAL.replace(old, new, 1)) == [expected]


def test_all_problems_are_reported_together():
    text = TUTORIAL.replace("address: 172.18.0.2", "address: 10.0.0.5").replace("interface: veth1", "interface: abcdefghijklmnop")
    assert len(problems(text)) == 2


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", "the topology is empty; it needs at least 'name', 'networks' and 'containers'"),
        ("- a\n- b\n", "the topology must be a mapping at the top level, got a list"),
        ("name: x\n", "networks: is required: declare at least one network"),
    ],
)
def test_shape_errors(text, expected):
    assert expected in problems(text)


def test_broken_yaml_names_line_and_column():
    with pytest.raises(LoadError, match=r"^t.yaml: line 2, column \d+: YAML syntax error: mapping values are not allowed"):
        parse_text("name: x\n  bad: 1\n", "t.yaml")


def test_duplicate_key_is_refused():
    with pytest.raises(LoadError, match="key 'name' is given twice"):
        parse_text("name: x\nname: y\n", "t.yaml")


def test_file_not_utf8(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"name: \xff\n")
    with pytest.raises(LoadError, match="not UTF-8"):
        load_file(path)


def test_json_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"name": "j", "networks": {"n": {"subnet": "10.1.0.0/24"}}, "containers": {"c": {"networks": ["n"]}}}')
    t = resolve(load_file(path), fixed_env())
    assert str(t.containers["c"].attachments[0].address) == "10.1.0.2"


def test_addresses_are_written_back_canonically():
    t = topology(TUTORIAL.replace("subnet: 172.18.0.0/24", "subnet: 172.18.0.0/255.255.255.0"))
    assert str(t.networks["link0"].subnet) == "172.18.0.0/24"
    assert isinstance(t.containers["container-1"].attachments[0].address, ipaddress.IPv4Address)


BRIDGE = (EXAMPLES / "bridge.yaml").read_text()

BRIDGE_CASES = [
    ("networks: [front, back]", "networks: {front: {}, back: {address: 172.21.0.10}}",
     ["containers.db.networks.back.address: 172.21.0.10 is already the address of container 'app'"]),
    ("address: 172.21.0.10", "address: 172.21.0.1",
     ["containers.db.networks.back.address: 172.21.0.1 is the gateway of network 'back'"]),
    ("subnet: 172.20.0.0/24", "subnet: 172.20.0.0/15",
     ["networks.back.subnet: 172.21.0.0/24 overlaps 172.20.0.0/15 of network 'front'"]),
    ("subnet: 172.20.0.0/24", "subnet: 172.20.0.0/30",
     ["networks.front.subnet: 172.20.0.0/30 is too small: it has 1 addresses for containers besides the gateway, and 2 containers attach"]),
    ("networks: [front]           # eth0", "networks: [frnt]           # eth0",
     ["containers.web.networks.frnt: network 'frnt' is not declared under 'networks' (declared: back, front)"]),
    ('ports: ["8080:8000"]', 'ports: ["8080:70000"]',
     ["containers.web.ports[0]: '8080:70000': container port 70000 is out of range 1-65535"]),
    ('ports: ["8080:8000"]', 'ports: ["0:8000"]',
     ["containers.web.ports[0]: '0:8000': host port 0 is out of range 1-65535"]),
    ('ports: ["8080:8000"]', 'ports: ["8080:8000/dccp"]',
     ["containers.web.ports[0]: '8080:8000/dccp': protocol 'dccp' is not one of tcp, udp, sctp"]),
    ('ports: ["8080:8000"]', 'ports: ["8080:8000", "8080:9000"]',
     ["containers.web.ports[1]: host port 8080/tcp is already published by containers.web.ports[0] (8080:8000)"]),
    ('ports: ["8080:8000"]', 'ports: [8080]',
     ["containers.web.ports[0]: 8080 must be written as 'HOST_PORT:CONTAINER_PORT' (a string, like \"8080:8080\")"]),
    ("networks: [front, back]", "networks: {front: {interface: eth0}, back: {interface: eth0}}",
     ["containers.app.networks.back.interface: 'eth0' is already used in this container by network 'front'"]),
    ("    bridge: br-back", "    bridge: br-front",
     ["networks.back.bridge: 'br-front' is already the bridge of networks.front"]),
    ("    bridge: br-front ", "    bridge: br-front-way-too-long ",
     ["networks.front.bridge: interface name 'br-front-way-too-long' is 21 bytes long; the limit is 15"]),
    ("    internal: true", "    internal: true\n    masquerade: true",
     ["networks.back.masquerade: an internal network sends nothing out, so it cannot masquerade"]),
]


@pytest.mark.parametrize("old,new,expected", BRIDGE_CASES, ids=[c[2][0].split(":")[0] + ":" + c[1][:18] for c in BRIDGE_CASES])
def test_bridge_rules(old, new, expected):
    assert old in BRIDGE
    assert problems(BRIDGE.replace(old, new, 1)) == expected


def test_second_container_on_a_veth_network():
    data = parse_text(TUTORIAL)
    data["containers"]["container-2"] = {"networks": ["link0"]}
    with pytest.raises(ValidationError) as info:
        resolve(data, fixed_env())
    assert [f"{p}: {m}" for p, m in info.value.problems] == [
        "networks.link0: a veth network joins exactly one container to the host, but container-1, container-2 all attach to it; use driver: bridge"
    ]


def test_bridge_defaults():
    t = topology(BRIDGE)
    assert [str(a.address) for a in t.containers["app"].attachments] == ["172.20.0.3", "172.21.0.2"]
    assert [a.interface for a in t.containers["app"].attachments] == ["eth0", "eth1"]
    assert t.networks["back"].internal and not t.networks["back"].masquerade
    default = topology(BRIDGE.replace("    bridge: br-front            # the bridge device; it holds the gateway 172.20.0.1\n", ""))
    assert len(default.networks["front"].bridge.encode()) <= 15


def test_subnet_overlapping_a_host_route_is_refused():
    env = fixed_env()
    env = env._replace(routes=lambda: [("default", "eth0"), ("172.18.0.0/16", "eth0"), ("10.0.0.0/8", "eth1"), ("172.18.0.0/24", "vethc1")])
    with pytest.raises(ValidationError) as info:
        resolve(parse_text(TUTORIAL), env)
    assert [f"{p}: {m}" for p, m in info.value.problems] == [
        "networks.link0.subnet: 172.18.0.0/24 overlaps the host's route to 172.18.0.0/16 (dev eth0); choose a subnet the host does not use"
    ]
    env = env._replace(routes=lambda: [("default", "eth0"), ("172.18.0.0/24", "vethc1"), ("192.0.2.0/24", "eth0")])
    assert resolve(parse_text(TUTORIAL), env).name == "tutorial"  # its own route, while it is up, is fine


def test_a_subnet_overlapping_a_host_route_is_reported_with_the_other_problems():
    env = fixed_env()._replace(routes=lambda: [("default", "eth0"), ("172.18.0.0/16", "eth0")])
    with pytest.raises(ValidationError) as info:
        resolve(parse_text(TUTORIAL.replace("driver: veth", "driver: vxlan")), env)
    assert [f"{p}: {m}" for p, m in info.value.problems] == [
        "networks.link0.driver: 'vxlan' is not a known driver; known drivers: bridge, veth, macvlan, ipvlan",
        "networks.link0.subnet: 172.18.0.0/24 overlaps the host's route to 172.18.0.0/16 (dev eth0); choose a subnet the host does not use",
    ]


# -- names iproute2's ip or the kernel would take for something else ------------------------------

KEYWORD = "is a keyword of iproute2's ip, which would not read it as a device name"
REFUSED_IFNAMES = {
    "dev": KEYWORD,
    "group": KEYWORD,
    "type": KEYWORD,
    "up": KEYWORD,
    "help": KEYWORD,
    "label": KEYWORD,  # `ip link show label` filters by address label
    "permanent": KEYWORD,  # `ip link show permanent` filters by address flag
    "t": "is read by iproute2's ip as its keyword 'txqueuelen' (ip takes abbreviations), not as a device name",
    "br": "is read by iproute2's ip as its keyword 'broadcast' (ip takes abbreviations), not as a device name",
    "n": "is read by iproute2's ip as its keyword 'nomaster' (ip takes abbreviations), not as a device name",
    "link-net": "is read by iproute2's ip as its keyword 'link-netns' (ip takes abbreviations), not as a device name",
    "all": "is refused by the kernel (net.ipv4.conf.all names a setting, not a device)",
    "default": "is refused by the kernel (net.ipv4.conf.default names a setting, not a device)",
}
IFNAME_FIELDS = [
    (TUTORIAL, "interface: veth1", "interface: {}", "containers.container-1.networks.link0.interface"),
    (TUTORIAL, "host_interface: vethc1", "host_interface: {}", "containers.container-1.networks.link0.host_interface"),
    (BRIDGE, "    bridge: br-back", "    bridge: {}", "networks.back.bridge"),
]


@pytest.mark.parametrize("name", REFUSED_IFNAMES)
@pytest.mark.parametrize("base,old,new,path", IFNAME_FIELDS, ids=[f[3].rsplit(".", 1)[1] for f in IFNAME_FIELDS])
def test_interface_names_ip_would_misread_are_refused(base, old, new, path, name):
    assert old in base
    assert problems(base.replace(old, new.format(name), 1)) == [f"{path}: interface name {name!r} {REFUSED_IFNAMES[name]}"]


@pytest.mark.parametrize("name", ["eth0", "e", "x", "lo0", "on", "off", "peer", "veth", "bridge", "none", "via"])
def test_interface_names_ip_reads_as_names_are_kept(name):
    t = topology(TUTORIAL.replace("interface: veth1", f"interface: '{name}'").replace("host_interface: vethc1", f"host_interface: '{name}'"))
    (a,) = t.containers["container-1"].attachments
    assert (a.interface, a.host_interface) == (name, name)


def test_the_schema_refuses_the_same_interface_names():
    from nsgen import models
    from nsgen.schema import schema

    container = schema()["properties"]["containers"]["additionalProperties"]
    attachment = container["properties"]["networks"]["oneOf"][1]["additionalProperties"]["oneOf"][1]
    refused = attachment["properties"]["interface"]["not"]["enum"]
    assert refused == ["lo", *models.reserved_ifnames()]
    assert {"dev", "group", "up", "help", "all", "default", "br", "t", "link-netnsi"} <= set(refused)
    assert not {"eth0", "e", "lo0", "veth"} & set(refused)


# -- nameservers: canonical, and a scope only when it is an interface name -----------------------


def test_nameservers_are_written_canonically_with_a_scope_that_is_an_interface_name():
    t = topology(TUTORIAL.replace("    dns: [1.1.1.1]", "    dns: ['FE80::0001%eth0', '2001:DB8:0::53', 1.1.1.1]"))
    assert t.containers["container-1"].dns == ("fe80::1%eth0", "2001:db8::53", "1.1.1.1")


# -- published ports ------------------------------------------------------------------------------


def test_a_port_published_on_0_0_0_0_is_published_on_every_host_ipv4_address():
    t = topology(BRIDGE.replace('ports: ["8080:8000"]', 'ports: ["0.0.0.0:8080:8000", "127.0.0.1:9000:9000/udp"]'))
    assert t.containers["web"].ports == (
        PublishedPort(ipaddress.IPv4Address("0.0.0.0"), 8080, 8000, "tcp", "0.0.0.0:8080:8000"),
        PublishedPort(ipaddress.IPv4Address("127.0.0.1"), 9000, 9000, "udp", "127.0.0.1:9000:9000/udp"),
    )
    assert [(p.address, p.versions((4, 6))) for p in t.containers["web"].ports] == [(None, (4,)), (ipaddress.IPv4Address("127.0.0.1"), (4,))]


def test_a_port_range_is_one_published_port_a_port_and_is_shown_once():
    t = topology(BRIDGE.replace('ports: ["8080:8000"]', 'ports: ["8080-8082:80-82", "127.0.0.1:9090-9091:90-91/udp", "3868:3868/sctp"]'))
    ports = t.containers["web"].ports
    assert [(p.host_port, p.container_port, p.protocol, p.spec) for p in ports] == [
        (8080, 80, "tcp", "8080-8082:80-82"), (8081, 81, "tcp", "8080-8082:80-82"), (8082, 82, "tcp", "8080-8082:80-82"),
        (9090, 90, "udp", "127.0.0.1:9090-9091:90-91/udp"), (9091, 91, "udp", "127.0.0.1:9090-9091:90-91/udp"),
        (3868, 3868, "sctp", "3868:3868/sctp")]
    assert [run_shown(first, last) for first, last in port_runs(ports)] == [
        "*:8080-8082->80-82/tcp", "127.0.0.1:9090-9091->90-91/udp", "*:3868->3868/sctp"]


@pytest.mark.parametrize("mine,theirs,overlap", [
    ("8080:80", "127.0.0.1:8080:81", True), ("0.0.0.0:8080:80", "127.0.0.1:8080:80", True),
    ("127.0.1.2:8080:80", "127.0.1.3:8080:80", False), ("[::]:8080:80", "127.0.0.1:8080:80", False),
    ("[::]:8080:80", "[2001:db8::1]:8080:80", True), ("8080:80", "8080:80/udp", False), ("8080:80/sctp", "8080:80/sctp", True),
])
def test_two_ports_conflict_only_at_a_common_address(mine, theirs, overlap):
    from nsgen.resolve import Problems, _parse_port

    (a,), (b,) = (_parse_port(spec, "p", Problems()) for spec in (mine, theirs))
    assert a.overlaps(b) is overlap and b.overlaps(a) is overlap


def test_a_dual_stack_network_gives_each_container_an_address_of_each_family():
    t = topology(BRIDGE.replace("subnet: 172.20.0.0/24", 'subnet: [172.20.0.0/24, "fd00:20::/64"]')
                 .replace('ports: ["8080:8000"]', 'ports: ["8080:8000", "[::1]:8081:8000", "[2001:db8::1]:8082:8000/udp"]'))
    front = t.networks["front"]
    assert (front.subnet, front.gateway, front.subnet6, front.gateway6) == (
        ipaddress.ip_network("172.20.0.0/24"), ipaddress.ip_address("172.20.0.1"), ipaddress.ip_network("fd00:20::/64"), ipaddress.ip_address("fd00:20::1"))
    web = t.containers["web"].attachments[0]
    assert [(str(a), n, str(g)) for a, n, g in web.addresses] == [("172.20.0.2", 24, "172.20.0.1"), ("fd00:20::2", 64, "fd00:20::1")]
    assert [p.versions(front.versions) for p in t.containers["web"].ports] == [(4, 6), (6,), (6,)]


# -- every field is checked on its own; a rule that needs another field waits for it to be valid ---


def test_each_field_of_a_network_is_checked_whatever_the_others_are():
    text = """
name: lab
networks:
  'front net': {driver: vlan, subnet: 10.1.0.1/24, gateway: 10.1.0.300, masquerade: 1, internal: no way, bridge: up}
containers:
  web: {networks: ['front net']}
"""
    assert problems(text) == [
        "networks.front net: network name 'front net' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit",
        "networks.front net.driver: 'vlan' is not a known driver; known drivers: bridge, veth, macvlan, ipvlan",
        "networks.front net.subnet: '10.1.0.1/24' has host bits set; the subnet is 10.1.0.0/24",
        "networks.front net.gateway: '10.1.0.300' is not an IP address (like 172.18.0.2 or fd00:18::2)",
        "networks.front net.masquerade: must be true or false, got 1",
        "networks.front net.internal: must be true or false, got 'no way'",
        "networks.front net.bridge: interface name 'up' is a keyword of iproute2's ip, which would not read it as a device name",
    ]


def test_rules_that_need_an_invalid_field_are_not_reported():
    text = """
name: lab
networks:
  front: {subnet: 10.1.0.0/24, gateway: 10.2.0.1}   # the gateway is outside: not compared with addresses
  back: {subnet: 10.3.0.0/33}                       # no subnet: no address is checked against it
  side: {driver: vxlan, subnet: 10.4.0.0/24, bridge: br-x}
  other: {subnet: 10.5.0.0/24, bridge: br-x}        # br-x is a device only if side is a bridge network
  shut: {subnet: 10.6.0.0/24, internal: maybe}      # not known to be internal: ports may be published
containers:
  web:
    networks: {front: {address: 10.1.0.1}, back: {address: 10.9.9.9}}
  app:
    networks: [shut]
    ports: ["8080:80"]
"""
    assert problems(text) == [
        "networks.front.gateway: 10.2.0.1 is not inside subnet 10.1.0.0/24",
        "networks.back.subnet: '10.3.0.0/33' is not a subnet (like 172.18.0.0/24 or fd00:18::/64)",
        "networks.side.driver: 'vxlan' is not a known driver; known drivers: bridge, veth, macvlan, ipvlan",
        "networks.shut.internal: must be true or false, got 'maybe'",
    ]


def test_a_network_whose_subnet_is_valid_checks_addresses_whatever_else_is_wrong_with_it():
    text = """
name: lab
networks:
  front: {driver: vxlan, subnet: 10.1.0.0/30}
containers:
  web: {networks: {front: {address: 10.1.0.3}}}
  app: {networks: [front]}
  db: {networks: [front]}
"""
    assert problems(text) == [
        "networks.front.driver: 'vxlan' is not a known driver; known drivers: bridge, veth, macvlan, ipvlan",
        "containers.web.networks.front.address: 10.1.0.3 is the broadcast address of 10.1.0.0/30",
        "networks.front.subnet: 10.1.0.0/30 is too small: it has 1 addresses for containers besides the gateway, and 3 containers attach",
    ]


def test_names_that_are_not_strings_are_reported_and_derive_nothing():
    data = {"name": "x", "networks": {"a": {"subnet": "10.1.0.0/24", "driver": "veth"}},
            "containers": {2: {"networks": ["a"]}, 3: {"networks": ["a"]}}}
    with pytest.raises(ValidationError) as info:
        resolve(data, fixed_env())
    assert [f"{p}: {m}" for p, m in info.value.problems] == [
        "containers.2: container name must be a string, got 2",
        "containers.3: container name must be a string, got 3",
        "networks.a: a veth network joins exactly one container to the host, but 2, 3 all attach to it; use driver: bridge",
    ]


# -- a key written at another level than its own says where it belongs ---------------------------

MISPLACED = [
    ("name: lab\nsubnet: 10.1.0.0/24\n",
     "subnet: unknown key 'subnet'; 'subnet' is a key of a network (under networks.<name>): check its indentation"),
    ("networks:\n  front:\n    subnet: 10.1.0.0/24\n    ports: ['80:80']\n",
     "networks.front.ports: unknown key 'ports'; 'ports' is a key of a container (under containers.<name>): check its indentation"),
    ("networks:\n  front:\n    subnet: 10.1.0.0/24\n    networks: [front]\n",
     ("networks.front.networks: unknown key 'networks'; 'networks' is a key of the topology (at the top level) "
      "and of a container (under containers.<name>): check its indentation")),
    ("host:\n  ip_forward: true\n  address: 10.1.0.2\n",
     ("host.address: unknown key 'address'; 'address' is a key of a container's network "
      "(under containers.<name>.networks.<network>): check its indentation")),
    ("networks:\n  front:\n    subnet: 10.1.0.0/24\n  internal: true\n",
     "networks.internal: must be a mapping (key: value), got bool True; 'internal' is a key of a network (under networks.<name>): check its indentation"),
    ("containers:\n  web:\n    networks: [front]\n  ip_forward: auto\n",
     "containers.ip_forward: must be a mapping (key: value), got str 'auto'; 'ip_forward' is a key of the host settings (under host): check its indentation"),
]


@pytest.mark.parametrize("fragment,expected", MISPLACED, ids=[c[1].split(":")[0] for c in MISPLACED])
def test_a_key_at_another_level_says_where_it_belongs(fragment, expected):
    base = {"name": "lab", "networks": {"front": {"subnet": "10.1.0.0/24"}}, "containers": {"web": {"networks": ["front"]}}}
    data = {**base, **parse_text(fragment)}
    with pytest.raises(ValidationError) as info:
        resolve(data, fixed_env())
    assert [f"{p}: {m}" for p, m in info.value.problems] == [expected]


def test_a_value_that_is_not_a_mapping_under_a_plain_name_gets_no_hint():
    text = TUTORIAL.replace("    masquerade: true            # default true", "  lan: 10.1.0.0/24")
    assert problems(text) == ["networks.lan: must be a mapping (key: value), got str '10.1.0.0/24'"]
