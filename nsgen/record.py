"""Record keeps, in a topology's state directory, the plan that `nsgen run` set up, so that
`nsgen run --teardown` undoes exactly that plan.

Recompiling the topology file at teardown would undo what the file says now: after an edit (a
container removed, a port changed) that is no longer what is on the host, and a host route added
since setup could even make the file invalid. The record is JSON (`/run/nsgen/<name>/plan.json`),
written when a setup completes and read only when it is nsgen's own: a regular file owned by the
user nsgen runs as, writable by nobody else, made by this version of nsgen. It also spares a
teardown the work of checking and planning the topology again.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from nsgen import __version__
from nsgen.files import read_own, write_private
from nsgen.plan import LOCK_FILE, STATE_ROOT, Command, Requirement, Step, state_dir

FILE = "plan.json"
VERSION = f"{__version__}/1"  # nsgen's version / the record's format


class RecordedPlan(NamedTuple):
    """What a teardown needs of a plan (the fields and properties of `Plan` that `execute` reads)."""

    name: str
    steps: tuple[Step, ...]
    tools: tuple[str, ...]
    source: str  # the topology file's text when it was set up
    warnings: tuple[str, ...] = ()
    requirements: tuple[Requirement, ...] = ()

    @property
    def state_dir(self) -> str:
        return state_dir(self.name)

    @property
    def lock_file(self) -> str:
        return LOCK_FILE


def _command(cmd: Command) -> list:
    return [list(cmd.argv), cmd.input, [list(p) for p in cmd.only_if], list(cmd.detach) if cmd.detach else None, cmd.builtin]


def _step(step: Step) -> list:
    return [step.id, step.section, step.summary, [_command(c) for c in step.commands], [_command(c) for c in step.undo],
            [list(p) for p in step.probe], step.resource, step.goes_with]


def save(plan: Any, source: str, version: str = VERSION) -> None:
    """Write the record of `plan` (set up from the text `source`) into its state directory."""
    body = json.dumps({"version": version, "name": plan.name, "tools": list(plan.tools), "source": source,
                       "steps": [_step(s) for s in plan.steps if s.undo or s.goes_with]})
    write_private(os.path.join(plan.state_dir, FILE), body)


def load(name: str, version: str = VERSION) -> RecordedPlan | None:
    """The recorded plan of topology `name`, or None when there is none that can be trusted."""
    folder = state_dir(name)
    if name.startswith(".") or os.path.dirname(os.path.normpath(folder)) != STATE_ROOT:
        return None  # not a topology's name (models would refuse it): never read outside the state root
    body = read_own(os.path.join(folder, FILE))
    if body is None:
        return None
    try:
        data = json.loads(body)
        if data.get("version") != version or data.get("name") != name:
            return None
        steps = tuple(_load_step(s) for s in data["steps"])
        return RecordedPlan(name=name, steps=steps, tools=tuple(data["tools"]), source=data["source"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _load_command(c: list) -> Command:
    argv, stdin, only_if, detach, builtin = c
    return Command(tuple(argv), stdin, tuple(tuple(p) for p in only_if), tuple(detach) if detach else None, bool(builtin))


def _load_step(s: list) -> Step:
    sid, section, summary, commands, undo, probe, resource, goes_with = s
    return Step(sid, section, summary, tuple(_load_command(c) for c in commands), tuple(_load_command(c) for c in undo),
                tuple(tuple(p) for p in probe), resource, goes_with)
