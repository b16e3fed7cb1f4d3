"""Check of a host's part of an overlay network: its VXLAN device as `ip -j -d link show` shows it,
its forwarding entries as `bridge -j fdb show` lists them and the bridge's neighbour entries as
`ip -j neigh show` lists them, each compared with the facts the plan expects (nsgen/plan/overlay.py
writes them as JSON in a Check's text). It reads, never changes; each comparison gives one finding:
(as the plan has it, what is missing or differs, for a person).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

ALL_ZEROS = "00:00:00:00:00:00"

Finding = tuple[bool, str]  # (as the plan has it, "" or what differs)


def _listing(returncode: int, output: str, error: str) -> tuple[list[dict[str, Any]] | None, str]:
    """A command's JSON list, or None and why there is none."""
    if returncode != 0:
        return None, error.strip().splitlines()[-1] if error.strip() else f"exit status {returncode}"
    try:
        data = json.loads(output or "[]")
    except ValueError:
        return None, "its output is not JSON"
    return (data, "") if isinstance(data, list) else (None, "its output is not a JSON list")


def _same_address(a: object, b: object) -> bool:
    try:
        return ipaddress.ip_address(str(a)) == ipaddress.ip_address(str(b))
    except ValueError:
        return False


def vxlan(expected: dict[str, Any], returncode: int, output: str, error: str) -> Finding:
    """The VXLAN device against the plan: it exists, is up, is a port of the network's bridge, has
    the VNI, local address, UDP port and MTU, learns nothing (neither the device nor the bridge port)
    and, as a bridge port, suppresses neighbour requests."""
    data, why = _listing(returncode, output, error)
    if data is None:
        return False, "missing" if "does not exist" in why else why
    if not data:
        return False, "missing"
    link = data[0]
    info = link.get("linkinfo", {})
    wrong: list[str] = []
    if info.get("info_kind") != "vxlan":
        return False, f"it is a {info.get('info_kind') or 'plain'} device, not a VXLAN device"
    facts = info.get("info_data", {})
    port = info.get("info_slave_data", {}) if info.get("info_slave_kind") == "bridge" else None
    if "UP" not in link.get("flags", []):
        wrong.append("it is down")
    if link.get("master") != expected["bridge"]:
        wrong.append(f"its master is {link.get('master', 'none')}, not {expected['bridge']}")
    if facts.get("id") != expected["vni"]:
        wrong.append(f"its VNI is {facts.get('id', 'unknown')}")
    local = facts.get("local", facts.get("local6"))  # local6: an IPv6 underlay
    if not _same_address(local, expected["local"]):
        wrong.append(f"its local address is {local or 'none'}")
    if facts.get("port") != expected["port"]:
        wrong.append(f"its UDP port is {facts.get('port', 'unknown')}")
    if facts.get("learning", True):
        wrong.append("it learns (nolearning is off)")
    if expected.get("mtu") is not None and link.get("mtu") != expected["mtu"]:
        wrong.append(f"its MTU is {link.get('mtu', 'unknown')}")
    if port is not None and port.get("learning", True):
        wrong.append("learning is on as a bridge port")
    if port is not None and not port.get("neigh_suppress", False):
        wrong.append("neigh_suppress is off as a bridge port")
    return not wrong, "; ".join(wrong)


def _flooding(expected: dict[str, Any], fdb: list[dict[str, Any]]) -> list[str]:
    """One all-zeros entry a peer, and none to another host (which would be sent every broadcast)."""
    have = [e.get("dst", "") for e in fdb if e.get("mac") == ALL_ZEROS and "self" in e.get("flags", [])]
    wrong = [f"no all-zeros entry to peer {peer}" for peer in expected["peers"] if not any(_same_address(d, peer) for d in have)]
    wrong += [f"an all-zeros entry to {d}, which is no peer" for d in have
              if not any(_same_address(d, peer) for peer in expected["peers"])]
    return wrong


def _behind(expected: dict[str, Any], fdb: list[dict[str, Any]]) -> list[str]:
    """Each remote container's MAC address behind its host (the device's own entry, permanent) and
    behind the VXLAN port (the bridge's entry, static)."""
    device, bridge = expected["device"], expected["bridge"]
    wrong: list[str] = []
    for m in expected["remote"]:
        who = f"{m['container']}'s {m['mac']}"
        mine = [e for e in fdb if e.get("mac") == m["mac"] and "self" in e.get("flags", [])]
        if not mine:
            wrong.append(f"{who} has no entry on {device} (dst {m['dst']}, self permanent)")
        elif not any(_same_address(e.get("dst"), m["dst"]) and e.get("state") == "permanent" for e in mine):
            found = ", ".join(f"dst {e.get('dst', 'none')} {e.get('state') or 'learned'}" for e in mine)
            wrong.append(f"{who} is on {device} with {found}, not dst {m['dst']} permanent")
        theirs = [e for e in fdb if e.get("mac") == m["mac"] and e.get("master")]
        if not any(e.get("master") == bridge and e.get("state") in ("static", "permanent") for e in theirs):
            found = ", ".join(f"{e.get('state') or 'learned'} in {e.get('master')}" for e in theirs)
            wrong.append(f"{who} has no static entry in bridge {bridge}" + (f" (found {found})" if found else ""))
    return wrong


def _neighbours(expected: dict[str, Any], neigh: list[dict[str, Any]]) -> list[str]:
    """A permanent neighbour entry on the bridge for each address of each remote container."""
    wrong: list[str] = []
    for m in expected["remote"]:
        for address in m["addresses"]:
            found = [e for e in neigh if _same_address(e.get("dst"), address)]
            shown = f"neighbour {address} ({m['container']}) on {expected['bridge']}"
            if not found:
                wrong.append(f"no {shown}")
                continue
            entry = found[0]
            states = entry.get("state", [])
            if entry.get("lladdr") != m["mac"] or "PERMANENT" not in states:
                wrong.append(f"{shown} is at {entry.get('lladdr', 'no address')} ({'/'.join(states).lower() or 'no state'}), "
                             f"not permanent at {m['mac']}")
    return wrong


def entries(expected: dict[str, Any], fdb: tuple[int, str, str], neigh: tuple[int, str, str]) -> Finding:
    """The forwarding entries of the network's VXLAN device and the neighbour entries of its bridge
    against the plan; fdb and neigh: (exit status, output, error) of `bridge -j fdb show dev DEV`
    and `ip -j neigh show dev BRIDGE`."""
    wrong: list[str] = []
    table, why = _listing(*fdb)
    if table is None:
        wrong.append(f"cannot list the forwarding entries of {expected['device']}: {why}")
    else:
        wrong += _flooding(expected, table) + _behind(expected, table)
    found, why = _listing(*neigh)
    if found is None:
        wrong.append(f"cannot list the neighbour entries of {expected['bridge']}: {why}")
    else:
        wrong += _neighbours(expected, found)
    return not wrong, "; ".join(wrong)


def neigh_argv(expected: dict[str, Any]) -> tuple[str, ...]:
    return ("ip", "-j", "neigh", "show", "dev", expected["bridge"])
