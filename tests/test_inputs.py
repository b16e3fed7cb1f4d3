"""The input catalogue: every bad input gets one exact message, exit status 1, and nothing is run."""

from __future__ import annotations

import os
import subprocess

import pytest
from click.testing import CliRunner

from nsgen import models
from nsgen.cli import main
from tests.conftest import count
from tests.test_models import BRIDGE, BRIDGE_CASES, CASES, TUTORIAL

EXTRA = [
    # names: every character class that could escape a path, a tag or a shell line
    ("  container-1:", "  'web/../../etc':", "containers.web/../../etc: container name 'web/../../etc' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c:1':", "containers.c:1: container name 'c:1' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c 1':", "containers.c 1: container name 'c 1' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c%1':", "containers.c%1: container name 'c%1' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  '-c':", "containers.-c: container name '-c' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  '$(reboot)':", "containers.$(reboot): container name '$(reboot)' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c`id`':", "containers.c`id`: container name 'c`id`' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  '..':", "containers...: container name '..' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'contäiner':", "containers.contäiner: container name 'contäiner' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  " + "c" * 65 + ":", f"containers.{'c' * 65}: container name '{'c' * 56}... is 65 bytes long; the limit is 64"),
    ("networks:\n  link0:", "networks:\n  'li;nk': {subnet: 10.1.0.0/24}\n  link0:", "networks.li;nk: network name 'li;nk' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("name: tutorial", "name: \"tutorial\\nx\"", "name: topology name 'tutorial\\nx' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("name: tutorial", "name: 42", "name: topology name must be a string, got 42"),
    ("name: tutorial", "name: \"tutorial\\n\"", "name: topology name 'tutorial\\n' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("networks:\n  link0:", "networks:\n  \"n\\nx\": {subnet: 10.1.0.0/24}\n  link0:", "networks.'n\\nx': network name 'n\\nx' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    # addresses
    ("address: 172.18.0.2", "address: 172.18.0.0", "containers.container-1.networks.link0.address: 172.18.0.0 is the network address of 172.18.0.0/24"),
    ("address: 172.18.0.2", "address: 0172.18.0.2", "containers.container-1.networks.link0.address: '0172.18.0.2' is not an IPv4 address in canonical dotted form (like 172.18.0.2)"),
    ("address: 172.18.0.2", "address: 172.18.0.2/24", "containers.container-1.networks.link0.address: '172.18.0.2/24' is not an IPv4 address in canonical dotted form (like 172.18.0.2)"),
    ("address: 172.18.0.2", "address: 2886860802", "containers.container-1.networks.link0.address: must be an IPv4 address written as a string, got 2886860802"),
    ("subnet: 172.18.0.0/24", "subnet: 010.0.0.0/8", "networks.link0.subnet: '010.0.0.0/8' is not an IPv4 subnet in canonical form (like 172.18.0.0/24)"),
    ("gateway: 172.18.0.1", "gateway: 172.18.0.255", "networks.link0.gateway: 172.18.0.255 is the broadcast address of 172.18.0.0/24, not a usable host address"),
    ("subnet: 172.18.0.0/24", "subnet: 0.0.0.0/0", "networks.link0.subnet: 0.0.0.0/0 overlaps 0.0.0.0/8 ('this network') and cannot be a container network"),
    ("subnet: 172.18.0.0/24", "subnet: 240.0.0.0/24", "networks.link0.subnet: 240.0.0.0/24 is a reserved range and cannot be a container network"),
    # DNS
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1, 1.0.0.1, 8.8.8.8, 9.9.9.9]", "containers.container-1.dns: lists 4 nameservers; resolv.conf uses at most 3"),
    ("    dns: [1.1.1.1]", "    dns: 1.1.1.1", "containers.container-1.dns: must be a list of nameserver addresses, got '1.1.1.1'"),
    ("    dns: [1.1.1.1]", "    dns: ['1.1.1.1 # x']", "containers.container-1.dns[0]: '1.1.1.1 # x' is not an IP address"),
    # processes
    ("      - nsgen echo-server --port 8000", "      - ''", "containers.container-1.processes[0]: is an empty command"),
    ("      - nsgen echo-server --port 8000", "      - [nsgen, 3]", "containers.container-1.processes[0]: must be a command string or a list of strings, got ['nsgen', 3]"),
    ("      - nsgen echo-server --port 8000", '      - "a\\0b"', "containers.container-1.processes[0]: word 'a\\x00b' contains a NUL byte or a newline"),
    # shapes
    ("host:\n", "hostx:\n", "hostx: unknown key 'hostx'; did you mean 'host'?"),
]

WHOLE_FILES = [
    ("", "the topology is empty; it needs at least 'name', 'networks' and 'containers'"),
    ("- a\n- b\n", "the topology must be a mapping at the top level, got a list"),
    ("just a string\n", "the topology must be a mapping at the top level, got a str"),
]


def _case_id(case) -> str:
    return case[2].split(": ", 1)[0][:40] + "|" + case[1].strip()[:16]


ALL = [(TUTORIAL, *c) for c in CASES + EXTRA] + [(BRIDGE, old, new, expected[0]) for old, new, expected in BRIDGE_CASES]


@pytest.fixture
def nothing_runs(monkeypatch):
    """Root, but any command nsgen would run is recorded instead (reading routes included)."""
    ran: list = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(models, "host_routes", lambda: [])
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: ran.append(a))
    return ran


def _invoke(tmp_path, data: bytes, command: str):
    (tmp_path / "t.yaml").write_bytes(data)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(main, [command, "-f", "t.yaml"], catch_exceptions=False)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("base,old,new,expected", ALL, ids=[_case_id(c[1:]) for c in ALL])
def test_input_case(tmp_path, nothing_runs, base, old, new, expected):
    assert old in base, old
    for command in ("run", "render", "validate"):
        result = _invoke(tmp_path, base.replace(old, new, 1).encode(), command)
        assert (result.exit_code, result.stdout) == (1, ""), command
        assert result.stderr == f"error: t.yaml: {expected}\n", command
    assert nothing_runs == []
    count("input cases")


@pytest.mark.parametrize("text,expected", WHOLE_FILES)
def test_whole_file_case(tmp_path, nothing_runs, text, expected):
    result = _invoke(tmp_path, text.encode(), "run")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"error: t.yaml: {expected}\n")
    assert nothing_runs == []
    count("input cases")


def test_not_utf8(tmp_path, nothing_runs):
    result = _invoke(tmp_path, b"name: caf\xe9\n", "run")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "error: t.yaml: not UTF-8 text (invalid byte at offset 9)\n"
    assert nothing_runs == []
    count("input cases")
