"""CLI: stdout carries only the script; bad input is one error line per problem, exit 1, nothing run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsgen import __version__
from nsgen.cli import main
from tests.helpers import EXAMPLES

TUTORIAL = (EXAMPLES / "tutorial.yaml").read_text()


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_render_default_is_the_tutorial(cli):
    result = cli("render")
    assert result.exit_code == 0
    assert result.stdout.startswith("#!/usr/bin/env bash\n")
    assert "ip link add vethc1 group 0x6e6bffe9 type veth peer name veth1 netns container-1" in result.stdout
    assert result.stderr == ""


def test_render_prefers_nsgen_yaml_in_the_current_folder(cli, tmp_path):
    (tmp_path / "nsgen.yaml").write_text(TUTORIAL.replace("name: tutorial", "name: mine"))
    assert "topology mine" in cli("render").stdout


def test_render_teardown_and_output_file(cli, tmp_path):
    result = cli("render", "--teardown", "-o", "cleanup.sh")
    assert result.exit_code == 0 and result.stdout == ""
    script = tmp_path / "cleanup.sh"
    assert "ip netns delete container-1" in script.read_text()
    assert os.access(script, os.X_OK)


@pytest.mark.parametrize(
    "change,expected",
    [
        (("host_interface: vethc1", "host_interface: abcdefghijklmnop"),
         "error: t.yaml: containers.container-1.networks.link0.host_interface: interface name 'abcdefghijklmnop' is 16 bytes long; the limit is 15\n"),
        (("address: 172.18.0.2", "address: 10.1.2.3"),
         "error: t.yaml: containers.container-1.networks.link0.address: 10.1.2.3 is not inside subnet 172.18.0.0/24 of network 'link0'\n"),
        (("address: 172.18.0.2", "adress: 172.18.0.2"),
         "error: t.yaml: containers.container-1.networks.link0.adress: unknown key 'adress'; did you mean 'address'?\n"),
        (("name: tutorial", "name: tutorial\n  oops: [1"),
         None),
    ],
)
@pytest.mark.parametrize("command", ["render", "validate", "run"])
def test_bad_input_is_one_line_nothing_on_stdout_nothing_run(cli, tmp_path, change, expected, command):
    (tmp_path / "t.yaml").write_text(TUTORIAL.replace(*change))
    result = cli(command, "-f", "t.yaml")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    if expected:
        assert result.stderr == expected
    else:
        assert lines[0].startswith("error: t.yaml: line ") and "YAML syntax error" in lines[0]


def test_missing_file(cli):
    result = cli("render", "-f", "nope.yaml")
    assert result.exit_code == 1 and result.stderr == "error: nope.yaml: no such file\n"


def test_validate_reports_success_on_stderr(cli):
    result = cli("validate", "-f", str(EXAMPLES / "tutorial.yaml"))
    assert result.exit_code == 0 and result.stdout == ""
    assert "topology tutorial is valid" in result.stderr


def test_run_without_root_says_so_before_anything(cli, monkeypatch):
    """Without root, `nsgen run` refuses before it runs a single command."""
    ran = []
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: ran.append(a))
    for args in (["run"], ["run", "--teardown"]):
        # the exact line to run: the program's own path (sudo's PATH may not hold a virtual environment)
        monkeypatch.setattr(sys, "argv", ["/opt/nsgen venv/bin/nsgen", *args])
        result = cli(*args)
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr == f"error: changing the host's network needs root: run it as `sudo '/opt/nsgen venv/bin/nsgen' {' '.join(args)}`\n"
    monkeypatch.setattr(sys, "argv", ["/x/nsgen/__main__.py", "run"])
    assert cli("run").stderr == f"error: changing the host's network needs root: run it as `sudo {sys.executable} -m nsgen run`\n"
    assert ran == []


def test_every_command_help_has_an_example(cli):
    for name in main.commands:
        assert "Example:" in cli(name, "--help").output, name


def test_output_that_cannot_be_written_is_one_line(cli, tmp_path):
    for target, reason in ((tmp_path / "missing" / "setup.sh", "No such file or directory"), (tmp_path, "Is a directory"),
                           (Path("/proc/version"), None)):
        result = cli("render", "-o", str(target))
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.startswith(f"error: cannot write {target}: ") and result.stderr.count("\n") == 1, result.stderr
        assert reason is None or reason in result.stderr
    assert cli("diagram", "-o", str(tmp_path / "d.png")).stderr == (
        f"error: {tmp_path / 'd.png'}: nsgen cannot draw a .png file; name it .svg, .dot or .gv, .mmd or .txt "
        "(or convert: nsgen diagram --format dot | dot -Tpng > x.png)\n")


def test_dash_reads_the_topology_from_standard_input(tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    text = (EXAMPLES / "bridge.yaml").read_text()
    done = CliRunner().invoke(main, ["validate", "-f", "-"], input=text, catch_exceptions=False)
    assert done.exit_code == 0 and done.stderr == "topology bridge-lab is valid: 2 network(s), 3 container(s), 44 steps\n"
    rendered = CliRunner().invoke(main, ["render", "-f", "-"], input=text, catch_exceptions=False)
    assert rendered.stdout == CliRunner().invoke(main, ["render", "-f", str(EXAMPLES / "bridge.yaml")]).stdout
    bad = CliRunner().invoke(main, ["validate", "-f", "-"], input="name: [\n", catch_exceptions=False)
    assert bad.exit_code == 1 and bad.stderr.startswith("error: <stdin>: line 2, column 1: YAML syntax error")


def test_render_lint_checks_the_script_with_shellcheck(cli, monkeypatch):
    done = cli("render", "--lint")
    assert done.exit_code == 0 and done.stderr == "shellcheck: no findings\n" and done.stdout.startswith("#!/usr/bin/env bash\n")
    import nsgen.render

    monkeypatch.setattr(nsgen.render, "render", lambda *a, **k: "#!/usr/bin/env bash\necho $1\n")
    bad = cli("render", "--lint")
    assert bad.exit_code == 1 and bad.stdout == ""
    assert "SC2086" in bad.stderr and "error: shellcheck has findings in the script (above); nothing was written" in bad.stderr
