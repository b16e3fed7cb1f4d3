"""The host's sysctls a topology needs: forwarding, per address family, kept and put back; and
the sysctls a container sets in its own namespace (nothing to put back: they go with it).

Forwarding is shared by every topology: the first one that needs it keeps the value from before
(`before`) and each one that needs it is listed as a user; the last user's teardown, once its
devices are gone, puts the value back (only when it differs)."""

from __future__ import annotations

from typing import NamedTuple

from nsgen.names import FORWARD6_DIR, FORWARD_DIR, IP6_FORWARD, IP_FORWARD, NETNS_DIR, SYSCTL_DIR
from nsgen.plan.builder import Builder
from nsgen.plan.steps import C, Check, Command, Requirement, Step, set_sysctl, write_file


class Forwarding(NamedTuple):
    step: str  # the step's id
    key: str  # the sysctl
    proc: str  # its file
    folder: str  # nsgen's memory of it: before, users/


FORWARDING = {
    4: Forwarding("ip_forward", "net.ipv4.ip_forward", IP_FORWARD, FORWARD_DIR),
    6: Forwarding("ipv6_forwarding", "net.ipv6.conf.all.forwarding", IP6_FORWARD, FORWARD6_DIR),
}


def restore_forwarding(group: str | None, version: int = 4) -> tuple[Command, ...]:
    """Put forwarding of a family back when no topology is a user of it any more (the users'
    folder is empty) and no device of group `group` is left (None: whatever devices are left, for
    a topology that is up and no longer needs the family)."""
    f = FORWARDING[version]
    before, users = f"{f.folder}/before", f"{f.folder}/users"
    gone = (("!", "group_has_links", group),) if group else ()
    return (
        C("rmdir", "--ignore-fail-on-non-empty", users, only_if=(("test", "-d", users), *gone)),
        C("cp", before, f.proc, only_if=(("test", "-e", before), ("test", "!", "-d", users), ("!", "cmp", "-s", before, f.proc))),
        C("rm", "-rf", f.folder, only_if=(("test", "-d", f.folder), ("test", "!", "-d", users))),
    )


def _families(b: Builder) -> tuple[int, ...]:
    return b.versions() if b.t.host.ip_forward else ()


def restore_steps(b: Builder) -> None:
    """Nothing to do at setup. At teardown these come after every device is gone: the last
    topology that needed forwarding puts back the value from before the first (only when it
    differs: nothing is written that needs no writing), never while this topology's own
    devices are still there (a teardown that could not delete them)."""
    for version in (4, 6) if 6 in b.versions() else (4,):
        f = FORWARDING[version]
        b.add(
            Step(
                id=f"{f.step}:restore",
                section="State",
                summary=f"Teardown puts {f.key} back to the value it had before the first nsgen topology turned it on, "
                "once no topology needs forwarding and this one's devices are gone.",
                commands=(),
                undo=restore_forwarding(b.group, version),
            )
        )


def forwarding(b: Builder) -> None:
    families = _families(b)
    for version in families:
        f = FORWARDING[version]
        b.requirements.append(
            Requirement(
                (("grep", "-qx", "1", f.proc), ("test", "-w", f.proc)),
                f"{f.key} is off and cannot be turned on: {f.proc} is not writable "
                f"({'is /proc/sys read-only here?' if version == 4 else 'is IPv6 disabled on this host, or /proc/sys read-only?'}); "
                "nothing was changed",
            )
        )
        before, users = f"{f.folder}/before", f"{f.folder}/users"
        me = f"{users}/{b.t.name}"
        router = "a router" if version == 4 else "an IPv6 router"
        turn_on, check = set_sysctl(f.key, "1", only_if=(("!", "grep", "-qx", "1", f.proc),))
        b.add(
            Step(
                id=f.step,
                section="Forwarding",
                summary=f"Make the host {router} ({f.key}=1), keeping the value it had so teardown can put it back.",
                commands=(
                    C("mkdir", "-p", users),
                    C("cp", f.proc, before, only_if=(("test", "!", "-e", before),)),
                    C("touch", me),
                    turn_on,
                ),
                checks=(check,),
                # No longer a user of forwarding; the value goes back with the :restore step.
                undo=(C("rm", "-f", me),),
                probe=(("test", "-e", me), ("grep", "-qx", "1", f.proc)),
            )
        )
    if families and b.t.host.persist:
        conf = f"{SYSCTL_DIR}/60-nsgen-{b.t.name}.conf"
        header = f"# Written by nsgen for topology {b.t.name}."
        lines = "".join(f"{FORWARDING[v].key} = 1\n" for v in families)
        write, check = write_file(conf, f"{header}\n{lines}")
        b.add(
            Step(
                id="ip_forward:persist",
                section="Forwarding",
                summary=f"Keep forwarding on after a reboot: {conf} is read at boot.",
                commands=(write,),
                checks=(check,),
                undo=(C("rm", "-f", conf, only_if=(("grep", "-qxF", header, conf),)),),
            )
        )


def inside(b: Builder) -> None:
    """Each container's own sysctls, in its namespace (after its interfaces are there, before its processes start)."""
    for c in b.t.containers.values():
        if not c.sysctls:
            continue
        shown = ", ".join(f"{k} = {v}" for k, v in c.sysctls)
        b.add(
            Step(
                id=f"sysctls:{c.name}",
                section="Inside the containers",
                summary=f"Set {shown} in {c.name}'s namespace only (the host keeps its own values); they go with the namespace.",
                commands=(C("nsenter", f"--net={NETNS_DIR}/{c.name}", "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in c.sysctls)),),
                checks=tuple(Check("sysctl", f"{c.name}: {k} = {v}", path="/proc/sys/" + k.replace(".", "/"), text=v, netns=c.name)
                             for k, v in c.sysctls),
                group=f"container:{c.name}",
            )
        )
