"""Status reads what is up on this host from nsgen's records and the live processes; it changes nothing.

For each topology that is up (a state directory with a record nsgen can trust), its containers with
their addresses and published ports, and every process nsgen started: its pid, whether it runs,
the exit status it ended with (written by the `sh -c` nsgen starts it under), its command and log.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from nsgen import record
from nsgen.names import STATE_ROOT, state_dir


class ProcessRow(NamedTuple):
    topology: str
    container: str
    index: int  # type: ignore[assignment]  # shadows tuple.index
    pid: int | None
    state: str  # running, exited, gone (no exit status: stopped from outside), not started
    exit: int | None
    command: str
    log: str

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


def up() -> list[str]:
    """The topologies that are up on this host (their records), by name."""
    try:
        names = sorted(os.listdir(STATE_ROOT))
    except OSError:
        return []
    return [n for n in names if not n.startswith(".") and record.load(n) is not None]


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd) as f:
            return f.read().strip()
    except OSError:
        return None


def _runs(pid: int, netns: str) -> bool:
    from nsgen.builtins import _running, process_alive

    if os.geteuid() == 0:
        return process_alive(netns, "", pid=pid)
    return _running(pid)  # another user cannot see root's namespaces: whether it runs at all


def process_rows(name: str) -> list[ProcessRow]:
    found = record.load(name)
    if found is None:
        return []
    rows = []
    for c in found.topology.containers.values():
        for i, p in enumerate(c.processes):
            base = f"{state_dir(name)}/{c.name}.{i}"
            pid_text, exit_text = _read(f"{base}.pid"), _read(f"{base}.exit")
            pid = int(pid_text) if pid_text and pid_text.isdigit() else None
            code = int(exit_text) if exit_text and exit_text.lstrip("-").isdigit() else None
            if pid is None:
                state = "not started"
            elif code is not None:
                state = "exited"
            else:
                state = "running" if _runs(pid, c.name) else "gone"
            command = " ".join([p.argv[0].rsplit("/", 1)[-1], *p.argv[1:]])
            rows.append(ProcessRow(name, c.name, i, pid, state, code, command, f"{base}.log"))
    return rows


def container_rows(name: str) -> list[dict[str, Any]]:
    """Each container of a topology that is up: addresses per network, published ports, processes."""
    from nsgen.models import port_runs, run_shown

    found = record.load(name)
    if found is None:
        return []
    processes = process_rows(name)
    rows = []
    for c in found.topology.containers.values():
        mine = [p for p in processes if p.container == c.name]
        rows.append({
            "topology": name,
            "container": c.name,
            "addresses": {a.network: a.shown for a in c.attachments},
            "ports": [run_shown(first, last) for first, last in port_runs(c.ports)],  # a range once: *:8080-8082->80-82/tcp
            "processes": {"total": len(mine), "running": sum(p.state == "running" for p in mine),
                          "ended": [{"index": p.index, "exit": p.exit} for p in mine if p.state in ("exited", "gone")]},
        })
    return rows


def processes_summary(row: dict[str, Any]) -> str:
    summary = row["processes"]
    if not summary["total"]:
        return "-"
    text = f"{summary['running']} of {summary['total']} running"
    ended = [f"{e['index']}: {'exit ' + str(e['exit']) if e['exit'] is not None else 'stopped'}" for e in summary["ended"]]
    return text + (f" (ended {', '.join(ended)})" if ended else "")
