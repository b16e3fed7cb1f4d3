"""Check compares the live host with a topology and probes its connectivity; it never changes anything.

What to expect comes from the plan itself wherever the plan can say it: its probes (the state
directory, namespaces, links, the firewall rules through `iptables -C` of exactly the rules setup
adds, or the nftables table read once as JSON and compared with the plan's: check_nft.py), the
files it writes (resolv.conf, sysctl.d), the sysctl values it sets and the pid files of the
processes it starts; of one host's part of a topology across hosts, each overlay network's VXLAN
device and its forwarding and neighbour entries, compared with the facts the overlay steps carry
(check_overlay.py). What a step does not probe (an interface up, an address, a route) is
observed read-only, from `ip -j` (JSON) and /proc, against the resolved topology.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from nsgen.execute import netns_id as _netns_id
from nsgen.models import SETPRIV, Attachment, Container, IPAddress, IPNetwork, Network, Topology
from nsgen.plan import NETNS_DIR, Command, Plan, Step
from nsgen.plan.steps import Check

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
PING_WAIT = "2"  # seconds a probe waits for one echo reply
CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Result:
    status: str  # PASS, FAIL or SKIP
    kind: str  # state, namespace, link, address, route, sysctl, firewall, file, process, probe
    what: str  # the thing checked, named so that a person can find it
    detail: str = ""  # why it failed (or was skipped)

    def line(self) -> str:
        text = f"{self.status}  {self.kind:<9}  {self.what}"
        return f"{text}: {self.detail}" if self.detail else text


def _ok(ok: bool, kind: str, what: str, detail: str) -> Result:
    return Result(PASS if ok else FAIL, kind, what, "" if ok else detail)


# ----------------------------------------------------------------------------------------------
# Reading the host


def run_probe(argv: tuple[str, ...]) -> bool:
    """A plan probe: succeeds when its command does; ("!", argv...) succeeds when argv fails."""
    if argv and argv[0] == "!":
        return not run_probe(argv[1:])
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return False
    return done.returncode == 0


Reader = Callable[[tuple[str, ...]], subprocess.CompletedProcess]


def read_output(argv: tuple[str, ...]) -> subprocess.CompletedProcess:
    """A command's exit status and output (a missing program: status 127, said on stderr)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")


def forward_drops(tool: str, read: Reader = read_output) -> str:
    """What in the FORWARD chain of `tool` (iptables, ip6tables) can drop a packet: its policy, when
    not ACCEPT, and its rules; "" when it accepts everything (or `tool` cannot say)."""
    done = read((tool, "-w", "-S", "FORWARD"))
    if done.returncode != 0:
        return ""
    lines = done.stdout.split("\n")
    policy = next((line.split()[2] for line in lines if line.startswith("-P FORWARD ") and len(line.split()) > 2), "ACCEPT")
    rules = sum(line.startswith("-A FORWARD ") for line in lines)
    parts = ([f"policy {policy}"] if policy != "ACCEPT" else []) + ([f"{rules} rule(s)"] if rules else [])
    return ", ".join(parts)


