"""The firewall's steps: the rules (rules.py) of each family, written by the topology's backend
(iptables.py: a table and family a step; nftables.py: one table for everything), and what goes
with them (route_localnet, forgetting UDP flows)."""

from __future__ import annotations

from nsgen.names import chain_name
from nsgen.plan.builder import Builder
from nsgen.plan.firewall import iptables, nftables
from nsgen.plan.firewall.rules import Table, filter_rules, nat_rules, published, raw, udp_published
from nsgen.plan.steps import B, Requirement, Step, set_sysctl


def build(b: Builder) -> None:
    devs = {net.name: dev for net in b.t.networks.values() if (dev := b.host_dev(net))}
    if not devs:
        return
    _outbound_requirements(b, devs)
    versions, nft = b.versions(), b.t.host.firewall == "nftables"
    # the chains the rules jump to: the topology's own iptables chain, or the table's own chains
    chains = (nftables.OWN["filter"], nftables.OWN["nat"]) if nft else (chain_name(b.t.name),) * 2
    _sctp(b)
    udp = udp_published(b.t)
    tables: list[Table | None] = [raw(v) for v in versions]
    localnet: list[tuple[str, str]] = []
    for v in versions:  # a family's tables side by side: one ip(6)tables-restore loads them, one removes them
        table, local = nat_rules(b.t, devs, v, chains[1])
        tables += [filter_rules(b.t, devs, v, chains[0]), table]
        localnet += local
    if not nft:
        _add(b, tables[:len(versions)])
    if udp:
        _conntrack(b, udp, before_nat=True)
    if nft:
        b.add(nftables.step([t for t in tables if t is not None], b.t.name))
        for v in versions:
            b.add(nftables.forward_pass(v, b.t.name))
    else:
        _add(b, tables[len(versions):])
    # in the nat rules' wake: route_localnet for the devices that carry connections from 127.0.0.1
    for net_name, dev in localnet:
        _route_localnet(b, net_name, dev)
    if udp:
        _conntrack(b, udp, before_nat=False)


def _sctp(b: Builder) -> None:
    """A port published over SCTP needs the kernel's SCTP (without it nothing in a container can
    serve the port) and iptables' sctp match (its rules' `-p sctp --dport`). Built in, each shows
    in /proc/net; as a module, modprobe loads it (as the kernel itself would at the first SCTP
    socket or rule). Refused before anything changes otherwise, in one line."""
    sctp = [p for _c, _a, p in published(b.t) if p.protocol == "sctp"]
    if sctp:
        b.requirements.append(Requirement(
            (("test", "-d", "/proc/net/sctp"), ("modprobe", "-q", "sctp")),
            f"published port {sctp[0].spec} needs SCTP, which this kernel does not have (no /proc/net/sctp, and modprobe finds "
            "no sctp module); nothing was changed"))
        if b.t.host.firewall == "nftables":  # nft's `sctp dport` reads the header itself: no match to load
            return
        # the rules' `-p sctp --dport` is iptables' sctp match (listed once loaded, or loaded by modprobe)
        b.requirements.append(Requirement(
            (("grep", "-qx", "sctp", "/proc/net/ip_tables_matches"), ("modprobe", "-q", "xt_sctp")),
            f"published port {sctp[0].spec} needs iptables' sctp match, which this kernel does not have (not in "
            "/proc/net/ip_tables_matches, and modprobe finds no xt_sctp module); nothing was changed"))


def _outbound_requirements(b: Builder, devs: dict[str, str]) -> None:
    """Before anything changes: each outbound address is the host's (its traffic could not leave with another)."""
    for net in b.t.networks.values():
        if net.name not in devs or not net.masquerade:
            continue
        for address in net.outbound_addr:
            probe: tuple[str, ...]
            if address.version == 4:  # the kernel finds no route from a source address that is not local
                probe = ("ip", "route", "get", str(address), "from", str(address))
            else:
                probe = ("grep", "-q", f"^{address.exploded.replace(':', '')} ", "/proc/net/if_inet6")
            b.requirements.append(Requirement((probe,), f"networks.{net.name}.outbound_addr: {address} is not an address of this host "
                                                        "(traffic can leave only with one of its own addresses); nothing was changed"))


def _add(b: Builder, tables: list[Table | None]) -> None:
    for table in tables:
        if table is not None:
            b.add(iptables.step(table, b.t.name))


def _route_localnet(b: Builder, net_name: str, dev: str) -> None:
    members = b.t.members(net_name)
    group = f"network:{net_name}" if b.t.networks[net_name].driver == "bridge" else f"container:{members[0][0].name}"
    turn_on, check = set_sysctl(f"net/ipv4/conf/{dev}/route_localnet", "1")
    b.add(
        Step(
            id=f"route_localnet:{dev}",
            section="Firewall",
            summary=f"Let {dev} carry connections from localhost to published ports (route_localnet); the setting goes away with {dev}. "
            "Nothing else for 127.0.0.0/8 gets in through it: the loopback guard above drops it.",
            commands=(turn_on,),
            checks=(check,),
            group=group,
        )
    )


def _conntrack(b: Builder, ports: list[int], *, before_nat: bool) -> None:
    shown = _spans(ports)
    flush = B("conntrack_flush", "udp", *map(str, ports))
    if before_nat:  # nothing to do at setup; at teardown, after the published ports' rules are gone
        b.add(Step(id="conntrack:unpublished", section="Firewall", commands=(), undo=(flush,),
                   summary=f"Teardown forgets the connection-tracking entries of UDP ports {shown}, once they are no longer published: "
                   "a flow that is still going would otherwise keep going to the container."))
    else:
        b.add(Step(id="conntrack:published", section="Firewall", commands=(flush,),
                   summary=f"Forget the host's connection-tracking entries of UDP ports {shown} (conntrack -D): a flow that began "
                   "before the port was published would otherwise keep going to the host, never to the container."))


def _spans(ports: list[int]) -> str:
    """Sorted port numbers as a person reads them, each run as LOW-HIGH: `5353, 9090-9092`."""
    runs: list[list[int]] = []
    for port in ports:
        if runs and port == runs[-1][-1] + 1:
            runs[-1][-1] = port
        else:
            runs.append([port, port])
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)
