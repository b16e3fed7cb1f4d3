"""Render lays a plan out as bash scripts; it turns Commands into shell lines and never invents commands.

The Jinja environment is made here and only here. Its `finalize` shell-quotes every `{{ }}` value
unless it is already `Shell` text built by this module (a Command joined with `shlex.join`, a
comment with every line prefixed), so a template cannot place an unquoted value by mistake.
"""

from __future__ import annotations

import functools
import shlex
from pathlib import Path
from typing import Any, NamedTuple

from nsgen.plan import Command, Plan, Step
from nsgen.resources import shipped

HEREDOC = "NSGEN_EOF"


class Shell(str):
    """Text that is already valid, safe shell: finalize passes it through untouched."""


# Words bash reads as its own where a command may start: harmless as arguments, but quoted anyway
# so that no reader (nor shellcheck) takes `then` or `done` among a process's words for syntax.
RESERVED = frozenset("if then else elif fi case esac for select while until do done in function time coproc".split())


def quote(word: str) -> str:
    return f"'{word}'" if word in RESERVED else shlex.quote(word)


def _finalize(value: Any) -> str:
    if value is None:
        raise ValueError("a template printed None: a value the plan should have resolved is missing")
    if isinstance(value, Shell):
        return value
    return quote(str(value))


def _argv(argv: tuple[str, ...]) -> str:
    """Each word quoted as needed, except that a lone `!` (test's negation) is left bare: it needs no quoting."""
    return " ".join(word if word == "!" else quote(word) for word in argv)


def _probe(argv: tuple[str, ...]) -> str:
    """A silent check: `test` prints nothing; anything else has its output discarded. ("!", ...) negates."""
    if argv[0] == "!":
        return "! " + _probe(argv[1:])
    return _argv(argv) if argv[0] == "test" else f"{_argv(argv)} >/dev/null 2>&1"


def _delimiter(body: list[str]) -> str:
    """The here-document's end marker: NSGEN_EOF, or a numbered one when a line of the text is
    exactly that (a value may hold anything), so that no text can end it early."""
    word, n = HEREDOC, 0
    while word in body:
        n += 1
        word = f"{HEREDOC}_{n}"
    return word


def command_line(cmd: Command, indent: int = 0, on_error: str | None = None) -> Shell:
    """The shell form of one Command: quoted argv plus the redirections its fields describe.

    Lines are indented by `indent` spaces, except a here-document's text and delimiter. With
    `on_error`, a shell command that runs when the command (or its if-block) fails.
    """
    rows: list[tuple[str, bool]] = [(_argv(cmd.argv), True)]  # (text, may be indented)
    if cmd.detach:
        log, pidfile = cmd.detach
        rows = [(f"{rows[0][0]} >>{shlex.quote(log)} 2>&1 </dev/null 9>&- &", True), (f'echo "$!" >{shlex.quote(pidfile)}', True)]
    if cmd.input is not None:
        body = cmd.input.rstrip("\n").split("\n")
        end = _delimiter(body)
        rows[-1] = (f"{rows[-1][0]} <<'{end}'", True)
        rows += [(row, False) for row in body] + [(end, False)]
    if on_error and not cmd.only_if:
        rows[0] = (f"{rows[0][0]} || {on_error}", rows[0][1])
    if cmd.only_if:
        test = " && ".join(_probe(probe) for probe in cmd.only_if)
        rows = [(f"if {test}; then", True), *((("  " + r) if ok else r, ok) for r, ok in rows),
                ("fi" + (f" || {on_error}" if on_error else ""), True)]
    pad = " " * indent
    return Shell("\n".join(pad + r if ok else r for r, ok in rows))


def probe_test(probes: tuple[tuple[str, ...], ...], fast_links: bool = False) -> Shell:
    """Probes joined with &&; with fast_links, `ip link show NAME` becomes `has_link NAME` (the
    batched script's lookup in one listing of the host's links)."""
    return Shell(" && ".join(_argv(("has_link", p[3])) if fast_links and p[:3] == ("ip", "link", "show") and len(p) == 4 else _probe(p)
                             for p in probes))


def none_of(probes: tuple[tuple[str, ...], ...]) -> Shell:
    """A test that succeeds when every probe fails: `! p1 && ! p2`."""
    return Shell(" && ".join("! " + _probe(p) for p in probes))


def not_all(probes: tuple[tuple[str, ...], ...]) -> Shell:
    """A test that succeeds when not every probe succeeds: `! { p1 && p2; }` (`! p1` for one)."""
    inner = " && ".join(_probe(p) for p in probes)
    return Shell(f"! {inner}" if len(probes) == 1 else f"! {{ {inner}; }}")


def comment(text: str) -> Shell:
    """Every line of text as a bash comment (text may be anything: it cannot escape the comment)."""
    return Shell("\n".join(f"# {row}".rstrip() for row in str(text).replace("\r", "").split("\n")))


