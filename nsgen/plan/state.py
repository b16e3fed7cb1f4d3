"""The record of what is up, written first and removed last; and the mark that a setup finished."""

from __future__ import annotations

from nsgen.names import STATE_ROOT, record_path, state_dir
from nsgen.plan.builder import Builder
from nsgen.plan.steps import C, Step, write_file


def state(b: Builder, record_text: str, digest_line: str) -> None:
    sdir, record = state_dir(b.t.name), record_path(b.t.name)
    write, check = write_file(record, record_text, parents=True)
    b.add(
        Step(
            id="state",
            section="State",
            summary=f"Record what topology {b.t.name} is, in {record}: teardown and later runs undo exactly what is up. "
            f"Its processes' pids and logs live beside it.",
            commands=(write,),
            checks=(check,),
            undo=(
                C("rm", "-rf", sdir, only_if=(("state_ours", b.t.name),)),
                C("rmdir", "--ignore-fail-on-non-empty", STATE_ROOT, only_if=(("test", "-d", STATE_ROOT),)),
            ),
            probe=(("grep", "-qF", digest_line, record),),
            final=True,
        )
    )


def done(b: Builder) -> None:
    marker = f"{state_dir(b.t.name)}/up"
    b.add(
        Step(
            id="up",
            section="Done",
            summary=f"Mark topology {b.t.name} as completely up.",
            commands=(C("touch", marker),),
            undo=(C("rm", "-f", marker),),
            probe=(("test", "-e", marker),),
        )
    )
