"""Diagram draws a resolved topology as a picture (text for now); it knows nothing of commands."""

from __future__ import annotations

from nsgen.models import Network, Topology


def _network_line(net: Network) -> str:
    traits = [net.driver if net.driver == "veth" else f"bridge {net.bridge}", str(net.subnet), f"gateway {net.gateway}"]
    if net.internal:
        traits.append("internal")
    elif net.masquerade:
        traits.append("masquerade")
    else:
        traits.append("routed, no NAT")
    return f"network {net.name} ({', '.join(traits)})"


def text_picture(topology: Topology) -> str:
    """A small tree: the host, each network under it, each container's link under its network."""
    forward = "on" if topology.host.ip_forward else "off"
    lines = [f"host (ip_forward {forward})"]
    networks = list(topology.networks.values())
    for n, net in enumerate(networks):
        last_net = n == len(networks) - 1
        lines.append(("└── " if last_net else "├── ") + _network_line(net))
        stem = "    " if last_net else "│   "
        members = topology.members(net.name)
        if not members:
            lines.append(stem + "└── (no containers)")
        for m, (c, a) in enumerate(members):
            branch = "└── " if m == len(members) - 1 else "├── "
            host_end = f"{a.host_interface} {net.gateway}/{a.prefixlen}" if net.driver == "veth" else a.host_interface
            line = f"{host_end} <──veth──> {c.name}: {a.interface} {a.address}/{a.prefixlen}"
            if c.default_attachment is a and c.ports:
                line += "  published " + ", ".join(
                    f"{p.host_ip or '*'}:{p.host_port}->{p.container_port}/{p.protocol}" for p in c.ports
                )
            lines.append(stem + branch + line)
    for c in topology.containers.values():
        for p in c.processes:
            lines.append(f"{c.name} runs: {' '.join(p.argv)}")
        if c.dns:
            lines.append(f"{c.name} resolves through: {', '.join(c.dns)}")
    return "\n".join(lines)
