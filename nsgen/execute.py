"""Execute runs a plan's argv with subprocess (never a shell) and undoes what it did when a step fails.

It follows the same rules as the rendered scripts, step for step: check the host under the lock
before any change (the state directory, subnets, published ports, what the plan needs); refuse a
resource of the same name that is not this topology's own; skip a step whose probe says it is
done; on a failure, an interrupt or any other error, undo the steps this run began, newest first,
and report every undo error. A teardown that cannot undo everything says what is left and keeps
the record a retry needs. The `Runner` is the only part that touches the host; `RecordingRunner`
makes all of this testable without root.
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
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from nsgen import batch, builtins, native
from nsgen.builtins import Result
from nsgen.errors import ExecutionError, PreflightError
from nsgen.plan import Command, Plan, Step
from nsgen.plan.steps import undo_order
from nsgen.progress import Progress

NOT_ROOT = "changing the host's network needs root: run it again with sudo"
LOCK_TIMEOUT = 60.0
PARALLEL = 4  # configuration batches run side by side, each in its own namespace
STOP_GRACE = builtins.STOP_GRACE
stop_processes = builtins.stop_processes

__all__ = ["NOT_ROOT", "Progress", "RecordingRunner", "Result", "SubprocessRunner", "setup", "teardown", "undo_steps"]


class Runner(Protocol):
    def run(self, cmd: Command) -> Result: ...
    def run_many(self, commands: list[Command]) -> list[Result]: ...
    def check(self, argv: tuple[str, ...]) -> bool: ...
    def guard(self, cmd: Command) -> Result: ...
    def lock(self, path: str) -> contextlib.AbstractContextManager: ...
    def is_root(self) -> bool: ...
    def missing_tools(self, tools: tuple[str, ...]) -> list[str]: ...


class SubprocessRunner:
    """Runs commands on this host.

    The plan's small file commands and probes (`test`, `mkdir -p`, `cp`, `grep -qx` and the like:
    see `native`) are done without starting a process; builtins (see `builtins`) in Python; `ip
    link show NAME` is answered from one listing of the host's links, read again after any
    command has run."""

    def __init__(self) -> None:
        self.host = builtins.Host()
        self._probes = builtins.probes(self.host)
        self._commands = builtins.commands(self.host)

    def run(self, cmd: Command) -> Result:
        # Only ip makes, deletes or marks a namespace (`ip netns`, `ip -n NS link set lo alias`, a batch of
        # them, or ip inside nsenter): no builtin, file command, sysctl or firewall program does, and
        # reading every namespace's mark again after each of those made a teardown quadratic.
        self.host.changed(namespaces=not cmd.builtin and cmd.argv[0] in ("ip", "nsenter"))
        if cmd.builtin:
            if cmd.argv[0] in builtins.UNDO:
                return builtins.UNDO[cmd.argv[0]](cmd.input or "")
            return self._commands[cmd.argv[0]](*cmd.argv[1:])
        if cmd.detach:
            return _start(cmd)
        done = native.run(cmd.argv, cmd.input)
        if done is not None:
            return Result(done.returncode, "", done.stderr)
        proc = _spawn(cmd.argv, cmd.input is not None)
        if isinstance(proc, Result):
            return proc
        with _reaped([proc]):
            out, err = proc.communicate(cmd.input)
        return Result(proc.returncode, out, err)

    def guard(self, cmd: Command) -> Result:
        return self.run(cmd)

    def run_many(self, commands: list[Command], width: int = PARALLEL) -> list[Result]:
        """Independent commands (each in a namespace of its own), `width` at a time."""
        self.host.changed()
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

    def check(self, argv: tuple[str, ...]) -> bool:
        if argv[0] == "test" and (answer := native.file_test(argv[1:])) is not None:
            return answer
        if (done := native.run(argv)) is not None:
            return done.returncode == 0
        if argv[0] in self._probes:
            return self._probes[argv[0]](*argv[1:])
        if argv[:3] == ("ip", "link", "show") and len(argv) == 4:
            return argv[3] in self.host.links()
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        except FileNotFoundError:
            return False

    @contextlib.contextmanager
    def lock(self, path: str) -> Iterator[None]:
        fd = _open_lock(path)
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


def _open_lock(path: str) -> int:
    """The lock file, opened without following a link, and only when it is a file of root's."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise PreflightError(f"cannot open the lock file {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise PreflightError(f"the lock file {path} is not nsgen's (not a regular file of root's); nothing was changed")
    return fd


def _start(cmd: Command) -> Result:
    """Start a detached process: its output appended to the log file, its pid written to the
    pid file; neither is ever opened through a symbolic link."""
    assert cmd.detach
    log, pidfile = cmd.detach
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        out = os.open(log, flags | os.O_APPEND, 0o644)
    except OSError as exc:
        return Result(1, "", f"cannot open {log}: {exc.strerror}")
    try:
        child = subprocess.Popen(cmd.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    except OSError as exc:
        return Result(127, "", f"{cmd.argv[0]}: {exc.strerror}")
    finally:
        os.close(out)
    try:
        fd = os.open(pidfile, flags | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(f"{child.pid}\n")
    except OSError as exc:
        return Result(1, "", f"cannot write {pidfile}: {exc.strerror}")
    return Result(0)


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
    setns = setns_function() if target else None
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
def setns_function():
    """setns(fd, CLONE_NEWNET) for the calling thread: os.setns from Python 3.12, libc before."""
    if hasattr(os, "setns"):
        return lambda fd: os.setns(fd, os.CLONE_NEWNET)  # type: ignore[attr-defined]  # Python 3.12+
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


def netns_id(path: str) -> tuple[int, int] | None:
    """The identity of a network namespace file (/run/netns/NAME or /proc/PID/ns/net)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class RecordingRunner:
    """Runs nothing: records every command, answers probes from `present` (argv tuples that succeed)."""

    def __init__(
        self,
        present: set[tuple[str, ...]] | None = None,
        fail: Callable[[Command], Result | None] = lambda cmd: None,
        root: bool = True,
        tools_missing: list[str] | None = None,
        refuse: Callable[[Command], Result | None] = lambda cmd: None,
    ) -> None:
        self.present = set(present or ())
        self.fail = fail
        self.refuse = refuse
        self.root = root
        self.tools_missing = list(tools_missing or ())
        self.log: list[tuple[str, ...]] = []
        self.guarded: list[tuple[str, ...]] = []

    def run(self, cmd: Command) -> Result:
        self.log.append(cmd.argv)
        return self.fail(cmd) or Result(0)

    def guard(self, cmd: Command) -> Result:
        self.guarded.append(cmd.argv)
        return self.refuse(cmd) or Result(0)

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


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the plan was running."""

    @property
    def status(self) -> int:
        """The exit status a shell gives for the signal: 128 + its number (130, 143)."""
        return 128 + signal.Signals[str(self)].value


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


@contextlib.contextmanager
def _umask() -> Iterator[None]:
    """Everything nsgen makes gets the modes it asks for (0755 folders, 0644 files), whatever
    the umask of the shell that started it."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def describe(cmd: Command, result: Result) -> str:
    message = (result.stderr or result.stdout).strip().replace("\n", "; ")
    return f"`{shlex.join(cmd.argv)}` exited with status {result.returncode}" + (f": {message}" if message else "")


def _guards_pass(cmd: Command, runner: Runner) -> bool:
    return all(check(runner, probe) for probe in cmd.only_if)


def check(runner: Runner, probe: tuple[str, ...]) -> bool:
    """A probe succeeds; a probe written ("!", argv...) succeeds when argv fails."""
    if probe[0] == "!":
        return not runner.check(probe[1:])
    return runner.check(probe)


def preflight(plan: Any, runner: Runner) -> None:
    if not runner.is_root():
        raise PreflightError(NOT_ROOT)
    missing = runner.missing_tools(plan.tools)
    if missing:
        from nsgen.plan import PACKAGES

        packages = " ".join(dict.fromkeys(PACKAGES.get(t, t) for t in missing))
        raise PreflightError(f"required tool not found: {', '.join(missing)} (nothing was changed; on Debian and Ubuntu: apt install {packages})")


def _host_checks(plan: Plan, runner: Runner, progress: Progress) -> None:
    """Under the lock, before any change: what the host must allow, the guards, and no resource
    of the same name that is not this topology's own."""
    for requirement in plan.requirements:
        if not any(check(runner, probe) for probe in requirement.any_of):
            raise PreflightError(requirement.message)
    for guard in plan.guards:
        try:
            result = runner.guard(guard)
        except (OSError, ValueError) as exc:
            raise PreflightError(f"nsgen could not check the host ({guard.argv[0]}): {exc}; nothing was changed") from None
        message = (result.stderr or result.stdout).strip()
        if result.returncode != 0:
            raise PreflightError(message or f"{guard.argv[0]} refused")
        for line in message.splitlines():
            progress.warn(line)
    for step in plan.resources():
        if all(check(runner, p) for p in step.probe) and not all(check(runner, p) for p in step.ours):
            raise PreflightError(f"{step.resource} already exists and was not made by nsgen topology {plan.name}; nothing was changed")


_PURE = ("test", "!", "group_has_links", "netns_ours", "link_ours", "group_ours", "nft_ours")  # guards without side effects


def _pure(cmd: Command) -> bool:
    return all(g[0] in _PURE or g[:3] == ("ip", "link", "show") for g in cmd.only_if)


def _failure(unit: batch.Unit, result: Result) -> tuple[Step, Command, Result]:
    """The plan command behind a failed unit: iproute2 names the batch line that failed."""
    if unit.is_batch:
        match = re.search(r"Command failed -:(\d+)", result.stderr) or re.search(r"line (\d+) failed", result.stderr)
        part = unit.part_for_line(int(match.group(1))) if match else None
        message = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("Command failed"))
        step, cmd = part or unit.parts[0]
        return step, cmd, Result(result.returncode, result.stdout, message)
    step, cmd = unit.parts[0]
    return step, cmd, result


def _attempt(runner: Runner, cmd: Command) -> Result:
    """Run a command; an error of nsgen's own (a full disk, a file it cannot write) becomes the
    command's failure, like a program's exit status, so that it is reported and undone."""
    try:
        return runner.run(cmd)
    except (OSError, ValueError, RuntimeError) as exc:
        return Result(1, "", f"nsgen: {exc}")


def undo_steps(steps: list[Step], runner: Runner, progress: Progress, announce: bool = False, batched: bool = True) -> list[str]:
    """Run the undo commands of `steps` in reverse order; return every error (none is swallowed).

    Consecutive commands that can share a process do (namespace deletions, link deletions,
    stopping processes); a guard is checked right before its command runs, or, for a guard with
    no side effect on a command in a batch, right before the batch runs. A final step (the state
    directory) is undone only when everything before it was."""
    errors: list[str] = []
    ordered = undo_order(steps)
    pending: list[tuple[Step, Command]] = []

    def flush() -> None:
        if not pending:
            return
        for unit in batch.group(list(pending), min_size=2 if batched else 10**9):
            assert unit.command is not None
            progress.command(unit.command)
            result = _attempt(runner, unit.command)
            if result.returncode != 0:
                step, cmd, result = _failure(unit, result)
                errors.append(f"undo of {step.id}: {describe(cmd, result)}")
        pending.clear()

    if announce:
        progress.begin(len(ordered))
    for step in ordered:
        if step.final:
            flush()
            if errors:
                continue
        if announce:
            progress.step(step, undo=True)
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
            result = _attempt(runner, cmd)
            if result.returncode != 0:
                errors.append(f"undo of {step.id}: {describe(cmd, result)}")
    flush()
    return errors


def setup(plan: Plan, runner: Runner | None = None, progress: Progress | None = None, batched: bool = True,
          recorded: Plan | None = None) -> None:
    """Set the topology up. On a host where it is not up at all, commands run in batches;
    where its state directory exists (a second run, or a run after a crash), step by step, each
    step skipped when its probe finds it done. When it is up with another definition
    (`recorded`, the plan of what is up), what changed is undone first, then the rest set up."""
    runner = runner or SubprocessRunner()
    progress = progress or Progress()
    preflight(plan, runner)
    if plan.firewall_note:
        progress.note(plan.firewall_note)
    for warning in plan.warnings:
        progress.warn(warning)
    progress.begin(sum(1 for s in plan.steps if s.commands))
    with runner.lock(plan.lock_file), _umask():
        _host_checks(plan, runner, progress)
        if recorded is None and isinstance(runner, SubprocessRunner):
            from nsgen import record

            recorded = record.plan_of(plan.name)  # what is up, read under the lock
        fresh = not runner.check(("test", "-d", plan.state_dir))
        begun: list[Step] = []
        changing = recorded is not None and recorded.digest != plan.digest
        try:
            with _signals_interrupt():
                if changing:
                    from nsgen import converge

                    assert recorded is not None
                    converge.change(recorded, plan, runner, progress, begun)
                elif fresh and batched:
                    _setup_batched(plan.steps, runner, progress, begun)
                else:
                    setup_stepwise(plan, runner, progress, begun, batched=batched)
        except Exception as exc:  # a failed command, an interrupt, or any error of nsgen's own
            reason = f"interrupted by {exc}" if isinstance(exc, Interrupted) else str(exc) if isinstance(exc, ExecutionError) else f"nsgen: {exc}"
            if changing:
                reason += (f"\nwhat this run added to {plan.name} is undone; what it removed stays removed, what did not change is "
                           f"still up, and {plan.record} holds the new definition: run the setup again to finish, or the teardown")
            _rollback(plan, reason, begun, runner, progress, batched, complete=not changing,
                      status=exc.status if isinstance(exc, Interrupted) else 1)
    progress.end(f"topology {plan.name} is up")


def _rollback(plan: Plan, reason: str, begun: list[Step], runner: Runner, progress: Progress, batched: bool, complete: bool = True,
              status: int = 1) -> None:
    progress.clear()  # the live line gives way to what the undo says
    with _signals_ignored():
        errors = undo_steps(begun, runner, progress, batched=batched)
    if errors:
        message = reason + "\nundoing it left errors:\n" + "\n".join(f"  {e}" for e in errors)
    elif not complete:
        message = reason
    else:
        message = f"{reason}\nundid the {len(begun)} step(s) this run began; nothing of it is left"
    raise ExecutionError(message, status) from None


def run_step(step: Step, runner: Runner, progress: Progress) -> None:
    for cmd in step.commands:
        if not _guards_pass(cmd, runner):
            continue
        progress.command(cmd)
        result = _attempt(runner, cmd)
        if result.returncode != 0:
            raise ExecutionError(f"step {step.id} failed: {describe(cmd, result)}")


def setup_stepwise(plan: Plan, runner: Runner, progress: Progress, begun: list[Step], keep: frozenset[str] = frozenset(),
                   batched: bool = False, redo: frozenset[str] = frozenset()) -> None:
    """Every step in order, skipped when its probe finds it done (except the steps `redo` names,
    done again over what is there); `keep` names steps that are
    never undone by a rollback of this run (they hold what was up before it). Batched, every
    probe is asked first (each tells of its own step's resource, which no earlier step of this
    run makes), and the steps left run in batches, as a setup from nothing does."""
    if batched:
        todo: list[Step] = []
        for step in plan.steps:
            if step.begun_with and all(s.id != step.begun_with for s in todo):
                continue
            if step.probe and step.id not in redo and all(check(runner, p) for p in step.probe):
                if step.commands:
                    progress.step(step, skipped=True)
                continue
            todo.append(step)
        _setup_batched(todo, runner, progress, begun, keep)
        return
    for step in plan.steps:
        if step.begun_with and all(s.id != step.begun_with for s in begun):
            continue  # it goes with a step this run did not begin
        if step.probe and step.id not in redo and all(check(runner, p) for p in step.probe):
            if step.commands:
                progress.step(step, skipped=True)
            continue
        if step.commands:
            progress.step(step)
        if step.id not in keep:
            begun.append(step)
        run_step(step, runner, progress)


def _setup_batched(steps: list[Step] | tuple[Step, ...], runner: Runner, progress: Progress, begun: list[Step],
                   keep: frozenset[str] = frozenset()) -> None:
    """Units in order; a run of consecutive batches that each configure one namespace runs side
    by side (they touch nothing in common). Every step of a wave is begun before it starts."""
    units = batch.setup_units(tuple(steps))
    i = 0
    while i < len(units):
        wave = [units[i]]
        while _in_namespace(wave[0]) and i + len(wave) < len(units) and _in_namespace(units[i + len(wave)]):
            wave.append(units[i + len(wave)])
        i += len(wave)
        for unit in wave:
            begun.extend(s for s in unit.steps if s.id not in keep)
            _announce(unit, progress)
        commands = [u.command for u in wave if u.command is not None and _guards_pass(u.command, runner)]
        if not commands:
            continue
        if len(commands) > 1:
            results = runner.run_many(commands)
        else:
            results = [_attempt(runner, commands[0])]
        for unit, result in zip([u for u in wave if u.command in commands], results):
            if result.returncode != 0:
                step, cmd, result = _failure(unit, result)
                raise ExecutionError(f"step {step.id} failed: {describe(cmd, result)}")


def _announce(unit: batch.Unit, progress: Progress) -> None:
    """The steps of a unit, each with the commands of its own, then what runs them all (-v)."""
    for step in unit.steps:
        if not step.commands:
            continue  # it matters at teardown only
        progress.step(step)
        for owner, cmd in unit.parts:
            if owner is step and unit.is_batch:
                progress.command(cmd)
    if unit.command is not None:
        progress.command(unit.command, [] if unit.is_batch else None)


def _in_namespace(unit: batch.Unit) -> bool:
    cmd = unit.command
    return cmd is not None and cmd.argv[0] == "nsenter" and not cmd.only_if


def teardown(plan: Any, runner: Runner | None = None, progress: Progress | None = None, batched: bool = True) -> None:
    """Undo every step, newest first. When something could not be undone, the state directory
    (the record a second teardown follows) is kept, and the error says what is still there."""
    runner = runner or SubprocessRunner()
    progress = progress or Progress()
    preflight(plan, runner)
    with runner.lock(plan.lock_file), _signals_ignored(), _umask():
        errors = undo_steps(list(plan.steps), runner, progress, announce=True, batched=batched)
        left = leftovers(plan, runner) if errors else []
    progress.clear()
    if errors:
        lines = ["teardown of " + plan.name + " could not undo everything:", *(f"  {e}" for e in errors)]
        if left:
            lines += ["still there:", *(f"  {what}" for what in left)]
        lines.append(f"its state directory {plan.state_dir} is kept: run the teardown again to finish the job")
        raise ExecutionError("\n".join(lines))
    progress.end(f"topology {plan.name} is down")


def leftovers(plan: Any, runner: Runner) -> list[str]:
    """The named resources of the plan that are still there and still its own."""
    found = []
    for step in plan.steps:
        if step.resource and step.probe and all(check(runner, p) for p in step.probe) and all(check(runner, p) for p in step.ours):
            found.append(step.resource)
    return found
