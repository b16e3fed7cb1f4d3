"""Progress shows a person what a setup or teardown is doing, on stderr; it changes nothing.

On a terminal, one line that updates in place: a bar, steps done of all, the section, the step
and the time so far. Elsewhere (a log, CI), one short line a section. With -v, a line a step (its
short title and, below it, why, and each command with the lines it is fed), under the step that
owns them; -q shows nothing but errors. Steps that only matter at teardown are not announced
during setup.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

BAR = 20


class Progress:
    def __init__(self, echo: Callable[[str], None] | None = None, verbosity: int = 1, live: bool = False,
                 write: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self.echo = echo or (lambda line: None)
        self.verbosity = verbosity
        self.live = live and verbosity == 1 and write is not None
        self.write = write or (lambda text: None)
        self.clock = clock
        self.total = self.done = 0
        self.section = ""
        self.started = clock()
        self.shown = ""  # the live line on screen, if any

    # -- the run as a whole --------------------------------------------------------------------

    def begin(self, total: int) -> None:
        """A run of `total` announced steps starts."""
        self.total, self.done, self.section, self.started = total, 0, "", self.clock()

    def end(self, line: str) -> None:
        """The run is over: its last line, with how long it took."""
        self._clear()
        if self.verbosity >= 1:
            took = self.clock() - self.started
            self.echo(f"{line} ({self.done} step{'s' if self.done != 1 else ''}, {took:.2f} s)" if self.total else line)

    # -- steps and commands ----------------------------------------------------------------------

    def step(self, step: Any, skipped: bool = False, undo: bool = False) -> None:
        self.done += 1
        title = getattr(step, "title", "") or step.id
        if undo:
            title = f"undo {title}"
        if self.verbosity >= 2:
            self.echo(f"[{self.done}/{self.total}] {title}{' (already done)' if skipped else ''}")
            self.echo(f"    # {step.summary}")
        elif self.live:
            self._draw(step.section, title)
        elif self.verbosity == 1 and step.section != self.section and not skipped:
            self.echo(f"[{self.done}/{self.total}] {step.section}")
        if not skipped:
            self.section = step.section

    def command(self, cmd: Any, lines: list[str] | None = None) -> None:
        """A command as it runs (-v): its argv, and the lines it is fed."""
        if self.verbosity < 2:
            return
        self.echo(f"    $ {shlex.join(cmd.argv)}")
        for line in lines if lines is not None else (cmd.input or "").splitlines():
            self.echo(f"    | {line}")

    def note(self, line: str) -> None:
        if self.verbosity >= 1:
            self._clear()
            self.echo(line)

    def warn(self, line: str) -> None:
        self._clear()
        self.echo(f"warning: {line}")

    # -- the live line ---------------------------------------------------------------------------

    def _draw(self, section: str, title: str) -> None:
        filled = BAR * self.done // max(self.total, 1)
        line = (f"[{'#' * filled}{'.' * (BAR - filled)}] {self.done}/{self.total}  {section}: {title}"
                f"  {self.clock() - self.started:.1f} s")
        line = line if len(line) <= 100 else line[:97] + "..."
        self.write(f"\r\x1b[K{line}")
        self.shown = line

    def clear(self) -> None:
        """Take the live line off the screen (what follows is printed in its place)."""
        self._clear()

    def _clear(self) -> None:
        if self.shown:
            self.write("\r\x1b[K")
            self.shown = ""
