"""What `nsgen run` says, on real kernel objects in a sandbox: a line a section off a terminal,
the commands with the lines they are fed under their steps with -v, nothing about steps that only
matter at teardown, one line for a teardown of what is not up, and 130 or 143 when interrupted."""

from __future__ import annotations

import re

import pytest

from tests.drive import NSGEN, Driver, example_text
from tests.faults import Faults

BRIDGE = example_text("bridge.yaml")


def test_a_line_a_section_and_the_teardown_steps_are_not_announced(sandbox, tmp_path):
    sb = sandbox
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    done = driver.up()
    lines = done.stderr.splitlines()
    sections = [re.sub(r"\[\d+/\d+\] ", "", line) for line in lines[:-1]]
    assert sections == ["State", "Bridges", "Namespaces", "Links", "Inside the containers", "Forwarding", "Firewall", "DNS", "Processes", "Done"]
    assert re.fullmatch(r"topology bridge-lab is up \(\d+ steps, \d+\.\d\d s\)", lines[-1])
    again = driver.up()  # up already: every step is done, and it says so section by section
    assert again.stderr.splitlines()[-1].startswith("topology bridge-lab is up")
    down = driver.down()
    assert re.fullmatch(r"topology bridge-lab is down \(\d+ steps, \d+\.\d\d s\)", down.stderr.splitlines()[-1])
    nothing = driver.down()
    assert nothing.stderr == "topology bridge-lab is not up on this host: nothing carries its marks\n"


def test_verbose_shows_each_batch_line_under_its_step(sandbox, tmp_path):
    sb = sandbox
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    done = sb.run([*NSGEN, "run", "-v", "-f", str(driver.topology)])
    text = done.stderr
    assert "[" in text and "] veth pair web / front\n    # Create the veth pair ve-web-794cd (host) <-> eth0 (in web)" in text
    veth = text.index("] veth pair web / front")
    assert text.index("    $ ip link add ve-web-794cd group 0x6e7c5ce4 type veth peer name eth0 netns web", veth) > veth
    assert "    $ ip -batch -\n" in text
    assert "stop the processes in" not in text  # a teardown-only step
    assert "    | *nat" in text  # the lines iptables-restore is fed
    driver.down()


@pytest.mark.parametrize("signal_name,status", [("INT", 130), ("TERM", 143)])
def test_an_interrupted_run_exits_as_the_script_does(sandbox, tmp_path, signal_name, status):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    faults = Faults(sb, tmp_path / "faults")
    done = sb.run([*NSGEN, "run", "-f", str(driver.topology)], env=faults.env(at=8, mode=signal_name), check=False)
    assert done.returncode == status, done.stderr
    assert f"interrupted by SIG{signal_name}" in done.stderr
    assert sb.snapshot() == before


def test_quiet_and_verbose_together_is_an_error(sandbox, tmp_path):
    done = sandbox.run([*NSGEN, "run", "-q", "-v"], check=False)
    assert done.returncode == 2 and "-q (nothing but errors) and -v (every command) cannot go together" in done.stderr
