"""Spread knows a topology that spans hosts: it reads `hosts`, a network's `overlay` and a
container's `host`, checks the rules across them, and cuts one host's part out of the whole
(`part`): that host's containers, the networks they are on and, for each overlay network, what
this host's VXLAN device must know of the other hosts (their addresses, their containers' MAC and
IP addresses). It knows nothing of commands, and reads the host only to tell which of the hosts
it is (`here`).

The design, as Docker's overlay and EVPN's distributed gateway have it: an overlay network is one
bridge on each host that has a container on it, the bridges joined by a VXLAN device each, every
forwarding entry written from the topology (no learning, no flooding needed, nothing running
between the hosts). Every host's bridge holds the network's gateway address: each host is the
router of its own containers, so traffic to the world leaves (and is masqueraded) where it starts,
and a host publishes its own containers' ports. The gateway's neighbour requests never cross the
overlay (the VXLAN port suppresses them, answering from the entries the topology wrote), so the
same gateway address on every host does not clash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nsgen.models import (
    HOST_NAME_MAX,
    HOSTS_ENTRY_KEYS,
    OVERLAY_KEYS,
    UNDERLAY_MTU,
    VNI_MAX,
    VNI_MIN,
    VXLAN_OVERHEAD,
    VXLAN_PORT,
    Attachment,
    IPAddress,
    Machine,
    Overlay,
    RemoteMember,
    Topology,
)
from nsgen.resolve import Problems, _address, _check_keys, _entry, _k, _mapping, _short_hash, _show, check_name

if TYPE_CHECKING:
    from nsgen.resolve import _NetworkDraft

_LIKE = "like hosts: {h1: {address: 192.0.2.11}, h2: {address: 192.0.2.12}}"


def resolve_hosts(value: Any, problems: Problems) -> dict[str, IPAddress | None]:
    """The hosts a topology spans, by name: each with an address of its own, all of one family
    (None where the address given is not valid: reported, and the host still known by its name)."""
    raw = _mapping(value, "hosts", problems)
    if not raw:
        problems.add("hosts", f"lists no host: list each host the topology spans with its address ({_LIKE}), or leave hosts out")
    result: dict[str, IPAddress | None] = {}
    owners: dict[IPAddress, str] = {}
    for key, spec in raw.items():
        path = f"hosts.{_k(key)}"
        name = check_name(key, path, problems, cap=HOST_NAME_MAX, what="host name")
        if isinstance(key, str):  # known by the name written even when it is not valid (reported): no second error for it
            result[key] = None
        spec = _entry(key, spec, path, problems)
        if spec is None:
            continue
        _check_keys(spec, HOSTS_ENTRY_KEYS, path, problems)
        if "address" not in spec:
            problems.add(f"{path}.address", "is required: the address the other hosts reach this one at (like 192.0.2.11)")
            continue
        address = _address(spec["address"], f"{path}.address", problems)
        if address is None:
            continue
        why = _unreachable(address)
        if why:
            problems.add(f"{path}.address", f"{address} is {why}, which other hosts cannot send to")
            continue
        if address in owners:
            problems.add(f"{path}.address", f"{address} is already the address of host {owners[address]!r}; each host has its own")
            continue
        owners[address] = _k(key)
        if name is not None:
            result[name] = address
    if len({a.version for a in result.values() if a is not None}) > 1:
        problems.add("hosts", "mixes IPv4 and IPv6 addresses: VXLAN between hosts travels over one family; give every host an "
                              "address of the same family")
    return result


def _unreachable(address: IPAddress) -> str:
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_loopback:
        return "a loopback address"
    if address.version == 6 and address.is_link_local:
        return "a link-local address"
    return ""


def overlay(value: Any, draft: _NetworkDraft, topology: str, problems: Problems) -> Overlay | None:
    """A network's `overlay`: its VNI, the UDP port, and the VXLAN device nsgen names for it."""
    path = f"{draft.path}.overlay"
    if not isinstance(value, dict):
        problems.add(path, f"must be a mapping like {{vni: 4242}}, got {_show(value)}")
        return None
    _check_keys(value, OVERLAY_KEYS, path, problems)
    if draft.driver is not None and draft.driver != "bridge":
        problems.add(path, f"an overlay stretches a bridge across hosts, and network {draft.label!r} has driver {draft.driver}: "
                           "use driver: bridge")
        return None
    vni = value.get("vni")
    if "vni" not in value:
        problems.add(f"{path}.vni", f"is required: the VXLAN network identifier ({VNI_MIN}-{VNI_MAX}) that tells this overlay's "
                                    "frames from another's")
        vni = None
    elif isinstance(vni, bool) or not isinstance(vni, int):
        problems.add(f"{path}.vni", f"must be a whole number ({VNI_MIN}-{VNI_MAX}), got {_show(vni)}")
        vni = None
    elif not VNI_MIN <= vni <= VNI_MAX:
        problems.add(f"{path}.vni", f"{vni} is outside {VNI_MIN}-{VNI_MAX}, the VXLAN network identifiers (24 bits; 0 is reserved)")
        vni = None
    port = value.get("port", VXLAN_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.add(f"{path}.port", f"{_show(port)} is not a UDP port (1-65535; VXLAN's is {VXLAN_PORT})")
        port = None
    if vni is None or port is None or draft.name is None:
        return None
    device = f"vx-{draft.name[:6]}-{_short_hash(topology, draft.name, 'overlay')[:5]}".replace("--", "-")
    return Overlay(vni=vni, port=port, device=device)


def check_overlays(drafts: dict[Any, _NetworkDraft], machines: dict[str, IPAddress | None] | None, problems: Problems) -> None:
    """An overlay needs hosts and a VNI of its own; unless it says its MTU, it carries what the
    hosts' network does less VXLAN's headers (1500 - 50 over IPv4, - 70 over IPv6)."""
    vnis: dict[int, str] = {}
    for draft in drafts.values():
        overlay = draft.overlay
        if overlay is None:
            continue
        if machines is None:
            problems.add(f"{draft.path}.overlay", f"an overlay network spans hosts, but the topology lists none: add them ({_LIKE})")
            continue
        if overlay.vni in vnis:
            problems.add(f"{draft.path}.overlay.vni", f"{overlay.vni} is already the VNI of network {vnis[overlay.vni]!r}; "
                                                      "each overlay needs its own")
        vnis.setdefault(overlay.vni, draft.label)
        family = next((a.version for a in (machines or {}).values() if a is not None), 4)
        if draft.mtu is None:
            draft.mtu = UNDERLAY_MTU - VXLAN_OVERHEAD[family]


def container_host(spec: dict, path: str, machines: dict[str, IPAddress | None] | None, problems: Problems) -> str:
    """The host a container runs on: one of `hosts` (the only one, when there is one), "" without hosts."""
    given = spec.get("host")
    if machines is None:
        if "host" in spec:
            problems.add(f"{path}.host", f"names host {_show(given)}, but the topology lists no hosts: list them ({_LIKE}), "
                                         "or leave host out")
        return ""
    listed = ", ".join(machines) or "none"
    if "host" not in spec:
        if len(machines) == 1:
            return next(iter(machines))
        problems.add(f"{path}.host", f"is required: the topology spans hosts {listed}; name the one the container runs on")
        return ""
    if not isinstance(given, str) or given not in machines:
        problems.add(f"{path}.host", f"{_show(given)} is not one of the hosts listed under hosts ({listed})")
        return ""
    return given


def check_spans(containers: dict[Any, dict], drafts: dict[Any, _NetworkDraft], problems: Problems) -> None:
    """A network that is no overlay lives on one host: its containers must all be there."""
    where: dict[Any, dict[str, str]] = {}
    for container in containers.values():
        if not container["host"]:
            continue
        for net, _iface, _host_if in container["attachments"]:
            where.setdefault(net, {}).setdefault(container["host"], container["label"])
    for net, hosts in where.items():
        draft = drafts.get(net)
        if draft is None or draft.overlay_given or len(hosts) < 2:
            continue
        shown = " and ".join(f"{c} (on {h})" for h, c in list(hosts.items())[:2])
        problems.add(draft.path, f"{shown} both attach to it, but it is not an overlay: a network spans hosts only with "
                                 "overlay: {vni: N}; otherwise each host needs a network of its own")


def _derived_mac(a: Attachment) -> str:
    """The MAC address of a container's interface on an overlay network, from its address as Docker
    derives it (02:42 and the four bytes of its IPv4 address, or the last four of its IPv6 one):
    every host knows it without asking."""
    packed = (a.address or a.first).packed[-4:]
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def spread(topology: Topology, machines: dict[str, IPAddress | None], problems: Problems) -> Topology:
    """The whole topology across its hosts: each overlay attachment with a MAC address every host
    knows (derived where none is given)."""
    given = {a.mac_address: (c.name, a.network) for c in topology.containers.values() for a in c.attachments if a.mac_address}
    containers = {}
    for c in topology.containers.values():
        attachments = []
        for a in c.attachments:
            if topology.networks[a.network].overlay is not None and a.mac_address is None:
                mac = _derived_mac(a)
                if mac in given:
                    owner, net = given[mac]
                    problems.add(f"containers.{c.name}.networks.{a.network}.mac_address",
                                 f"the MAC address derived from its address, {mac}, is the one given to {owner} on {net}: give this "
                                 "one a mac_address of its own")
                given[mac] = (c.name, a.network)
                a = a._replace(mac_address=mac)
            attachments.append(a)
        containers[c.name] = c._replace(attachments=tuple(attachments))
    problems.raise_if_any()
    return topology._replace(containers=containers, hosts=tuple(Machine(n, a) for n, a in machines.items() if a is not None))


# ----------------------------------------------------------------------------------------------
# One host's part


def names(topology: Topology) -> list[str]:
    return [m.name for m in topology.hosts]


def part(topology: Topology, host: str) -> Topology:
    """What `host` builds of a topology across hosts: its containers, the networks they are on, and
    on each overlay network its VXLAN peers and the containers behind them."""
    assert topology.hosts and host in names(topology), host
    address = {m.name: m.address for m in topology.hosts}
    local = {n: c for n, c in topology.containers.items() if c.host == host}
    used = {a.network for c in local.values() for a in c.attachments}
    networks = {}
    for name, net in topology.networks.items():
        if name not in used:
            continue
        if net.overlay is not None:
            remote = tuple(
                RemoteMember(c.name, c.host, address[c.host], a.mac_address or "", a.address, a.address6, a.aliases)
                for c in topology.containers.values() if c.host != host for a in c.attachments if a.network == name
            )
            peers = tuple(a for n, a in address.items() if n != host and any(m.host == n for m in remote))
            net = net._replace(overlay=net.overlay._replace(local=address[host], peers=peers, remote=remote))
        networks[name] = net
    return topology._replace(networks=networks, containers=local, on_host=host)


def bridge_mac(topology: Topology, network: str) -> str:
    """The MAC address of an overlay network's bridge on this host: fixed, so that it never changes.
    A bridge left to itself takes the lowest of its ports' addresses, and changes it as ports come
    and go; the kernel then drops every neighbour entry on it, the permanent ones that say where
    the other hosts' containers are included. Each host's its own (locally administered, from the
    topology, the network and the host), so a frame from another host's bridge is never taken for
    this one's."""
    import hashlib

    digest = hashlib.sha256(f"{topology.name}/{network}/{topology.on_host}/bridge".encode()).hexdigest()
    return "02:" + ":".join(digest[i:i + 2] for i in range(0, 10, 2))


def here(topology: Topology, addresses: list[IPAddress] | None) -> str | None:
    """The one host of the topology whose address this machine has (None: none, or several)."""
    mine = set(addresses or ())
    found = [m.name for m in topology.hosts if m.address in mine]
    return found[0] if len(found) == 1 else None


def listed(topology: Topology) -> str:
    """`h1 (192.0.2.11), h2 (192.0.2.12)`"""
    return ", ".join(f"{m.name} ({m.address})" for m in topology.hosts)
