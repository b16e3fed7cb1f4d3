"""The builder every part of the plan adds its steps to, with what they share: the topology,
its device group, its mark, and the probes that tell its namespaces and links from others'."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsgen.names import device_group, intent_path, mark
from nsgen.plan.steps import Argv, Requirement, Step

if TYPE_CHECKING:
    from nsgen.models import Network, Topology


class Builder:
    def __init__(self, topology: Topology):
        self.t = topology
        self.steps: list[Step] = []
        self.requirements: list[Requirement] = []
        self.group = device_group(topology.name)
        self.mark = mark(topology.name)
        self.intent = intent_path(topology.name)

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def netns_ours(self, ns: str) -> Argv:
        return ("netns_ours", self.t.name, ns, self.intent)

    def link_ours(self, name: str) -> Argv:
        return ("link_ours", name, self.group, self.t.name)

    def host_devices(self) -> list[str]:
        """Every host device the topology makes: its bridges and the host ends of its veth pairs (a
        macvlan or ipvlan interface lives in its namespace only)."""
        names = [n.bridge for n in self.t.networks.values() if n.bridge]
        return names + [a.host_interface for c in self.t.containers.values() for a in c.attachments if a.host_interface]

    def host_dev(self, net: Network) -> str | None:
        """The host device that holds the network's gateway addresses (None: nothing attaches to a veth
        network; a macvlan or ipvlan network has none, its gateway is the LAN's router)."""
        if net.direct:
            return None
        if net.driver == "bridge":
            return net.bridge
        members = self.t.members(net.name)
        return members[0][1].host_interface if members else None

    def versions(self) -> tuple[int, ...]:
        """The address families the topology's networks have (4, 6 or both): those the host routes (a
        macvlan or ipvlan network's are its LAN's, not the host's business), unless it routes none."""
        routed = [n for n in self.t.networks.values() if not n.direct] or list(self.t.networks.values())
        return tuple(v for v in (4, 6) if any(v in n.versions for n in routed))


def link_exists(name: str) -> Argv:
    return ("ip", "link", "show", name)


def with_prefix(address: object, prefixlen: int) -> str:
    return f"{address}/{prefixlen}"
