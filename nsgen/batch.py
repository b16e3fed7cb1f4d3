"""Batch groups a plan's commands into fewer processes; it knows which commands may share one.

Consecutive `ip` commands that run in the same place (the host, or one namespace through
`ip -n NS`) become one `ip [-n NS] -batch -` whose lines are those commands; `ip netns add` lines
get a batch of their own. Consecutive `stop_processes` become one call over all their
namespaces; consecutive firewall tables, one `iptables-restore` (or one `iptables_undo`) whose
input holds each table's transaction in turn. Everything else runs as it is. A `Unit` remembers which steps and commands it stands
for, so a failure names the step that failed and rollback undoes exactly the steps begun.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from nsgen.plan import NETNS_DIR, Command, Step

_UNSAFE = re.compile(r"[\s\"'\\#]")


class Unit(NamedTuple):
    command: Command | None  # what runs (None: nothing, the unit only begins steps)
    parts: tuple[tuple[Step, Command], ...]  # the plan's commands it stands for, in order
    steps: tuple[Step, ...]  # the steps it begins (command-less steps included)

    def part_for_line(self, line: int) -> tuple[Step, Command] | None:
        """The plan command behind line `line` (1-based) of a batch's input."""
        if not self.is_batch or self.command is None or self.command.argv[0] in ("iptables-restore", "iptables_undo",
                                                                             "ip6tables-restore", "ip6tables_undo"):
            return self._part_with_input_line(line)
        return self.parts[line - 1] if 1 <= line <= len(self.parts) else None

    def _part_with_input_line(self, line: int) -> tuple[Step, Command] | None:
        """The plan command whose input holds line `line` of the merged input."""
        seen = 0
        for part in self.parts:
            seen += (part[1].input or "").count("\n")
            if line <= seen:
                return part
        return None

    @property
    def is_batch(self) -> bool:
        return len(self.parts) > 1 or (bool(self.parts) and self.parts[0][1] is not self.command)


def _ip_key(cmd: Command) -> tuple[str, str | None] | None:  # noqa: C901
    """Where an `ip` command runs (None: it cannot share a batch)."""
    argv = cmd.argv
    if argv[0] != "ip" or cmd.input is not None or cmd.detach or cmd.builtin or cmd.only_if:
        return None
    if not all(argv) or _UNSAFE.search("".join(argv)):
        return None  # a batch line is split on blanks: such a word could not survive it
    if argv[1:3] == ("netns", "add"):
        return ("netns-add", None)
    if argv[1] == "-n":
        return ("netns", argv[2])
    if argv[1].startswith("-"):
        return None
    return ("host", None)


RESTORE = ("iptables-restore", "-w", "--noflush")
RESTORE6 = ("ip6tables-restore", "-w", "--noflush")


def key(cmd: Command) -> tuple[str, str | None] | None:
    """What a command may share a process with (None: it runs alone)."""
    if cmd.builtin and cmd.argv[0] == "stop_processes" and not cmd.only_if:
        return ("stop", None)
    if cmd.only_if or cmd.detach or cmd.input is None:
        return _ip_key(cmd)
    if cmd.argv in (RESTORE, RESTORE6):
        return ("restore", cmd.argv[0])
    if cmd.builtin and cmd.argv in (("iptables_undo",), ("ip6tables_undo",)):
        return ("undo", cmd.argv[0])
    return None


def _line(cmd: Command) -> str:
    argv = cmd.argv[3:] if cmd.argv[1] == "-n" else cmd.argv[1:]
    return " ".join(argv)


def _merge(key: tuple[str, str | None], parts: list[tuple[Step, Command]]) -> Command:
    commands = [cmd for _, cmd in parts]
    if key[0] == "stop":
        return Command(("stop_processes", *(ns for c in commands for ns in c.argv[1:])), builtin=True)
    if key[0] in ("restore", "undo"):  # each table its own transaction, one after the other
        return commands[0]._replace(input="".join(c.input or "" for c in commands))
    # Inside a namespace, nsenter enters only its network: `ip -n` also copies the mount table,
    # which holds one mount per named namespace, so with many namespaces it costs far more.
    prefix = ("nsenter", f"--net={NETNS_DIR}/{key[1]}", "ip") if key[0] == "netns" else ("ip",)
    return Command((*prefix, "-batch", "-"), input="".join(_line(c) + "\n" for c in commands))


def group(items: list[tuple[Step, Command | None]], min_size: int = 2) -> list[Unit]:
    """Consecutive commands with the same key share a unit. (step, None) marks a step with no
    commands of its own: it begins with whatever unit comes next."""
    runs: list[tuple[tuple[str, str | None] | None, list[tuple[Step, Command]], list[Step]]] = []
    waiting: list[Step] = []
    for step, cmd in items:
        if cmd is None:
            waiting.append(step)
            continue
        k = key(cmd)
        if runs and k is not None and runs[-1][0] == k:
            runs[-1][1].append((step, cmd))
            runs[-1][2].extend([*waiting, step])
        else:
            runs.append((k, [(step, cmd)], [*waiting, step]))
        waiting = []
    begun: set[int] = set()

    def fresh(steps: list[Step]) -> tuple[Step, ...]:
        out = [s for s in steps if id(s) not in begun and not begun.add(id(s))]  # type: ignore[func-returns-value]
        return tuple(out)

    units = []
    for k, parts, steps in runs:
        if k is not None and len(parts) >= min_size:
            units.append(Unit(_merge(k, parts), tuple(parts), fresh(steps)))
        else:
            for step, cmd in parts:  # a run of one, or not batchable
                units.append(Unit(cmd, ((step, cmd),), fresh([*steps[: steps.index(step) + 1]])))
    if waiting:
        units.append(Unit(None, (), fresh(waiting)))
    return units


def setup_units(steps: tuple[Step, ...]) -> list[Unit]:
    items: list[tuple[Step, Command | None]] = []
    for step in steps:
        if not step.commands:
            items.append((step, None))
        items.extend((step, cmd) for cmd in step.commands)
    return group(items)
