"""Hostinfo reads the host nsgen runs on: its routes, its resolv.conf files, where its programs
are. It knows nothing of a topology's rules nor of commands to run; `resolve` reads the host only
through an `Environment`, which tests replace so that they never depend on the machine.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from nsgen.models import IFNAME_MAX, NAME_RE

# ----------------------------------------------------------------------------------------------
# The host's routes, and the environment the resolution reads: injectable so tests never depend on
# the machine.


def host_routes() -> list[tuple[str, str]]:
    """The host's IPv4 routes in the main table as (prefix, device); empty when they cannot be read.

    Read from /proc/net/route (the main table of this process's network namespace, as `ip route`
    shows it), without starting a process; `ip -j route` when that file is missing."""
    try:
        with open("/proc/net/route") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return _ip_routes()
    routes = []
    for row in rows:
        fields = row.split()
        if len(fields) < 8:
            continue
        try:
            dst = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            net = ipaddress.IPv4Network(f"{dst}/{mask}", strict=False)
        except ValueError:
            continue
        shown = "default" if net.prefixlen == 0 else str(net.network_address) if net.prefixlen == 32 else str(net)
        routes.append((shown, fields[0]))  # as `ip route` writes them
    return routes


def _ip_routes(family: str = "-4") -> list[tuple[str, str]]:
    """(prefix, device) of the routes of the main table that lead somewhere: a route of a type
    (unreachable, blackhole, ...: `ip -j` names its type) is no network a subnet would collide with."""
    import json
    import subprocess

    try:
        done = subprocess.run(["ip", "-j", family, "route", "show", "table", "main"], capture_output=True, text=True, timeout=5)
        routes = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return [(r.get("dst", ""), r.get("dev", "")) for r in routes if isinstance(r, dict) and r.get("type", "unicast") == "unicast"]


def host_routes6() -> list[tuple[str, str]]:
    """The host's IPv6 routes in the main table as (prefix, device), as `ip -6 route` shows them,
    but the link-local and multicast ones (every IPv6 link has them); empty when they cannot be read."""
    routes = []
    for dst, dev in _ip_routes("-6"):
        try:
            net = ipaddress.IPv6Network(dst if "/" in dst else f"{dst}/128", strict=False)
        except ValueError:
            routes.append((dst, dev))  # "default"
            continue
        if not net.is_link_local and not net.is_multicast:
            routes.append((dst, dev))
    return routes


def host_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """Every address the host has, on any of its interfaces (`ip -j addr`); None when they cannot be read."""
    import json
    import subprocess

    try:
        done = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=5)
        links = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if not isinstance(links, list):
        return None
    found = []
    for link in links:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            try:
                found.append(ipaddress.ip_address(str(info.get("local", "")).partition("%")[0]))
            except ValueError:
                continue
    return found


def default_interface(routes: list[tuple[str, str]]) -> str | None:
    """The device of the default route among `routes` (as Environment.routes gives them), or None."""
    return next((dev for dst, dev in routes if dst == "default" and dev), None)


class Environment(NamedTuple):
    resolv_conf: Path = Path("/etc/resolv.conf")
    systemd_resolv_conf: Path = Path("/run/systemd/resolve/resolv.conf")
    which: Callable[[str], str | None] = shutil.which
    nsgen_argv: tuple[str, ...] | None = None  # how to start nsgen itself; found when None
    programs_required: bool = False  # a program that cannot be found is a problem, not a name kept as it is
    routes: Callable[[], list[tuple[str, str]]] = lambda: host_routes()  # looked up when called
    routes6: Callable[[], list[tuple[str, str]]] = lambda: host_routes6()
    # the host's addresses (an outbound address must be one of them); None: they cannot be read, nothing is checked
    addresses: Callable[[], list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None] = lambda: host_addresses()
    account: Callable[[str], tuple[int, int] | None] = lambda user: host_account(user)  # (uid, gid) of a user name or uid
    group: Callable[[str], int | None] = lambda name: host_group(name)  # the gid of a group name or gid
    is_dir: Callable[[str], bool] = os.path.isdir
    hostname: Callable[[], str] = lambda: host_name()
    # the firewall backend of a topology that names none (NSGEN_FIREWALL, else iptables)
    default_firewall: Callable[[], str] = lambda: os.environ.get("NSGEN_FIREWALL") or "iptables"
    # what keeps uid:gid from running a program (a path on the way it may not pass), None: nothing
    closed_to: Callable[[str, int, int], str | None] = lambda path, uid, gid: closed_to(path, uid, gid)

    def nsgen_command(self) -> tuple[str, ...]:
        if self.nsgen_argv is not None:
            return self.nsgen_argv
        found = self.which("nsgen")
        if found:
            return (found,)
        return (sys.executable, "-m", "nsgen")


def closed_to(program: str, uid: int, gid: int) -> str | None:
    """Why uid:gid (with the user's groups) cannot run `program`, an absolute path: the first
    directory on the way it may not pass, the file it may not run (or, a script, read), or the
    same for the interpreter a `#!` line names. None when nothing stands in the way (or for root)."""
    import pwd

    if uid == 0:
        return None
    try:
        groups = set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except (KeyError, OSError):
        groups = {gid}

    def may(path: str, bits: int) -> bool:  # bits: of "other" (1 run or pass, 4 read)
        info = os.stat(path)
        shift = 6 if info.st_uid == uid else 3 if info.st_gid in groups else 0
        return info.st_mode >> shift & bits == bits

    what = ""
    for depth in range(2):  # the program, and the interpreter of a script
        real = os.path.realpath(program)
        try:
            parts = real.split("/")
            for i in range(1, len(parts) - 1):
                folder = "/".join(parts[: i + 1]) or "/"
                if not may(folder, 1):
                    return f"{what}the directory {folder} is closed to it"
            with open(real, "rb") as f:
                head = f.read(128)
            script = head.startswith(b"#!")
            if not may(real, 5 if script else 1):
                return f"{what}{real} is not {'readable and executable' if script else 'executable'} by it"
        except OSError:
            return None  # gone or unreadable even to nsgen: the setup says what the kernel says
        words = head[2:].split(b"\n")[0].split()
        if not script or not words or depth:
            return None
        program = os.fsdecode(words[0])
        what = f"its interpreter {program}: "
    return None


def host_name() -> str:
    import socket

    return socket.gethostname()


def host_account(user: str) -> tuple[int, int] | None:
    """(uid, primary gid) of a user of this host, named or by uid; None when it has no entry."""
    import pwd

    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError, OverflowError):
        return None
    return entry.pw_uid, entry.pw_gid


def host_group(name: str) -> int | None:
    """The gid of a group of this host, named or by gid; None when it has no entry."""
    import grp

    try:
        return (grp.getgrgid(int(name)) if name.isdigit() else grp.getgrnam(name)).gr_gid
    except (KeyError, ValueError, OverflowError):
        return None


# ----------------------------------------------------------------------------------------------
# resolv.conf: the nameservers it may hold, and what a namespace will see of the host's.


def parse_nameserver(text: str) -> tuple[str | None, str]:
    """A nameserver as resolv.conf must hold it: (canonical address, "") or (None, the rule broken).

    Python's ipaddress takes any text after '%' as an IPv6 scope (a newline included, which would
    add lines to resolv.conf); nsgen takes a scope only when it is an interface name."""
    address_text, percent, scope = text.partition("%")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        return None, "is not an IP address"
    if not percent:
        return str(address), ""
    if address.version == 4:
        return None, "is not an IP address (an IPv4 address has no scope)"
    if not NAME_RE.fullmatch(scope) or len(scope.encode()) > IFNAME_MAX:
        return None, f"has a scope after '%' that is not an interface name (letters, digits, '_', '.', '-', at most {IFNAME_MAX} bytes)"
    return f"{address}%{scope}", ""


def _read_nameservers(path: Path) -> list[str] | None:
    """The nameservers a resolv.conf names, in canonical form; one that nsgen would refuse in a
    topology (a scope that is not an interface name) is left out."""
    try:
        text = path.read_text()
    except (OSError, UnicodeError):
        return None
    servers = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            server, _ = parse_nameserver(words[1])
            if server is not None:
                servers.append(server)
    return servers


def namespace_dns(env: Environment) -> tuple[tuple[str, ...], str, str | None]:
    """When a container names no DNS: what the namespace will see, and a warning if it will not work.

    `ip netns exec` shows the host's /etc/resolv.conf unless /etc/netns/<name>/resolv.conf exists.
    A loopback nameserver (systemd-resolved's 127.0.0.53) answers nothing inside a namespace.
    """
    servers = _read_nameservers(env.resolv_conf)
    if servers is None or not servers:
        return (), "host", None
    if not all(ipaddress.ip_address(s).is_loopback for s in servers):
        return (), "host", None
    # Neither loopback nor IPv6 link-local servers of the host can be reached from a namespace
    # (the scope of a link-local address names one of the host's interfaces).
    upstream = [s for s in (_read_nameservers(env.systemd_resolv_conf) or []) if not _host_only(s)]
    if upstream:
        return tuple(upstream[:3]), f"systemd-resolved's upstream servers ({env.systemd_resolv_conf})", None
    warning = (
        f"the host's {env.resolv_conf} names only loopback nameservers ({', '.join(servers)}), which "
        "nothing answers inside a namespace, and no upstream servers were found; set 'dns' for each container"
    )
    return (), "host", warning


def _host_only(server: str) -> bool:
    address = ipaddress.ip_address(server)
    return address.is_loopback or (address.version == 6 and address.is_link_local)
