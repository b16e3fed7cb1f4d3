"""The plan is the only place that knows `ip`, `sysctl` and `iptables` syntax; it knows nothing of shells.

`compile_plan(topology)` turns a resolved topology into an ordered tuple of `Step`s (steps.py),
each part of the tutorial made by its own module, in the tutorial's order: the state record,
bridges, namespaces, links, what is inside each container (addressing, its own sysctls), forwarding
(sysctls), the firewall (rules that name no program, written by a backend), DNS and names, processes. The setup
script, the teardown script and `nsgen run` all consume this one plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsgen.names import NETNS_DIR, NETNS_ETC, STATE_ROOT, chain_name, device_group, rule_tag, state_dir
from nsgen.plan.processes import EXIT_STATUS, START_WINDOW
from nsgen.plan.steps import BASIC, BUILTINS, PACKAGES, Command, Plan, Requirement, Step, title, tools_and_functions, undo_summary
from nsgen.plan.sysctls import restore_forwarding

if TYPE_CHECKING:
    from nsgen.models import Topology

__all__ = ["BASIC", "BUILTINS", "EXIT_STATUS", "NETNS_DIR", "NETNS_ETC", "PACKAGES", "START_WINDOW", "STATE_ROOT", "Command", "Plan",
           "Requirement", "Step", "chain_name", "compile_plan", "device_group", "restore_forwarding", "rule_tag", "state_dir"]


def compile_plan(topology: Topology) -> Plan:
    from nsgen import record
    from nsgen.plan import addressing, dns, firewall, links, namespaces, overlay, processes, state, sysctls
    from nsgen.plan.builder import Builder
    from nsgen.plan.guards import guards

    b = Builder(topology)
    digest = record.digest(topology)
    state.state(b, record.text(topology, digest), record.digest_line(digest))
    sysctls.restore_steps(b)
    links.bridges(b)  # before the namespaces: torn down after them, once their veths (its ports) are gone
    overlay.overlays(b)  # a VXLAN port on each bridge that spans hosts
    namespaces.namespaces(b)
    links.veths(b)
    addressing.inside(b)
    sysctls.inside(b)
    sysctls.forwarding(b)
    firewall.build(b)
    dns.dns(b)
    dns.hosts(b)
    processes.processes(b)
    state.done(b)
    checks = guards(b)
    tools, functions = tools_and_functions(b.steps, checks)
    steps = tuple(s._replace(title=title(s), undo_summary=undo_summary(s, topology)) for s in b.steps)
    return Plan(topology=topology, steps=steps, tools=tools, warnings=topology.warnings,
                requirements=tuple(b.requirements), guards=checks, digest=digest, functions=functions)
