"""Execute runs a plan's argv with subprocess (never a shell) and undoes what it did when a step fails.

It follows the same rules as the rendered scripts, step for step: refuse before any change when a
resource exists that this topology did not make; skip a step whose probe says it is done; on a
failure or an interrupt, undo the steps this run began, newest first, and report every undo error.
The `Runner` is the only part that touches the host; `RecordingRunner` makes all of this testable
without root.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from typing import Callable, Iterator, NamedTuple, Protocol

from nsgen import batch, native
from nsgen.errors import ExecutionError, PreflightError
from nsgen.plan import NETNS_DIR, Command, Plan, Step

NOT_ROOT = "changing the host's network needs root: run it again with sudo"
LOCK_TIMEOUT = 60.0
PARALLEL = 4  # configuration batches run side by side, each in its own namespace
STOP_GRACE = 3.0


class Result(NamedTuple):
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    def run(self, cmd: Command) -> Result: ...
    def run_many(self, commands: list[Command]) -> list[Result]: ...
    def check(self, argv: tuple[str, ...]) -> bool: ...
    def lock(self, path: str) -> contextlib.AbstractContextManager: ...
    def is_root(self) -> bool: ...
    def missing_tools(self, tools: tuple[str, ...]) -> list[str]: ...


class SubprocessRunner:
    """Runs commands on this host.

    The plan's small file commands and probes (`test`, `mkdir -p`, `cp`, `grep -qx` and the like:
    see `native`) are done without starting a process; `ip link show NAME` is answered from one
    listing of the host's links, read again after any command has run; `group_has_links GROUP`
    (the scripts' shell function) from that listing when one is at hand, else with one
    `ip -o link show group GROUP`."""

    def __init__(self) -> None:
        self._links: Links | None = None

    def run(self, cmd: Command) -> Result:
        self._links = None
        if cmd.builtin:
            return BUILTINS[cmd.argv[0]](*cmd.argv[1:])
        if cmd.detach:
            return self._start(cmd)
        done = native.run(cmd.argv, cmd.input)
        if done is not None:
            return Result(done.returncode, "", done.stderr)
        proc = _spawn(cmd.argv, cmd.input is not None)
        if isinstance(proc, Result):
            return proc
        with _reaped([proc]):
            out, err = proc.communicate(cmd.input)
        return Result(proc.returncode, out, err)

    def run_many(self, commands: list[Command], width: int = PARALLEL) -> list[Result]:
        """Independent commands (each in a namespace of its own), `width` at a time."""
        self._links = None
        results: list[Result | None] = [None] * len(commands)
        running: dict[int, subprocess.Popen] = {}

        def reap(block: bool) -> None:
            for i, proc in list(running.items()):
                if block or proc.poll() is not None:
                    out, err = proc.communicate()
                    results[i] = Result(proc.returncode, out, err)
                    del running[i]
                    if not block:
                        return

        with _reaped(running.values()):
            for i, cmd in enumerate(commands):
                while len(running) >= width:
                    reap(block=False)
                    if len(running) >= width:
                        time.sleep(0.0005)
                proc = _spawn(cmd.argv, True)
                if isinstance(proc, Result):
                    results[i] = proc
                    continue
                running[i] = proc
                assert proc.stdin is not None
                try:
                    proc.stdin.write(cmd.input or "")
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                proc.stdin = None  # written and closed: communicate() only collects the output
            reap(block=True)
        return [r if r is not None else Result(1) for r in results]

    def _start(self, cmd: Command) -> Result:
        assert cmd.detach
        log, pidfile = cmd.detach
        try:
            with open(log, "ab") as out:
                child = subprocess.Popen(cmd.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            return Result(127, "", f"{cmd.argv[0]}: {exc.strerror}")
        with open(pidfile, "w") as f:
            f.write(f"{child.pid}\n")
        return Result(0)

    def check(self, argv: tuple[str, ...]) -> bool:
        if argv[0] == "test" and (answer := native.file_test(argv[1:])) is not None:
            return answer
        if (done := native.run(argv)) is not None:
            return done.returncode == 0
        if argv[0] == "group_has_links" and len(argv) == 2:
            if self._links is not None and (found := _in_listing(self._links, argv[1])) is not None:
                return found
            return _group_has_links(argv[1])
        if argv[:3] == ("ip", "link", "show") and len(argv) == 4:
            if self._links is None:
                self._links = _host_links()
            if self._links is not None:
                return argv[3] in self._links.names
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        except FileNotFoundError:
            return False

    @contextlib.contextmanager
    def lock(self, path: str) -> Iterator[None]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise PreflightError(f"another nsgen setup or teardown still holds {path}") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def missing_tools(self, tools: tuple[str, ...]) -> list[str]:
        return [t for t in tools if shutil.which(t) is None]


def _popen(argv: tuple[str, ...], stdin: bool) -> subprocess.Popen | Result:
    # close_fds=False is safe (Python opens every file descriptor non-inheritable) and makes
    # each start cheaper.
    try:
        return subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, close_fds=False)
    except FileNotFoundError:
        return Result(127, "", f"{argv[0]}: command not found")
    except OSError as exc:  # not executable, and the like: the shell's status for it
        return Result(126, "", f"{argv[0]}: {exc.strerror}")


def _spawn(argv: tuple[str, ...], stdin: bool) -> subprocess.Popen | Result:
    """Start argv. `nsenter --net=FILE PROGRAM...` is done here as nsenter does it (enter the
    network namespace FILE, then run PROGRAM), without nsenter's own process start: a thread of
    ours enters the namespace and starts PROGRAM, which inherits it; the thread then ends, so
    nothing else of nsgen ever runs inside a container's namespace."""
    target = _nsenter_net(argv)
    setns = _setns() if target else None
    if target is None or setns is None:
        return _popen(argv, stdin)
    path, rest = target
    box: list[subprocess.Popen | Result] = []

    def enter_and_start() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box.append(Result(1, "", f"nsenter: cannot open {path}: {exc.strerror}"))
            return
        try:
            setns(fd)
        except OSError as exc:
            box.append(Result(1, "", f"nsenter: reassociate to namespace 'ns/net' failed: {exc.strerror}"))
            return
        finally:
            os.close(fd)
        box.append(_popen(rest, stdin))

    thread = threading.Thread(target=enter_and_start, name="nsenter")
    thread.start()
    try:
        thread.join()
    except BaseException:  # interrupted: the process it may still start is stopped too
        while thread.is_alive():
            with contextlib.suppress(BaseException):
                thread.join()
        with _reaped([p for p in box if isinstance(p, subprocess.Popen)]):
            raise
    return box[0] if box else Result(1, "", f"nsenter: could not enter {path}")


@contextlib.contextmanager
def _reaped(procs) -> Iterator[None]:
    """On an exception (an interrupt above all), kill the processes and wait for them before it
    goes on, as subprocess.run does: the rollback that follows must not race them."""
    try:
        yield
    except BaseException:
        for proc in list(procs):
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(BaseException):
                proc.wait()
        raise


def _nsenter_net(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """(FILE, PROGRAM...) of `nsenter --net=FILE PROGRAM...` (no other options), else None."""
    if len(argv) >= 3 and argv[0] == "nsenter" and argv[1].startswith("--net=") and len(argv[1]) > 6 and not argv[2].startswith("-"):
        return argv[1][6:], argv[2:]
    return None


@functools.lru_cache(maxsize=1)
def _setns():
    """setns(fd, CLONE_NEWNET) for the calling thread: os.setns from Python 3.12, libc before."""
    if hasattr(os, "setns"):
        return lambda fd: os.setns(fd, os.CLONE_NEWNET)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.setns
    except (ImportError, OSError, AttributeError):
        return None

    def setns(fd: int) -> None:
        if call(fd, 0x40000000) != 0:  # CLONE_NEWNET
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return setns



class Links(NamedTuple):
    names: set[str]
    groups: set[str]  # as `ip` prints them: numbers, "default", or names from /etc/iproute2/group


def _host_links() -> Links | None:
    try:
        done = subprocess.run(("ip", "-o", "link", "show"), capture_output=True, text=True, close_fds=False)
    except FileNotFoundError:
        return None
    if done.returncode != 0:
        return None
    links = Links(set(), set())
    for line in done.stdout.splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2:
            links.names.add(parts[1].split("@", 1)[0])
        words = line.split()
        if "group" in words[:-1]:
            links.groups.add(words[words.index("group") + 1])
    return links


def _in_listing(links: Links, group: str) -> bool | None:
    """Whether a link is in `group` (a number), from the listing; None when a group name hides it."""
    number = str(int(group, 0))
    if number in links.groups:
        return True
    if any(g != "default" and not g.isdigit() for g in links.groups):
        return None
    return False


def _group_has_links(group: str) -> bool:
    try:
        done = subprocess.run(("ip", "-o", "link", "show", "group", group), capture_output=True, text=True, close_fds=False)
    except FileNotFoundError:
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def netns_id(path: str) -> tuple[int, int] | None:
    """The identity of a network namespace file (/run/netns/NAME or /proc/PID/ns/net)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _pids_in(targets: set[tuple[int, int]]) -> list[int]:
    """Every process whose network namespace is one of `targets` (one pass over /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and netns_id(f"/proc/{entry}/ns/net") in targets:
            pids.append(int(entry))
    return pids


def stop_processes(*namespaces: str, grace: float = STOP_GRACE) -> Result:
    """TERM every process in the namespaces, then KILL what is left after `grace` seconds.

    A pid is signalled only if, checked right before, it still lives in one of them."""
    targets = {key for ns in namespaces if (key := netns_id(f"{NETNS_DIR}/{ns}")) is not None}
    if not targets:
        return Result(0)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_in(targets):
            if netns_id(f"/proc/{pid}/ns/net") in targets:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _pids_in(targets):
                return Result(0)
            time.sleep(0.05)
    left = _pids_in(targets)
    return Result(1, "", f"processes still running in {', '.join(namespaces)}: {' '.join(map(str, left))}") if left else Result(0)


BUILTINS: dict[str, Callable[..., Result]] = {"stop_processes": stop_processes}


class RecordingRunner:
    """Runs nothing: records every command, answers probes from `present` (argv tuples that succeed)."""

    def __init__(
        self,
        present: set[tuple[str, ...]] | None = None,
        fail: Callable[[Command], Result | None] = lambda cmd: None,
        root: bool = True,
        tools_missing: list[str] | None = None,
    ) -> None:
        self.present = set(present or ())
        self.fail = fail
        self.root = root
        self.tools_missing = list(tools_missing or ())
        self.log: list[tuple[str, ...]] = []

    def run(self, cmd: Command) -> Result:
        self.log.append(cmd.argv)
        return self.fail(cmd) or Result(0)

    def check(self, argv: tuple[str, ...]) -> bool:
        return argv in self.present

    def run_many(self, commands: list[Command]) -> list[Result]:
        return [self.run(cmd) for cmd in commands]

    @contextlib.contextmanager
    def lock(self, path: str) -> Iterator[None]:
        yield

    def is_root(self) -> bool:
        return self.root

    def missing_tools(self, tools: tuple[str, ...]) -> list[str]:
        return [t for t in tools if t in self.tools_missing]


class Progress:
    """One line a step on stderr; verbose adds each command, quiet shows nothing but errors."""

    def __init__(self, echo: Callable[[str], None] | None = None, verbosity: int = 1):
        self.echo = echo or (lambda line: None)
        self.verbosity = verbosity

    def step(self, index: int, total: int, step: Step, note: str = "", prefix: str = "") -> None:
        if self.verbosity >= 1:
            self.echo(f"[{index}/{total}] {prefix}{step.summary}{note}")

    def command(self, cmd: Command) -> None:
        if self.verbosity >= 2:
            self.echo(f"    $ {shlex.join(cmd.argv)}")

    def note(self, line: str) -> None:
        if self.verbosity >= 1:
            self.echo(line)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the plan was running."""


@contextlib.contextmanager
def _signals(handler) -> Iterator[None]:
    """SIGINT and SIGTERM handled by `handler` inside the block (only possible in the main thread)."""
    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _raise_interrupted(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def _signals_interrupt():
    """SIGINT and SIGTERM become an exception, so that the rollback runs."""
    return _signals(_raise_interrupted)


def _signals_ignored():
    """An undo in progress is not cut short by a second Ctrl-C."""
    return _signals(signal.SIG_IGN)


def _describe(cmd: Command, result: Result) -> str:
    message = (result.stderr or result.stdout).strip().replace("\n", "; ")
    return f"`{shlex.join(cmd.argv)}` exited with status {result.returncode}" + (f": {message}" if message else "")


def _guards_pass(cmd: Command, runner: Runner) -> bool:
    return all(check(runner, probe) for probe in cmd.only_if)


def check(runner: Runner, probe: tuple[str, ...]) -> bool:
    """A probe succeeds; a probe written ("!", argv...) succeeds when argv fails."""
    if probe[0] == "!":
        return not runner.check(probe[1:])
    return runner.check(probe)


def preflight(plan: Plan, runner: Runner) -> None:
    if not runner.is_root():
        raise PreflightError(NOT_ROOT)
    missing = runner.missing_tools(plan.tools)
    if missing:
        raise PreflightError(f"required tool not found: {', '.join(missing)} (nothing was changed)")


def _requirements(plan: Plan, runner: Runner) -> None:
    for requirement in plan.requirements:
        if not any(check(runner, probe) for probe in requirement.any_of):
            raise PreflightError(requirement.message)


def _refuse_foreign(plan: Plan, runner: Runner) -> None:
    if runner.check(("test", "-d", plan.state_dir)):
        return
    for step in plan.steps:
        if step.resource and step.probe and all(check(runner, p) for p in step.probe):
            raise PreflightError(f"{step.resource} already exists and was not made by nsgen topology {plan.name}; nothing was changed")


_PURE = ("test", "!", "group_has_links")  # guards without side effects: safe to evaluate before a batch runs


def _pure(cmd: Command) -> bool:
    return all(g[0] in _PURE or g[:3] == ("ip", "link", "show") for g in cmd.only_if)


def _failure(unit: batch.Unit, result: Result) -> tuple[Step, Command, Result]:
    """The plan command behind a failed unit: iproute2 names the batch line that failed."""
    if unit.is_batch:
        match = re.search(r"Command failed -:(\d+)", result.stderr)
        part = unit.part_for_line(int(match.group(1))) if match else None
        message = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("Command failed"))
        step, cmd = part or unit.parts[0]
        return step, cmd, Result(result.returncode, result.stdout, message)
    step, cmd = unit.parts[0]
    return step, cmd, result


def undo_steps(steps: list[Step], runner: Runner, progress: Progress, announce: bool = False, batched: bool = True) -> list[str]:
    """Run the undo commands of `steps` in reverse order; return every error (none is swallowed).

    Consecutive commands that can share a process do (namespace deletions, link deletions,
    stopping processes); a guard is checked right before its command runs, or, for a guard with
    no side effect on a command in a batch, right before the batch runs."""
    errors: list[str] = []
    undone = {s.id for s in steps}
    ordered = [s for s in reversed(steps) if s.goes_with not in undone]
    pending: list[tuple[Step, Command]] = []

    def flush() -> None:
        if not pending:
            return
        for unit in batch.group(list(pending), min_size=2 if batched else 10**9):
            assert unit.command is not None
            progress.command(unit.command)
            result = runner.run(unit.command)
            if result.returncode != 0:
                step, cmd, result = _failure(unit, result)
                errors.append(f"undo of {step.id}: {_describe(cmd, result)}")
        pending.clear()

    for index, step in enumerate(ordered, 1):
        if announce:
            progress.step(index, len(ordered), step, prefix="undo: ")
        for cmd in step.undo:
            bare = Command(cmd.argv, cmd.input, (), cmd.detach, cmd.builtin)
            if batched and _pure(cmd) and batch.key(bare) is not None:
                if _guards_pass(cmd, runner):
                    pending.append((step, bare))
                continue
            flush()
            if not _guards_pass(cmd, runner):
                continue
            progress.command(cmd)
            result = runner.run(cmd)
            if result.returncode != 0:
                errors.append(f"undo of {step.id}: {_describe(cmd, result)}")
    flush()
    return errors


def setup(plan: Plan, runner: Runner | None = None, progress: Progress | None = None, batched: bool = True,
          source: str | None = None) -> None:
    """Set the topology up. On a host where it is not up at all, commands run in batches;
    where its state directory exists (a second run, or a run after a crash), step by step, each
    step skipped when its probe finds it done. With `source` (the topology file's text), the
    plan is recorded in the state directory for `nsgen run --teardown` (see `record`)."""
    runner = runner or SubprocessRunner()
    progress = progress or Progress()
    preflight(plan, runner)
    for warning in plan.warnings:
        progress.echo(f"warning: {warning}")
    with runner.lock(plan.lock_file):
        _requirements(plan, runner)
        fresh = not runner.check(("test", "-d", plan.state_dir))
        _refuse_foreign(plan, runner)
        begun: list[Step] = []
        try:
            with _signals_interrupt():
                if fresh and batched:
                    _setup_batched(plan, runner, progress, begun)
                else:
                    _setup_stepwise(plan, runner, progress, begun)
        except (ExecutionError, Interrupted) as exc:
            reason = str(exc) if isinstance(exc, ExecutionError) else f"interrupted by {exc}"
            with _signals_ignored():
                errors = undo_steps(begun, runner, progress, batched=batched)
            if errors:
                raise ExecutionError(reason + "\nundoing it left errors:\n" + "\n".join(f"  {e}" for e in errors)) from None
            raise ExecutionError(f"{reason}\nundid the {len(begun)} step(s) this run began; nothing of it is left") from None
        if source is not None and isinstance(runner, SubprocessRunner):
            from nsgen import record

            record.save(plan, source)
    progress.note(f"topology {plan.name} is up")


def _setup_stepwise(plan: Plan, runner: Runner, progress: Progress, begun: list[Step]) -> None:
    total = len(plan.steps)
    for index, step in enumerate(plan.steps, 1):
        if step.probe and all(check(runner, p) for p in step.probe):
            progress.step(index, total, step, " (already done)")
            continue
        progress.step(index, total, step)
        begun.append(step)
        for cmd in step.commands:
            if not _guards_pass(cmd, runner):
                continue
            progress.command(cmd)
            result = runner.run(cmd)
            if result.returncode != 0:
                raise ExecutionError(f"step {step.id} failed: {_describe(cmd, result)}")


def _setup_batched(plan: Plan, runner: Runner, progress: Progress, begun: list[Step]) -> None:
    """Units in order; a run of consecutive batches that each configure one namespace runs side
    by side (they touch nothing in common). Every step of a wave is begun before it starts."""
    total, index = len(plan.steps), 0
    units = batch.setup_units(plan.steps)
    i = 0
    while i < len(units):
        wave = [units[i]]
        while _in_namespace(wave[0]) and i + len(wave) < len(units) and _in_namespace(units[i + len(wave)]):
            wave.append(units[i + len(wave)])
        i += len(wave)
        for unit in wave:
            for step in unit.steps:
                index += 1
                progress.step(index, total, step)
                begun.append(step)
        commands = [u.command for u in wave if u.command is not None and _guards_pass(u.command, runner)]
        if not commands:
            continue
        for cmd in commands:
            progress.command(cmd)
        results = runner.run_many(commands) if len(commands) > 1 else [runner.run(commands[0])]
        for unit, result in zip([u for u in wave if u.command in commands], results):
            if result.returncode != 0:
                step, cmd, result = _failure(unit, result)
                raise ExecutionError(f"step {step.id} failed: {_describe(cmd, result)}")


def _in_namespace(unit: batch.Unit) -> bool:
    cmd = unit.command
    return cmd is not None and cmd.argv[0] == "nsenter" and not cmd.only_if


def teardown(plan: Plan, runner: Runner | None = None, progress: Progress | None = None, batched: bool = True) -> None:
    runner = runner or SubprocessRunner()
    progress = progress or Progress()
    preflight(plan, runner)
    with runner.lock(plan.lock_file), _signals_ignored():
        errors = undo_steps([s for s in plan.steps if s.undo], runner, progress, announce=True, batched=batched)
    if errors:
        raise ExecutionError("teardown finished with errors:\n" + "\n".join(f"  {e}" for e in errors))
    progress.note(f"topology {plan.name} is down")
