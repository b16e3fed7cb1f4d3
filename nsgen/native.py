"""Native does the plan's small file commands and file probes without starting a process.

`nsgen run` would otherwise start a program (1.5 to 4 ms each) to make a directory, write a small
file or compare two. For exactly the forms the plan writes, the same system calls are made here,
with the same outcome and exit status as the program's; any other form returns None and the real
program runs. The scripts run the programs themselves: what they do is the reference.

    test [!] -e|-d|-s|-w PATH        mkdir -p DIR            touch FILE
    rm -f FILE...                    rm -rf PATH             rmdir [--ignore-fail-on-non-empty] DIR
    install [-D] -m MODE /dev/stdin|/dev/null FILE           cp SRC DST              cmp -s A B
    dd of=FILE status=none (written in place, from its input)
    grep -qx TEXT FILE               grep -qF TEXT FILE      grep -qxF TEXT FILE   (-qx: TEXT without pattern characters)
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from typing import NamedTuple


class Outcome(NamedTuple):
    returncode: int
    stderr: str = ""


_LITERAL = re.compile(r"[A-Za-z0-9 _,:;=@%/+-]*")  # no character a basic regular expression treats specially


def file_test(args: tuple[str, ...]) -> bool | None:
    """`test [!] -e|-d|-s|-w PATH` answered as bash's builtin answers it; None for any other form."""
    if args and args[0] == "!":
        inner = file_test(args[1:])
        return None if inner is None else not inner
    if len(args) != 2:
        return None
    flag, path = args
    if flag == "-e":
        return os.path.exists(path)
    if flag == "-d":
        return os.path.isdir(path)
    if flag == "-s":
        return os.path.isfile(path) and os.path.getsize(path) > 0
    if flag == "-w":
        return os.access(path, os.W_OK)
    return None


def run(argv: tuple[str, ...], stdin: str | None = None) -> Outcome | None:
    """Do argv here when it is one of the forms above; None when the program must run."""
    handler = _HANDLERS.get((argv[0], len(argv) if argv[0] != "rm" else min(len(argv), 3), stdin is not None))
    if handler is None:
        return None
    try:
        return handler(argv, stdin)
    except _NotMine:
        return None


class _NotMine(Exception):
    """The command has a form this module does not answer."""


def _fail(program: str, what: str, exc: OSError) -> Outcome:
    return Outcome(1, f"{program}: {what}: {exc.strerror}")


