"""Namespaces: one a container, marked as the topology's; and at teardown, the devices and processes that must go first."""

from __future__ import annotations

from nsgen.names import NETNS_DIR
from nsgen.plan.builder import Builder
from nsgen.plan.steps import B, C, Step, write_file


def namespaces(b: Builder) -> None:
    write, check = write_file(b.intent, "".join(f"{c}\n" for c in b.t.containers))
    b.add(
        Step(
            id="namespaces",
            section="Namespaces",
            summary=f"Note which namespaces this setup is about to create, in {b.intent}: until each carries the topology's mark "
            "(the alias of its lo), that note tells it from someone else's.",
            commands=(write,),
            checks=(check,),
        )
    )
    for c in b.t.containers.values():
        b.add(
            Step(
                id=f"netns:{c.name}",
                section="Namespaces",
                summary=f"Create the network namespace {c.name}: the container's own interfaces, routes and firewall.",
                commands=(C("ip", "netns", "add", c.name),),
                undo=(C("ip", "netns", "delete", c.name, only_if=(b.netns_ours(c.name),)),),
                probe=(("test", "-e", f"{NETNS_DIR}/{c.name}"),),
                resource=f"network namespace {c.name}",
                ours=(b.netns_ours(c.name),),
                group=f"container:{c.name}",
            )
        )
    names = b.host_devices()
    if names:
        # Nothing to do at setup. At teardown this runs before the namespaces are deleted:
        # deleting a namespace would leave its veth pairs to the kernel's background work.
        b.add(
            Step(
                id="devices",
                section="Namespaces",
                summary=f"Teardown deletes every host device of topology {b.t.name} at once: its bridges and veth host ends "
                f"are in device group {b.group} and carry the alias {b.mark}, and deleting one end of a veth pair deletes the other.",
                commands=(),
                undo=(B("delete_links", b.group, b.t.name, *names),),
                probe=(("group_has_links", b.group),),
                resource=f"a link in device group {b.group} (another topology's name hashes alike: rename one)",
                ours=(("group_ours", b.group, b.t.name, *names),),
            )
        )
    for c in b.t.containers.values():
        # Nothing to do at setup; at teardown (after every namespace's other contents are
        # gone, before any namespace is deleted) whatever still runs inside is stopped,
        # or the namespace would outlive its name.
        b.add(
            Step(
                id=f"reap:{c.name}",
                section="Namespaces",
                summary=f"Teardown stops every process still running in {c.name} before the namespace is deleted.",
                commands=(),
                undo=(B("stop_processes", c.name, only_if=(b.netns_ours(c.name),)),),
                # a run that finds the namespace there (a second run) never stops its
                # processes when it fails
                begun_with=f"netns:{c.name}",
                group=f"container:{c.name}",
            )
        )