def _bytecode_cache(jinja2):
    """Compiled templates kept in the user's cache folder (keyed by each template's source), so
    a render does not parse and compile them again; without a folder that is safely ours, none."""
    from nsgen.cache import folder

    where = folder("templates")
    return jinja2.FileSystemBytecodeCache(where) if where else None


@functools.lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        bytecode_cache=_bytecode_cache(jinja2),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=_finalize,
        comment_start_string="{##",  # bash has ${#array[@]}
        comment_end_string="##}",
    )
    env.filters["sh"] = command_line
    env.filters["probe"] = probe_test
    env.filters["none_of"] = none_of
    env.filters["not_all"] = not_all
    env.filters["batch_line"] = batch_line
    env.filters["comment"] = comment
    return env


def templates_dir() -> Path:
    return shipped("templates")


class UndoUnit(NamedTuple):
    """Undo commands a batched teardown runs in one process: `kind` is "ip" (lines of one `ip
    -batch`), "stop" (namespaces for one stop_processes), "undo" (one iptables_undo fed every
    table's text) or "one" (a command as it is); each part keeps its guards, checked in the script."""

    kind: str
    parts: tuple[tuple[Step, Command], ...]
    command: Command | None = None  # what runs ("undo": one iptables_undo fed every table's text)

    @property
    def steps(self) -> list[Step]:
        return list(dict.fromkeys(step for step, _ in self.parts))


def undo_units(plan: Plan) -> list[UndoUnit]:
    """The teardown's undo commands, newest step first, consecutive ones that can share a
    process grouped (as `nsgen run --teardown` groups them)."""
    from nsgen import batch

    ordered = plan.teardown_steps()
    items = [(step, cmd) for step in ordered if not step.final for cmd in step.undo]
    units: list[UndoUnit] = []
    for step, cmd in items:
        bare = cmd._replace(only_if=())
        key = batch.key(bare)
        kind = {"host": "ip", "stop": "stop", "undo": "undo"}.get(key[0] if key else "", "one")
        same_step = bool(units) and units[-1].parts[-1][0] is step
        same_tool = kind != "undo" or units[-1].parts[-1][1].argv == cmd.argv if units else True
        if units and units[-1].kind == kind and (kind != "one" or same_step) and same_tool:
            units[-1] = units[-1]._replace(parts=(*units[-1].parts, (step, cmd)))
        else:
            units.append(UndoUnit(kind, ((step, cmd),)))
    # one iptables_undo (or ip6tables_undo) fed every table's text
    return [u._replace(command=u.parts[0][1]._replace(only_if=(), input="".join(c.input or "" for _, c in u.parts))) if u.kind == "undo" else u
            for u in units]


def batch_line(cmd: Command) -> str:
    """An `ip` command as a line of `ip -batch`."""
    from nsgen.batch import _line

    return _line(cmd)


def template_paths() -> dict[str, str]:
    """The state paths the scripts' functions name."""
    from nsgen.names import FORWARD6_DIR, FORWARD_DIR, RECORD, STATE_ROOT

    return {"state_root": STATE_ROOT, "forward_dir": FORWARD_DIR, "forward6_dir": FORWARD6_DIR, "record": RECORD}


def render(plan: Plan, *, teardown: bool = False, batched: bool = False, picture: str | None = None, note: str = "") -> str:
    """The setup script (batched, or one command a line) or the teardown script of a plan;
    `note` is a line for the header (where the plan comes from, when that is worth saying)."""
    from nsgen import __version__
    from nsgen.diagram import text_picture
    from nsgen.names import NETNS_DIR, device_group
    from nsgen.plan import START_WINDOW

    name = ("teardown-batch.sh.j2" if batched else "teardown.sh.j2") if teardown else "setup-batch.sh.j2" if batched else "setup.sh.j2"
    units = []
    if batched and not teardown:
        from nsgen.batch import setup_units

        units = setup_units(plan.steps)
    return environment().get_template(name).render(
        plan=plan,
        version=__version__,
        picture=picture if picture is not None else text_picture(plan.topology),
        sections=plan.sections(),
        step_index={step.id: i for i, step in enumerate(plan.steps)},
        units=units,
        # Both setup scripts hold the lock from their start, so one listing of the host's links,
        # taken then, answers every "does this link exist yet" probe.
        fast_links=not teardown,
        paths=template_paths(),
        start_window=START_WINDOW,
        netns_dir=NETNS_DIR,
        group=device_group(plan.name),
        undo_units=undo_units(plan) if teardown and batched else [],
        note=note,
        host_flag=f" --host {plan.topology.on_host}" if plan.topology.on_host else "",  # one host's part of a topology across hosts
    )
