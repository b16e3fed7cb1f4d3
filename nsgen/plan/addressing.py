"""Inside each container: lo up, an address of each family its network has on each interface, a
default route per family through the gateway of its first network that gives one (routes out and
has no no_default_route), and the static routes of its networks.

Each container's steps are contiguous, so that they run as one batch inside it."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from nsgen.plan.builder import Builder, with_prefix
from nsgen.plan.links import no_link_local
from nsgen.plan.steps import C, Step

if TYPE_CHECKING:
    from nsgen.models import Attachment, Container


def inside(b: Builder) -> None:
    for c in b.t.containers.values():
        b.add(
            Step(
                id=f"lo:{c.name}",
                section="Inside the containers",
                summary=f"Bring up lo in {c.name}, so that a server listening on localhost answers inside it; its alias {b.mark} "
                "marks the namespace as this topology's.",
                commands=(C("ip", "-n", c.name, "link", "set", "lo", "alias", b.mark, "up"),),
                group=f"container:{c.name}",
            )
        )
        for a in c.attachments:
            _addresses(b, c, a)
        for version in (4, 6):
            _route(b, c, version)
        for a in c.attachments:
            _static_routes(b, c, a)


def router_link_local(c: Container, a: Attachment) -> str | None:
    """The link-local address of a container's interface when the container forwards IPv6 there (its
    own sysctls say so): a router asks for the neighbours it forwards to from a link-local address,
    and nsgen's interfaces get none of their own. Its interface identifier is that of the
    interface's IPv6 address, unique on the link; the host holds fe80::1 there."""
    keys = ("net.ipv6.conf.all.forwarding", f"net.ipv6.conf.{a.interface}.forwarding")
    if a.address6 is None or not any(k in keys and v.strip() != "0" for k, v in c.sysctls):
        return None
    iid = int(a.address6) & (2**64 - 1)
    return f"{ipaddress.IPv6Address((0xFE80 << 112) | (iid if iid > 1 else 2**64 - 2))}/64"


def _addresses(b: Builder, c: Container, a: Attachment) -> None:
    shown = " and ".join(with_prefix(address, n) for address, n, _g in a.addresses)
    six = " without duplicate address detection" if a.address6 else ""
    router = router_link_local(c, a)
    lone = (f"(and the link-local {router}: {c.name} forwards IPv6, and asks for the neighbours it forwards to from it)"
            if router else "(and no IPv6 link-local one)")
    b.add(
        Step(
            id=f"addr:{c.name}:{a.network}",
            section="Inside the containers",
            summary=f"Give {a.interface} in {c.name} the address{'es' if len(a.addresses) > 1 else ''} {shown}{six} "
            f"{lone} and bring it up.",
            commands=(
                *(C("ip", "-n", c.name, "addr", "replace", with_prefix(address, n), "dev", a.interface,
                    *(("nodad",) if address.version == 6 else ())) for address, n, _g in a.addresses),
                *((C("ip", "-n", c.name, "addr", "replace", router, "dev", a.interface, "nodad"),) if router else ()),
                C("ip", "-n", c.name, "link", "set", a.interface, *no_link_local(b.t.networks[a.network]), "up"),
            ),
            group=f"container:{c.name}",
        )
    )


def _route(b: Builder, c: Container, version: int) -> None:
    """The default route of one family: through the first network that routes out and has that family."""
    a = b.t.way_out(c, version)
    if a is None:
        return
    net = b.t.networks[a.network]
    router = f"the router of {net.parent}'s LAN" if net.direct else "the host"
    if version == 4:
        b.add(
            Step(
                id=f"route:{c.name}",
                section="Inside the containers",
                summary=f"Send {c.name}'s traffic for everywhere else to {router} at {a.gateway}, from {a.address}.",
                commands=(C("ip", "-n", c.name, "route", "replace", "default", "via", str(a.gateway), "dev", a.interface, "src", str(a.address)),),
                group=f"container:{c.name}",
            )
        )
        return
    b.add(
        Step(
            id=f"route6:{c.name}",
            section="Inside the containers",
            summary=f"Send {c.name}'s IPv6 traffic for everywhere else to {router} at {a.gateway6}.",
            commands=(C("ip", "-n", c.name, "route", "replace", "default", "via", str(a.gateway6), "dev", a.interface),),
            group=f"container:{c.name}",
        )
    )


def _static_routes(b: Builder, c: Container, a: Attachment) -> None:
    """The static routes of a's network that c takes (see Topology.routes_of), through a's interface."""
    routes = b.t.routes_of(c, a)
    if not routes:
        return
    b.add(
        Step(
            id=f"routes:{c.name}:{a.network}",
            section="Inside the containers",
            summary=f"Route {', '.join(r.shown for r in routes)} from {c.name} over {a.interface}: the static "
            f"route{'s' if len(routes) > 1 else ''} of network {a.network}.",
            commands=tuple(C("ip", "-n", c.name, "route", "replace", str(r.destination), "via", str(r.gateway), "dev", a.interface)
                           for r in routes),
            group=f"container:{c.name}",
        )
    )
