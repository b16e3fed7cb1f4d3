"""Progress: what a person sees on stderr while a plan runs (live line, a line a section, -v)."""

from __future__ import annotations

from nsgen.plan import Command, Step
from nsgen.progress import Progress


def steps() -> list[Step]:
    return [
        Step("netns:a", "Namespaces", "Create the namespace a: its own interfaces.", (Command(("ip", "netns", "add", "a")),), title="namespace a"),
        Step("netns:b", "Namespaces", "Create the namespace b.", (Command(("ip", "netns", "add", "b")),), title="namespace b"),
        Step("firewall:nat", "Firewall", "NAT: masquerade.", (Command(("iptables-restore",), input="*nat\n-A X\nCOMMIT\n"),), title="nat rules"),
    ]


class Clock:
    """Time that moves only when told to: a quarter of a second a step."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(progress: Progress) -> None:
    progress.begin(3)
    for step in steps():
        progress.clock.now += 0.25
        progress.step(step)
        for cmd in step.commands:
            progress.command(cmd)
    progress.clock.now += 0.25
    progress.end("topology lab is up")


def test_off_a_terminal_a_line_a_section():
    lines: list[str] = []
    run(Progress(lines.append, 1, clock=Clock()))
    assert lines == ["[1/3] Namespaces", "[3/3] Firewall", "topology lab is up (3 steps, 1.00 s)"]


def test_on_a_terminal_one_line_that_updates():
    lines: list[str] = []
    written: list[str] = []
    run(Progress(lines.append, 1, live=True, write=written.append, clock=Clock()))
    assert written[:3] == [
        "\r\x1b[K[######..............] 1/3  Namespaces: namespace a  0.2 s",
        "\r\x1b[K[#############.......] 2/3  Namespaces: namespace b  0.5 s",
        "\r\x1b[K[####################] 3/3  Firewall: nat rules  0.8 s",
    ]
    assert written[3] == "\r\x1b[K"  # cleared before the last line
    assert lines == ["topology lab is up (3 steps, 1.00 s)"]


def test_verbose_a_line_a_step_with_why_and_what_it_runs():
    lines: list[str] = []
    run(Progress(lines.append, 2, clock=Clock()))
    assert lines == [
        "[1/3] namespace a", "    # Create the namespace a: its own interfaces.", "    $ ip netns add a",
        "[2/3] namespace b", "    # Create the namespace b.", "    $ ip netns add b",
        "[3/3] nat rules", "    # NAT: masquerade.", "    $ iptables-restore", "    | *nat", "    | -A X", "    | COMMIT",
        "topology lab is up (3 steps, 1.00 s)",
    ]


def test_quiet_shows_nothing_but_warnings():
    lines: list[str] = []
    progress = Progress(lines.append, 0, clock=Clock())
    run(progress)
    progress.note("a note")
    progress.warn("a warning")
    assert lines == ["warning: a warning"]
