"""Property tests: any generated topology either fails validation or renders scripts that pass
`bash -n` and shellcheck, whose commands parse back to exactly the plan's argv; and when bash runs
the script, it runs exactly those argv: no value ever runs as code."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsgen.errors import ValidationError
from nsgen.plan import Command, compile_plan
from nsgen.render import command_line, render
from nsgen.resolve import resolve
from tests.conftest import count
from tests.helpers import fixed_env

HOSTILE = ["$(touch /run/pwned)", "`touch /run/pwned`", "; touch /run/pwned", "'", '"', "\\", "\n", "NSGEN_EOF", "-rf", "a b", "*", "~", "!x", "$HOME", "%s", "é", "--", ""]


def rarely(good, bad):
    """Mostly `good`, one draw in ten `bad`: so that most examples get past validation."""
    return st.integers(0, 9).flatmap(lambda n: bad if n == 9 else good)  # hypothesis favours 0


name_chars = st.sampled_from([*"abcxyz019_.-", "/", ":", " ", "%", "$", "é", ";", "`", "\n"])
names = rarely(
    st.from_regex(r"[a-z][a-z0-9_.-]{0,9}", fullmatch=True),
    st.text(name_chars, min_size=1, max_size=18),  # mostly refused: '/', ':', spaces, '$', non-ASCII...
)
words = rarely(
    st.one_of(
        st.sampled_from([w for w in HOSTILE if w != "\n"]),
        st.text(st.characters(blacklist_characters="\n\0", blacklist_categories=("Cs",)), min_size=1, max_size=12),
    ),
    st.sampled_from(["\n", "a\0b", ""]),  # refused: a word with a newline or NUL, an empty command
)
octet = st.integers(0, 255)


@st.composite
def subnets(draw):
    prefix = draw(st.integers(22, 31))
    base = f"172.{draw(st.integers(16, 31))}.{draw(octet)}.0"
    return draw(rarely(
        st.sampled_from([f"{base}/24", f"10.{draw(octet)}.{draw(octet)}.0/24", f"{base}/{prefix}"]),
        st.sampled_from(["010.0.0.0/8", "172.18.0.1/24", "127.0.0.0/8"]),
    ))


def _link_options(draw, spec: dict) -> None:
    """A network's mtu, no_default_route and routes, mostly valid."""
    if draw(st.booleans()):
        spec["mtu"] = draw(rarely(st.integers(1280, 9000), st.sampled_from([0, 67, 70000, "9000", True])))
    if not draw(st.integers(0, 3)):
        spec["no_default_route"] = draw(st.booleans())
    if draw(st.booleans()):
        gateway = spec["subnet"].split("/")[0].rsplit(".", 1)[0] + ".1"
        good = st.builds(lambda n: [{"destination": f"198.18.{n}.0/24", "gateway": gateway}], octet)
        spec["routes"] = draw(rarely(good, st.sampled_from([[{"destination": w, "gateway": gateway}] for w in HOSTILE]
                                                           + [[{"destination": "203.0.113.0/24", "gateway": w}] for w in HOSTILE]
                                                           + [[{"destination": "203.0.113.0/24", "gateway": gateway, "x; id": 1}]])))


