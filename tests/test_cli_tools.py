"""check, exec, status and sandbox from a user's side, without root: clear refusals, nothing run."""

from __future__ import annotations

import os
import subprocess

import pytest
from click.testing import CliRunner

from nsgen.cli import main
from tests.helpers import EXAMPLES, example_plan


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def invoke(*args, **kwargs):
        return CliRunner().invoke(main, list(args), catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture
def not_root(monkeypatch):
    """Not root, and any attempt to run a program is recorded (and must not happen)."""
    ran = []
    monkeypatch.setattr("nsgen.hostinfo.host_routes", list)  # what resolve reads of the host
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(os, "execvp", lambda *a: ran.append(a))
    return ran


def test_check_needs_root_and_says_so(cli, not_root, monkeypatch):
    for args in (["check"], ["check", "--probe"]):
        monkeypatch.setattr("sys.argv", ["/usr/local/bin/nsgen", *args])
        result = cli(*args)
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr == (f"error: checking the host's network (namespaces, firewall rules) needs root: run it as "
                                 f"`sudo /usr/local/bin/nsgen {' '.join(args)}`\n")
    assert not_root == []


def test_check_refuses_a_nonsense_probe_target(cli, not_root):
    result = cli("check", "--probe-target", "-x; reboot")
    assert result.exit_code == 1
    assert result.stderr == "error: --probe-target '-x; reboot' is not an IP address or a host name\n"


def test_check_takes_one_probe_target_a_family(cli, not_root):
    result = cli("check", "--probe-target", "192.0.2.1", "--probe-target", "192.0.2.2")
    assert result.exit_code == 1
    assert result.stderr == ("error: --probe-target is given twice for IPv4 (192.0.2.1 and 192.0.2.2): "
                             "give at most one a family\n")
    result = cli("check", "--probe-target", "fe80::1%eth0")
    assert result.stderr == "error: --probe-target 'fe80::1%eth0' is not an IP address or a host name\n"


def test_probe_targets_by_family():
    from nsgen.check import targets, valid_target

    assert valid_target("2001:db8::1") and valid_target("192.0.2.1") and valid_target("example.test")
    assert not valid_target("fe80::1%eth0") and not valid_target("-x")
    assert targets(()) == {}
    assert targets(("2001:db8::1",)) == {6: "2001:db8::1"}
    assert targets(("192.0.2.1", "2001:db8::1")) == {4: "192.0.2.1", 6: "2001:db8::1"}
    assert targets(("example.test",)) == {4: "example.test", 6: "example.test"}
    assert targets(("example.test", "2001:db8::1")) == {4: "example.test", 6: "2001:db8::1"}
    with pytest.raises(ValueError, match="twice for IPv6"):
        targets(("2001:db8::1", "2001:db8::2"))
    with pytest.raises(ValueError, match="at most one name"):
        targets(("a.test", "b.test"))


def test_sandbox_without_root_says_why(cli, not_root):
    result = cli("sandbox")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: no sandbox can be made here: the sandbox needs root (euid is 1000)\n"
    assert not_root == []


def test_sandbox_reports_a_bad_topology_before_making_anything(cli, tmp_path, not_root):
    (tmp_path / "t.yaml").write_text("name: x\nnetworks: {n: {subnet: 10.0.0.0/31}}\ncontainers: {c: {networks: [n]}}\n")
    result = cli("sandbox", "-f", "t.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: t.yaml: networks.n.subnet: 10.0.0.0/31 is too small")
    assert not_root == []


def test_exec_names_the_containers_it_knows(cli, not_root):
    result = cli("exec", "-f", str(EXAMPLES / "bridge.yaml"), "dbb", "--", "true")
    assert result.exit_code == 1
    assert result.stderr == "error: topology bridge-lab has no container 'dbb'; its containers: web, app, db\n"
    assert not_root == []


def test_exec_passes_the_command_untouched(cli, monkeypatch, tmp_path):
    """Everything after the container (options included) is the command's, with or without --."""
    ran = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os.path, "isdir", lambda p: True)
    monkeypatch.setattr(os.path, "exists", lambda p: True)
    monkeypatch.setattr(os, "execvp", lambda *a: ran.append(a))
    monkeypatch.setattr("shutil.which", lambda name: name)
    cli("exec", "container-1", "--", "ls", "-la", "--", "x")
    cli("exec", "container-1", "ip", "-br", "a")
    assert ran == [
        ("ip", ["ip", "netns", "exec", "container-1", "ls", "-la", "--", "x"]),
        ("ip", ["ip", "netns", "exec", "container-1", "ip", "-br", "a"]),
    ]


def test_nsgen_file_names_the_default_topology(cli, tmp_path, monkeypatch):
    (tmp_path / "elsewhere.yaml").write_text((EXAMPLES / "pod.yaml").read_text())
    monkeypatch.setenv("NSGEN_FILE", str(tmp_path / "elsewhere.yaml"))
    assert "topology pod is valid" in cli("validate").stderr


