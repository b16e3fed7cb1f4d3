"""Links, one function a kind: bridges (a virtual switch a network, the host its router), veth
pairs (one a container's attachment, its host end plugged into the bridge or holding the gateway),
and macvlan or ipvlan interfaces (one a container's attachment, made on a host interface, the
parent, and living in the namespace only: the container is on the parent's LAN, the host is not its
router, and nothing of it is left on the host).

No end gets an IPv6 link-local address (addrgenmode none, as Docker does): otherwise every
interface that comes up sends neighbour discovery and multicast reports, which a bridge floods to
all its ports, so bringing up the n-th container costs in proportion to n. A network's IPv6
addresses are added without duplicate address detection (nodad): they are usable at once, and the
addresses are nsgen's to hand out.

A network's MTU is given to both ends of each veth pair as the pair is made, and to its bridge once
the bridge is made (so that it is the bridge's own); a container interface's MAC address is given
to its end as the pair is made. Without them, no argument: the kernel's defaults stay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsgen.models import MTU6_MIN
from nsgen.plan.builder import Builder, link_exists, with_prefix
from nsgen.plan.steps import C, Command, Requirement, Step
from nsgen.spread import bridge_mac

if TYPE_CHECKING:
    from nsgen.models import Attachment, Container, Network


# The host's link-local address on each IPv6 network (its device made without a generated one):
# without a link-local address that is usable at once, the kernel sends no neighbour solicitation
# for a packet it forwards, so nothing from elsewhere could reach a container until the container
# had spoken first. Link-local addresses are per link: every network's can be the same.
LINK_LOCAL = "fe80::1/64"


def gateway_addresses(net: Network, dev: str) -> tuple[Command, ...]:
    """The network's gateway addresses on the host device `dev`, one a family, and with IPv6 the
    host's link-local address there."""
    six = (C("ip", "addr", "replace", LINK_LOCAL, "dev", dev, "nodad"),) if net.subnet6 else ()
    return (*(C("ip", "addr", "replace", with_prefix(g, s.prefixlen), "dev", dev, *(("nodad",) if s.version == 6 else ()))
              for s, g in net.families), *six)


def _link_local(net: Network) -> str:
    return f" (and the link-local {LINK_LOCAL}, usable at once: the host asks for containers' addresses from it)" if net.subnet6 else ""


def _shown(net: Network) -> str:
    return " and ".join(with_prefix(g, s.prefixlen) for s, g in net.families)


def no_link_local(net: Network) -> tuple[str, ...]:
    """`addrgenmode none`: no IPv6 link-local address on a link of the network. A link whose MTU is
    below IPv6's minimum has no IPv6 at all (the kernel refuses the setting there): nothing then."""
    return ("addrgenmode", "none") if net.mtu is None or net.mtu >= MTU6_MIN else ()


def mtu(net: Network) -> tuple[str, ...]:
    """`mtu N` for a link of the network, or nothing: the kernel's default."""
    return ("mtu", str(net.mtu)) if net.mtu is not None else ()


def _kept(net: Network) -> str:
    """A bridge's MTU set once it is made is its own: the kernel keeps it whatever its ports (one given at
    creation would follow them, back to 1500 once the last port is gone)."""
    return f", set its MTU to {net.mtu} (its own, whatever its ports)" if net.mtu is not None else ""


def _mtu_shown(net: Network, which: str = "") -> str:
    return f"{which} with MTU {net.mtu}" if net.mtu is not None else ""


def _new_link(b: Builder, sid: str, section: str, name: str, kind: tuple[str, ...], group: str, summary: str) -> Step:
    """A host device of the topology's (a bridge, the host end of a veth pair): made in its device
    group, deleted when it is the topology's own, and gone with the topology's devices at teardown."""
    return Step(
        id=sid,
        section=section,
        summary=summary,
        commands=(C("ip", "link", "add", name, "group", b.group, *kind),),
        undo=(C("ip", "link", "delete", name, only_if=(b.link_ours(name),)),),
        probe=(link_exists(name),),
        resource=f"link {name}",
        ours=(b.link_ours(name),),
        goes_with="devices",
        group=group,
    )


def bridges(b: Builder) -> None:
    for net in b.t.networks.values():
        if net.driver != "bridge":
            continue
        assert net.bridge
        addresses = "addresses" if len(net.families) > 1 else "address"
        fixed = ("address", bridge_mac(b.t, net.name)) if net.overlay is not None and b.t.on_host else ()
        b.add(_new_link(b, f"bridge:{net.name}", "Bridges", net.bridge, (*fixed, "type", "bridge"), f"network:{net.name}",
                         f"Create bridge {net.bridge} for network {net.name}: a virtual switch for its containers"
                         + (f", with a MAC address of its own, {fixed[1]}: one it took from a port would change as ports come and go, "
                            "and the kernel would drop the neighbour entries that say where the other hosts' containers are."
                            if fixed else ".")))
        b.add(
            Step(
                id=f"bridge-up:{net.name}",
                section="Bridges",
                summary=f"Give {net.bridge} the gateway {addresses} {_shown(net)}{_link_local(net)}, mark it as topology {b.t.name}'s "
                f"(alias {b.mark}){_kept(net)} and bring it up: the host is the network's router.",
                commands=(*gateway_addresses(net, net.bridge),
                          C("ip", "link", "set", net.bridge, "alias", b.mark, *(("addrgenmode", "none") if net.subnet6 else ()), *mtu(net),
                            "up")),
                group=f"network:{net.name}",
            )
        )