@st.composite
def topologies(draw):
    nets = {}
    for _ in range(draw(st.integers(1, 3))):
        spec = {"subnet": draw(subnets())}
        if draw(st.booleans()):
            spec["driver"] = draw(rarely(st.sampled_from(["bridge", "veth"]), st.just("vxlan")))
        if draw(st.booleans()):
            spec["internal"] = draw(st.booleans())
        if draw(st.booleans()) and not spec.get("internal"):
            spec["masquerade"] = draw(st.booleans())
        _link_options(draw, spec)
        nets[draw(names)] = spec
    containers = {}
    for _ in range(draw(st.integers(1, 3))):
        attach = draw(st.lists(st.sampled_from(sorted(nets)), min_size=1, max_size=2, unique=True))
        spec = {"networks": attach}
        if draw(st.booleans()):  # the mapping form, with a MAC address (sometimes hostile, sometimes taken twice)
            spec["networks"] = {n: {"mac_address": draw(rarely(st.builds("0A:bc:DE:{:02X}:{:02x}:{:02x}".format, octet, octet, octet),
                                                               st.sampled_from([*HOSTILE, "01:00:5e:00:00:01", 20304050607])))} for n in attach}
        if draw(st.booleans()):
            spec["processes"] = [draw(st.lists(words, min_size=1, max_size=4)), " ".join(shlex.quote(w) for w in draw(st.lists(words, min_size=1, max_size=3)))]
        if draw(st.booleans()):
            spec["ports"] = [draw(st.sampled_from([f"{8000 + i}:80", f"127.0.0.1:{9000 + i}:9000", f"{5300 + i}:53/udp"])) if draw(st.integers(0, 9)) else "70000:1" for i in range(draw(st.integers(0, 2)))]
        if draw(st.booleans()):
            spec["dns"] = draw(st.lists(rarely(st.sampled_from(["1.1.1.1", "203.0.113.53", "2001:db8::53"]), st.just("1.1.1.1\nnameserver 6.6.6.6")), max_size=2))
        containers[draw(names)] = spec
    return {"name": draw(names), "networks": nets, "containers": containers}


def shellcheck_ok(text: str) -> bool:
    done = subprocess.run([shutil.which("shellcheck") or "shellcheck", "-s", "bash", "-"], input=text, capture_output=True, text=True)
    return done.returncode == 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies())
def test_generated_topologies_render_safe_scripts(data):
    try:
        topology = resolve(data, fixed_env())
    except ValidationError as exc:
        assert exc.problems and all(message for _, message in exc.problems)
        count("property examples (refused)")
        return
    plan = compile_plan(topology)
    for teardown in (False, True):
        script = render(plan, teardown=teardown)
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
        assert shellcheck_ok(script)
    for step in plan.steps:
        for cmd in (*step.commands, *step.undo):
            first = command_line(Command(cmd.argv)).split("\n")[0]
            assert tuple(shlex.split(first)) == cmd.argv
    count("property examples (rendered)")


# -- bash itself parses the script back: shims record the argv it runs ---------------------------

TRACED = ("ip", "iptables", "sysctl", "setsid")
TRACE_SHIM = """#!/bin/bash
# Records the argv bash ran (NUL-separated, one record per call); answers every probe "not there".
printf '%s\\0' "${{0##*/}}" "$@" $'\\1' >>{log}  # one write: concurrent calls do not interleave
case "$*" in
  "link show "*|"-n "*" link show "*|"netns pids "*|*" -C "*|*" -S "*) exit 1 ;;
esac
exit 0
"""


def traced_argv(log: bytes) -> list[tuple[str, ...]]:
    calls, current = [], []
    for word in log.split(b"\0")[:-1]:
        if word == b"\1":
            calls.append(tuple(current))
            current = []
        else:
            current.append(word.decode())
    return calls


