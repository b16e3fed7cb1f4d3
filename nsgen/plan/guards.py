"""What is checked against the host under the lock, before any change: each builtin says on
stderr why it refuses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsgen.names import rule_tag
from nsgen.plan.builder import Builder
from nsgen.plan.steps import B, Command

if TYPE_CHECKING:
    from nsgen.models import PublishedPort


def port_spec(p: PublishedPort) -> str:
    """PROTOCOL:PORT:HOST as ports_free takes it: HOST is * (every address), an IPv4 address,
    or an IPv6 one in brackets."""
    host = "*" if p.host_ip is None else str(p.host_ip) if p.host_ip.version == 4 else f"[{p.host_ip}]"
    return f"{p.protocol}:{p.host_port}:{host}"


def guards(b: Builder) -> tuple[Command, ...]:
    found = [B("state_ok", b.t.name)]
    if b.t.underlay is not None:  # one host's part of a topology across hosts: this must be that host
        found.append(B("address_here", b.t.on_host, str(b.t.underlay)))
    # a macvlan or ipvlan network's subnet is its parent's LAN, which the host has a route to: not checked
    subnets = [f"{n.name}={s}" for n in b.t.networks.values() if not n.direct for s in n.subnets]
    if subnets:
        found.append(B("subnets_free", b.group, b.t.name, *subnets))
    ports = [port_spec(p) for c in b.t.containers.values() for p in c.ports]
    if ports:
        found.append(B("ports_free", rule_tag(b.t.name), *ports))
    words = (*(("nftables",) if b.t.host.firewall == "nftables" else ()), *(("6",) if 6 in b.versions() else ()))
    found.append(B("other_firewall", *words))
    return tuple(found)
