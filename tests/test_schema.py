"""The JSON Schema accepts every example and what `nsgen init` writes, and rejects broken topologies
that the models reject too; `nsgen init` never overwrites by accident."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from nsgen.errors import ValidationError
from nsgen.load import load_file, parse_text
from nsgen.resolve import resolve
from nsgen.schema import schema
from tests.helpers import EXAMPLES, fixed_env

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
VALIDATOR = jsonschema.Draft7Validator(schema())


def schema_errors(data) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(data)]


def models_accept(data) -> bool:
    try:
        resolve(data, fixed_env())
    except ValidationError:
        return False
    return True


def test_the_schema_is_a_valid_draft_7_schema():
    jsonschema.Draft7Validator.check_schema(schema())


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_validates(path):
    data = load_file(path)
    assert schema_errors(data) == []
    assert models_accept(data)


TUTORIAL = load_file(EXAMPLES / "tutorial.yaml")
BRIDGE = load_file(EXAMPLES / "bridge.yaml")
MACVLAN = load_file(EXAMPLES / "macvlan.yaml")


def changed(base, path: str, value, *, delete: bool = False):
    """A copy of base with the value at a dotted path replaced (or the key deleted)."""
    data = copy.deepcopy(base)
    *parents, last = path.split("/")
    target = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if delete:
        del target[last]
    else:
        target[last] = value
    return data


C1 = "containers/container-1"
ATT = f"{C1}/networks/link0"
BROKEN = {
    "unknown top-level key": changed(TUTORIAL, "version", 2),
    "unknown network key": changed(TUTORIAL, "networks/link0/jumbo_frames", True),
    "unknown container key": changed(TUTORIAL, f"{C1}/image", "alpine"),
    "unknown attachment key (typo)": changed(TUTORIAL, f"{ATT}/adress", "172.18.0.2"),
    "unknown host key": changed(TUTORIAL, "host/nat", True),
    "name missing": changed(TUTORIAL, "name", None, delete=True),
    "name over 20 bytes": changed(TUTORIAL, "name", "a" * 21),
    "name with a space": changed(TUTORIAL, "name", "my lab"),
    "name starting with -": changed(TUTORIAL, "name", "-lab"),
    "name not ASCII": changed(TUTORIAL, "name", "läb"),
    "interface over 15 bytes": changed(TUTORIAL, f"{ATT}/host_interface", "abcdefghijklmnop"),
    "interface lo": changed(TUTORIAL, f"{ATT}/interface", "lo"),
    "unknown driver": changed(TUTORIAL, "networks/link0/driver", "weave"),
    "subnet too small": changed(TUTORIAL, "networks/link0/subnet", "172.18.0.0/31"),
    "subnet with a leading zero": changed(TUTORIAL, "networks/link0/subnet", "172.018.0.0/24"),
    "subnet without prefix": changed(TUTORIAL, "networks/link0/subnet", "172.18.0.0"),
    "subnet missing": changed(TUTORIAL, "networks/link0/subnet", None, delete=True),
    "gateway not dotted": changed(TUTORIAL, "networks/link0/gateway", "172.18.1"),
    "address with a leading zero": changed(TUTORIAL, f"{ATT}/address", "172.18.0.02"),
    "masquerade not a boolean": changed(TUTORIAL, "networks/link0/masquerade", "yes"),
    "veth network with a bridge": changed(TUTORIAL, "networks/link0/bridge", "br0"),
    "internal and masquerade": changed(BRIDGE, "networks/back/masquerade", True),
    "parent on a bridge network": changed(BRIDGE, "networks/front/parent", "eth0"),
    "macvlan that masquerades": changed(MACVLAN, "networks/lan/masquerade", True),
    "macvlan with a bridge": changed(MACVLAN, "networks/lan/bridge", "br0"),
    "macvlan with an outbound address": changed(MACVLAN, "networks/lan/outbound_addr", "192.168.1.7"),
    "outbound address of an internal network": changed(BRIDGE, "networks/back/outbound_addr", "198.51.100.7"),
    "outbound address without masquerade": changed(changed(BRIDGE, "networks/front/masquerade", False), "networks/front/outbound_addr",
                                                   "198.51.100.7"),
    "outbound address not an address": changed(BRIDGE, "networks/front/outbound_addr", "198.51.100"),
    "ip_forward not auto/true/false": changed(TUTORIAL, "host/ip_forward", "on"),
    "persist as a string": changed(TUTORIAL, "host/persist", "true"),
    "four nameservers": changed(TUTORIAL, f"{C1}/dns", ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]),
    "nameserver not an address": changed(TUTORIAL, f"{C1}/dns", ["one.one.one.one"]),
    "port as a number": changed(TUTORIAL, f"{C1}/ports", [8080]),
    "port without container port": changed(TUTORIAL, f"{C1}/ports", ["8080"]),
    "port zero": changed(TUTORIAL, f"{C1}/ports", ["0:80"]),
    "port out of range": changed(TUTORIAL, f"{C1}/ports", ["65536:80"]),
    "port protocol dccp": changed(TUTORIAL, f"{C1}/ports", ["8080:80/dccp"]),
    "port range without its end": changed(TUTORIAL, f"{C1}/ports", ["8080-:80"]),
    "port range of three ports": changed(TUTORIAL, f"{C1}/ports", ["8080-8081-8082:80"]),
    "empty process": changed(TUTORIAL, f"{C1}/processes", [""]),
    "empty process argv": changed(TUTORIAL, f"{C1}/processes", [[]]),
    "process argv with a number": changed(TUTORIAL, f"{C1}/processes", [["sleep", 5]]),
    "container without networks": changed(TUTORIAL, f"{C1}/networks", None, delete=True),
    "container with an empty network list": changed(TUTORIAL, f"{C1}/networks", []),
    "network name with a slash": changed(BRIDGE, "containers/db/networks", ["back/x"]),
    "container name over 64 bytes": {**TUTORIAL, "containers": {"c" * 65: TUTORIAL["containers"]["container-1"]}},
    "mtu below 68": changed(TUTORIAL, "networks/link0/mtu", 67),
    "mtu above 65535": changed(TUTORIAL, "networks/link0/mtu", 65536),
    "mtu as a string": changed(TUTORIAL, "networks/link0/mtu", "9000"),
    "multicast MAC address": changed(TUTORIAL, f"{ATT}/mac_address", "01:00:5e:00:00:01"),
    "MAC address of five pairs": changed(TUTORIAL, f"{ATT}/mac_address", "02:00:00:00:01"),
    "route with an unknown key": changed(TUTORIAL, "networks/link0/routes",
                                         [{"destination": "10.9.0.0/24", "gateway": "172.18.0.5", "metric": 5}]),
    "route without a gateway": changed(TUTORIAL, "networks/link0/routes", [{"destination": "10.9.0.0/24"}]),
    "route to the default": changed(TUTORIAL, "networks/link0/routes", [{"destination": "0.0.0.0/0", "gateway": "172.18.0.5"}]),
    "no_default_route as a string": changed(TUTORIAL, "networks/link0/no_default_route", "yes"),
    "alias not a host name": changed(TUTORIAL, f"{ATT}/aliases", ["api_1"]),
    "alias with an empty label": changed(TUTORIAL, f"{ATT}/aliases", ["api..internal"]),
    "alias over 253 characters": changed(TUTORIAL, f"{ATT}/aliases", [".".join(["a" * 50] * 6)]),
    "alias localhost": changed(TUTORIAL, f"{ATT}/aliases", ["localhost"]),
    "aliases not a list": changed(TUTORIAL, f"{ATT}/aliases", "api"),
    "sysctl of the host": changed(TUTORIAL, f"{C1}/sysctls", {"kernel.pid_max": "100"}),
    "sysctl key in capitals": changed(TUTORIAL, f"{C1}/sysctls", {"net.ipv4.IP_forward": 1}),
    "sysctl value on two lines": changed(TUTORIAL, f"{C1}/sysctls", {"net.ipv4.ping_group_range": "0\n1"}),
    "sysctl value a list": changed(TUTORIAL, f"{C1}/sysctls", {"net.ipv4.ip_forward": [1]}),
    "environment name with a dash": changed(TUTORIAL, f"{C1}/processes", [{"command": "sleep 1", "environment": {"A-B": "x"}}]),
    "environment value a list": changed(TUTORIAL, f"{C1}/processes", [{"command": "sleep 1", "environment": {"A": ["x"]}}]),
    "working_dir relative": changed(TUTORIAL, f"{C1}/processes", [{"command": "sleep 1", "working_dir": "tmp"}]),
    "user with two colons": changed(TUTORIAL, f"{C1}/processes", [{"command": "sleep 1", "user": "a:b:c"}]),
    "process mapping without command": changed(TUTORIAL, f"{C1}/processes", [{"user": "nobody"}]),
}


@pytest.mark.parametrize("data", BROKEN.values(), ids=BROKEN.keys())
def test_broken_topologies_are_rejected_by_the_schema_and_by_the_models(data):
    assert schema_errors(data), "the schema accepted it"
    assert not models_accept(data), "the models accepted it"


def test_schema_properties_are_the_models_keys():
    from nsgen import models

    s = schema()
    network = s["properties"]["networks"]["additionalProperties"]
    container = s["properties"]["containers"]["additionalProperties"]
    attachment = container["properties"]["networks"]["oneOf"][1]["additionalProperties"]["oneOf"][1]
    assert set(s["properties"]) == models.TOPOLOGY_KEYS
    assert set(network["properties"]) == models.NETWORK_KEYS
    assert set(container["properties"]) == models.CONTAINER_KEYS
    assert set(attachment["properties"]) == models.ATTACHMENT_KEYS
    assert set(network["properties"]["routes"]["items"]["properties"]) == models.ROUTE_KEYS
    assert set(s["properties"]["host"]["properties"]) == models.HOST_KEYS
    process = container["properties"]["processes"]["items"]["oneOf"][2]
    assert set(process["properties"]) == models.PROCESS_KEYS
    for obj in (s, network, container, attachment, s["properties"]["host"], process):
        assert obj["additionalProperties"] is False


def test_schema_command_prints_the_schema(cli):
    result = cli("schema")
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout) == schema()


# -- init ------------------------------------------------------------------------------------

@pytest.mark.parametrize("example", [p.stem for p in EXAMPLE_FILES])
def test_init_writes_a_file_that_validates(cli, tmp_path, example):
    result = cli("init", "--example", example)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"wrote nsgen.yaml (the {example} example); next: nsgen validate\n"
    text = (tmp_path / "nsgen.yaml").read_text()
    assert text.startswith("# An nsgen topology, written by `nsgen init")
    assert (EXAMPLES / f"{example}.yaml").read_text() in text  # comments and all
    data = parse_text(text)
    assert schema_errors(data) == []
    validated = cli("validate")  # the file nsgen reads without -f
    assert validated.exit_code == 0 and "is valid" in validated.stderr


def test_init_refuses_to_overwrite_without_force(cli, tmp_path):
    (tmp_path / "nsgen.yaml").write_text("mine\n")
    result = cli("init")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: nsgen.yaml already exists; use --force to overwrite it\n"
    assert (tmp_path / "nsgen.yaml").read_text() == "mine\n"
    assert cli("init", "--force").exit_code == 0
    assert "name: tutorial" in (tmp_path / "nsgen.yaml").read_text()


def test_init_to_another_file_or_stdout(cli, tmp_path):
    result = cli("init", "--example", "bridge", "-o", "lab.yaml")
    assert result.stderr == "wrote lab.yaml (the bridge example); next: nsgen validate -f lab.yaml\n"
    assert "name: bridge-lab" in (tmp_path / "lab.yaml").read_text()
    printed = cli("init", "-o", "-", "--example", "pod")
    assert "name: pod" in printed.stdout and printed.stderr == ""
    assert not (tmp_path / "nsgen.yaml").exists()


def test_init_names_the_examples_it_has(cli):
    result = cli("init", "--example", "nope")
    assert result.exit_code == 2
    assert "'nope' is not one of 'bridge', 'dual-stack', 'ipv6-only', 'jumbo', 'macvlan', 'names', 'overlay', 'pod', 'ports', 'tutorial'" in result.stderr
