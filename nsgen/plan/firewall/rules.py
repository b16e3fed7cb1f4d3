"""What the firewall is for, in rules that name no firewall program.

A `Rule` says where a packet is met (its stage and hook), what it must match (interfaces,
addresses, protocol, port, connection state, the device group it goes to, a local destination)
and what happens to it (a verdict, a NAT target, or a jump to the topology's own chain), for one
address family. `rules(topology, version)` derives every rule of one family from the topology;
a backend (iptables.py) writes them in its own syntax, and nothing here changes when another
backend is added."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from nsgen.names import NSGEN_GROUPS

if TYPE_CHECKING:
    from nsgen.models import Attachment, Container, Network, PublishedPort, Topology

# The stages a packet meets, in order: before connection tracking's NAT (raw), then address
# translation (nat), then filtering of forwarded packets (filter).
STAGES = ("raw", "filter", "nat")


class Rule(NamedTuple):
    why: str  # what it is for, in one line (a comment above it in the script)
    stage: str  # raw, filter or nat
    hook: str  # prerouting, forward, output or postrouting
    verdict: str  # accept, drop, masquerade, snat, dnat or jump (to the topology's own chain)
    in_chain: bool = True  # in the topology's own chain (reached by a jump), else in the hook itself
    first: bool = False  # in the hook itself, ahead of what is there already
    in_dev: str | None = None
    not_in_dev: bool = False
    out_dev: str | None = None
    not_out_dev: bool = False
    src: str | None = None
    dst: str | None = None
    not_dst: bool = False
    protocol: str | None = None
    dport: int | None = None
    ctstate: tuple[str, ...] = ()
    not_to_group: str | None = None  # the packet does not go to a device of this group (value/mask)
    to_local: bool = False  # the destination is an address of this host
    to: str | None = None  # the NAT target: address and port (dnat), source address (snat)


class Table(NamedTuple):
    """The rules of one stage for one family, with whether it needs the topology's own chain."""

    stage: str
    version: int
    rules: tuple[Rule, ...]
    summary: str

    @property
    def chained(self) -> bool:
        return any(r.in_chain for r in self.rules)


def published(t: Topology) -> list[tuple[Container, Attachment, PublishedPort]]:
    return [(c, c.attachments[0], p) for c in t.containers.values() for p in c.ports if c.attachments]


def _nets(t: Topology, devs: dict[str, str], version: int) -> list[tuple[Network, str]]:
    return [(net, devs[net.name]) for net in t.networks.values() if net.name in devs and version in net.versions]


def _mine(t: Topology, net: Network, version: int) -> list[tuple[Container, Attachment, PublishedPort]]:
    """The ports published into network `net` over one family; one on [::1] is nsgen's port proxy's, never a rule's."""
    return [(c, a, p) for c, a, p in published(t) if a.network == net.name and version in p.versions(net.versions)
            and not (p.address is not None and p.address.version == 6 and p.address.is_loopback)]


def _label(p: PublishedPort) -> str:
    """The port as the user wrote it, and for one of a range which of its ports: `8080-8082:80-82 (8081 to 81)`."""
    return f"{p.spec} ({p.host_port} to {p.container_port})" if p.ranged else p.spec


def _target(address: object, port: int, version: int) -> str:
    return f"{address}:{port}" if version == 4 else f"[{address}]:{port}"


def raw(version: int) -> Table | None:
    """Before any NAT: a packet for 127.0.0.0/8 that did not start on this host (a neighbour
    routing 127.0.0.1 to it, a container) is dropped, so that neither a port published on
    127.0.0.1 nor a host service bound to loopback can be reached from elsewhere. (IPv6 needs no
    such rule: the kernel never accepts ::1 from outside the host.)"""
    if version != 4:
        return None
    rule = Rule("packets for 127.0.0.0/8 that did not start on this host stop here, before any NAT", "raw", "prerouting", "drop",
                in_chain=False, in_dev="lo", not_in_dev=True, dst="127.0.0.0/8")
    return Table("raw", 4, (rule,),
                 "Loopback stays loopback: packets for 127.0.0.0/8 that arrive on any interface but lo are dropped before NAT "
                 "(raw PREROUTING), so ports published on 127.0.0.1 and host services bound to it are reached from the host only.")


