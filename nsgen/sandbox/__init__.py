"""The sandbox: a throwaway host (private network and mount namespaces) with a simulated world.

`host` builds it and takes snapshots of it (standard library only); `hosts` adds simulated hosts
to it (their own network and mount namespaces on an underlay bridge, for networks that span
hosts); `session` brings a topology
up inside one for `nsgen sandbox`; `world/` holds the world's web and DNS servers, run as scripts.
"""

from nsgen.sandbox.host import (
    DNS_ADDR,
    DNS_ADDR6,
    HOST_ADDR,
    HOST_ADDR6,
    WEB_ADDR,
    WEB_ADDR6,
    WORLD_ADDR,
    WORLD_ADDR6,
    WORLD_DIR,
    WORLD_NS,
    Sandbox,
    SandboxCommandError,
    SandboxError,
    SandboxUnavailable,
    Snapshot,
    diff_snapshots,
    unavailable_reason,
)
from nsgen.sandbox.hosts import SimulatedHost, SimulatedHosts, simulated_hosts

__all__ = [
    "DNS_ADDR",
    "DNS_ADDR6",
    "HOST_ADDR",
    "HOST_ADDR6",
    "WEB_ADDR",
    "WEB_ADDR6",
    "WORLD_ADDR",
    "WORLD_ADDR6",
    "WORLD_DIR",
    "WORLD_NS",
    "Sandbox",
    "SandboxCommandError",
    "SandboxError",
    "SandboxUnavailable",
    "SimulatedHost",
    "SimulatedHosts",
    "Snapshot",
    "diff_snapshots",
    "simulated_hosts",
    "unavailable_reason",
]
