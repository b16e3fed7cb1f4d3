"""Resolution knows what a valid topology is and completes it; it knows nothing of commands or
shells, and reads the host only through a `hostinfo.Environment`.

`resolve(data)` turns the user-shaped data from `load` into a `models.Topology` in which every
default is decided: addresses allocated, gateways chosen, interface names derived, programs located.
Every rule, within one object or across objects, is checked here, and all broken rules are reported
together, each under the path of the field it concerns (`containers.web.networks.front.address`).
"""

from __future__ import annotations

import ipaddress
import shlex
import zlib
from collections.abc import Callable
from typing import Any

from nsgen.errors import ValidationError
from nsgen.hostinfo import Environment, default_interface, namespace_dns, parse_nameserver
from nsgen.models import (
    ATTACHMENT_KEYS,
    BRIDGE_MAX_PORTS,
    CONTAINER_KEYS,
    DIRECT_DRIVERS,
    DRIVERS,
    ENV_NAME_RE,
    FIREWALLS,
    HOST_KEYS,
    HOSTNAME_LABEL_RE,
    HOSTNAME_MAX,
    IFNAME_MAX,
    KERNEL_RESERVED_IFNAMES,
    LOCALHOST_NAMES,
    MAC_RE,
    MTU6_MIN,
    MTU_MAX,
    MTU_MIN,
    NAME_RE,
    NAMESPACE_NAME_MAX,
    NETWORK_KEYS,
    NETWORK_NAME_MAX,
    PROCESS_KEYS,
    PROTOCOLS,
    READY_TIMEOUT,
    READY_TIMEOUT_MAX,
    ROUTE_KEYS,
    SETPRIV,
    SUBNET6_MAX_PREFIX,
    SYSCTL_KEY_RE,
    TOPOLOGY_KEYS,
    TOPOLOGY_NAME_MAX,
    Attachment,
    Container,
    Host,
    IPAddress,
    IPNetwork,
    Network,
    Overlay,
    Process,
    PublishedPort,
    Route,
    Topology,
    ip_keyword,
)


class Problems:
    """Collects every broken rule with the path of the field it concerns."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationError(self.items)


def _show(value: Any) -> str:
    """A value as it appears in a message: short, one line, unambiguous."""
    text = repr(value) if isinstance(value, str) else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:57] + "..."


def _k(key: Any) -> str:
    """A mapping key as a path element: as written when it is a plain name, else quoted, so that
    a path never holds a newline or other control character."""
    text = str(key)
    return text if text.isprintable() else repr(text)


# Where each level's keys belong, for the hint on a key written at another level: in YAML that is
# almost always a line indented one level too deep or too shallow.
KEY_LEVELS = (
    (TOPOLOGY_KEYS, "the topology (at the top level)"),
    (NETWORK_KEYS, "a network (under networks.<name>)"),
    (CONTAINER_KEYS, "a container (under containers.<name>)"),
    (ATTACHMENT_KEYS, "a container's network (under containers.<name>.networks.<network>)"),
    (HOST_KEYS, "the host settings (under host)"),
)


def _misplaced(key: Any, allowed: set[str] | None = None) -> str:
    """"'subnet' is a key of a network (...): check its indentation" when `key` belongs to another
    level than the one whose keys are `allowed` (None: a level of names, which has no keys), else ""."""
    levels = [where for keys, where in KEY_LEVELS if keys is not allowed and key in keys]
    if not levels:
        return ""
    return f"{_show(key)} is a key of {' and of '.join(levels)}: check its indentation"


def _check_keys(obj: dict, allowed: set[str], path: str, problems: Problems) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{_k(key)}" if path else _k(key)
            hint = _misplaced(key, allowed)
            if not hint:
                import difflib  # only for a message

                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
            problems.add(where, f"unknown key {_show(key)}; {hint}")


def _mapping(value: Any, path: str, problems: Problems, *, allow_none: bool = True) -> dict:
    if value is None and allow_none:
        return {}
    if not isinstance(value, dict):
        problems.add(path, f"must be a mapping (key: value), got {type(value).__name__} {_show(value)}")
        return {}
    return value


def _bool(value: Any, path: str, problems: Problems, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.add(path, f"must be true or false, got {_show(value)}")
        return default
    return value


def check_name(value: Any, path: str, problems: Problems, *, cap: int, what: str) -> str | None:
    """Names reach file paths, interface names and rule tags: an allowlist, counted in bytes."""
    if not isinstance(value, str):
        problems.add(path, f"{what} must be a string, got {_show(value)}")
        return None
    size = len(value.encode("utf-8"))
    if size == 0:
        problems.add(path, f"{what} must not be empty")
        return None
    if not NAME_RE.fullmatch(value):
        problems.add(
            path,
            f"{what} {_show(value)} is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', "
            "starting with a letter or digit",
        )
        return None
    if size > cap:
        problems.add(path, f"{what} {_show(value)} is {size} bytes long; the limit is {cap}")
        return None
    return value



def _ifname(value: Any, path: str, problems: Problems, *, host: bool = True) -> str | None:
    """An interface name: the common allowlist, and not a word `ip` or the kernel takes for another."""
    name = check_name(value, path, problems, cap=IFNAME_MAX, what="interface name")
    if name is None:
        return None
    if name in KERNEL_RESERVED_IFNAMES:
        problems.add(path, f"interface name {name!r} is refused by the kernel (net.ipv4.conf.{name} names a setting, not a device)")
        return None
    keyword = ip_keyword(name)
    if keyword == name:
        problems.add(path, f"interface name {name!r} is a keyword of iproute2's ip, which would not read it as a device name")
        return None
    if keyword is not None:
        problems.add(path, f"interface name {name!r} is read by iproute2's ip as its keyword {keyword!r} "
                           "(ip takes abbreviations), not as a device name")
        return None
    if name == "lo" and host:
        problems.add(path, "'lo' is the host's loopback interface; nsgen cannot make a device of that name")
        return None
    return name


def _address(value: Any, path: str, problems: Problems) -> IPAddress | None:
    if not isinstance(value, str):
        problems.add(path, f"must be an IP address written as a string, got {_show(value)}")
        return None
    try:
        if "%" in value:
            raise ValueError(value)  # a scope names a host interface: no container address has one
        return ipaddress.ip_address(value)
    except ValueError:
        problems.add(path, f"{_show(value)} is not an IP address (like 172.18.0.2 or fd00:18::2)")
        return None


_SUBNET_LIKE = "like 172.18.0.0/24 or fd00:18::/64"


def _subnet(value: Any, path: str, problems: Problems) -> IPNetwork | None:
    if not isinstance(value, str):
        problems.add(path, f"must be a subnet written as a string ({_SUBNET_LIKE}), got {_show(value)}")
        return None
    if "/" not in value:
        problems.add(path, f"{_show(value)} has no prefix length; write it {_SUBNET_LIKE}")
        return None
    try:
        subnet = ipaddress.ip_network(value, strict=False)
        interface = ipaddress.ip_interface(value)
    except ValueError:
        problems.add(path, f"{_show(value)} is not a subnet ({_SUBNET_LIKE})")
        return None
    if subnet.network_address != interface.ip:
        problems.add(path, f"{_show(value)} has host bits set; the subnet is {subnet}")
        return None
    why = _unusable(subnet)
    if why:
        problems.add(path, why)
        return None
    return subnet


def _unusable(subnet: IPNetwork) -> str | None:
    """Why a subnet of either family cannot be a container network (None: it can)."""
    for test, kind in (
        (subnet.is_loopback, "loopback"),
        (subnet.is_multicast, "multicast"),
        (subnet.is_link_local, "link-local"),
        (subnet.is_unspecified, "unspecified"),
        (subnet.is_reserved, "reserved"),
        (subnet.version == 6 and subnet.is_site_local, "site-local (deprecated)"),
    ):
        if test:
            return f"{subnet} is a {kind} range and cannot be a container network"
    if subnet.version == 4:
        if subnet.overlaps(ipaddress.ip_network("0.0.0.0/8")):
            return f"{subnet} overlaps 0.0.0.0/8 ('this network') and cannot be a container network"
        if subnet.prefixlen > 30:
            return f"{subnet} is too small: a network needs at least a /30 (gateway and one container)"
        return None
    if subnet.overlaps(ipaddress.ip_network("::ffff:0:0/96")):
        return f"{subnet} overlaps ::ffff:0:0/96 (IPv4-mapped addresses) and cannot be a container network"
    if subnet.prefixlen > SUBNET6_MAX_PREFIX:
        return (f"{subnet} is too small: an IPv6 network needs at least a /{SUBNET6_MAX_PREFIX} "
                "(its subnet-router anycast address, the gateway and one container)")
    return None


def _per_family(value: Any, path: str, problems: Problems, parse: Callable[[Any, str, Problems], Any], what: str, like: str) -> dict[int, Any] | None:
    """One value, or a list of at most one value per family: {4: value, 6: value} (the families
    written), or None when something is wrong (reported)."""
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not 1 <= len(value) <= 2:
        problems.add(path, f"must be one {what} or a list of one IPv4 and one IPv6 {what} ({like}), got {len(value)} items")
        return None
    found: dict[int, Any] = {}
    ok = True
    for i, item in enumerate(items):
        parsed = parse(item, f"{path}[{i}]" if isinstance(value, list) else path, problems)
        if parsed is None:
            ok = False
        elif parsed.version in found:
            plural = what + ("es" if what.endswith("s") else "s")
            problems.add(path, f"lists two IPv{parsed.version} {plural} ({found[parsed.version]}, {parsed}); "
                               f"a network has at most one {what} per family")
            ok = False
        else:
            found[parsed.version] = parsed
    return found if ok else None


def _short_hash(*parts: str) -> str:
    """Eight hex digits that tell derived names apart (CRC-32: no cryptographic strength is
    needed, a clash is reported like any other name clash, and zlib loads in no time)."""
    return f"{zlib.crc32('/'.join(parts).encode()):08x}"


def _parse_port(spec: Any, path: str, problems: Problems) -> tuple[PublishedPort, ...] | None:
    """Docker's syntax: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL], where each port may be a
    range LOW-HIGH (`8080-8082:80-82`): a host range maps one to one onto a container range of the
    same length, one PublishedPort a port, each keeping the spec as written."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        problems.add(path, f"{spec} must be written as 'HOST_PORT:CONTAINER_PORT' (a string, like \"8080:{spec}\")")
        return None
    if not isinstance(spec, str):
        problems.add(path, f"must be a string like \"8080:80\", got {_show(spec)}")
        return None
    body, _, protocol = spec.partition("/")
    protocol = protocol or "tcp"
    if protocol not in PROTOCOLS:
        problems.add(path, f"{_show(spec)}: protocol {_show(protocol)} is not one of {', '.join(PROTOCOLS)}")
        return None
    if body.startswith("[") and "]:" in body:  # Docker's way to write an IPv6 host IP: [::1]:8080:80
        inner, _, rest = body[1:].partition("]:")
        parts = [f"[{inner}]", *rest.split(":")]
    else:
        parts = body.rsplit(":", 2)  # as Docker splits it: an IPv6 host IP holds colons itself
    if len(parts) == 2 and not parts[0].startswith("["):
        host_ip: str | None
        host_ip, host_port, container_port = None, parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host_port, container_port = parts
    else:
        problems.add(path, f"{_show(spec)} is not [HOST_IP:]HOST_PORT:CONTAINER_PORT[/{'|'.join(PROTOCOLS)}]")
        return None
    host = _port_range(host_port, "host port", spec, path, problems)
    inside = host and _port_range(container_port, "container port", spec, path, problems)
    if not host or not inside:
        return None
    if len(host) != len(inside):
        problems.add(path, f"{_show(spec)}: {_count(host, 'host port')}, {_count(inside, 'container port')}; "
                           "a host range maps one to one onto a container range of the same length")
        return None
    ip: IPAddress | None = None
    if host_ip is not None:
        ok, ip = _host_ip(host_ip, spec, path, problems)
        if not ok:
            return None
        if protocol == "sctp" and ip == ipaddress.IPv6Address("::1"):
            problems.add(path, f"{_show(spec)}: SCTP cannot be published on [::1]: the kernel never carries ::1 into a container, "
                               "and nsgen's port proxy, which serves [::1], relays TCP and UDP only")
            return None
    return tuple(PublishedPort(ip, h, c, protocol, spec) for h, c in zip(host, inside, strict=True))