def filter_rules(t: Topology, devs: dict[str, str], version: int, chain: str) -> Table | None:
    """Traffic into each network first (replies, published ports, its own members; nothing else),
    then traffic out of the networks that route out. Order matters: the accept for traffic
    leaving one network must not let it into another."""
    nets = _nets(t, devs, version)
    if not nets:
        return None
    rules: list[Rule] = []
    for net, dev in nets:
        if net.routes_out:
            rules.append(Rule(f"replies into network {net.name}", "filter", "forward", "accept", out_dev=dev, ctstate=("RELATED", "ESTABLISHED")))
        accepted = set()  # one port of a container published at several host addresses: one rule lets it in
        for c, a, p in _mine(t, net, version):
            dst = str(a.address_of(version))
            if (dst, p.protocol, p.container_port) not in accepted:
                accepted.add((dst, p.protocol, p.container_port))
                rules.append(Rule(f"connections to {c.name}'s published port {_label(p)}", "filter", "forward", "accept", out_dev=dev,
                                  dst=dst, protocol=p.protocol, dport=p.container_port, ctstate=("DNAT",)))
        if net.driver == "bridge":
            rules.append(Rule(f"traffic within network {net.name}", "filter", "forward", "accept", in_dev=dev, out_dev=dev))
        rules.append(Rule(f"nothing else into network {net.name}", "filter", "forward", "drop", out_dev=dev))
    for net, dev in nets:
        if net.routes_out:
            # Out to anywhere but another container network: those (this topology's or
            # another's) are in nsgen's device groups, and their own rules decide.
            rules.append(Rule(f"traffic out of network {net.name}, unless it is headed into another container network", "filter", "forward",
                              "accept", in_dev=dev, not_to_group=NSGEN_GROUPS))
        else:
            rules.append(Rule(f"nothing out of internal network {net.name}", "filter", "forward", "drop", in_dev=dev))
    rules.append(Rule(f"forwarded packets go through {chain} first", "filter", "forward", "jump", in_chain=False, first=True))
    return Table("filter", version, tuple(rules),
                 f"Filter: the topology's own chain {chain}, reached first from FORWARD (so its networks work even where "
                 "FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing "
                 "else in; traffic out of each network that is not internal.")


def nat_rules(t: Topology, devs: dict[str, str], version: int, chain: str) -> tuple[Table | None, list[tuple[str, str]]]:
    """Masquerade on the way out (in POSTROUTING itself, as the tutorial writes it); published
    ports (DNAT) in the topology's own chain, for connections to any local address. Also: the
    networks whose host device must carry connections from 127.0.0.1 (route_localnet)."""
    post: list[Rule] = []
    dnat: list[Rule] = []
    localnet: list[tuple[str, str]] = []
    for net, dev in _nets(t, devs, version):
        subnet = str(net.subnet if version == 4 else net.subnet6)
        outbound = net.outbound_of(version)
        if net.masquerade and outbound is not None:
            post.append(Rule(f"network {net.name} reaches out from the host's address {outbound}", "nat", "postrouting", "snat",
                             in_chain=False, src=subnet, out_dev=dev, not_out_dev=True, to=str(outbound)))
        elif net.masquerade:
            post.append(Rule(f"network {net.name} reaches out as the host", "nat", "postrouting", "masquerade", in_chain=False,
                             src=subnet, out_dev=dev, not_out_dev=True))
    for net, dev in _nets(t, devs, version):
        subnet = str(net.subnet if version == 4 else net.subnet6)
        mine = _mine(t, net, version)
        for c, a, p in mine:
            dnat.append(Rule(f"published port {_label(p)} goes to {c.name}", "nat", "prerouting", "dnat",
                             dst=str(p.address) if p.address else None, protocol=p.protocol, dport=p.host_port,
                             to=_target(a.address_of(version), p.container_port, version)))
        if mine:
            post.append(Rule(f"a container of {net.name} reaching a published port of its own network: replies come back through the host",
                             "nat", "postrouting", "masquerade", in_chain=False, out_dev=dev, src=subnet, ctstate=("DNAT",)))
        if version == 4 and any(p.address is None or p.address.is_loopback for _, _, p in mine):
            post.append(Rule(f"the host reaching a published port of {net.name} at 127.0.0.1", "nat", "postrouting", "masquerade",
                             in_chain=False, out_dev=dev, src="127.0.0.0/8"))
            localnet.append((net.name, dev))
    if not post and not dnat:
        return None, localnet
    snat = any(r.verdict == "snat" for r in post)
    what = [f"masquerade{' and source NAT' if snat else ''} in POSTROUTING"] if post else []
    jumps: list[Rule] = []
    if dnat:
        what.append(f"published ports in {chain} (reached from PREROUTING and OUTPUT for local destinations)")
        jumps.append(Rule(f"connections from elsewhere to this host's addresses: published ports in {chain}", "nat", "prerouting", "jump",
                          in_chain=False, to_local=True))
        # IPv6 has no route_localnet: a connection to ::1 cannot be sent on to a container, so it is left alone
        jumps.append(Rule(f"connections from this host to its own addresses: published ports in {chain}" + ("" if version == 4 else " (but ::1)"),
                          "nat", "output", "jump", in_chain=False, to_local=True, dst=None if version == 4 else "::1", not_dst=version == 6))
    return Table("nat", version, (*post, *dnat, *jumps), "NAT: " + "; ".join(what) + "."), localnet


def udp_published(t: Topology) -> list[int]:
    return sorted({p.host_port for _c, _a, p in published(t) if p.protocol == "udp"})