def process_state(pid: int, namespace: str) -> str | None:
    """None when pid is alive inside network namespace `namespace`; else what is wrong with it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return f"pid {pid} is not running"
    if state in ("Z", "X"):
        return f"pid {pid} has exited"
    inside = _netns_id(f"/proc/{pid}/ns/net")
    target = _netns_id(f"{NETNS_DIR}/{namespace}")
    if inside is None:
        return f"cannot see the network namespace of pid {pid}"
    if target is None or inside != target:
        return f"pid {pid} is running, but not in namespace {namespace}"
    return None


def read_pid(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # never read through a link
        with os.fdopen(fd) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class Observer:
    """Read-only views of links, addresses and routes, one `ip -j` call each, cached."""

    def __init__(self) -> None:
        self._links: dict[str | None, dict[str, dict] | None] = {}
        self._routes: dict[tuple[str | None, int], list[dict] | None] = {}

    @staticmethod
    def _ip_json(netns: str | None, *args: str) -> list[dict] | None:
        argv = ["ip", *(["-n", netns] if netns else []), "-j", *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            return None
        if done.returncode != 0:
            return None
        try:
            return json.loads(done.stdout or "[]")
        except ValueError:
            return None

    def links(self, netns: str | None) -> dict[str, dict] | None:
        """ifname -> `ip -j addr show` entry (flags, master, addr_info); None: the namespace is missing."""
        if netns not in self._links:
            data = self._ip_json(netns, "addr", "show")
            self._links[netns] = None if data is None else {link["ifname"]: link for link in data if "ifname" in link}
        return self._links[netns]

    def routes(self, netns: str | None, version: int = 4) -> list[dict] | None:
        if (netns, version) not in self._routes:
            self._routes[(netns, version)] = self._ip_json(netns, f"-{version}", "route", "show")
        return self._routes[(netns, version)]


def _family(address: str) -> str:
    return "inet6" if ":" in address else "inet"


def _has_address(link: dict, address: str) -> bool:
    family = _family(address)
    return any(f"{info.get('local')}/{info.get('prefixlen')}" == address for info in link.get("addr_info", []) if info.get("family") == family)


def _addresses(link: dict, family: str = "inet") -> str:
    found = [f"{i.get('local')}/{i.get('prefixlen')}" for i in link.get("addr_info", []) if i.get("family") == family
             and i.get("scope") != "link"]
    return ", ".join(found) or "none"


def _prefix(dst: str) -> IPNetwork | None:
    """A route's destination as `ip -j route` writes it (a host route without its /32 or /128)."""
    try:
        return ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None


def _gateways(net: Network) -> list[str]:
    return [f"{g}/{s.prefixlen}" for s, g in net.families]


# ----------------------------------------------------------------------------------------------
# Comparing