def _count(ports: range, which: str) -> str:
    """`host port range 8080-8082 has 3 ports`, `container port 80 is 1 port`"""
    return f"{which} {ports[0]} is 1 port" if len(ports) == 1 else f"{which} range {ports[0]}-{ports[-1]} has {len(ports)} ports"


def _port_range(text: str, which: str, spec: str, path: str, problems: Problems) -> range | None:
    """PORT or LOW-HIGH (LOW at most HIGH), each 1-65535: the ports, or None (reported)."""
    low, dash, high = text.partition("-")
    numbers = []
    for part in (low, high) if dash else (low,):
        if not part.isascii() or not part.isdigit() or (len(part) > 1 and part[0] == "0"):
            problems.add(path, f"{_show(spec)}: {which} {_show(text)} is not a port number" + (" range (LOW-HIGH)" if dash else ""))
            return None
        number = int(part)
        if not 1 <= number <= 65535:
            problems.add(path, f"{_show(spec)}: {which} {number} is out of range 1-65535")
            return None
        numbers.append(number)
    if numbers[0] > numbers[-1]:
        problems.add(path, f"{_show(spec)}: {which} range {text} is reversed; write it low to high ({numbers[-1]}-{numbers[0]})")
        return None
    return range(numbers[0], numbers[-1] + 1)


def _host_ip(text: str, spec: str, path: str, problems: Problems) -> tuple[bool, IPAddress | None]:
    """A published port's host IP: (True, the address), or (False, None) when refused. As in
    Docker, an IPv6 host IP is written in brackets (`[2001:db8::1]:8080:80`); 0.0.0.0 means every
    IPv4 address of the host and [::] every IPv6 one."""
    bracketed = text.startswith("[") and text.endswith("]")
    inner = text[1:-1] if bracketed else text
    try:
        if "%" in inner:
            raise ValueError(inner)
        address = ipaddress.ip_address(inner)
    except ValueError:
        problems.add(path, f"{_show(spec)}: host IP {_show(text)} is not an IP address (like 127.0.0.1, or [::1] for IPv6)")
        return False, None
    if address.version == 6 and not bracketed:
        problems.add(path, f"{_show(spec)}: an IPv6 host IP is written in brackets: [{inner}]:PORT:PORT")
        return False, None
    if address.version == 4 and bracketed:
        problems.add(path, f"{_show(spec)}: host IP {_show(text)} is an IPv4 address; write it without brackets")
        return False, None
    if address.is_multicast or (address.version == 6 and address.is_link_local):
        kind = "multicast" if address.is_multicast else "link-local"
        problems.add(path, f"{_show(spec)}: host IP {inner} is a {kind} address; publish on an address of the host")
        return False, None
    return True, address


