"""Overlays: one host's part of a bridge network stretched across hosts (nsgen/spread.py tells
what that part is). Each such bridge gets a VXLAN device as one more port: frames for a container
on another host leave through it, carried in UDP to that host's address, and come back through it.

Nothing is learned and nothing floods to find a container: the topology says where each one is.
The VXLAN device is made `nolearning`, with one all-zeros forwarding entry a peer host (where
broadcast and unknown frames go: each peer gets a copy) and, for each container on another host,
a forwarding entry to that host (in the VXLAN device's own table) and one to the VXLAN port (in
the bridge's), and a permanent neighbour entry on the bridge. As a bridge port the VXLAN device
suppresses neighbour requests: the bridge answers a container's ARP or neighbour solicitation for
a remote container from those entries, and never sends one for its own gateway address across,
which is why every host's bridge can hold the same gateway.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from nsgen.check_overlay import ALL_ZEROS
from nsgen.plan.builder import Builder
from nsgen.plan.links import _new_link, mtu
from nsgen.plan.steps import C, Check, Step

if TYPE_CHECKING:
    from nsgen.models import Network, Overlay


def overlays(b: Builder) -> None:
    """Each overlay network's VXLAN device, its peers and the containers behind them."""
    for net in b.t.networks.values():
        if net.overlay is None or net.bridge is None:
            continue
        ov = net.overlay
        assert ov.local is not None
        peers = ", ".join(map(str, ov.peers)) or "none yet"
        made = _new_link(
            b, f"vxlan:{net.name}", "Overlay", ov.device,
            (*mtu(net), "type", "vxlan", "id", str(ov.vni), "local", str(ov.local), "dstport", str(ov.port), "nolearning"),
            f"network:{net.name}",
            f"Create VXLAN device {ov.device} for network {net.name} (VNI {ov.vni}, UDP port {ov.port}, from this host's "
            f"{ov.local}), MTU {net.mtu}: the network's frames travel in it to the other hosts, which are sent a copy of every "
            f"broadcast (one all-zeros forwarding entry each: {peers}). It learns nothing: the topology says where each container is.",
        )
        made = made._replace(commands=(*made.commands, *(C("bridge", "fdb", "append", ALL_ZEROS, "dev", ov.device, "dst", str(peer))
                                                        for peer in ov.peers)))
        b.add(made)
        b.add(Step(
            id=f"vxlan-up:{net.name}",
            section="Overlay",
            summary=f"Plug {ov.device} into bridge {net.bridge}, mark it (alias {b.mark}); as a bridge port it learns nothing and "
            "suppresses neighbour requests (the bridge answers them from the entries below, and keeps its own gateway's to "
            "itself); bring it up.",
            commands=(
                C("ip", "link", "set", ov.device, "master", net.bridge, "alias", b.mark, "addrgenmode", "none"),
                C("ip", "link", "set", ov.device, "type", "bridge_slave", "learning", "off", "neigh_suppress", "on"),
                C("ip", "link", "set", ov.device, "up"),
            ),
            group=f"network:{net.name}",
            checks=(_device_check(net, ov), *(() if ov.remote else (_entries_check(net, ov),))),
        ))
        if ov.remote:
            b.add(_remote(net, ov))


def _device_check(net: Network, ov: Overlay) -> Check:
    """What `nsgen check` expects of the VXLAN device (check_overlay.vxlan compares it)."""
    facts = {"device": ov.device, "bridge": net.bridge, "vni": ov.vni, "local": str(ov.local), "port": ov.port, "mtu": net.mtu}
    mtu = f", MTU {net.mtu}" if net.mtu else ""
    return Check("overlay", f"VXLAN device {ov.device} of {net.name} (VNI {ov.vni}, local {ov.local}, port {ov.port}{mtu}) is up, "
                 f"a port of {net.bridge}, learns nothing and suppresses neighbour requests",
                 probe=("ip", "-j", "-d", "link", "show", "dev", ov.device), text=json.dumps(facts, sort_keys=True), compare="vxlan")


def _entries_check(net: Network, ov: Overlay) -> Check:
    """What `nsgen check` expects of the forwarding entries of the VXLAN device and the neighbour
    entries of the bridge (check_overlay.entries compares them)."""
    remote = [{"container": m.container, "mac": m.mac, "dst": str(m.underlay), "addresses": [str(a) for a in m.addresses]}
              for m in ov.remote]
    facts = {"device": ov.device, "bridge": net.bridge, "peers": [str(p) for p in ov.peers], "remote": remote}
    addresses = sum(len(m.addresses) for m in ov.remote)
    return Check("overlay", f"forwarding and neighbour entries of {net.name} ({len(ov.peers)} peer(s) on {ov.device}, "
                 f"{len(ov.remote)} remote container(s), {addresses} neighbour(s) on {net.bridge})",
                 probe=("bridge", "-j", "fdb", "show", "dev", ov.device), text=json.dumps(facts, sort_keys=True), compare="fdb")


def _remote(net: Network, ov: Overlay) -> Step:
    """Where each container on another host is: its MAC address behind that host (in the VXLAN
    device's table and the bridge's), its addresses at that MAC address (on the bridge)."""
    assert net.bridge is not None
    fdb = "".join(f"fdb replace {m.mac} dev {ov.device} dst {m.underlay} self permanent\n"
                  f"fdb replace {m.mac} dev {ov.device} master static\n" for m in ov.remote)
    neighbours = tuple(C("ip", "neigh", "replace", str(address), "lladdr", m.mac, "dev", net.bridge, "nud", "permanent")
                       for m in ov.remote for address in m.addresses)
    shown = ", ".join(f"{m.container} on {m.host}" for m in ov.remote)
    return Step(
        id=f"vxlan-remote:{net.name}",
        section="Overlay",
        summary=f"Tell {ov.device} and {net.bridge} where the containers on other hosts are ({shown}): each MAC address behind its "
        "host's address, and each container address at its MAC address, so no request for them needs to cross.",
        commands=(C("bridge", "-batch", "-", input=fdb), *neighbours),
        group=f"network:{net.name}",
        checks=(_entries_check(net, ov),),
    )