def wait_for_background_calls(sandbox, log, expected: int, timeout: float = 10.0) -> None:
    """The script may end before its background `setsid` calls have written their records: wait
    until the log holds `expected` of them, or until no process is left in the sandbox (any left
    was started by the script: a background shim, or the subshell about to become one), at most
    timeout seconds. What the log then holds is compared, unchanged, by the caller."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recorded = sum(1 for argv in traced_argv(log.read_bytes()) if argv[:1] == ("setsid",))
        if recorded == expected or not sandbox.processes():
            return
        time.sleep(0.02)


def run_traced(sandbox, tmp_path, plan) -> list[tuple[str, ...]]:
    shim_dir = tmp_path / "shims"
    shim_dir.mkdir(exist_ok=True)
    log = tmp_path / "trace.log"
    log.write_bytes(b"")
    for tool in TRACED:
        (shim_dir / tool).write_text(TRACE_SHIM.format(log=log))
        (shim_dir / tool).chmod(0o755)
    script = tmp_path / "setup.sh"
    # Nothing runs, so nothing gets ready: the wait for readiness (a function, whose looks are not
    # the plan's commands) is left out of this trace.
    script.write_text(render(plan).replace("\nwait_ready ", "\n: wait_ready "))
    path = f"{shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    sandbox.run(["bash", str(script)], env={"PATH": path})
    background = sum(1 for s in plan.steps for c in s.commands if c.argv[0] == "setsid")
    wait_for_background_calls(sandbox, log, background)
    sandbox.run(["rm", "-rf", "/run/nsgen", "/etc/netns"], check=False)
    # iptables-restore is not traced: the rules it loaded are real, and one example's published
    # ports would be another's "already published by topology ..." (the sandbox outlives an example)
    sandbox.run(["sh", "-c", FLUSH_FIREWALL], check=False)
    probes = {p for s in plan.steps for p in s.probe}
    return [argv for argv in traced_argv(log.read_bytes()) if argv not in probes and not looks(argv)]


FLUSH_FIREWALL = "for c in iptables ip6tables; do for t in filter nat raw mangle; do $c -t $t -F; $c -t $t -X; done; done"


def looks(argv: tuple[str, ...]) -> bool:
    """A call that only reads the host: the builtins' and the checks' looks (links, routes, the
    iptables version, a rule or chain), not a command of the plan."""
    if argv[0] == "ip":
        return "show" in argv
    return argv[0] == "iptables" and any(flag in argv for flag in ("-V", "-C", "-S"))


def same_calls(ran: list, expected: list) -> bool:
    """In order, except that processes started in the background may be recorded in any order."""
    fg = lambda calls: [c for c in calls if c[0] != "setsid"]  # noqa: E731
    bg = lambda calls: sorted(c for c in calls if c[0] == "setsid")  # noqa: E731
    return fg(ran) == fg(expected) and bg(ran) == bg(expected)


HOSTILE_TOPOLOGY = {
    "name": "hostile",
    "networks": {"n": {"subnet": "172.29.0.0/24"}},
    "containers": {
        "c": {
            "networks": ["n"],
            "ports": ["8080:80"],
            "dns": ["203.0.113.53"],
            "processes": [[w for w in HOSTILE if w and w != "\n"], "sh -c '$(touch /run/pwned)' \"`touch /run/pwned`\" '; touch /run/pwned'"],
        }
    },
}


@pytest.mark.parametrize("name", ["tutorial.yaml", "bridge.yaml", "pod.yaml", "hostile"])
def test_bash_runs_exactly_the_plans_argv(sandbox, tmp_path, name):
    from tests.helpers import example_plan

    plan = compile_plan(resolve(HOSTILE_TOPOLOGY, fixed_env())) if name == "hostile" else example_plan(name)
    ran = run_traced(sandbox, tmp_path, plan)
    expected = [c.argv for s in plan.steps for c in s.commands if c.argv[0] in TRACED]
    assert same_calls(ran, expected), (ran, expected)
    assert sandbox.run(["test", "-e", "/run/pwned"], check=False).returncode != 0, "a value ran as code"
    count("traced scripts")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(topologies())
def test_generated_scripts_run_exactly_the_plans_argv(sandbox, tmp_path_factory, data):
    try:
        plan = compile_plan(resolve(data, fixed_env()))
    except ValidationError:
        return
    ran = run_traced(sandbox, tmp_path_factory.mktemp("trace"), plan)
    assert same_calls(ran, [c.argv for s in plan.steps for c in s.commands if c.argv[0] in TRACED])
    assert sandbox.run(["test", "-e", "/run/pwned"], check=False).returncode != 0, "a value ran as code"
    count("traced scripts")