def _processes(value: Any, path: str, problems: Problems, env: Environment) -> tuple[Process, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(path, f"must be a list of commands, got {_show(value)}")
        return ()
    result = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        command, ready, timeout, options = item, None, None, {}
        if isinstance(item, dict):
            _check_keys(item, PROCESS_KEYS, where, problems)
            if "command" not in item:
                problems.add(f"{where}.command", "is required: the program and its arguments (a string or a list of words)")
                continue
            command, ready, timeout, options = item["command"], item.get("ready"), item.get("ready_timeout"), item
            where = f"{where}.command"
        argv = _command(command, where, problems, env)
        base = f"{path}[{i}]"
        how = _process_options(options, base, problems, env)
        if argv is None:
            continue
        wait = _ready(ready, f"{base}.ready", problems, env) if ready is not None else _implied_ready(argv, env)
        seconds = _timeout(timeout, f"{base}.ready_timeout", problems)
        if how is not None and how[1] is not None and env.programs_required and argv[0].startswith("/"):
            closed = env.closed_to(argv[0], how[1][0], how[1][1])
            if closed:
                problems.add(f"{base}.user", f"user {_show(options['user'])} cannot run {argv[0]}: {closed}")
                continue
        if wait is not None and seconds is not None and how is not None:
            result.append(Process(argv, wait, seconds, environment=how[0], user=how[1], working_dir=how[2]))
    return tuple(result)


_Options = tuple[tuple[tuple[str, str], ...], tuple[int, int, bool] | None, str]


def _process_options(item: dict, path: str, problems: Problems, env: Environment) -> _Options | None:
    """A process's environment, user and working directory: (environment, user, working dir), or None when one is wrong (reported)."""
    ok = True
    environment: list[tuple[str, str]] = []
    for key, value in _mapping(item.get("environment"), f"{path}.environment", problems).items():
        where = f"{path}.environment.{_k(key)}"
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            problems.add(where, f"{_show(key)} is not an environment variable name: use letters, digits and '_', not starting with a digit")
            ok = False
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.add(where, f"must be a string or a number, got {_show(value)}")
            ok = False
        elif "\0" in str(value) or "\n" in str(value):
            problems.add(where, f"{_show(value)} contains a NUL byte or a newline")
            ok = False
        else:
            environment.append((key, str(value)))
    user = _user(item["user"], f"{path}.user", problems, env) if "user" in item else None
    workdir = _working_dir(item["working_dir"], f"{path}.working_dir", problems, env) if "working_dir" in item else ""
    if not ok or (user is None and "user" in item) or workdir is None:
        return None
    return tuple(environment), user, workdir


def _user(value: Any, path: str, problems: Problems, env: Environment) -> tuple[int, int, bool] | None:
    """NAME|UID[:GROUP|GID], looked up on this host now: (uid, gid, whether the user has supplementary groups to take)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        problems.add(path, f"must be NAME, UID, NAME:GROUP or UID:GID (a string), got {_show(value)}")
        return None
    name, colon, group = value.partition(":")
    if not name or (colon and not group) or ":" in group or any(ch.isspace() or ch == "\0" for ch in value):
        problems.add(path, f"{_show(value)} is not NAME, UID, NAME:GROUP or UID:GID")
        return None
    found = env.account(name)
    if found is None and not name.isdigit():
        problems.add(path, f"user {_show(name)} does not exist on this host")
        return None
    if found is None and int(name) > 0xFFFFFFFE:
        problems.add(path, f"uid {name} is out of range 0-4294967294")
        return None
    uid, gid = found if found is not None else (int(name), int(name))  # a uid with no entry: its group is its number
    if group:
        given = env.group(group)
        if given is None and not (group.isdigit() and int(group) <= 0xFFFFFFFE):
            problems.add(path, f"group {_show(group)} does not exist on this host")
            return None
        gid = given if given is not None else int(group)
    if env.programs_required and not env.which(SETPRIV):
        problems.add(path, f"running a process as another user needs {SETPRIV} (util-linux), which is not found on this host's PATH")
        return None
    return uid, gid, found is not None


def _working_dir(value: Any, path: str, problems: Problems, env: Environment) -> str | None:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value or "\n" in value:
        problems.add(path, f"must be an absolute path (starting with '/', without NUL or newline), got {_show(value)}")
        return None
    if not env.is_dir(value):
        problems.add(path, f"{_show(value)} is not a directory on this host")
        return None
    return value


def _command(value: Any, path: str, problems: Problems, env: Environment) -> tuple[str, ...] | None:
    """A command: a string split as a shell would split it (never run by one), or a list of words;
    its program resolved to an absolute path now (a script run through sudo gets a reset PATH)."""
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            problems.add(path, f"{_show(value)} cannot be split into words: {exc}")
            return None
    elif isinstance(value, list) and all(isinstance(word, str) for word in value):
        argv = list(value)
    else:
        problems.add(path, f"must be a command string or a list of strings, got {_show(value)}")
        return None
    if not argv or not argv[0]:
        problems.add(path, "is an empty command")
        return None
    bad = [word for word in argv if "\0" in word or "\n" in word]
    if bad:
        problems.add(path, f"word {_show(bad[0])} contains a NUL byte or a newline")
        return None
    if argv[0] == "nsgen":
        return (*env.nsgen_command(), *argv[1:])
    found = env.which(argv[0])
    if found:
        argv[0] = found if "/" not in argv[0] else argv[0]
    elif env.programs_required:
        where = "is not an executable file" if "/" in argv[0] else "is not found on this host's PATH"
        problems.add(path, f"program {_show(argv[0])} {where}")
        return None
    return tuple(argv)


def _ready(value: Any, path: str, problems: Problems, env: Environment) -> tuple[str, ...] | None:
    """`tcp:PORT`, `udp:PORT`, `file:PATH` or a command (a list of words) that succeeds when ready."""
    if isinstance(value, list):
        argv = _command(value, path, problems, env)
        return None if argv is None else ("command", *argv)
    if not isinstance(value, str):
        problems.add(path, f"must be tcp:PORT, udp:PORT, file:PATH or a command (a list of words), got {_show(value)}")
        return None
    kind, _, rest = value.partition(":")
    if kind in ("tcp", "udp"):
        if not (rest.isascii() and rest.isdigit() and rest[0] != "0" and 1 <= int(rest) <= 65535):
            problems.add(path, f"{_show(value)}: {_show(rest)} is not a port number (1-65535)")
            return None
        return (kind, str(int(rest)))
    if kind == "file":
        if not rest.startswith("/") or "\0" in rest or "\n" in rest:
            problems.add(path, f"{_show(value)}: the file must be an absolute path, without NUL or newline")
            return None
        return ("file", rest)
    problems.add(path, f"{_show(value)} is not tcp:PORT, udp:PORT, file:PATH or a command (a list of words)")
    return None


def _implied_ready(argv: tuple[str, ...], env: Environment) -> tuple[str, ...]:
    """What a process is ready on without saying so: nsgen's echo server, its TCP port."""
    own = env.nsgen_command()
    if argv[: len(own)] == own and argv[len(own): len(own) + 1] == ("echo-server",):
        rest = argv[len(own) + 1:]
        for flag in ("--port", "-p"):
            if flag in rest[:-1] and rest[rest.index(flag) + 1].isdigit():
                return ("tcp", str(int(rest[rest.index(flag) + 1])))
            joined = next((w for w in rest if w.startswith(flag + "=")), None)
            if joined and joined.split("=", 1)[1].isdigit():
                return ("tcp", str(int(joined.split("=", 1)[1])))
        return ("tcp", "8000")
    return ()


def _timeout(value: Any, path: str, problems: Problems) -> float | None:
    if value is None:
        return READY_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= READY_TIMEOUT_MAX:
        problems.add(path, f"must be a number of seconds above 0 and at most {READY_TIMEOUT_MAX:g}, got {_show(value)}")
        return None
    return float(value)


def _nameservers(value: Any, path: str, problems: Problems) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        problems.add(path, f"must be a list of nameserver addresses, got {_show(value)}")
        return None
    result = []
    for i, item in enumerate(value):
        server, why = parse_nameserver(item) if isinstance(item, str) else (None, "is not an IP address")
        if server is None:
            problems.add(f"{path}[{i}]", f"{_show(item)} {why}")
        else:
            result.append(server)
    if len(value) > 3:
        problems.add(path, f"lists {len(value)} nameservers; resolv.conf uses at most 3")
    return tuple(result)


# ----------------------------------------------------------------------------------------------
# Resolution. Every field is checked on its own, so that one mistake never hides another; a rule
# that needs another field (an address inside its network's subnet) is checked only when that
# field is valid, so that one mistake is reported once, not again as the rules that depend on it.


def resolve(data: Any, env: Environment | None = None) -> Topology:
    """Validate user data and return the complete topology, or raise ValidationError with every problem."""
    env = env or Environment()
    problems = Problems()
    if data is None:
        raise ValidationError([("", "the topology is empty; it needs at least 'name', 'networks' and 'containers'")])
    if not isinstance(data, dict):
        raise ValidationError([("", f"the topology must be a mapping at the top level, got a {type(data).__name__}")])
    _check_keys(data, TOPOLOGY_KEYS, "", problems)
    name = check_name(data.get("name"), "name", problems, cap=TOPOLOGY_NAME_MAX, what="topology name") if "name" in data else None
    if "name" not in data:
        problems.add("name", "is required (it names the state directory and tags the firewall rules)")

    machines = spread.resolve_hosts(data["hosts"], problems) if "hosts" in data else None
    drafts = _resolve_networks(data.get("networks"), name or "", problems, env)
    spread.check_overlays(drafts, machines, problems)
    containers = _resolve_containers(data.get("containers"), drafts, name or "", problems, env, machines)
    host = _resolve_host(data.get("host"), drafts, problems, env)
    _check_host_names(drafts, containers, problems)
    _check_host_routes(drafts, containers, env, problems)
    allocated = _allocate(drafts, containers, problems, env)
    problems.raise_if_any()
    # No problem: every name, field and draft is valid from here on.
    networks = {key: draft.network() for key, draft in drafts.items()}
    topology = _topology(name or "", networks, containers, allocated, host, env)
    if machines is None:
        return topology
    return spread.spread(topology, machines, problems)


def _topology(
    name: str, networks: dict[str, Network], containers: dict[str, dict], allocated: dict, host: Host, env: Environment
) -> Topology:
    """The topology, from fields that are all valid: addresses and nameservers filled in."""
    warnings = []
    resolved_containers: dict[str, Container] = {}
    host_dns: tuple[tuple[str, ...], str, str | None] | None = None
    for cname, raw in containers.items():
        attachments = tuple(_attachment(networks[net], iface, host_if, allocated.get((cname, net, 4)), allocated.get((cname, net, 6)),
                                        raw["aliases"].get(net, ()))._replace(mac_address=raw["macs"].get(net))
                            for net, iface, host_if in raw["attachments"])
        dns, source = raw["dns"], "the topology file"
        if dns is None:
            if host_dns is None:
                host_dns = namespace_dns(env)  # read once for every container that names no DNS
            dns, source, warning = host_dns
            if warning:
                warnings.append(f"containers.{cname}.dns: {warning}")
        resolved_containers[cname] = Container(
            name=cname,
            attachments=attachments,
            dns=dns,
            dns_source=source,
            processes=(*raw["processes"], *_port_proxy(name, cname, attachments, raw["ports"], len(raw["processes"]), env)),
            ports=raw["ports"],
            sysctls=raw["sysctls"],
            host=raw["host"],
        )
    hostname = env.hostname()
    own = hostname if _hostname(hostname, "", Problems()) and hostname not in resolved_containers else ""
    return Topology(name=name, networks=networks, containers=resolved_containers, host=host, warnings=tuple(warnings), hostname=own)


def _port_proxy(topology: str, cname: str, attachments: tuple[Attachment, ...], ports: tuple[PublishedPort, ...], index: int,
                env: Environment) -> tuple[Process, ...]:
    """The process that serves the container's ports published on [::1] (nsgen/port_proxy.py):
    the kernel never carries a connection from ::1 into a container."""
    loopback = [p for p in ports if p.host_ip == ipaddress.IPv6Address("::1")]
    if not loopback or not attachments or attachments[0].address6 is None:
        return ()
    from nsgen.names import rule_tag, state_dir

    ready = f"{state_dir(topology)}/{cname}.{index}.ready"
    argv = (*env.nsgen_command(), "port-proxy", "--netns", cname, "--to", str(attachments[0].address6), "--ready", ready,
            "--tag", rule_tag(topology), *(f"{p.protocol}:{p.host_port}:{p.container_port}" for p in loopback))
    return (Process(argv, ("file", ready), READY_TIMEOUT, host_side=True),)


def _attachment(net: Network, iface: str, host_if: str, address: Any, address6: Any, aliases: tuple[str, ...] = ()) -> Attachment:
    return Attachment(network=net.name, interface=iface, host_interface=host_if,
                      address=address, prefixlen=net.subnet.prefixlen if net.subnet else 0, gateway=net.gateway,
                      address6=address6, prefixlen6=net.subnet6.prefixlen if net.subnet6 else 0, gateway6=net.gateway6, aliases=aliases)


def _entry(key: Any, value: Any, path: str, problems: Problems) -> dict | None:
    """The settings of a named entry (a network, a container, a container's network): a mapping
    ({} when empty), or None when it is something else (reported). A value that is not a mapping
    under a name that is a key of some level is a key indented one level too shallow: said so."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    hint = _misplaced(key)
    problems.add(path, f"must be a mapping (key: value), got {type(value).__name__} {_show(value)}" + (f"; {hint}" if hint else ""))
    return None


class _NetworkDraft:
    """What is known of one declared network, valid or not: a field is None where it is invalid,
    so that the rules that depend on it are skipped, not reported again. A plain class with slots:
    it is made once a network, and defining it costs nothing at import (a NamedTuple would).

    subnets and gateways map a family (4, 6) to its value; subnets is None when the field is
    invalid, gateways None when it is (or when the subnets are)."""

    __slots__ = ("bridge", "driver", "gateways", "internal", "label", "masquerade", "mtu", "name", "no_default_route", "outbound",
                 "overlay", "overlay_given", "parent", "path", "routes", "subnets")

    def __init__(self, path: str, label: str, name: str | None):
        self.path, self.label, self.name = path, label, name
        self.driver: str | None = None
        self.subnets: dict[int, IPNetwork] | None = None
        self.gateways: dict[int, IPAddress] | None = None
        self.masquerade = True
        self.internal: bool | None = None  # None: not given as true or false
        self.bridge: str | None = None  # a bridge device nsgen makes (driver bridge only)
        self.mtu: int | None = None
        self.routes: tuple[Route, ...] = ()
        self.no_default_route = False
        self.parent: str | None = None  # the host interface of a macvlan or ipvlan network
        self.outbound: tuple[IPAddress, ...] = ()  # its outbound addresses, one a family
        self.overlay: Overlay | None = None  # a network across hosts: its VNI, port and VXLAN device
        self.overlay_given = False  # whether it says overlay (valid or not)

    @property
    def direct(self) -> bool:
        return self.driver in DIRECT_DRIVERS

    def network(self) -> Network:
        """The resolved network; only when no problem was found, so that every field is valid."""
        assert self.name is not None and self.driver is not None and self.subnets is not None and self.gateways is not None
        s, g = self.subnets, self.gateways
        return Network(self.name, self.driver, s.get(4), g.get(4), self.masquerade, bool(self.internal), self.bridge,  # type: ignore[arg-type]
                       s.get(6), g.get(6), self.parent, self.outbound, mtu=self.mtu, routes=self.routes,  # type: ignore[arg-type]
                       no_default_route=self.no_default_route, overlay=self.overlay)


def _resolve_networks(value: Any, topology: str, problems: Problems, env: Environment) -> dict[Any, _NetworkDraft]:
    raw = _mapping(value, "networks", problems)
    if not raw and value is None:
        problems.add("networks", "is required: declare at least one network")
    drafts: dict[Any, _NetworkDraft] = {}
    for key, spec in raw.items():
        draft = _network(key, spec, topology, problems, env)
        for subnet in (draft.subnets or {}).values():
            for other in drafts.values():
                theirs = (other.subnets or {}).get(subnet.version)
                if theirs is not None and theirs.overlaps(subnet):  # type: ignore[arg-type]
                    problems.add(f"{draft.path}.subnet", f"{subnet} overlaps {theirs} of network {other.label!r}")
        drafts[key] = draft
    _check_parents(drafts, problems)
    return drafts


def _check_parents(drafts: dict[Any, _NetworkDraft], problems: Problems) -> None:
    """The kernel gives a parent interface macvlan or ipvlan children, not both."""
    kinds: dict[str, _NetworkDraft] = {}
    for draft in drafts.values():
        if not draft.direct or draft.parent is None:
            continue
        other = kinds.setdefault(draft.parent, draft)
        if other.driver != draft.driver:
            problems.add(f"{draft.path}.parent", f"{draft.parent!r} is already the parent of {other.driver} network {other.label!r}; "
                                                 "an interface carries macvlan or ipvlan networks, not both")


def _network(key: Any, spec: Any, topology: str, problems: Problems, env: Environment) -> _NetworkDraft:
    """One network's fields, each checked whatever the others are."""
    path = f"networks.{_k(key)}"
    draft = _NetworkDraft(path, _k(key), check_name(key, path, problems, cap=NETWORK_NAME_MAX, what="network name"))
    spec = _entry(key, spec, path, problems)
    if spec is None:
        return draft
    _check_keys(spec, NETWORK_KEYS, path, problems)
    driver = spec.get("driver", "bridge")
    if driver in DRIVERS:
        draft.driver = driver
    else:
        problems.add(f"{path}.driver", f"{_show(driver)} is not a known driver; known drivers: {', '.join(DRIVERS)}")
    if "subnet" in spec:
        draft.subnets = _per_family(spec["subnet"], f"{path}.subnet", problems, _subnet, "subnet", _SUBNET_LIKE)
    else:
        problems.add(f"{path}.subnet", f"is required ({_SUBNET_LIKE}, or a list of one of each for dual stack)")
    draft.gateways = _gateways(spec, draft.subnets, path, problems)
    draft.masquerade = _bool(spec.get("masquerade"), f"{path}.masquerade", problems, not draft.direct)
    internal = spec.get("internal")
    draft.internal = False if internal is None else _bool(internal, f"{path}.internal", problems, None)  # type: ignore[arg-type]
    if draft.internal:
        if spec.get("masquerade") is True:
            problems.add(f"{path}.masquerade", "an internal network sends nothing out, so it cannot masquerade")
        draft.masquerade = False
    elif draft.direct and spec.get("masquerade") is True:
        problems.add(f"{path}.masquerade", f"{_a(driver)} network's containers are on the parent's LAN with their own addresses: "
                                           "the host does not route their traffic, so it cannot masquerade it")
        draft.masquerade = False
    draft.bridge = _bridge(spec, draft, topology, problems)
    draft.parent = _parent(spec, draft, problems, env)
    draft.outbound = _outbound(spec, draft, problems, env)
    draft.mtu = _mtu(spec.get("mtu"), draft.subnets, f"{path}.mtu", problems)
    draft.routes = _routes(spec.get("routes"), draft.subnets, f"{path}.routes", problems)
    draft.no_default_route = _bool(spec.get("no_default_route"), f"{path}.no_default_route", problems, False)
    if "overlay" in spec:
        draft.overlay_given = True
        draft.overlay = spread.overlay(spec["overlay"], draft, topology, problems)
    return draft


def _mtu(value: Any, subnets: dict[int, IPNetwork] | None, path: str, problems: Problems) -> int | None:
    """The MTU of a network's links: a whole number of bytes the kernel takes for a bridge and a
    veth, and at least IPv6's minimum on a network with IPv6. None: the kernel's default."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"must be a whole number of bytes ({MTU_MIN}-{MTU_MAX}), got {_show(value)}")
        return None
    if not MTU_MIN <= value <= MTU_MAX:
        problems.add(path, f"{value} is out of range {MTU_MIN}-{MTU_MAX} (the least an IPv4 link carries, the most a bridge or veth takes)")
        return None
    if subnets is not None and 6 in subnets and value < MTU6_MIN:
        problems.add(path, f"{value} is below {MTU6_MIN}, the least an IPv6 link may carry, and the network has IPv6 subnet {subnets[6]}")
        return None
    return value


def _routes(value: Any, subnets: dict[int, IPNetwork] | None, path: str, problems: Problems) -> tuple[Route, ...]:
    """A network's static routes: each exactly a destination (a prefix, host bits clear, not inside
    the network's own subnet) and a gateway inside the network's subnet of the same family."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(path, f"must be a list of routes like [{{destination: 10.89.0.0/24, gateway: 10.88.0.2}}], got {_show(value)}")
        return ()
    routes: list[Route] = []
    for i, item in enumerate(value):
        route = _route(item, subnets, f"{path}[{i}]", problems)
        if route is None:
            continue
        same = next((r for r in routes if r.destination == route.destination), None)
        if same is not None:
            problems.add(f"{path}[{i}].destination", f"{route.destination} is already routed by this network (via {same.gateway})")
            continue
        routes.append(route)
    return tuple(routes)


def _route(item: Any, subnets: dict[int, IPNetwork] | None, path: str, problems: Problems) -> Route | None:
    if not isinstance(item, dict):
        problems.add(path, f"must be a mapping {{destination: PREFIX, gateway: ADDRESS}}, got {_show(item)}")
        return None
    known = len(problems.items)
    _check_keys(item, ROUTE_KEYS, path, problems)
    misspelt = len(problems.items) > known  # a key misspelt is said once, as unknown, not again as missing
    for key, what in (("destination", "the prefix it leads to, like 10.89.0.0/24"), ("gateway", "the address it goes through")):
        if key not in item and not misspelt:
            problems.add(f"{path}.{key}", f"is required: {what}")
    destination = _destination(item["destination"], f"{path}.destination", problems) if "destination" in item else None
    gateway = _address(item["gateway"], f"{path}.gateway", problems) if "gateway" in item else None
    if destination is None or gateway is None or subnets is None:
        return None
    if gateway.version != destination.version:
        problems.add(f"{path}.gateway", f"{gateway} is an IPv{gateway.version} address, but destination {destination} is IPv{destination.version}")
        return None
    why = _misfit(gateway, subnets, None, "this network")
    if why:
        problems.add(f"{path}.gateway", why)
        return None
    own = subnets.get(destination.version)
    if own is not None and destination.subnet_of(own):  # type: ignore[arg-type]
        problems.add(f"{path}.destination", f"{destination} is inside the network's own subnet {own}, which its containers reach directly")
        return None
    return Route(destination, gateway)


def _destination(value: Any, path: str, problems: Problems) -> IPNetwork | None:
    """A route's destination: a prefix with host bits clear, not the default route (0.0.0.0/0, ::/0)."""
    if not isinstance(value, str) or "/" not in value:
        problems.add(path, f"must be a prefix written as a string, like 10.89.0.0/24 or fd00:89::/64, got {_show(value)}")
        return None
    try:
        destination = ipaddress.ip_network(value, strict=False)
        interface = ipaddress.ip_interface(value)
    except ValueError:
        problems.add(path, f"{_show(value)} is not a prefix (like 10.89.0.0/24 or fd00:89::/64)")
        return None
    if destination.network_address != interface.ip:
        problems.add(path, f"{_show(value)} has host bits set; the prefix is {destination}")
        return None
    if destination.prefixlen == 0:
        problems.add(path, f"{destination} is the default route; it goes through the first network that gives one (no_default_route: false)")
        return None
    return destination


def _a(driver: Any) -> str:
    """"a macvlan", "an ipvlan": a driver's name with its article."""
    return f"{'an' if str(driver)[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {driver}"


def _parent(spec: dict, draft: _NetworkDraft, problems: Problems, env: Environment) -> str | None:
    """The host interface a macvlan or ipvlan network's containers sit on: the one given, else the
    interface of the host's default route (IPv4, else IPv6), read now."""
    path = f"{draft.path}.parent"
    if not draft.direct:
        if "parent" in spec and draft.driver is not None:
            problems.add(path, f"only a macvlan or ipvlan network has a parent interface; this network's driver is {draft.driver}")
        return None
    if "parent" in spec:
        return _ifname(spec["parent"], path, problems)
    found = default_interface(env.routes()) or default_interface(env.routes6())
    if found is None:
        problems.add(path, "is required: this host has no default route whose interface could be the parent; "
                           "name the host interface on the containers' LAN (like eth0)")
    return found


def _outbound(spec: dict, draft: _NetworkDraft, problems: Problems, env: Environment) -> tuple[IPAddress, ...]:
    """The addresses the network's traffic leaves the host with instead of the outgoing interface's
    (SNAT instead of masquerade): one a family the network has, each an address of the host."""
    path = f"{draft.path}.outbound_addr"
    if "outbound_addr" not in spec:
        return ()
    given = _per_family(spec["outbound_addr"], path, problems, _address, "outbound address", "like 198.51.100.7 or 2001:db8::7")
    if given is None:
        return ()
    why = (f"{_a(draft.driver)} network's containers reach out on the parent's LAN with their own addresses, not through the host"
           if draft.direct else "an internal network sends nothing out" if draft.internal
           else "with masquerade: false its traffic leaves with the containers' own addresses" if not draft.masquerade else None)
    if why:
        problems.add(path, f"{why}, so it has no outbound address")
        return ()
    host = env.addresses()
    ok = True
    for version, address in given.items():
        if draft.subnets is not None and version not in draft.subnets:
            problems.add(path, f"{address} is an IPv{version} address, but this network has no IPv{version} subnet")
            ok = False
        elif address.is_loopback or address.is_multicast or address.is_unspecified or address.is_link_local:
            problems.add(path, f"{address} cannot be the source of traffic that leaves the host: use a unicast address of one of its interfaces")
            ok = False
        elif host is not None and address not in host:
            problems.add(path, f"{address} is not an address of this host: traffic can leave only with an address the host has "
                               "(add it to one of its interfaces first)")
            ok = False
    return tuple(given[v] for v in sorted(given)) if ok else ()


def _gateways(spec: dict, subnets: dict[int, IPNetwork] | None, path: str, problems: Problems) -> dict[int, IPAddress] | None:
    """The gateway of each family: the one given, else the subnet's first usable address. Its form
    is checked always, its family and place in the subnet when the subnets are valid."""
    given: dict[int, IPAddress] | None = {}
    if "gateway" in spec:
        given = _per_family(spec["gateway"], f"{path}.gateway", problems, _address, "gateway", "like 172.18.0.1 or fd00:18::1")
    if given is None or subnets is None:
        return None
    gateways: dict[int, IPAddress] = {}
    ok = True
    for version, gateway in given.items():
        why = _misfit(gateway, subnets, None, "this network")
        if why:
            problems.add(f"{path}.gateway", why)
            ok = False
        gateways[version] = gateway
    for version, subnet in subnets.items():
        gateways.setdefault(version, subnet.network_address + 1)
    return gateways if ok else None


def _misfit(address: IPAddress, subnets: dict[int, IPNetwork], gateway: IPAddress | None, net: str) -> str | None:
    """Why `address` cannot be a host address of the network with these subnets (None: it can)."""
    subnet = subnets.get(address.version)
    if subnet is None:
        shown = ", ".join(map(str, subnets.values()))
        return f"{address} is an IPv{address.version} address, but {net} has no IPv{address.version} subnet (its subnet: {shown})"
    if address not in subnet:
        return f"{address} is not inside subnet {subnet}" + ("" if net == "this network" else f" of {net}")
    if address == gateway:
        return f"{address} is the gateway of {net}"
    usable = ", not a usable host address" if net == "this network" else ""
    if address == subnet.network_address:
        which = "network address" if subnet.version == 4 else "subnet-router anycast address"
        return f"{address} is the {which} of {subnet}{usable}"
    if subnet.version == 4 and address == subnet.broadcast_address:
        return f"{address} is the broadcast address of {subnet}{usable}"
    return None


def _bridge(spec: dict, draft: _NetworkDraft, topology: str, problems: Problems) -> str | None:
    """The bridge device of a bridge network. A name given is checked whatever the driver (an
    unknown driver is reported on its own), but only a bridge network makes a device of it."""
    path = f"{draft.path}.bridge"
    if draft.driver in ("veth", *DIRECT_DRIVERS):
        if "bridge" in spec:
            problems.add(path, "only a network with driver bridge has a bridge device")
        return None
    if "bridge" in spec:
        bridge = _ifname(spec["bridge"], path, problems)
        return bridge if draft.driver == "bridge" else None
    if draft.driver == "bridge" and draft.name is not None:
        return f"br-{draft.name[:6]}-{_short_hash(topology, draft.name)[:5]}".replace("--", "-")
    return None


def _resolve_containers(
    value: Any, drafts: dict[Any, _NetworkDraft], topology: str, problems: Problems, env: Environment,
    machines: dict[str, IPAddress | None] | None = None,
) -> dict[Any, dict]:
    """Each container's fields, by the key it is declared under; then the rules across them."""
    raw = _mapping(value, "containers", problems)
    if not raw and value is None:
        problems.add("containers", "is required: declare at least one container")
    result = {key: _container(key, spec, drafts, topology, problems, env, machines) for key, spec in raw.items()}
    users: dict[Any, list[str]] = {}
    for container in result.values():
        for net, _iface, _host_if in container["attachments"]:
            if net in drafts:
                users.setdefault(net, []).append(container["label"])
    for net, members in users.items():
        draft = drafts[net]
        if draft.driver == "veth" and len(members) > 1:
            problems.add(
                draft.path,
                f"a veth network joins exactly one container to the host, but {', '.join(members)} all attach to it; use driver: bridge",
            )
        if draft.driver == "bridge" and len(members) > BRIDGE_MAX_PORTS:
            problems.add(draft.path, f"{len(members)} containers attach, but a bridge holds at most {BRIDGE_MAX_PORTS} ports")
    _check_published(result, problems)
    _check_macs(result, problems)
    spread.check_spans(result, drafts, problems)
    _check_route_clashes(result, drafts, problems)
    _check_names(result, problems)
    return result


def _container(key: Any, spec: Any, drafts: dict[Any, _NetworkDraft], topology: str, problems: Problems, env: Environment,
               machines: dict[str, IPAddress | None] | None = None) -> dict:
    """One container's fields, each checked whatever the others are (its name included)."""
    path = f"containers.{_k(key)}"
    cname = check_name(key, path, problems, cap=NAMESPACE_NAME_MAX, what="container name")
    container: dict[str, Any] = {
        "path": path, "label": cname or _k(key), "attachments": [], "explicit": {}, "dns": None, "processes": (), "ports": (),
        "macs": {}, "aliases": {}, "sysctls": (), "host": "",
    }  # fmt: skip
    spec = _entry(key, spec, path, problems)
    if spec is None:
        return container
    _check_keys(spec, CONTAINER_KEYS, path, problems)
    container["host"] = spread.container_host(spec, path, machines, problems)
    attachments, container["explicit"] = _attachments(spec.get("networks"), path, cname, drafts, topology, problems, container)
    container["attachments"] = attachments
    entries = _ports(spec.get("ports"), f"{path}.ports", problems)
    first = drafts.get(attachments[0][0]) if attachments else None  # ports are published on the first network
    if entries and first is not None and first.internal:
        problems.add(f"{path}.ports", f"published ports need a first network that is not internal; {attachments[0][0]!r} is internal")
    elif entries and first is not None and first.no_default_route:
        problems.add(f"{path}.ports", f"published ports need a first network that gives the default route (replies leave by it); "
                                      f"{attachments[0][0]!r} has no_default_route: true")
    elif entries and first is not None and first.direct:
        problems.add(f"{path}.ports", f"nothing is published from {_a(first.driver)} network: {attachments[0][0]!r} (the first, where ports "
                                      "are published) puts the container on the parent's LAN, reached directly at its own address")
    elif entries and first is not None and first.subnets is not None:
        _check_port_families(entries, first.subnets, attachments[0][0], f"{path}.ports", problems)
    container["port_entries"] = entries
    container["ports"] = tuple(p for _i, ports in entries for p in ports)
    container["dns"] = _nameservers(spec.get("dns"), f"{path}.dns", problems)
    container["processes"] = _processes(spec.get("processes"), f"{path}.processes", problems, env)
    container["sysctls"] = _sysctls(spec.get("sysctls"), f"{path}.sysctls", problems)
    return container


def _sysctls(value: Any, path: str, problems: Problems) -> tuple[tuple[str, str], ...]:
    """A container's own sysctls: net.* keys (what belongs to its network namespace), each a value on one line."""
    result = []
    for key, item in _mapping(value, path, problems).items():
        where = f"{path}.{_k(key)}"
        if not isinstance(key, str) or not SYSCTL_KEY_RE.fullmatch(key):
            problems.add(where, f"{_show(key)} is not a sysctl key: dotted words of a-z, 0-9, '_' and '-' (like net.ipv4.ip_forward)")
        elif not key.startswith("net."):
            problems.add(where, f"{_show(key)} is not a net.* sysctl: only those belong to the container's network namespace; "
                                "any other is the whole host's")
        elif isinstance(item, bool) or not isinstance(item, (str, int, float)):
            problems.add(where, f"must be a string or a number, got {_show(item)}")
        elif not str(item).strip() or any(ch in "\n\r\0" for ch in str(item)):
            problems.add(where, f"{_show(item)} must be a value on one line, without NUL (a number, a word, or words like '0 2147483647')")
        else:
            result.append((key, " ".join(str(item).split())))  # as the kernel reads it: words apart
    return tuple(result)


def _hostname(value: Any, path: str, problems: Problems) -> str | None:
    """A name another container may look up (RFC 1123): dot-separated labels of letters, digits and '-'."""
    if not isinstance(value, str):
        problems.add(path, f"must be a host name (a string), got {_show(value)}")
        return None
    size = len(value.encode("utf-8"))
    if not value or size > HOSTNAME_MAX or not all(HOSTNAME_LABEL_RE.fullmatch(label) for label in value.split(".")):
        why = f"is {size} characters long; the limit is {HOSTNAME_MAX}" if size > HOSTNAME_MAX else \
            "is not a host name: dot-separated labels of letters, digits and '-' (not first or last), each 1 to 63 characters"
        problems.add(path, f"{_show(value)} {why}")
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        problems.add(path, f"{_show(value)} is an IP address, not a host name")
        return None
    if value.lower() in LOCALHOST_NAMES:
        problems.add(path, f"{_show(value)} is a name of the loopback address in every container")
        return None
    return value


def _aliases(value: Any, path: str, problems: Problems) -> tuple[str, ...]:
    if not isinstance(value, list):
        problems.add(path, f"must be a list of host names like [api, api.internal], got {_show(value)}")
        return ()
    names = (_hostname(item, f"{path}[{i}]", problems) for i, item in enumerate(value))
    return tuple(name for name in names if name is not None)


def _check_names(containers: dict[Any, dict], problems: Problems) -> None:
    """On each network, a name (a container's, an alias) belongs to one container only."""
    owners: dict[tuple[Any, str], str] = {}  # (network, name folded) -> the container
    for raw in containers.values():
        for net, _iface, _host_if in raw["attachments"]:
            owners.setdefault((net, raw["label"].lower()), raw["label"])
    for raw in containers.values():
        for net, aliases in raw["aliases"].items():
            for i, alias in enumerate(aliases):
                owner = owners.setdefault((net, alias.lower()), raw["label"])
                if owner != raw["label"]:
                    problems.add(f"{raw['path']}.networks.{_k(net)}.aliases[{i}]",
                                 f"{alias!r} is already a name of container {owner!r} on network {_k(net)!r}")


def _check_port_families(entries: list[tuple[int, tuple[PublishedPort, ...]]], subnets: dict[int, IPNetwork], net: Any, path: str,
                         problems: Problems) -> None:
    """A port published on a host address of one family needs that family on the first network."""
    for i, (port, *_rest) in entries:
        if port.host_ip is not None and port.host_ip.version not in subnets:
            problems.add(f"{path}[{i}]", f"{_show(port.spec)} publishes on an IPv{port.host_ip.version} host address, but network "
                                         f"{net!r} (the first, where ports are published) has no IPv{port.host_ip.version} subnet")


def _ports(value: Any, path: str, problems: Problems) -> list[tuple[int, tuple[PublishedPort, ...]]]:
    """Each valid entry of a container's ports, by its index: the ports it publishes (a range, several)."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(path, f"must be a list like [\"8080:80\"], got {_show(value)}")
        return []
    entries = ((i, _parse_port(item, f"{path}[{i}]", problems)) for i, item in enumerate(value))
    return [(i, ports) for i, ports in entries if ports]


def _attachments(
    value: Any, path: str, cname: str | None, drafts: dict[Any, _NetworkDraft], topology: str, problems: Problems,
    given: dict[str, Any],
) -> tuple[list[tuple[Any, str | None, str | None]], dict[Any, dict[int, IPAddress]]]:
    """A container's networks, in the order listed: (network, interface, host interface) for each,
    a name None where it is invalid; and the addresses given that fit their network. The valid MAC
    addresses given go into `given["macs"]`, the names given for its addresses into `given["aliases"]`,
    by network."""
    path = f"{path}.networks"
    if isinstance(value, list):  # short form: networks: [front, back]
        if not all(isinstance(n, str) for n in value):
            problems.add(path, "must list network names, or map each network name to its settings")
            return [], {}
        value = dict.fromkeys(value)
    if value is None or value == {}:
        problems.add(path, "is required: attach the container to at least one network")
        return [], {}
    attachments: list[tuple[Any, str | None, str | None]] = []
    explicit: dict[Any, dict[int, IPAddress]] = {}
    seen: dict[str, Any] = {}  # interface -> the network it is on
    for index, (net, att) in enumerate(_mapping(value, path, problems).items()):
        apath = f"{path}.{_k(net)}"
        draft = drafts.get(net)
        att = _entry(net, att, apath, problems)
        if att is None:
            if draft is None and _misplaced(net):
                continue  # a key indented too shallow, said so: not a network at all
            att = {}
        _check_keys(att, ATTACHMENT_KEYS, apath, problems)
        if draft is None:
            known = ", ".join(sorted(map(_k, drafts))) or "none"
            problems.add(apath, f"network {_show(net)} is not declared under 'networks' (declared: {known})")
        iface = _ifname(att["interface"], f"{apath}.interface", problems, host=False) if "interface" in att else f"eth{index}"
        iface = _interface(iface, net, seen, apath, problems)
        if draft is not None and draft.direct:
            host_if = None  # made on the parent, inside the namespace: nothing of it is on the host
            if "host_interface" in att:
                problems.add(f"{apath}.host_interface", f"{_a(draft.driver)} network has no host end: {cname or 'the container'}'s "
                                                        f"interface is made on the parent {draft.parent or 'interface'}")
        elif "host_interface" in att:
            host_if = _ifname(att["host_interface"], f"{apath}.host_interface", problems)
        elif cname is not None and isinstance(net, str):
            host_if = f"ve-{cname[:6]}-{_short_hash(topology, cname, net)[:5]}".replace("--", "-")
        else:
            host_if = None  # derived from names that are invalid (reported): it would clash for nothing
        if "address" in att:
            addresses = _attachment_addresses(att["address"], net, draft, apath, problems)
            if addresses:
                explicit[net] = addresses
        _mac_and_aliases(att, net, draft, apath, given, problems)
        attachments.append((net, iface, host_if))
    return attachments, explicit


def _mac_and_aliases(att: dict, net: Any, draft: _NetworkDraft | None, apath: str, given: dict[str, Any], problems: Problems) -> None:
    mac = _mac(att["mac_address"], f"{apath}.mac_address", problems) if "mac_address" in att else None
    if mac is not None and draft is not None and draft.driver == "ipvlan":
        problems.add(f"{apath}.mac_address", "an ipvlan interface has its parent's MAC address and cannot have its own; "
                                             "use driver: macvlan for a MAC address of its own")
    elif mac is not None:
        given["macs"][net] = mac
    if att.get("aliases") is not None:
        given["aliases"][net] = _aliases(att["aliases"], f"{apath}.aliases", problems)


def _mac(value: Any, path: str, problems: Problems) -> str | None:
    """A container interface's MAC address: six hex pairs, unicast and not all zeros; lower case."""
    like = 'like "02:42:ac:11:00:02"'
    if isinstance(value, int) and not isinstance(value, bool):
        problems.add(path, f"must be a MAC address in quotes ({like}); YAML reads an unquoted one of only digits as the number {value}")
        return None
    if not isinstance(value, str) or not MAC_RE.fullmatch(value):
        problems.add(path, f"{_show(value)} is not a MAC address (six pairs of hex digits separated by ':', {like})")
        return None
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        problems.add(path, f"{mac} is a multicast address (the lowest bit of its first octet is set); an interface needs a unicast one")
        return None
    if mac == "00:00:00:00:00:00":
        problems.add(path, f"{mac} is all zeros, which the kernel refuses as an interface's address")
        return None
    return mac


def _check_macs(containers: dict[Any, dict], problems: Problems) -> None:
    """A MAC address is given to one interface of the topology only."""
    owners: dict[str, str] = {}
    for container in containers.values():
        for net, mac in container["macs"].items():
            where = f"{container['path']}.networks.{_k(net)}"
            if mac in owners:
                problems.add(f"{where}.mac_address", f"{mac} is already the MAC address of {owners[mac]}")
                continue
            owners[mac] = where


def _check_route_clashes(containers: dict[Any, dict], drafts: dict[Any, _NetworkDraft], problems: Problems) -> None:
    """A container takes one route to a destination: two of its networks must not both route it."""
    for container in containers.values():
        routed: dict[IPNetwork, tuple[Any, Route]] = {}
        for net, _iface, _host_if in container["attachments"]:
            for route in drafts[net].routes if net in drafts else ():
                if route.destination in routed:
                    other, first = routed[route.destination]
                    problems.add(f"{container['path']}.networks.{_k(net)}", f"network {_k(net)!r} routes {route.shown} and network "
                                                                          f"{_k(other)!r} routes {first.shown}: a container takes only one")
                    continue
                routed[route.destination] = (net, route)


def _interface(iface: str | None, net: Any, seen: dict[str, Any], apath: str, problems: Problems) -> str | None:
    """A container's interface (a valid name, given or derived): not 'lo', not used twice in it."""
    if iface == "lo":
        problems.add(f"{apath}.interface", "'lo' is the namespace's loopback interface and cannot be attached")
        return None
    if iface is not None:
        if iface in seen:
            problems.add(f"{apath}.interface", f"{iface!r} is already used in this container by network {seen[iface]!r}")
            return None
        seen[iface] = net
    return iface


def _attachment_addresses(value: Any, net: Any, draft: _NetworkDraft | None, apath: str, problems: Problems) -> dict[int, IPAddress]:
    """The addresses given for a container on a network (one, or one per family): their form is
    checked always, their place in the network when its subnets are valid (and against the
    gateway when that is valid too). Returned: those that can be allocated (they fit a network
    whose subnets and gateways are all valid)."""
    path = f"{apath}.address"
    given = _per_family(value, path, problems, _address, "address", "like 172.18.0.2 or fd00:18::2")
    if given is None or draft is None or draft.subnets is None:
        return {}
    fit: dict[int, IPAddress] = {}
    for version, address in given.items():
        gateway = (draft.gateways or {}).get(version)
        why = _misfit(address, draft.subnets, gateway, f"network {net!r}")
        if why:
            problems.add(path, why)
        elif draft.gateways is not None:
            fit[version] = address
    return fit


def _check_published(containers: dict[Any, dict], problems: Problems) -> None:
    """A host port of a protocol is published once at each host address: two entries conflict
    when they share a port and an address (every address meets any, 0.0.0.0 every IPv4 one, ::
    every IPv6 one). An entry that conflicts is reported once, at its first port that does."""
    taken: dict[tuple[str, str, int], list[tuple[PublishedPort, str]]] = {}
    for container in containers.values():
        host = container.get("host", "")  # each host publishes its own containers' ports
        for i, ports in container.get("port_entries", ()):
            where = f"{container['path']}.ports[{i}]"
            clash = next(((p, o, by) for p in ports for o, by in taken.get((host, p.protocol, p.host_port), ()) if p.overlaps(o)), None)
            if clash is not None:
                p, other, by = clash
                problems.add(where, f"host port {p.host_port}/{p.protocol}{_where(p, other)} is already published by {by} ({other.spec})")
                continue
            for p in ports:
                taken.setdefault((host, p.protocol, p.host_port), []).append((p, where))


def _where(mine: PublishedPort, other: PublishedPort) -> str:
    """` at ADDRESS`: the host addresses two conflicting ports share, as a person reads them ("" for every address)."""
    ips = [ip for ip in (mine.host_ip, other.host_ip) if ip is not None]
    one = next((ip for ip in ips if not ip.is_unspecified), None)
    if one is not None:
        return f" at [{one}]" if one.version == 6 else f" at {one}"
    return f" at every IPv{ips[0].version} address" if ips else ""


def _check_host_names(drafts: dict[Any, _NetworkDraft], containers: dict[Any, dict], problems: Problems) -> None:
    """Host-side interface names (bridges, veth host ends) share one namespace: the host's."""
    owners: dict[str, str] = {}
    for draft in drafts.values():
        if draft.bridge:
            if draft.bridge in owners:
                problems.add(f"{draft.path}.bridge", f"{draft.bridge!r} is already the bridge of {owners[draft.bridge]}")
            owners[draft.bridge] = draft.path
    for container in containers.values():
        for net, _iface, host_if in container["attachments"]:
            if host_if is None:
                continue
            where = f"{container['path']}.networks.{_k(net)}"
            if host_if in owners:
                problems.add(f"{where}.host_interface", f"{host_if!r} is already used on the host by {owners[host_if]}")
            owners[host_if] = where


def _check_host_routes(drafts: dict[Any, _NetworkDraft], containers: dict[Any, dict], env: Environment, problems: Problems) -> None:
    """A subnet must not overlap a route the host already has (other than the default route and
    the routes of this topology's own devices, present while it is up). The host's IPv6 routes
    are read only when a network has an IPv6 subnet."""
    # A macvlan or ipvlan network is on the parent's LAN: its subnet is usually the LAN's own, which the host has a route to.
    subnets = [(draft.path, subnet) for draft in drafts.values() if not draft.direct for subnet in (draft.subnets or {}).values()]
    if not subnets:
        return
    own = {draft.bridge for draft in drafts.values() if draft.bridge}
    own |= {host_if for raw in containers.values() for _net, _iface, host_if in raw["attachments"] if host_if}
    found = [*(env.routes() if any(s.version == 4 for _p, s in subnets) else []),
             *(env.routes6() if any(s.version == 6 for _p, s in subnets) else [])]
    routes = []
    for dst, dev in found:
        if dst in ("", "default") or dev in own:
            continue
        try:
            route = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{32 if ':' not in dst else 128}", strict=False)
        except ValueError:
            continue
        if route.prefixlen > 0 and not route.is_link_local and not route.is_multicast:
            routes.append((route, dev))
    for path, subnet in subnets:
        for route, dev in routes:
            if route.version == subnet.version and route.overlaps(subnet):  # type: ignore[arg-type]
                problems.add(f"{path}.subnet", f"{subnet} overlaps the host's route to {route} (dev {dev}); choose a subnet the host does not use")
                break


def _host_taken(drafts: dict[Any, _NetworkDraft], env: Environment) -> dict[IPAddress, str]:
    """The host's own addresses inside a macvlan or ipvlan network's subnet (its LAN): never a container's."""
    subnets = [s for d in drafts.values() if d.direct for s in (d.subnets or {}).values()]
    if not subnets:
        return {}
    return {a: "the host" for a in env.addresses() or [] if any(a in s for s in subnets)}


def _allocate(drafts: dict[Any, _NetworkDraft], containers: dict[Any, dict], problems: Problems,
              env: Environment) -> dict[tuple[Any, Any, int], IPAddress]:
    """Explicit addresses first, then the first free address of each family for each remaining
    attachment, in file order; on each network whose subnets and gateways are valid (the others
    have no addresses to give). Keys: (container, network, family). On a macvlan or ipvlan network
    the host's own addresses in the subnet (when they can be read) are taken already."""
    result: dict[tuple[Any, Any, int], IPAddress] = {}
    spaces = {(key, v): (draft, subnet) for key, draft in drafts.items() if draft.subnets is not None and draft.gateways is not None
              for v, subnet in draft.subnets.items()}
    host = _host_taken(drafts, env)
    used: dict[tuple[Any, int], dict[IPAddress, str]] = {space: dict(host) if draft.direct else {} for space, (draft, _s) in spaces.items()}
    for ckey, raw in containers.items():
        for net, addresses in raw["explicit"].items():
            for version, address in addresses.items():
                taken = used[(net, version)]
                if address in taken:
                    owner = "an address of the host (on the parent's LAN)" if taken[address] == "the host" and address in host else \
                        f"the address of container {taken[address]!r}"
                    problems.add(f"{raw['path']}.networks.{_k(net)}.address", f"{address} is already {owner}")
                    continue
                taken[address] = raw["label"]
                result[(ckey, net, version)] = address
    cursors = {space: subnet.hosts() for space, (_draft, subnet) in spaces.items()}
    full: set[tuple[Any, int]] = set()
    for ckey, raw in containers.items():
        for net, _iface, _host_if in raw["attachments"]:
            for version in (4, 6):
                space = (net, version)
                if space not in spaces or space in full or (ckey, net, version) in result or version in raw["explicit"].get(net, {}):
                    continue
                found = _first_free(cursors[space], spaces[space][0].gateways[version], used[space])  # type: ignore[index]
                if found is not None:
                    used[space][found] = raw["label"]
                    result[(ckey, net, version)] = found
                    continue
                full.add(space)
                draft, subnet = spaces[space]
                count = sum(1 for r in containers.values() for a in r["attachments"] if a[0] == net)
                spare = subnet.num_addresses - (3 if version == 4 else 2)
                problems.add(f"{draft.path}.subnet", f"{subnet} is too small: it has {spare} addresses for containers "
                                                     f"besides the gateway, and {count} containers attach")
    return result


def _first_free(cursor: Any, gateway: IPAddress, used: dict[IPAddress, str]) -> IPAddress | None:
    for candidate in cursor:
        if candidate != gateway and candidate not in used:
            return candidate
    return None


def _resolve_host(value: Any, drafts: dict[Any, _NetworkDraft], problems: Problems, env: Environment) -> Host:
    raw = _mapping(value, "host", problems)
    _check_keys(raw, HOST_KEYS, "host", problems)
    forward = raw.get("ip_forward", "auto")
    needs = any(not draft.internal and not draft.direct for draft in drafts.values())  # a network that the host routes out
    if forward == "auto":
        ip_forward = needs
    elif isinstance(forward, bool):
        ip_forward = forward
    else:
        problems.add("host.ip_forward", f"{_show(forward)} must be auto, true or false")
        ip_forward = needs
    persist = _bool(raw.get("persist"), "host.persist", problems, False)
    firewall, why = _firewall(raw, problems, env)
    return Host(ip_forward=ip_forward, persist=persist, firewall=firewall, firewall_why=why)


def _firewall(raw: dict, problems: Problems, env: Environment) -> tuple[str, str]:
    """The firewall backend and, when the topology did not name it itself (auto chose it, or
    NSGEN_FIREWALL named nftables), why. Without host.firewall, NSGEN_FIREWALL names the default
    (iptables without it)."""
    given, path = raw.get("firewall"), "host.firewall"
    if given is None:
        given, path = env.default_firewall(), "host.firewall (from NSGEN_FIREWALL)"
    if given not in FIREWALLS:
        problems.add(path, f"{_show(given)} must be one of {', '.join(FIREWALLS)}")
        return "iptables", ""
    if given != "auto":  # the default backend goes unsaid
        named = given == "nftables" and path != "host.firewall"
        return given, "firewall: nftables, as NSGEN_FIREWALL says (the topology names none)" if named else ""
    nft, iptables = env.which("nft"), env.which("iptables")
    if nft and not iptables:
        return "nftables", "firewall: auto chose nftables: nft is installed and iptables is not"
    if iptables:
        return "iptables", "firewall: auto chose iptables: iptables is installed" + (" (nft too)" if nft else "")
    return "iptables", "firewall: auto chose iptables: neither nft nor iptables is installed (setup will say which package to install)"


# The rules of a topology across hosts live beside these (they use this module's helpers; read at call time).
from nsgen import spread  # noqa: E402
