"""Inside each container: lo up, an address of each family its network has on each interface, and
a default route per family through the gateway of its first network that routes out.

Each container's steps are contiguous, so that they run as one batch inside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsgen.plan.builder import Builder, with_prefix
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


def _addresses(b: Builder, c: Container, a: Attachment) -> None:
    shown = " and ".join(with_prefix(address, n) for address, n, _g in a.addresses)
    six = " without duplicate address detection" if a.address6 else ""
    b.add(
        Step(
            id=f"addr:{c.name}:{a.network}",
            section="Inside the containers",
            summary=f"Give {a.interface} in {c.name} the address{'es' if len(a.addresses) > 1 else ''} {shown}{six} "
            "(and no IPv6 link-local one) and bring it up.",
            commands=(
                *(C("ip", "-n", c.name, "addr", "replace", with_prefix(address, n), "dev", a.interface,
                    *(("nodad",) if address.version == 6 else ())) for address, n, _g in a.addresses),
                C("ip", "-n", c.name, "link", "set", a.interface, "addrgenmode", "none", "up"),
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
