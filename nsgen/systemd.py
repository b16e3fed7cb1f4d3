"""Systemd writes a unit that brings a topology up at boot and down at stop; it knows nothing of networks.

The unit runs `nsgen run -f FILE` (Type=oneshot, RemainAfterExit=yes) and `nsgen run --teardown
-f FILE` at stop, with FILE made absolute. It is rendered from templates/nsgen.service.j2 through
render's one Jinja environment; since unit files are not shell, every value reaches the template
already quoted for systemd (systemd.syntax(7)), marked as text finalize must leave alone.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from nsgen.errors import NsgenError
from nsgen.plan import Plan

UNIT_DIR = "/etc/systemd/system"


def unit_name(plan: Plan) -> str:
    return f"nsgen-{plan.name}.service"


def unit_value(text: str) -> str:
    """A setting's value with systemd's specifiers (%) escaped; a newline would end the setting."""
    if "\n" in text or "\r" in text:
        raise NsgenError(f"{text!r} cannot be written into a systemd unit: it contains a line break")
    return text.replace("%", "%%")


def exec_word(word: str) -> str:
    """One word of an Exec= command line: specifiers and variables escaped, quoted when it must be."""
    text = unit_value(word).replace("$", "$$")
    if text and not any(ch.isspace() or ch in "\"'\\;" for ch in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(argv: list[str] | tuple[str, ...]) -> str:
    if not argv or not argv[0].startswith("/"):
        raise NsgenError(f"a systemd unit needs the program's absolute path, not {argv[0] if argv else 'nothing'!r}")
    return " ".join(exec_word(word) for word in argv)


def render_unit(plan: Plan, topology_file: Path, nsgen_argv: tuple[str, ...]) -> str:
    """The unit text. Raises NsgenError unless the topology sets host.persist: true."""
    from nsgen import __version__
    from nsgen.render import Shell, environment

    if not plan.topology.host.persist:
        raise NsgenError(
            f"topology {plan.name} does not set host.persist: true; a unit that brings it up at every boot "
            "is what host.persist asks for: set it in the topology file"
        )
    path = str(topology_file.resolve())
    host = ["--host", plan.topology.on_host] if plan.topology.on_host else []  # one host's part of a topology across hosts
    run = [*nsgen_argv, "run", "-q", "-f", path, *host]
    stop = [*nsgen_argv, "run", "--teardown", "-q", "-f", path, *host]
    unit = unit_name(plan)
    return environment().get_template("nsgen.service.j2").render(
        version=__version__,
        name=plan.name,
        unit=unit,
        header=(
            f"nsgen {__version__}: systemd unit for topology {plan.name}, read from {path}\n"
            f"Install: nsgen render --systemd -f {shlex.quote(path)}{' --host ' + plan.topology.on_host if host else ''} -o {UNIT_DIR}/{unit}\n"
            f"         systemctl daemon-reload && systemctl enable --now {unit}"
        ),
        description=Shell(unit_value(f"nsgen topology {plan.name}: namespaces, links, routes and firewall rules")),
        exec_start=Shell(exec_line(run)),
        exec_stop=Shell(exec_line(stop)),
    )