class _Checker:
    def __init__(self, plan: Plan, observer: Observer, probe: Callable[[tuple[str, ...]], bool], read: Reader = read_output):
        self.plan, self.t, self.seen, self.probe, self.read = plan, plan.topology, observer, probe, read
        self.results: list[Result] = []

    def add(self, result: Result) -> None:
        self.results.append(result)

    def run(self) -> list[Result]:
        t = self.t
        self.add(_ok(os.path.isdir(self.plan.state_dir), "state", f"topology {t.name} is up ({self.plan.state_dir} exists)",
                     "no state directory: the topology is not up"))
        if os.path.isdir(self.plan.state_dir):
            from nsgen import record

            found = record.load(t.name)
            self.add(_ok(found is not None and found.digest == self.plan.digest, "state", f"{self.plan.record} records this definition",
                         "it records another definition (the file changed since setup: `nsgen run` brings the host to it)"
                         if found is not None else "there is no record nsgen can trust"))
        for c in t.containers.values():
            self.add(_ok(os.path.exists(f"{NETNS_DIR}/{c.name}"), "namespace", c.name, "missing"))
        for net in t.networks.values():
            if net.bridge:
                self.link(None, net.bridge, f"bridge {net.bridge}", addresses=_gateways(net), mtu=net.mtu)
        for c in t.containers.values():
            for a in c.attachments:
                net = t.networks[a.network]
                what = f"{a.host_interface} (host end of {c.name}'s {a.interface})"
                if a.host_interface is None:
                    self.direct(c.name, a.interface, net)
                elif net.driver == "veth":
                    self.link(None, a.host_interface, what, addresses=_gateways(net), mtu=net.mtu)
                else:
                    self.link(None, a.host_interface, what, master=net.bridge, mtu=net.mtu)
        self.outbound()
        for c in t.containers.values():
            self.link(c.name, "lo", f"{c.name}: lo")
            for a in c.attachments:
                self.link(c.name, a.interface, f"{c.name}: {a.interface}", addresses=[f"{x}/{n}" for x, n, _g in a.addresses],
                          mtu=t.networks[a.network].mtu, mac=a.mac_address)
            for version in (4, 6):
                self.route(c.name, version)
            for a in c.attachments:
                for r in t.routes_of(c, a):
                    self.static_route(c.name, a.interface, r.destination, r.gateway)
        for kind in ("overlay", "sysctl", "firewall", "file"):
            for step in self.plan.steps:
                self.checks(step, kind)
        for step in self.plan.steps:
            self.processes(step)
        from nsgen.builtins import other_firewall

        words = (*(("nftables",) if t.host.firewall == "nftables" else ()), *(("6",) if any(net.subnet6 for net in t.networks.values()) else ()))
        for line in other_firewall(*words).stderr.splitlines():  # a second firewall can drop what this one lets through
            self.add(Result(FAIL, "firewall", line))
        return self.results

    # one link: exists, up, and optionally holds an address / is a port of a bridge
    def link(self, netns: str | None, name: str, what: str, addresses: list[str] | None = None, master: str | None = None,
             mtu: int | None = None, mac: str | None = None) -> None:
        links = self.seen.links(netns)
        if links is None:
            self.add(Result(FAIL, "link", what, f"namespace {netns} is missing"))
            return
        link = links.get(name)
        if link is None:
            self.add(Result(FAIL, "link", what, "missing"))
            return
        self.add(_ok("UP" in link.get("flags", []), "link", f"{what} is up", "it is down"))
        for address in addresses or []:
            self.add(_ok(_has_address(link, address), "address", f"{what} holds {address}", f"it holds {_addresses(link, _family(address))}"))
        if master is not None:
            self.add(_ok(link.get("master") == master, "link", f"{what} is a port of {master}", f"its master is {link.get('master', 'none')}"))
        if mtu is not None:
            self.add(_ok(link.get("mtu") == mtu, "link", f"{what} has MTU {mtu}", f"its MTU is {link.get('mtu', 'unknown')}"))
        if mac is not None:
            self.add(_ok(link.get("address") == mac, "link", f"{what} has MAC address {mac}", f"its MAC address is {link.get('address', 'none')}"))

    def static_route(self, cname: str, dev: str, destination: IPNetwork, gateway: IPAddress) -> None:
        what = f"{cname}: {destination} via {gateway} dev {dev}"
        routes = self.seen.routes(cname, destination.version)
        if routes is None:
            self.add(Result(FAIL, "route", what, f"namespace {cname} is missing"))
            return
        found = [r for r in routes if r.get("dst") not in (None, "default") and _prefix(r["dst"]) == destination]
        ok = any(r.get("gateway") == str(gateway) and r.get("dev") == dev for r in found)
        shown = "; ".join(f"via {r.get('gateway', '-')} dev {r.get('dev', '-')}" for r in found) or "no route there"
        self.add(_ok(ok, "route", what, f"found {shown}" if found else shown))

    def direct(self, cname: str, name: str, net: Network) -> None:
        """A container's macvlan or ipvlan interface is one, in the mode nsgen makes, on its parent."""
        what = f"{cname}: {name} is a {net.driver} interface on {net.parent}"
        data = self.seen._ip_json(cname, "-d", "link", "show", "dev", name)
        if not data:
            self.add(Result(FAIL, "link", what, "missing"))
            return
        info = data[0].get("linkinfo", {})
        kind, mode = info.get("info_kind"), info.get("info_data", {}).get("mode")
        parent = self.seen.links(None) or {}
        index = next((link.get("ifindex") for n, link in parent.items() if n == net.parent), None)
        ok = kind == net.driver and mode == ("bridge" if net.driver == "macvlan" else "l2") and data[0].get("link_index", index) == index
        self.add(_ok(ok and index is not None, "link", what, f"it is {kind or 'no such'} interface, mode {mode or '-'}"
                     + ("" if index is not None else f"; the host has no {net.parent}")))

    def outbound(self) -> None:
        """Each outbound address is still the host's: traffic SNATed to one it lost would not come back."""
        wanted = [(net.name, address) for net in self.t.networks.values() if net.masquerade for address in net.outbound_addr]
        if not wanted:
            return
        from nsgen.hostinfo import host_addresses

        have = host_addresses() or []
        for name, address in wanted:
            self.add(_ok(address in have, "address", f"the host holds {address} (outbound address of {name})", "it does not"))

    def route(self, cname: str, version: int) -> None:
        c = self.t.containers[cname]
        a = self.t.way_out(c, version)
        if a is None:
            self.no_default_route(c, version)
            return  # only internal networks (of this family), or no_default_route: no default route on purpose
        gateway = a.gateway if version == 4 else a.gateway6
        what = f"{cname}: {'IPv6 ' if version == 6 else ''}default via {gateway} dev {a.interface}"
        routes = self.seen.routes(cname, version)
        if routes is None:
            self.add(Result(FAIL, "route", what, f"namespace {cname} is missing"))
            return
        default = [r for r in routes if r.get("dst") == "default"]
        if not default:
            self.add(Result(FAIL, "route", what, "no default route"))
            return
        ok = any(r.get("gateway") == str(gateway) and r.get("dev") == a.interface for r in default)
        found = "; ".join(f"via {r.get('gateway', '-')} dev {r.get('dev', '-')}" for r in default)
        self.add(_ok(ok, "route", what, f"the default route is {found}"))

    def no_default_route(self, c: Container, version: int) -> None:
        """A container on a network with no_default_route, and no other way out: it has no default route."""
        if not any(self.t.networks[a.network].no_default_route and a.address_of(version) is not None for a in c.attachments):
            return
        what = f"{c.name}: no {'IPv6 ' if version == 6 else ''}default route"
        routes = self.seen.routes(c.name, version)
        if routes is None:
            self.add(Result(FAIL, "route", what, f"namespace {c.name} is missing"))
            return
        found = "; ".join(f"via {r.get('gateway', '-')} dev {r.get('dev', '-')}" for r in routes if r.get("dst") == "default")
        self.add(_ok(not found, "route", what, f"it has one: {found}"))

    def checks(self, step: Step, kind: str) -> None:
        """What the step says proves it, of one kind: probes (every chain and rule it loads), or
        files that hold a text (a sysctl's value in /proc/sys, a file setup wrote)."""
        for check in step.checks:
            if check.kind != kind:
                continue
            if check.compare:
                self.compared(check)
                continue
            if check.probe:
                self.add(_ok(self.probe(check.probe), kind, check.what, "missing"))
                continue
            live, problem = _read(check.path, check.netns)
            if kind == "sysctl":
                value = None if live is None else " ".join(live.split())  # words the kernel prints apart by tabs
                self.add(_ok(value == check.text, kind, check.what, "the setting is missing" if value is None else f"it is {value}"))
            else:
                self.add(_ok(live == check.text, kind, check.what if live is not None else check.path,
                             "its content differs" if live is not None else problem))

    def compared(self, check: Check) -> None:
        """A probe judged by more than its success: nft's listing of a table, compared with the
        plan's (one line a chain, rule and element); or a rule needed only where a FORWARD chain can drop."""
        if check.compare == "nft":
            from nsgen import check_nft

            done = self.read(check.probe)
            for ok, what in check_nft.compare(check.text or "{}", done.returncode, done.stdout, done.stderr):
                self.add(Result(PASS if ok else FAIL, check.kind, what))
        elif check.compare in ("vxlan", "fdb"):
            self.overlay(check)
        elif check.compare == "where_forward_drops":
            if self.probe(check.probe):
                self.add(Result(PASS, check.kind, check.what))
                return
            drops = forward_drops(check.probe[0], self.read)
            if drops:
                self.add(Result(FAIL, check.kind, check.what, f"missing, and {check.probe[0]}' FORWARD chain can drop ({drops})"))
        else:
            raise ValueError(f"unknown comparison {check.compare!r} of check {check.what!r}")

    def overlay(self, check: Check) -> None:
        """A VXLAN device, or the forwarding and neighbour entries of an overlay network, compared
        with the facts the plan expects (check_overlay): one line each."""
        from nsgen import check_overlay

        expected = json.loads(check.text or "{}")
        done = self.read(check.probe)
        if check.compare == "vxlan":
            ok, detail = check_overlay.vxlan(expected, done.returncode, done.stdout, done.stderr)
        else:
            neigh = self.read(check_overlay.neigh_argv(expected))
            ok, detail = check_overlay.entries(expected, (done.returncode, done.stdout, done.stderr),
                                               (neigh.returncode, neigh.stdout, neigh.stderr))
        self.add(_ok(ok, check.kind, check.what, detail))

    def processes(self, step: Step) -> None:
        for cmd in step.commands:
            if not cmd.detach:
                continue
            _log, pidfile = cmd.detach
            container, program = _started(cmd)
            if pidfile.endswith(".shim"):  # the program's own pid, written by the shell in front
                pidfile = pidfile[: -len(".shim")] + ".pid"
            pid = read_pid(pidfile)
            if pid is None:
                self.add(Result(FAIL, "process", f"{container}: {program}", f"no pid in {pidfile}"))
                continue
            problem = process_state(pid, container) if container else None
            self.add(_ok(problem is None, "process", f"{container}: {program} (pid {pid})", problem or ""))


