"""Processes on real kernel objects in a sandbox: a setup returns only when every process is ready
(listening, its file there, its check passing, or still running after its start window); a
process that ends or is not ready in time fails the setup, with its last lines of output and a
clean host; a second run restarts a process that died and leaves the others alone."""

from __future__ import annotations

import pytest

from tests.drive import NSGEN, Driver, example_text

MODES = ["script", "batch", "run"]
TUTORIAL = example_text("tutorial.yaml")


def one(process: str, name: str = "proc-lab") -> str:
    return f"""
name: {name}
networks:
  n: {{subnet: 172.30.0.0/24}}
containers:
  c1:
    networks: [n]
    processes:
      - {process}
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_setup_returns_when_the_echo_server_answers(sandbox, tmp_path, mode):
    """The tutorial's own sequence: set up, then curl at once (no waiting of the user's)."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, TUTORIAL)
    driver.up()
    assert sb.in_ns("container-1", ["curl", "-sf", "-m", "2", "http://localhost:8000/echo"], check=False).returncode == 0
    driver.down()
    assert sb.snapshot() == before


FAILING = {
    "ends at once": ("[sh, -c, 'echo starting; echo giving up >&2; exit 3']", "ended with exit status 3", "giving up"),
    "missing program": ("[/nonexistent/program, --flag]", "ended with exit status 127", "/nonexistent/program"),
    "never ready": ("{command: [sleep, '600'], ready: 'tcp:9999', ready_timeout: 1}", "was not ready (tcp:9999) after 1 s", "(no output)"),
    "check never passes": ("{command: [sleep, '600'], ready: [test, -e, /run/never], ready_timeout: 1}",
                           "was not ready (its readiness check) after 1 s", "(no output)"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", FAILING)
def test_a_process_that_fails_fails_the_setup_and_is_undone(sandbox, tmp_path, mode, case):
    sb = sandbox
    process, reason, output = FAILING[case]
    if case == "missing program" and mode == "run":  # nsgen run checks the programs before anything
        reason, output = "program '/nonexistent/program' is not an executable file", ""
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, one(process))
    done = driver.up(check=False)
    assert done.returncode != 0, done.stderr
    assert reason in done.stderr, done.stderr
    if output:
        assert "the last lines of /run/nsgen/proc-lab/c1.0.log:" in done.stderr
        assert output in done.stderr, done.stderr
    assert sb.snapshot() == before


def test_validate_and_run_refuse_a_program_this_host_does_not_have(sandbox, tmp_path):
    sb = sandbox
    driver = Driver(sb, tmp_path, "run", one("no-such-program-here --x"))
    for command in ("validate", "run"):
        done = sb.run([*NSGEN, command, "-f", str(driver.topology)], check=False)
        assert done.returncode == 1
        assert "containers.c1.processes[0]: program 'no-such-program-here' is not found on this host's PATH" in done.stderr


READY = {
    "file": ("{command: [sh, -c, 'sleep 0.4; touch /run/proc-ready; exec sleep 600'], ready: 'file:/run/proc-ready'}", "/run/proc-ready"),
    "command": ("{command: [sh, -c, 'sleep 0.4; touch /run/proc-ready; exec sleep 600'], ready: [test, -e, /run/proc-ready]}", "/run/proc-ready"),
    "udp": ("{command: [python3, -c, 'import socket,time; time.sleep(0.4); s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind((\"0.0.0.0\", 5353)); time.sleep(600)'], ready: 'udp:5353'}", None),
}


@pytest.mark.parametrize("mode", ["script", "run"])
@pytest.mark.parametrize("kind", READY)
def test_a_setup_waits_for_each_kind_of_readiness(sandbox, tmp_path, mode, kind):
    sb = sandbox
    process, flag = READY[kind]
    driver = Driver(sb, tmp_path, mode, one(process))
    driver.up()
    if flag:
        assert sb.run(["test", "-e", flag], check=False).returncode == 0
    else:
        assert ":14E9 " in sb.in_ns("c1", ["cat", "/proc/net/udp"]).stdout  # 5353, bound
    driver.down()
    sb.run(["rm", "-f", "/run/proc-ready"])


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_second_run_restarts_a_process_that_died_and_leaves_the_others(sandbox, tmp_path, mode):
    sb = sandbox
    text = TUTORIAL.replace("      - nsgen echo-server --port 8000\n", "      - nsgen echo-server --port 8000\n      - [sleep, '600']\n")
    driver = Driver(sb, tmp_path, mode, text)
    driver.up()
    server = sb.run(["cat", "/run/nsgen/tutorial/container-1.0.pid"]).stdout.strip()
    sleeper = sb.run(["cat", "/run/nsgen/tutorial/container-1.1.pid"]).stdout.strip()
    sb.run(["kill", sleeper])
    driver.up()
    assert sb.run(["cat", "/run/nsgen/tutorial/container-1.0.pid"]).stdout.strip() == server
    restarted = sb.run(["cat", "/run/nsgen/tutorial/container-1.1.pid"]).stdout.strip()
    assert restarted != sleeper
    assert sb.run(["ip", "netns", "identify", restarted]).stdout.strip() == "container-1"
    assert sb.in_ns("container-1", ["curl", "-sf", "-m", "2", "http://localhost:8000/echo"], check=False).returncode == 0
    driver.down()
