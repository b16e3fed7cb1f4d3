"""Names knows where nsgen keeps its state and how it marks what it makes; it knows no commands.

Every mark here is what teardown, a second setup and `nsgen check` use to tell nsgen's own
resources from anyone else's:

- the state directory `/run/nsgen/<topology>/` (root's, mode 0755), holding the record of the
  topology that is up (`topology.json`) and the processes' pid and log files;
- the comment `nsgen:<topology>` on every firewall rule, and the chains `NSGEN-<topology>`;
- the device group of the topology's host devices (bridges, veth host ends), and the alias
  `nsgen:<topology>` on each of them and on the loopback device inside each of its namespaces.
"""

from __future__ import annotations

import zlib

STATE_ROOT = "/run/nsgen"
# In /run itself (root's alone), like /run/xtables.lock: a world-writable folder such as /run/lock
# would let any user plant the file, or a link in its place, before root opens it.
LOCK_FILE = "/run/nsgen.lock"
FORWARD_DIR = f"{STATE_ROOT}/.ip_forward"  # shared by every topology: a name no topology can have
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
FORWARD6_DIR = f"{STATE_ROOT}/.ipv6_forwarding"  # the same for IPv6
IP6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding"
# Every host device nsgen makes (bridges, veth host ends) is in a device group whose high byte is
# 0x6e ("n"): firewall rules tell container networks from the rest of the host by it, across
# topologies. The low 24 bits are the topology's own (see device_group).
NSGEN_GROUPS = "0x6e000000/0xff000000"
NETNS_DIR = "/run/netns"
NETNS_ETC = "/etc/netns"
SYSCTL_DIR = "/etc/sysctl.d"
RECORD = "topology.json"  # the record of what is up, in the state directory
INTENT = "namespaces"  # the namespaces a setup is about to create, in the state directory


def state_dir(topology: str) -> str:
    return f"{STATE_ROOT}/{topology}"


def record_path(topology: str) -> str:
    return f"{state_dir(topology)}/{RECORD}"


def intent_path(topology: str) -> str:
    return f"{state_dir(topology)}/{INTENT}"


def device_group(topology: str) -> str:
    """The device group of the topology's host devices: teardown deletes all of them, veth pairs
    and bridges, in one kernel call (`ip link delete group`), where one by one each deletion
    waits for the kernel. Two names can hash alike: every device also carries the topology's
    alias, so a group shared by accident is never taken for one topology's own."""
    return f"0x6e{zlib.crc32(topology.encode()) & 0xFFFFFF:06x}"


def mark(topology: str) -> str:
    """The alias of every device nsgen makes for a topology (and of lo in its namespaces)."""
    return f"nsgen:{topology}"


def rule_tag(topology: str) -> str:
    """The comment every firewall rule of a topology carries (iptables allows 255 bytes)."""
    return f"nsgen:{topology}"


def nft_table(topology: str) -> str:
    """The topology's own nftables table (family inet) with the nftables backend."""
    return f"nsgen-{topology}"


# The mark the nftables backend gives the forwarded packets it accepts: one iptables rule of
# nsgen's own accepts them in a FORWARD chain that would drop them (Docker's, ufw's).
FORWARD_MARK = "0x00010000"


def chain_name(topology: str) -> str:
    """The topology's own chain, in filter (from FORWARD) and in nat (published ports); iptables allows 28 characters."""
    return f"NSGEN-{topology}"


def resolv_mark(topology: str) -> str:
    """The first words of every resolv.conf nsgen writes for a topology (up to the semicolon, so
    that topology `lab` never takes `lab2`'s for its own)."""
    return f"# Written by nsgen for topology {topology};"