# What each driver that puts containers on the parent's LAN makes: the kind, its mode, and the
# function of the kernel that tells it is there (in /proc/kallsyms, when not a module still to load).
DIRECT_KINDS = {"macvlan": ("macvlan", "bridge", "macvlan_common_newlink"), "ipvlan": ("ipvlan", "l2", "ipvlan_link_new")}


def direct_requirements(b: Builder) -> None:
    """Before anything changes: each parent interface exists, and the kernel has each driver used."""
    parents: dict[str, str] = {}
    own = set(b.host_devices())  # a bridge of the topology's own is made before any container's interface
    for net in b.t.networks.values():
        if net.direct and net.parent and net.parent not in own and b.t.members(net.name):
            parents.setdefault(net.parent, net.name)
    for parent, name in parents.items():
        b.requirements.append(Requirement((link_exists(parent),), f"networks.{name}.parent: interface {parent!r} does not exist on this "
                                          "host; nothing was changed"))
    for driver in dict.fromkeys(n.driver for n in b.t.networks.values() if n.direct and b.t.members(n.name)):
        kind, _mode, symbol = DIRECT_KINDS[driver]
        b.requirements.append(Requirement((("grep", "-qw", symbol, "/proc/kallsyms"), ("modprobe", "-q", kind)),
                                          f"driver {driver}: this kernel has no {driver} support (no module {kind} to load); "
                                          "nothing was changed"))


def _direct(b: Builder, c: Container, a: Attachment, net: Network) -> Step:
    """A container's macvlan or ipvlan interface, made on the parent directly inside its namespace:
    deleting the namespace deletes it."""
    kind, mode, _symbol = DIRECT_KINDS[net.driver]
    return Step(
        id=f"{kind}:{c.name}:{a.network}",
        section="Links",
        summary=f"Create {a.interface} in {c.name} as a {kind} interface (mode {mode}) on the host's {net.parent}: {c.name} is on "
        f"{net.parent}'s LAN with its own address, reached directly, without NAT. It lives in the namespace only.",
        commands=(C("ip", "link", "add", a.interface, "link", str(net.parent), *mtu(net), *(("address", a.mac_address) if a.mac_address else ()),
                    "netns", c.name, "type", kind, "mode", mode),),
        probe=(("ip", "-n", c.name, "link", "show", a.interface),),
        group=f"container:{c.name}",
    )


def veths(b: Builder) -> None:
    """Every veth pair, each made with its inner end already inside its namespace, then the host ends;
    a macvlan or ipvlan interface instead where the network is one."""
    direct_requirements(b)
    for c in b.t.containers.values():
        for a in c.attachments:
            net = b.t.networks[a.network]
            if net.direct or a.host_interface is None:
                b.add(_direct(b, c, a, net))
                continue
            mac = ("address", a.mac_address) if a.mac_address else ()
            made = f", with MAC address {a.mac_address}" if a.mac_address else ""
            b.add(_new_link(b, f"veth:{c.name}:{a.network}", "Links", a.host_interface,
                            (*mtu(net), "type", "veth", "peer", "name", a.interface, *mtu(net), *mac, "netns", c.name), f"container:{c.name}",
                            f"Create the veth pair {a.host_interface} (host) <-> {a.interface} (in {c.name}{made}), "
                            f"its inner end made directly inside the namespace{_mtu_shown(net, ', both ends')}."))
    for c in b.t.containers.values():
        for a in c.attachments:
            net = b.t.networks[a.network]
            if a.host_interface is None:
                continue
            if net.driver == "veth":
                addresses = "addresses" if len(net.families) > 1 else "address"
                summary = (f"Give {a.host_interface} the gateway {addresses} {_shown(net)}{_link_local(net)}, mark it (alias {b.mark}) "
                           f"and bring it up{'' if net.subnet6 else ' (no IPv6 link-local address)'}: the host is {c.name}'s router.")
                commands = (
                    *gateway_addresses(net, a.host_interface),
                    C("ip", "link", "set", a.host_interface, "alias", b.mark, *no_link_local(net), "up"),
                )
            else:
                summary = (f"Plug {a.host_interface} into bridge {net.bridge} (it has no address of its own, not even IPv6 link-local) "
                           f"with hairpin on, so {c.name} reaches its own published ports; mark it (alias {b.mark}) and bring it up.")
                commands = (
                    C("ip", "link", "set", a.host_interface, "master", str(net.bridge), "alias", b.mark, *no_link_local(net), "up"),
                    C("ip", "link", "set", a.host_interface, "type", "bridge_slave", "hairpin", "on"),
                )
            b.add(Step(id=f"host-end:{c.name}:{a.network}", section="Links", summary=summary, commands=commands, group=f"container:{c.name}"))
