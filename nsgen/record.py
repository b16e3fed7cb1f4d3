"""Record writes down, and reads back, the resolved topology that a setup brings up.

The setup's first step writes it to `/run/nsgen/<name>/topology.json` (the script and `nsgen run`
alike), so that whatever happens to the topology file afterwards (an edit, a move, a host route
that makes it invalid), a teardown, a teardown script rendered later and a converging `nsgen run`
know exactly what is up: the plan is compiled again from the record, and compiling is a pure
function of the resolved topology. The digest tells whether a file describes what is up.

A record is read only when it is nsgen's own: a regular file, not a link, owned by root or by the
user nsgen runs as, writable by nobody else, in a state directory that is the same.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import stat
from typing import Any, NamedTuple

from nsgen.names import RECORD, STATE_ROOT, state_dir

FORMAT = 1


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _network(n: Any) -> dict:
    # IPv6 fields only when the network has IPv6: an IPv4 topology's record (and digest) is what it was
    six = {"subnet6": str(n.subnet6), "gateway6": str(n.gateway6)} if n.subnet6 else {}
    return {"name": n.name, "driver": n.driver, "subnet": _text(n.subnet), "gateway": _text(n.gateway),
            "masquerade": n.masquerade, "internal": n.internal, "bridge": n.bridge, **six}


def _attachment(a: Any) -> dict:
    six = {"address6": str(a.address6), "prefixlen6": a.prefixlen6, "gateway6": str(a.gateway6)} if a.address6 else {}
    return {"network": a.network, "interface": a.interface, "host_interface": a.host_interface,
            "address": _text(a.address), "prefixlen": a.prefixlen, "gateway": _text(a.gateway), **six,
            **({"aliases": list(a.aliases)} if a.aliases else {})}


def _container(c: Any) -> dict:
    return {
        "name": c.name,
        "attachments": [_attachment(a) for a in c.attachments],
        "dns": list(c.dns),
        "dns_source": c.dns_source,
        "processes": [_process(p) for p in c.processes],
        "ports": [{"host_ip": _text(p.host_ip), "host_port": p.host_port, "container_port": p.container_port,
                   "protocol": p.protocol, "spec": p.spec} for p in c.ports],
        **({"sysctls": [list(kv) for kv in c.sysctls]} if c.sysctls else {}),
    }


def _process(p: Any) -> dict:
    # a field only when it is not its default: the record (and digest) of a topology without it is what it was
    extra = {"host_side": p.host_side and True, "environment": [list(kv) for kv in p.environment],
             "user": p.user and list(p.user), "working_dir": p.working_dir}
    return {"argv": list(p.argv), "ready": list(p.ready), "ready_timeout": p.ready_timeout, **{k: v for k, v in extra.items() if v}}


def _process_from(p: dict) -> Any:
    from nsgen.models import Process

    user = p.get("user")
    return Process(tuple(map(str, p["argv"])), tuple(map(str, p["ready"])), float(p["ready_timeout"]), p.get("host_side") is True,
                   tuple((str(k), str(v)) for k, v in p.get("environment", ())),
                   (int(user[0]), int(user[1]), bool(user[2])) if user else None, str(p.get("working_dir", "")))


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(", ", ": "))


def digest(topology: Any) -> str:
    """Sixteen hex digits that change whenever anything the plan is compiled from changes."""
    body = _dump({"name": topology.name, "host": list(topology.host), "networks": [_network(n) for n in topology.networks.values()],
                  "containers": [_container(c) for c in topology.containers.values()],
                  **({"hostname": topology.hostname} if topology.hostname else {})})
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def digest_line(value: str) -> str:
    """The text of the record that names its digest `value` (what a script greps for)."""
    return f'"digest": "{value}"'


def text(topology: Any, value: str | None = None) -> str:
    """The record: JSON, one network or container a line, so that it reads well in a script
    (`value`: the topology's digest, when it is known already)."""
    t = topology
    named = f' "hostname": {_dump(t.hostname)},' if t.hostname else ""
    head = f'{{"format": {FORMAT}, {digest_line(value or digest(t))}, "name": {_dump(t.name)}, "host": {_dump(t.host._asdict())},{named}'
    nets = ",\n".join(f"  {_dump(_network(n))}" for n in t.networks.values())
    boxes = ",\n".join(f"  {_dump(_container(c))}" for c in t.containers.values())
    return f'{head}\n"networks": [\n{nets}\n],\n"containers": [\n{boxes}\n]}}\n'


def _ip(value: Any, kind: Any) -> Any:
    return None if value is None else kind(value)


def from_text(body: str | bytes) -> Any:
    """The topology a record describes (ValueError when it is not a record nsgen can read)."""
    from nsgen.models import Attachment, Container, Host, Network, PublishedPort, Topology

    try:
        data = json.loads(body)
        if data.get("format") != FORMAT:
            raise ValueError(f"record format {data.get('format')!r} is not {FORMAT}")
        networks = {}
        for n in data["networks"]:
            networks[n["name"]] = Network(str(n["name"]), str(n["driver"]), _ip(n["subnet"], ipaddress.IPv4Network),
                                          _ip(n["gateway"], ipaddress.IPv4Address), bool(n["masquerade"]), bool(n["internal"]),
                                          n["bridge"] if n["bridge"] is None else str(n["bridge"]),
                                          _ip(n.get("subnet6"), ipaddress.IPv6Network), _ip(n.get("gateway6"), ipaddress.IPv6Address))
        containers = {}
        for c in data["containers"]:
            attachments = tuple(Attachment(str(a["network"]), str(a["interface"]), str(a["host_interface"]), _ip(a["address"], ipaddress.IPv4Address),
                                           int(a["prefixlen"]), _ip(a["gateway"], ipaddress.IPv4Address),
                                           _ip(a.get("address6"), ipaddress.IPv6Address), int(a.get("prefixlen6", 0)),
                                           _ip(a.get("gateway6"), ipaddress.IPv6Address), tuple(map(str, a.get("aliases", ()))))
                                for a in c["attachments"])
            ports = tuple(PublishedPort(ipaddress.ip_address(p["host_ip"]) if p["host_ip"] else None, int(p["host_port"]),
                                        int(p["container_port"]), str(p["protocol"]), str(p["spec"])) for p in c["ports"])
            containers[c["name"]] = Container(str(c["name"]), attachments, tuple(map(str, c["dns"])), str(c["dns_source"]),
                                              tuple(_process_from(p) for p in c["processes"]), ports,
                                              tuple((str(k), str(v)) for k, v in c.get("sysctls", ())))
        host = Host(bool(data["host"]["ip_forward"]), bool(data["host"]["persist"]))
        topology = Topology(str(data["name"]), networks, containers, host, hostname=str(data.get("hostname", "")))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a record of a topology ({type(exc).__name__}: {exc})") from None
    if data.get("digest") != digest(topology):
        raise ValueError("its digest does not match its content")
    return topology


# ----------------------------------------------------------------------------------------------
# Trust: what nsgen reads back must be its own


def path_problem(path: str, kind: str) -> str | None:
    """Why `path` (an existing "dir" or "file") is not nsgen's own; None when it is.

    Its own: not a symbolic link, of the expected kind, owned by root (or by the user nsgen runs
    as), and writable by nobody else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "it is missing"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if kind == "dir" and not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid not in (0, os.geteuid()):
        return f"it belongs to uid {st.st_uid}, not to root"
    if st.st_mode & 0o022:
        return f"others may write to it (mode {st.st_mode & 0o7777:04o})"
    return None


def state_problem(name: str) -> str | None:
    """Why the state directory of topology `name`, when it exists, is not nsgen's own (None: it
    is, or there is none): itself, its parent and its record checked, and no link inside."""
    folder = state_dir(name)
    if not os.path.lexists(folder):
        return None
    for path, kind in ((STATE_ROOT, "dir"), (folder, "dir"), (os.path.join(folder, RECORD), "file")):
        problem = path_problem(path, kind)
        if problem:
            what = "its record " + path if kind == "file" else path
            return f"{what}: {problem}"
    try:
        entries = os.listdir(folder)
    except OSError as exc:
        return f"{folder}: it cannot be read ({exc.strerror})"
    for entry in sorted(entries):
        if os.path.islink(os.path.join(folder, entry)):
            return f"{folder}/{entry}: it is a symbolic link"
    return None


class Recorded(NamedTuple):
    topology: Any
    digest: str


def load(name: str) -> Recorded | None:
    """What is recorded as up for topology `name`, or None when there is no record to trust."""
    folder = state_dir(name)
    if not name or name.startswith(".") or os.path.dirname(os.path.normpath(folder)) != STATE_ROOT:
        return None  # not a topology's name (resolve would refuse it): never read outside the state root
    if not os.path.isdir(folder) or state_problem(name) is not None:
        return None
    try:
        fd = os.open(os.path.join(folder, RECORD), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            body = f.read()
    except OSError:
        return None
    try:
        topology = from_text(body)
    except ValueError:
        return None
    if topology.name != name:
        return None
    return Recorded(topology, digest(topology))


def plan_of(name: str) -> Any:
    """The plan of what is up for topology `name`, compiled from its record (None: no record)."""
    from nsgen.plan import compile_plan

    found = load(name)
    return compile_plan(found.topology) if found else None
