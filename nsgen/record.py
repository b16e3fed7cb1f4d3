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
import types
import typing
from typing import Any, NamedTuple

from nsgen.names import RECORD, STATE_ROOT, state_dir

FORMAT = 1


# A record holds every field of the models' records: those without a default always, those with a
# default (added since the format began) only when they differ from it, so that a topology that
# uses none of them has the record, and the digest, it always had. Process's `ready` and
# `ready_timeout` were written from the start, and stay so.
_ALWAYS = {"Process": ("ready", "ready_timeout")}


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        defaults, always = type(value)._field_defaults, _ALWAYS.get(type(value).__name__, ())  # type: ignore[attr-defined]
        return {f: _encode(v) for f, v in zip(value._fields, value)
                if f not in defaults or f in always or v != defaults[f]}
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return str(value)  # addresses and prefixes


def _network(n: Any) -> dict:
    return _encode(n)


def _container(c: Any) -> dict:
    return _encode(c)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(", ", ": "))


def _host(host: Any) -> list:
    """The host settings a plan is compiled from (the backend only when it is not the default,
    so a topology's digest is what it was before nftables; why auto chose it is no part of the plan)."""
    return [host.ip_forward, host.persist, *([host.firewall] if host.firewall != "iptables" else [])]


def _spread(topology: Any) -> dict:
    """The hosts a topology spans and the one it is the part of (nothing for a topology on one host)."""
    if not topology.hosts:
        return {}
    return {"hosts": _encode(topology.hosts), "on_host": topology.on_host}


def digest(topology: Any) -> str:
    """Sixteen hex digits that change whenever anything the plan is compiled from changes."""
    body = _dump({"name": topology.name, "host": _host(topology.host), "networks": [_network(n) for n in topology.networks.values()],
                  "containers": [_container(c) for c in topology.containers.values()],
                  **({"hostname": topology.hostname} if topology.hostname else {}), **_spread(topology)})
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def digest_line(value: str) -> str:
    """The text of the record that names its digest `value` (what a script greps for)."""
    return f'"digest": "{value}"'


def text(topology: Any, value: str | None = None) -> str:
    """The record: JSON, one network or container a line, so that it reads well in a script
    (`value`: the topology's digest, when it is known already)."""
    t = topology
    named = f' "hostname": {_dump(t.hostname)},' if t.hostname else ""
    named += "".join(f" {_dump(k)}: {_dump(v)}," for k, v in _spread(t).items())
    head = f'{{"format": {FORMAT}, {digest_line(value or digest(t))}, "name": {_dump(t.name)}, "host": {_dump(_encode(t.host))},{named}'
    nets = ",\n".join(f"  {_dump(_network(n))}" for n in t.networks.values())
    boxes = ",\n".join(f"  {_dump(_container(c))}" for c in t.containers.values())
    return f'{head}\n"networks": [\n{nets}\n],\n"containers": [\n{boxes}\n]}}\n'


_IP_KINDS = {ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network}


def _decode(kind: Any, value: Any) -> Any:
    """`value` read back as a `kind` (a type hint of the models); TypeError when it cannot be one."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        kinds = [k for k in args if k is not type(None)]
        if set(kinds) <= _IP_KINDS:  # one of the families: the text tells which
            parsed = (ipaddress.ip_network if kinds[0] in (ipaddress.IPv4Network, ipaddress.IPv6Network) else ipaddress.ip_address)(str(value))
            if type(parsed) not in kinds:
                raise TypeError(f"{value!r} is not a {kind}")
            return parsed
        return _decode(kinds[0], value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        if len(args) != len(value):
            raise TypeError(f"{value!r} has not {len(args)} items")
        return tuple(_decode(k, v) for k, v in zip(args, value))
    if origin is dict:
        return {_decode(args[0], k): _decode(args[1], v) for k, v in dict(value).items()}
    if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields"):
        return _record(kind, value)
    if kind in _IP_KINDS:
        return kind(str(value))
    if kind is bool and not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return kind(value)


def _record(kind: Any, value: dict) -> Any:
    hints = typing.get_type_hints(kind)
    unknown = set(value) - set(kind._fields)
    if unknown:
        raise TypeError(f"{kind.__name__} has no field {sorted(unknown)[0]!r}")
    return kind(**{f: _decode(hints[f], value[f]) for f in kind._fields if f in value or f not in kind._field_defaults})


def from_text(body: str | bytes) -> Any:
    """The topology a record describes (ValueError when it is not a record nsgen can read)."""
    from nsgen.models import Container, Host, Machine, Network, Topology

    try:
        data = json.loads(body)
        if data.get("format") != FORMAT:
            raise ValueError(f"record format {data.get('format')!r} is not {FORMAT}")
        networks = {str(n["name"]): _record(Network, n) for n in data["networks"]}
        containers = {str(c["name"]): _record(Container, c) for c in data["containers"]}
        host = _record(Host, data["host"])
        hosts = tuple(_record(Machine, m) for m in data.get("hosts", ()))
        topology = Topology(str(data["name"]), networks, containers, host, hostname=str(data.get("hostname", "")), hosts=hosts,
                            on_host=str(data.get("on_host", "")))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
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
