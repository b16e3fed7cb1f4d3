"""The containers' processes: started detached in their namespaces, then waited for until ready."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsgen.models import SETPRIV
from nsgen.names import state_dir
from nsgen.plan.builder import Builder
from nsgen.plan.steps import B, C, Step

if TYPE_CHECKING:
    from nsgen.models import Process

# A process runs under `sh -c EXIT_STATUS BASE PROGRAM...`: the program's words are passed as
# arguments, never parsed by the shell; the program's pid lands in BASE.pid, and its exit status
# in BASE.exit when it ends (the shell waits for it: it is what `nsgen ps` reports).
EXIT_STATUS = '"$@" & echo "$!" >"$0.pid"; wait "$!"; echo "$?" >"$0.exit"'
ENV = "env"  # coreutils: a process's environment and working directory (-C)
START_WINDOW = 0.5  # seconds a process with nothing to wait for must keep running after its start


def processes(b: Builder) -> None:
    sdir = state_dir(b.t.name)
    waits: list[str] = []
    for c in b.t.containers.values():
        for i, p in enumerate(c.processes):
            base = f"{sdir}/{c.name}.{i}"
            # nsgen's port proxy starts on the host, where it listens on [::1], then enters the container
            where = () if p.host_side else ("ip", "netns", "exec", c.name)
            ready = (f"{base}.ready",) if p.host_side else ()
            summary = (f"Start nsgen's port proxy for {c.name}'s ports published on [::1] (the kernel never forwards ::1): it "
                       f"listens on the host, then moves into {c.name}, detached; output in {base}.log." if p.host_side else
                       f"Start `{' '.join(p.argv)}` in {c.name}{_how(p)}, detached; output in {base}.log; the `sh -c` in front "
                       f"records its pid in {base}.pid and, when it ends, its exit status in {base}.exit.")
            b.add(
                Step(
                    id=f"process:{c.name}:{i}",
                    section="Processes",
                    summary=summary,
                    commands=(
                        C("rm", "-f", f"{base}.pid", f"{base}.exit", f"{base}.shim", *ready),
                        C("setsid", *where, "sh", "-c", EXIT_STATUS, base, *prefix(p), *p.argv, detach=(f"{base}.log", f"{base}.shim")),
                    ),
                    undo=(B("stop_processes", c.name, only_if=(b.netns_ours(c.name),)),),
                    probe=(("process_alive", c.name, f"{base}.pid"),),
                    group=f"container:{c.name}",
                )
            )
            waits += [c.name, base, f"{p.ready_timeout:g}", *(p.ready[:1] or ("none",)), str(len(p.ready[1:])), *p.ready[1:],
                      str(len(p.argv)), *p.argv]
    if waits:
        b.add(
            Step(
                id="ready",
                section="Processes",
                summary="Wait until every process runs and is ready (listening on its port, its file there, its check "
                f"passing), or, with nothing to wait for, still runs after {START_WINDOW:g} s; one that ends or is not "
                "ready in time fails the setup, with its last lines of output.",
                commands=(B("wait_ready", *waits),),
            )
        )


def prefix(p: Process) -> tuple[str, ...]:
    """What runs in front of a program for its user, environment and working directory: setpriv,
    then env; each hands its process on with exec, so the pid the shell in front records stays the
    program's."""
    words: list[str] = []
    if p.user is not None:
        uid, gid, groups = p.user
        words += [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--init-groups" if groups else "--clear-groups"]
    if p.environment or p.working_dir:
        words += [ENV, *(("-C", p.working_dir) if p.working_dir else ()), *(f"{k}={v}" for k, v in p.environment)]
    return tuple(words)


def _how(p: Process) -> str:
    """How a process runs besides its command, for its summary: ` as uid 65534, in /srv, with 2 environment variables`."""
    parts = [f"as uid {p.user[0]} gid {p.user[1]}" if p.user else "", f"in {p.working_dir}" if p.working_dir else "",
             f"with {', '.join(k for k, _v in p.environment)} set" if p.environment else ""]
    return "".join(f" {part}" for part in parts if part)
