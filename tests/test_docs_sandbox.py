"""Docs that stay true: every command the README and docs/ show runs in a sandbox and prints what they show.

The convention, for every fenced block of README.md and docs/*.md (every fence names a language):

- ```` ```console ````: a session, run as shown. A line that starts with `$ ` is a command, run by
  bash on a fresh sandbox host (tests/sandbox.py) as root, on a terminal (so progress looks as it
  does to a person), from a copy of the checkout's `examples/`; `nsgen` is this checkout's,
  installed as `/usr/local/bin/nsgen` (as install.sh links it), and `sudo` runs its arguments as
  they are (the sandbox is root already). The lines after it, up to the next `$ `, are what the
  terminal shows (stdout and stderr together), compared line by line, exactly, but for these
  placeholders, the only ones:
    `...` (a line of its own)  any number of lines, none included
    `<pid>`                    a process id (digits)
    `<time>`                   a time or duration (digits and at most one `.`)
    `<version>`                a program's version (`7.88.1`, nsgen's `0.1.0`)
    two or more spaces         two or more spaces: a table's columns widen with what is in them
  A command exits 0 unless its line ends with `(exit status N)` (in its comment). The blocks of one
  `## ` section run in order on one sandbox host, so what one sets up the next one sees.
- ```` ```sh KIND ````: commands shown and not run here, for one of the reasons in NOT_RUN (KIND);
  a block of `sh`, `bash` or `shell` without one of these kinds fails the test.
- Any other language (NOT_COMMANDS) shows a file or text, not commands.
docs/cli.md is the commands' own --help, kept current by tests/test_docs.py.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

NOT_RUN = {
    "install": "installs software on the machine (packages, a virtual environment, /usr/local/bin)",
    "tests": "runs the test suite itself",
    "shell-rc": "belongs in a shell's startup file",
    "systemd": "needs systemd running as the machine's init, with /etc/systemd written for real",
    "interactive": "waits for a person at a terminal (a shell, a pager)",
    "excerpt": "an excerpt of a script nsgen prints, not commands to type",
    "hosts": "runs on several hosts at once (tests/test_overlay_sandbox.py does it on simulated hosts)",
}
NOT_COMMANDS = {"text", "yaml", "json", "ini", "mermaid"}
SHELLS = {"sh", "bash", "shell"}

PLACEHOLDERS = {"<pid>": r"\d+", "<time>": r"\d+(?:\.\d+)?", "<version>": r"\d+(?:\.\d+)*"}
EXIT_STATUS = re.compile(r"\(exit status (\d+)\)\s*$")


@dataclass
class Command:
    line: str  # as typed, without the prompt
    shown: list[str] = field(default_factory=list)  # the output the docs show
    where: str = ""  # page:line

    @property
    def status(self) -> int:
        match = EXIT_STATUS.search(self.line)
        return int(match.group(1)) if match else 0


@dataclass
class Fence:
    page: Path
    lineno: int
    section: str
    info: str
    lines: list[str]


def fences(page: Path) -> list[Fence]:
    found, section, open_fence = [], "", None
    for lineno, line in enumerate(page.read_text().splitlines(), 1):
        if open_fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("```"):
                open_fence = Fence(page, lineno, section, line[3:].strip(), [])
        elif line.startswith("```"):
            found.append(open_fence)
            open_fence = None
        else:
            open_fence.lines.append(line)
    assert open_fence is None, f"{page.name}:{open_fence.lineno}: a fence that is never closed"
    return found


def commands(fence: Fence) -> list[Command]:
    found: list[Command] = []
    for offset, line in enumerate(fence.lines, 1):
        if line.startswith("$ "):
            found.append(Command(line[2:], where=f"{fence.page.name}:{fence.lineno + offset}"))
        else:
            assert found, f"{fence.page.name}:{fence.lineno}: a console block must start with a `$ ` command"
            found[-1].shown.append(line)
    return found


def sessions() -> dict[str, list[Command]]:
    """The console commands of each `## ` section, in order, by 'page: section'."""
    found: dict[str, list[Command]] = {}
    for page in PAGES:
        for fence in fences(page):
            if fence.info == "console":
                found.setdefault(f"{page.relative_to(ROOT)}: {fence.section}", []).extend(commands(fence))
    return found


def matches(shown: list[str], actual: list[str]) -> bool:
    """Whether the actual lines are the shown ones, `...` standing for any lines and tokens for values."""
    if not shown:
        return not actual
    head, rest = shown[0], shown[1:]
    if head == "...":
        return any(matches(rest, actual[skip:]) for skip in range(len(actual) + 1))
    if not actual:
        return False
    pattern = "".join(PLACEHOLDERS.get(part, " {2,}".join(map(re.escape, re.split(" {2,}", part))))
                      for part in re.split(r"(<pid>|<time>|<version>)", head))
    return re.fullmatch(pattern, actual[0]) is not None and matches(rest, actual[1:])


def screen(output: str) -> list[str]:
    """What a terminal shows of a program's output, as subprocess reads it in text mode: a line
    rewritten in place (`\\r\\x1b[K`, the progress line) shows only its last form. Text mode reads
    the `\\r` as a line end, so a line that starts with `\\x1b[K` replaces the one before."""
    lines: list[str] = []
    for line in output.split("\n"):
        if line.startswith("\x1b[K") and lines:
            lines.pop()
        lines.append(line.replace("\x1b[K", "").rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


# -- the convention holds on every page (no root needed) -------------------------------------------


def test_every_block_is_run_or_says_why_not():
    for page in PAGES:
        for fence in fences(page):
            where = f"{page.relative_to(ROOT)}:{fence.lineno}"
            language, _, kind = fence.info.partition(" ")
            if language == "console":
                assert commands(fence), where
            elif language in SHELLS:
                assert language == "sh" and kind in NOT_RUN, (
                    f"{where}: a block of commands is ```console (run by this test) or ```sh KIND, "
                    f"KIND one of {sorted(NOT_RUN)} (not run, for that reason)")
            else:
                assert language in NOT_COMMANDS, f"{where}: unknown block language {fence.info!r}"
                assert not any(line.startswith("$ ") for line in fence.lines), f"{where}: commands in a {language} block"


def test_placeholders_match_only_what_they_stand_for():
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"]) and matches(["a", "...", "z"], ["a", "z"])
    assert not matches(["a", "z"], ["a", "b", "z"]) and not matches(["a"], ["a", "b"])
    assert matches(["pid <pid>, <time> s"], ["pid 4242, 0.31 s"])
    assert not matches(["pid <pid>"], ["pid 42x"]) and not matches(["<time> s"], ["1.2.3 s"])
    assert matches(["PID   STATE", "<pid>  running"], ["PID    STATE", "19881  running"])
    assert not matches(["PID  STATE"], ["PID STATE"]) and not matches(["a b"], ["a  b"])
    raw = "\r\x1b[K[#.] 1/2\r\x1b[K[##] 2/2\r\x1b[Ktopology up\r\nnext\r\n\r\x1b[K[#.] 1/2\r\x1b[Kdown\r\n"
    assert screen(raw.replace("\r\n", "\n").replace("\r", "\n")) == ["topology up", "next", "down"]


def test_the_docs_have_sessions_to_run():
    assert len(sessions()) >= 8


# -- each session, on a sandbox host ----------------------------------------------------------------

NSGEN = f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m nsgen \"$@\"\n"
SUDO = "#!/bin/sh\nexec \"$@\"\n"


@pytest.mark.parametrize("name", sorted(sessions()))
def test_the_commands_shown_print_what_they_show(sandbox, tmp_path, name):
    work, home = tmp_path / "work", tmp_path / "home"
    shutil.copytree(ROOT / "examples", work / "examples")
    home.mkdir()
    # This checkout as the installed nsgen, seen only on this sandbox host (its mounts are its own).
    sandbox.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "nsgen-docs-bin", "/usr/local/bin"])
    for program, text in (("nsgen", NSGEN), ("sudo", SUDO)):
        sandbox.run(["install", "-m", "0755", "/dev/stdin", f"/usr/local/bin/{program}"], input=text)
    env = {"PATH": f"/usr/local/bin:{os.environ['PATH']}", "HOME": str(home),
           "LC_ALL": "C.UTF-8", "TERM": "dumb", "PYTHONUNBUFFERED": "1", "NSGEN_FILE": ""}
    wrong = []  # every command runs, so that one failure shows all that differ
    for command in sessions()[name]:
        done = sandbox.run(["script", "-qec", command.line, "/dev/null"], input="", check=False, timeout=120,
                           env=env, cwd=work)
        actual = screen(done.stdout)
        if done.returncode != command.status or not matches(command.shown, actual):
            wrong.append("\n".join([f"{command.where}: exit status {done.returncode}, the docs show", *command.shown,
                                    "the terminal shows", f"$ {command.line}", *actual, done.stderr.rstrip()]))
    if wrong:
        pytest.fail("\n\n".join(wrong), pytrace=False)