def _write(path: str, flags: int, mode: int, data: bytes = b"", chmod: int | None = None, touch: bool = False) -> None:
    """Open path for writing with `flags`, write all of data, then chmod and touch as asked."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if chmod is not None:
            os.fchmod(fd, chmod)
        if touch:
            os.utime(fd)
    finally:
        os.close(fd)


def _mkdir(argv, _stdin) -> Outcome:
    if argv[1] != "-p":
        raise _NotMine
    path = argv[2]
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        return _fail("mkdir", f"cannot create directory '{path}'", exc)
    return Outcome(0)


def _touch(argv, _stdin) -> Outcome:
    path = argv[1]
    if path.startswith("-"):
        raise _NotMine
    try:
        _write(path, os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY, 0o666, touch=True)
    except OSError as exc:
        return _fail("touch", f"cannot touch '{path}'", exc)
    return Outcome(0)


def _rm(argv, _stdin) -> Outcome:
    flag, paths = argv[1], argv[2:]
    if flag not in ("-f", "-rf") or (flag == "-rf" and len(paths) != 1) or any(p.startswith("-") or not p for p in paths):
        raise _NotMine
    status, message = 0, []
    for path in paths:
        try:
            if flag == "-rf" and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            status = 1
            message.append(_fail("rm", f"cannot remove '{path}'", exc).stderr)
    return Outcome(status, "\n".join(message))


def _rmdir(argv, _stdin) -> Outcome:
    ignore_non_empty = len(argv) == 3
    if (ignore_non_empty and argv[1] != "--ignore-fail-on-non-empty") or argv[-1].startswith("-"):
        raise _NotMine
    path = argv[-1]
    try:
        os.rmdir(path)
    except OSError as exc:
        if ignore_non_empty and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return Outcome(0)
        return _fail("rmdir", f"failed to remove '{path}'", exc)
    return Outcome(0)


def _install(argv, stdin) -> Outcome:
    leading = argv[1] == "-D"
    _, flag, mode, source, path = (argv[0], *argv[2:]) if leading else argv
    if flag != "-m" or source != ("/dev/stdin" if stdin is not None else "/dev/null") or not re.fullmatch(r"0?[0-7]{3}", mode) or \
            path.startswith("-"):
        raise _NotMine
    try:
        if leading and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)  # as install -D does: 0777 less the umask
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)  # as install does: the file is replaced, never written through a link
        _write(path, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, (stdin or "").encode(), chmod=int(mode, 8))
    except OSError as exc:
        return _fail("install", f"cannot create regular file '{path}'", exc)
    return Outcome(0)


def _dd(argv, stdin) -> Outcome:
    """`dd of=FILE status=none`: the file truncated and written in place (the same inode: a process
    that has it open, or bind-mounted, sees the new content)."""
    if not argv[1].startswith("of=") or argv[2] != "status=none" or len(argv[1]) == 3:
        raise _NotMine
    path = argv[1][3:]
    try:
        _write(path, os.O_CREAT | os.O_TRUNC | os.O_NOCTTY, 0o666, stdin.encode())
    except OSError as exc:
        return _fail("dd", f"failed to open '{path}'", exc)
    return Outcome(0)


def _cp(argv, _stdin) -> Outcome:
    source, target = argv[1], argv[2]
    if source.startswith("-") or target.startswith("-") or os.path.isdir(target):
        raise _NotMine
    try:
        with open(source, "rb") as f:
            data = f.read()
        mode = os.stat(source).st_mode & 0o777
    except OSError as exc:
        return _fail("cp", f"cannot open '{source}' for reading", exc)
    try:
        _write(target, os.O_CREAT | os.O_TRUNC, mode, data)
    except OSError as exc:
        return _fail("cp", f"cannot create regular file '{target}'", exc)
    return Outcome(0)


def _cmp(argv, _stdin) -> Outcome:
    if argv[1] != "-s":
        raise _NotMine
    try:
        with open(argv[2], "rb") as a, open(argv[3], "rb") as b:
            return Outcome(0 if a.read() == b.read() else 1)
    except OSError:
        return Outcome(2)  # -s: silent, even about a missing file


def _grep(argv, _stdin) -> Outcome:
    flag, text, path = argv[1], argv[2], argv[3]
    if flag not in ("-qx", "-qF", "-qxF") or not text or "\n" in text or (flag == "-qx" and not _LITERAL.fullmatch(text)):
        raise _NotMine
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().split("\n")
    except OSError as exc:
        return Outcome(2, f"grep: {path}: {exc.strerror}")
    if flag in ("-qx", "-qxF"):
        return Outcome(0 if text in lines else 1)
    return Outcome(0 if any(text in line for line in lines) else 1)


_HANDLERS: dict[tuple[str, int, bool], Callable[[tuple[str, ...], str | None], Outcome]] = {
    ("mkdir", 3, False): _mkdir,
    ("touch", 2, False): _touch,
    ("rm", 3, False): _rm,
    ("rmdir", 2, False): _rmdir,
    ("rmdir", 3, False): _rmdir,
    ("install", 5, True): _install,
    ("install", 6, True): _install,
    ("install", 5, False): _install,
    ("install", 6, False): _install,
    ("dd", 3, True): _dd,
    ("cp", 3, False): _cp,
    ("cmp", 4, False): _cmp,
    ("grep", 4, False): _grep,
}