def _read(path: str, netns: str = "") -> tuple[str | None, str]:
    """(the text of a file, "") or (None, why it cannot be read); `netns`: read inside that namespace."""
    if netns:
        done = subprocess.run(("nsenter", f"--net={NETNS_DIR}/{netns}", "cat", path), capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout, ""
        return None, (done.stderr.strip().rpartition(": ")[2] or "cannot read").lower()
    try:
        with open(path) as f:
            return f.read(), ""
    except OSError as exc:
        return None, (exc.strerror or "cannot read").lower()


def _started(cmd: Command) -> tuple[str, str]:
    """(namespace, program) of a detached command: `[setsid] ip netns exec NS [sh -c EXIT_STATUS
    EXITFILE] PROGRAM ARGS...`."""
    from nsgen.plan import EXIT_STATUS
    from nsgen.plan.processes import ENV

    argv = list(cmd.argv)
    container = ""
    for i in range(len(argv) - 3):
        if argv[i:i + 3] == ["ip", "netns", "exec"]:
            container, argv = argv[i + 3], argv[i + 4:]
            break
    if argv[:4] == ["setsid", "sh", "-c", EXIT_STATUS]:  # nsgen's port proxy: started on the host, it enters its container
        argv = argv[1:]
        container = argv[argv.index("--netns") + 1] if "--netns" in argv[:-1] else ""
    if argv[:3] == ["sh", "-c", EXIT_STATUS]:  # the program's words follow the shell's and its BASE
        argv = argv[4:]
    if argv[:1] == [SETPRIV]:  # as its user: setpriv --reuid=UID --regid=GID --init-groups|--clear-groups
        argv = argv[4:]
    if argv[:1] == [ENV]:  # env [-C DIR] NAME=VALUE...
        argv = argv[3:] if argv[1:2] == ["-C"] else argv[1:]
        while argv and "=" in argv[0]:
            argv = argv[1:]
    program = " ".join([argv[0].rsplit("/", 1)[-1], *argv[1:]]) if argv else ""
    return container, program


def compare(plan: Plan, observer: Observer | None = None, probe: Callable[[tuple[str, ...]], bool] = run_probe,
            read: Reader = read_output) -> list[Result]:
    """Every check of the live host against the plan, in plan order."""
    return _Checker(plan, observer or Observer(), probe, read).run()


# ----------------------------------------------------------------------------------------------
# Connectivity probes


def default_gateway(version: int = 4) -> str | None:
    """The host's default gateway of a family: the first router outside, a sensible target for "the outside"."""
    routes = Observer._ip_json(None, f"-{version}", "route", "show", "default")
    for route in routes or []:
        if route.get("gateway"):
            return route["gateway"]
    return None


def _ping(netns: str, address: str, family: str = "") -> str | None:
    """One echo request to address from inside netns; family ("-4", "-6") only for a name: ping
    picks the family of an address from the address itself."""
    argv = ["ip", "netns", "exec", netns, "ping", *([family] if family else []), "-n", "-q", "-c", "1", "-W", PING_WAIT, address]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return "ip: command not found"
    if done.returncode == 0:
        return None
    message = done.stderr.strip().splitlines()
    return message[-1] if message else "no reply"


# A TCP connection, retried while refused (a server may still be starting), for CONNECT_TIMEOUT seconds.
CONNECT = """\
import socket, sys, time
address, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + wait
while True:
    try:
        socket.create_connection((address, port), wait).close()
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            sys.exit("connection refused")
        time.sleep(0.1)
    except OSError as exc:
        sys.exit(exc.strerror or type(exc).__name__)
"""


def _connect(netns: str | None, address: str, port: int) -> str | None:
    """A TCP connection to address:port, from the host or from inside netns; None when it opens."""
    inside = ["ip", "netns", "exec", netns] if netns else []
    argv = [*inside, sys.executable, "-S", "-c", CONNECT, address, str(port), str(CONNECT_TIMEOUT)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return f"{argv[0]}: command not found"
    if done.returncode == 0:
        return None
    last = done.stderr.strip().splitlines()
    return last[-1] if last else "cannot connect"


Probe = tuple[str, Callable[[], str | None] | None, str]  # (what, test, why skipped)
Aims = dict[int, tuple[str | None, str]]  # family -> (the outside target, or None and why there is none)


def _at(address: object, port: int) -> str:
    """ADDRESS:PORT, an IPv6 address in brackets."""
    text = str(address)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _neighbour_probes(t: Topology, c: Container) -> list[Probe]:
    """From c, a ping to its gateway and to each neighbour on each network, in each family it has."""
    out: list[Probe] = []
    for a in c.attachments:
        for _address, _n, gateway in a.addresses:
            out.append((f"{c.name} → gateway {gateway} ({a.network}, ping)", partial(_ping, c.name, str(gateway)), ""))
            for other, b in t.members(a.network):
                theirs = b.address_of(gateway.version)
                if other.name != c.name and theirs is not None:
                    out.append((f"{c.name} → neighbour {other.name} {theirs} ({a.network}, ping)", partial(_ping, c.name, str(theirs)), ""))
    return out


def _outside_probes(t: Topology, c: Container, aims: Aims) -> list[Probe]:
    """From c, a ping to the outside in each family that it routes out and masquerades: through the
    network whose static route leads to the target, else through the first network that gives a
    default route and has an address of that family."""
    out: list[Probe] = []
    for version in (4, 6):
        target, why = aims.get(version, (None, "no target"))
        routed = _routed(t, c, target)
        a = routed or t.way_out(c, version)
        if a is None or not t.networks[a.network].masquerade:
            continue
        family = "" if version == 4 else "IPv6, "
        through = f"{a.network}'s route" if routed else a.network
        what = f"{c.name} → outside {target or '?'} ({family}masqueraded through {through}, ping)"
        if target is None:
            out.append((what, None, why))
            continue
        name = _version(target) is None  # a name: resolved inside the container, in this family
        out.append((what, partial(_ping, c.name, target, f"-{version}" if name else ""), ""))
    return out


def _routed(t: Topology, c: Container, target: str | None) -> Attachment | None:
    """The attachment whose network's static route leads c to the target address (None: none does)."""
    if target is None or _version(target) is None:
        return None
    address = ipaddress.ip_address(target)
    return next((a for a in c.attachments for r in t.routes_of(c, a) if address in r.destination), None)


def _port_probes(t: Topology, c: Container) -> list[Probe]:
    """Each published TCP port of c, in each family it is published on: from the host (127.0.0.1
    for IPv4; for IPv6 the network's IPv6 gateway, an address of the host, or [::1] for a port
    published there, which nsgen's port proxy serves) and from each member of c's first network
    (at the network's gateway), or at the one address it is published on."""
    first = c.default_attachment
    out: list[Probe] = []
    for p in c.ports:
        versions = p.versions(t.networks[first.network].versions) if first else (4,)
        for version in versions:
            mine = first.address_of(version) if first else None
            inside = _at(mine, p.container_port) if mine is not None else "?"
            gateway = (first.gateway if version == 4 else first.gateway6) if first else None
            if p.protocol != "tcp":
                out.append((f"published {p.host_port}/{p.protocol} → {c.name} {inside}", None, "only TCP ports are probed"))
                continue
            local = p.address is not None and p.address.is_loopback
            host = p.address or ("127.0.0.1" if version == 4 else gateway)
            out.append((f"host → published {_at(host, p.host_port)} → {c.name} {inside}", partial(_connect, None, str(host), p.host_port), ""))
            if first is None or local:
                continue
            there = p.address or gateway
            for other, _b in t.members(first.network):
                out.append((f"{other.name} → published {_at(there, p.host_port)} → {c.name} {inside}",
                            partial(_connect, other.name, str(there), p.host_port), ""))
    return out


def _resolves(netns: str, name: str, addresses: tuple[str, ...]) -> str | None:
    """Whether `name` gives each of `addresses` inside netns (its hosts file: `getent ahosts`); None when it does."""
    argv = ["ip", "netns", "exec", netns, "getent", "ahosts", name]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return "ip: command not found"
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"no address for {name}"
    found = list(dict.fromkeys(line.split()[0] for line in done.stdout.splitlines() if line.split()))
    missing = [a for a in addresses if not any(_same(a, f) for f in found)]
    return f"it gives {', '.join(found) or 'nothing'}, not {', '.join(missing)}" if missing else None


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _remote_probes(t: Topology) -> list[Probe]:
    """On each overlay network of a host's part, from its first container here: a ping to each
    address of each container on another host, in each family the container here has, and the name
    of the first of them looked up in the hosts file."""
    out: list[Probe] = []
    for net in t.networks.values():
        here = t.members(net.name)
        if net.overlay is None or not net.overlay.remote or not here:
            continue
        c, a = here[0]
        for m in net.overlay.remote:
            for address in m.addresses:
                if a.address_of(address.version) is not None:
                    out.append((f"{c.name} → remote {m.container} {address} on {m.host} ({net.name}, ping)",
                                partial(_ping, c.name, str(address)), ""))
        first = net.overlay.remote[0]
        shown = tuple(str(x) for x in first.addresses)
        out.append((f"{c.name} → name {first.container} gives {', '.join(shown)} ({net.name}, hosts file)",
                    partial(_resolves, c.name, first.container, shown), ""))
    return out


def _probes(topology: Topology, aims: Aims) -> list[Probe]:
    """(what, test, why skipped): each test returns None on success or what went wrong."""
    out: list[Probe] = []
    for c in topology.containers.values():
        out += _neighbour_probes(topology, c)
        out += _outside_probes(topology, c, aims)
        out += _port_probes(topology, c)
    return out + _remote_probes(topology)


def _version(text: str) -> int | None:
    """4 or 6 for an IP address, None for a host name."""
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return None


def targets(given: Sequence[str]) -> dict[int, str]:
    """The outside target of each family from the --probe-target values: an address is its own
    family's, a name serves each family that no address was given for. ValueError when two values
    claim one family."""
    chosen: dict[int, str] = {}
    names = [text for text in given if _version(text) is None]
    for text in given:
        version = _version(text)
        if version is not None and version in chosen:
            raise ValueError(f"--probe-target is given twice for IPv{version} ({chosen[version]} and {text}): give at most one a family")
        if version is not None:
            chosen[version] = text
    if len(names) > 1:
        raise ValueError(f"--probe-target names {len(names)} hosts ({', '.join(names)}): give at most one name")
    for version in (4, 6):
        if names and version not in chosen:
            chosen[version] = names[0]
    return chosen


def _aims(topology: Topology, given: Sequence[str]) -> Aims:
    """The outside target of each family the topology has: given, or the host's default gateway."""
    chosen = targets(given)
    aims: Aims = {}
    for version in sorted({v for net in topology.networks.values() for v in net.versions}):
        if version in chosen:
            aims[version] = (chosen[version], "")
            continue
        gateway = default_gateway(version)
        family = "" if version == 4 else "IPv6 "
        if gateway is None:
            aims[version] = (None, f"the host has no {family}default gateway to aim at; give --probe-target ADDR")
        elif ipaddress.ip_address(gateway).is_link_local:
            aims[version] = (None, f"the host's {family}default gateway {gateway} is link-local, out of a container's reach; "
                                   "give --probe-target ADDR")
        else:
            aims[version] = (gateway, "")
    return aims


def probe(topology: Topology, given: Sequence[str] = ()) -> list[Result]:
    """Connectivity from each container, in each family: its gateways, its neighbours, the outside,
    published ports. `given`: the --probe-target values (see `targets`)."""
    checks = _probes(topology, _aims(topology, given))
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(test) if test else None for _what, test, _why in checks]
        results = []
        for (what, _test, why), future in zip(checks, futures):
            if future is None:
                results.append(Result(SKIP, "probe", what, why))
                continue
            problem = future.result()
            results.append(_ok(problem is None, "probe", what, problem or ""))
    return results


def valid_target(text: str) -> bool:
    """A probe target is an IPv4 or IPv6 address or a host name (resolved inside the container)."""
    if _version(text) is not None:
        return "%" not in text  # a scoped (link-local) address is no target outside
    return bool(text) and text.isascii() and all(ch.isalnum() or ch in "-." for ch in text) and not text.startswith("-")