def test_status_and_ps_with_nothing_up(cli, tmp_path, monkeypatch):
    import json

    from nsgen import status

    monkeypatch.setattr(status, "STATE_ROOT", str(tmp_path / "missing"))
    assert status.up() == []
    (tmp_path / "root" / ".ip_forward").mkdir(parents=True)
    (tmp_path / "root" / "notrecorded").mkdir()
    monkeypatch.setattr(status, "STATE_ROOT", str(tmp_path / "root"))
    assert status.up() == []
    shown = cli("status")
    assert shown.exit_code == 0 and shown.stdout == "" and shown.stderr == "no nsgen topology is up on this host\n"
    assert json.loads(cli("status", "--json").stdout) == {"containers": []}
    assert json.loads(cli("ps", "--json").stdout) == {"processes": []}
    assert cli("ps").stderr == "no process of nsgen's is recorded on this host\n"
    missing = cli("logs", "web")
    assert missing.exit_code == 1 and missing.stderr == "error: no process of web is recorded on this host (see nsgen ps)\n"


def test_check_probes_exactly_the_rules_the_plan_loads():
    """Every chain and rule line of every ip(6)tables-restore input in the plan is one of its step's checks, word for word."""
    for example in ("bridge.yaml", "dual-stack.yaml"):
        plan = example_plan(example)
        steps = [step for step in plan.steps if step.commands and step.commands[0].argv[0].endswith("tables-restore")]
        programs = {"iptables-restore", "ip6tables-restore"} if example == "dual-stack.yaml" else {"iptables-restore"}
        assert {s.commands[0].argv[0] for s in steps} == programs
        for step in steps:
            program = step.commands[0].argv[0].removesuffix("-restore")
            text = step.commands[0].input
            table = text.splitlines()[0][1:]
            rules = [line.split() for line in text.splitlines() if line.startswith(("-A ", "-I ", ":"))]
            expected = [(program, "-w", "-t", table, "-S", w[0][1:]) if w[0].startswith(":") else
                        (program, "-w", "-t", table, "-C", w[1], *(w[3:] if w[0] == "-I" else w[2:])) for w in rules]
            assert [check.probe for check in step.checks] == expected


def test_probes_of_a_dual_stack_topology_cover_both_families():
    from nsgen.check import _probes

    aims = {4: ("203.0.113.10", ""), 6: (None, "the host has no IPv6 default gateway to aim at; give --probe-target ADDR")}
    probes = {what: (test is not None, why) for what, test, why in _probes(example_plan("dual-stack.yaml").topology, aims)}
    for what in ("web → gateway 172.20.0.1 (front, ping)", "web → gateway fd00:20::1 (front, ping)",
                 "web → neighbour db 172.21.0.10 (back, ping)", "web → neighbour db fd00:21::10 (back, ping)",
                 "web → outside 203.0.113.10 (masqueraded through front, ping)",
                 "host → published 127.0.0.1:8080 → web 172.20.0.2:8000", "web → published 172.20.0.1:8080 → web 172.20.0.2:8000",
                 "host → published [fd00:20::1]:8080 → web [fd00:20::2]:8000",
                 "web → published [fd00:20::1]:8080 → web [fd00:20::2]:8000"):
        assert probes.pop(what) == (True, ""), what
    assert probes.pop("web → outside ? (IPv6, masqueraded through front, ping)") == (False, aims[6][1])
    # db is on the internal network only: no way out in either family
    assert not [what for what in probes if "outside" in what or "[::1]" in what]


def test_outside_probes_follow_static_routes_and_no_default_route():
    """The outside is probed through the network whose static route leads there, else through the
    first network that gives a default route; a container with neither is not probed outside."""
    from nsgen.check import _probes

    aims = {4: ("203.0.113.10", ""), 6: ("2001:db8:113::10", "")}
    outside = [what for what, _test, _why in _probes(example_plan("jumbo.yaml").topology, aims) if "outside" in what]
    assert outside == [
        "nas → outside 203.0.113.10 (masqueraded through mgmt's route, ping)",
        "nas → outside 2001:db8:113::10 (IPv6, masqueraded through storage, ping)",
        "client → outside 203.0.113.10 (masqueraded through storage, ping)",
        "client → outside 2001:db8:113::10 (IPv6, masqueraded through storage, ping)",
        "monitor → outside 203.0.113.10 (masqueraded through mgmt's route, ping)",
    ]
    aims[4] = ("198.51.100.2", "")
    outside = [what for what, _test, _why in _probes(example_plan("jumbo.yaml").topology, aims) if "outside" in what and "monitor" in what]
    assert outside == []  # monitor has no default route, and no route there
