"""Converge brings a topology that is up with one definition to another: it knows which steps
belong together, which changed, and in what order to undo and redo them.

A step belongs to a container (its namespace, veth pairs, addresses, routes, resolver, processes),
a network (its bridge) or the topology as a whole (the record, forwarding, each firewall table).
A container or network whose steps differ in any way between the two plans is removed and made
again, and so is every container on a network that changed; a topology-wide step that differs is
undone and done again. Everything else stays as it is: a container whose definition did not change
keeps its namespace and its processes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from nsgen.errors import ExecutionError
from nsgen.plan import Plan, Step, restore_forwarding

# Topology-wide steps whose undo is the topology's end, never part of a change: the record is
# written again; the device group and the forwarding setting stay while the topology is up.
NEVER_UNDONE = frozenset({"state", "devices", "ip_forward:restore", "ipv6_forwarding:restore"})


class Change(NamedTuple):
    undo: list[Step]  # steps of the old plan to undo, in plan order
    lines: list[str]  # what changes, for a person
    rewrite: tuple[Step, ...] = ()  # steps of the new plan done again over what is there (a hosts file, in place)


def _groups(steps: tuple[Step, ...]) -> dict[str, tuple[Step, ...]]:
    groups: dict[str, list[Step]] = {}
    for step in steps:
        groups.setdefault(step.group, []).append(step)
    return {g: tuple(s) for g, s in groups.items()}


def _on_network(topology: Any, network: str) -> set[str]:
    return {f"container:{c.name}" for c in topology.containers.values() if any(a.network == network for a in c.attachments)}


def diff(old: Plan, new: Plan) -> Change:
    before, after = _groups(old.steps), _groups(new.steps)
    changed = {g for g in (before.keys() | after.keys()) - {"topology"} if before.get(g) != after.get(g)}
    for group in sorted(changed):
        if group.startswith("network:"):
            name = group.split(":", 1)[1]
            changed |= _on_network(old.topology, name) | _on_network(new.topology, name)
    old_wide = {s.id: s for s in before.get("topology", ())}
    new_wide = {s.id: s for s in after.get("topology", ())}
    wide = {i for i in old_wide.keys() | new_wide.keys() if old_wide.get(i) != new_wide.get(i)} - NEVER_UNDONE
    # A container's hosts file that changes is written again in place (a process that runs sees the
    # file it started with), unless the container goes: it is removed with it.
    names = {g for g in changed if g.startswith("hosts:") and g in after and g in before}
    changed -= names
    # A step that replaces what is there in one transaction (the nftables table) is done again:
    # undone first, its rules would be gone for a moment.
    replaced = {i for i in wide if i in old_wide and i in new_wide and new_wide[i].replaces}
    rewrite = tuple(s for s in new.steps if (s.group in names and s.probe) or s.id in replaced)
    undo = [s for s in old.steps if s.group in changed or (s.id in wide and s.id not in replaced)]
    if "ipv6_forwarding" in wide and "ipv6_forwarding" not in new_wide:
        # No longer a user of IPv6 forwarding while still up: put it back now (when no other
        # topology uses it), not at a teardown whose plan no longer knows it. Undone last.
        undo.insert(0, Step(id="ipv6_forwarding:restore", section="State", summary="Put IPv6 forwarding back.", commands=(),
                            undo=restore_forwarding(None, 6)))
    lines = _describe(changed, before, after, wide)
    if names:
        shown = ", ".join(sorted(g.split(":", 1)[1] for g in names))
        lines = [line for line in lines if line != "nothing but the record"] + [f"change the names seen in {shown}"]
    return Change(undo, lines, rewrite)


def _describe(changed: set[str], before: dict, after: dict, wide: set[str]) -> list[str]:
    lines = []
    for kind in ("network", "container"):  # a hosts group goes with its container
        for group in sorted(g for g in changed if g.startswith(kind + ":")):
            name = group.split(":", 1)[1]
            verb = "remove" if group not in after else "add" if group not in before else "change"
            lines.append(f"{verb} {kind} {name}")
    tables = sorted(i.split(":", 1)[1].replace("pass", "FORWARD pass") + (" IPv6" if i.startswith("firewall6:") else "")
                    for i in wide if i.startswith(("firewall:", "firewall6:")))
    tables += ["the nftables table"] * ("nftables" in wide)
    if tables:
        lines.append(f"change firewall rules ({', '.join(tables)})")
    if wide & {"ip_forward", "ip_forward:persist"}:
        lines.append("change forwarding (net.ipv4.ip_forward)")
    if "ipv6_forwarding" in wide:
        lines.append("change IPv6 forwarding (net.ipv6.conf.all.forwarding)")
    if any(i.startswith("conntrack") for i in wide):
        lines.append("forget the connection-tracking entries of the UDP ports that change")
    return lines or ["nothing but the record"]


def change(old: Plan, new: Plan, runner: Any, progress: Any, begun: list[Step]) -> None:
    """Undo what changed (newest first), then set the new plan up step by step, skipping what is
    done; a failure rolls back only what this run added."""
    from nsgen.execute import setup_stepwise, undo_steps

    plan = diff(old, new)
    progress.note(f"topology {new.name} is up with another definition; changing it:")
    for line in plan.lines:
        progress.note(f"  {line}")
    errors = undo_steps(plan.undo, runner, progress, batched=False)
    if errors:
        raise ExecutionError("removing what changed left errors:\n" + "\n".join(f"  {e}" for e in errors))
    again = frozenset(s.id for s in plan.rewrite)  # done again though there; never undone by a rollback (they were up)
    setup_stepwise(new, runner, progress, begun, keep=frozenset({"state", *again}), batched=True, redo=again)
