"""Builtins are the operations of the plan that no single program does: the Python half of them.

Each has a shell function of the same name in templates/_functions.sh.j2, which the scripts run;
`nsgen run` runs these instead, with the same outcome (the sandbox tests run both). They read the
host (links with their groups and aliases, the loopback alias inside a namespace, routes, sockets,
rules) and change it only through the programs the scripts use (`ip`, `iptables-restore`,
`conntrack`). A probe returns a bool; a command or a guard returns a `Result` whose stderr says
what went wrong or why it refuses.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from typing import NamedTuple

from nsgen import record
from nsgen.names import FORWARD6_DIR, FORWARD_DIR, NETNS_DIR, STATE_ROOT, intent_path, mark, state_dir

STOP_GRACE = 3.0


class Result(NamedTuple):
    returncode: int
    stdout: str = ""
    stderr: str = ""


def _run(argv: tuple[str, ...] | list[str], stdin: str | None = None) -> Result:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, close_fds=False,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        return Result(127, "", f"{argv[0]}: command not found")
    return Result(done.returncode, done.stdout, done.stderr)


# ----------------------------------------------------------------------------------------------
# Links: one listing of the host's links, with their groups and aliases


class Link(NamedTuple):
    group: str  # as `ip` prints it: a number, "default", or a name from /etc/iproute2/group
    alias: str


def host_links() -> dict[str, Link] | None:
    """name -> Link for every link of this network namespace (None: `ip` cannot be run)."""
    done = _run(("ip", "-o", "link", "show"))
    if done.returncode != 0:
        return None
    links: dict[str, Link] = {}
    for line in done.stdout.splitlines():
        parts = line.split(": ", 2)
        if len(parts) < 3:
            continue
        name = parts[1].split("@", 1)[0]
        words = parts[2].split("\\", 1)[0].split()
        group = words[words.index("group") + 1] if "group" in words[:-1] else "default"
        _, found, alias = line.partition("\\    alias ")
        links[name] = Link(group, alias if found else "")
    return links


def _number(group: str) -> int | None:
    try:
        return int(group, 0)
    except ValueError:
        return None


def _ours(name: str, link: Link, topology: str, names: set[str] | None = None) -> bool:
    """A link of the topology's group is its own when it carries its mark, or, unmarked, when it
    is one of its devices (the moment between a device's creation and its mark)."""
    return link.alias == mark(topology) or (link.alias == "" and (names is None or name in names))


def in_group(links: dict[str, Link], group: str) -> dict[str, Link] | None:
    """The links in `group`; None when a group shown by name could hide it."""
    number = _number(group)
    found = {n: link for n, link in links.items() if _number(link.group) == number}
    if not found and any(_number(link.group) is None and link.group != "default" for link in links.values()):
        return None
    return found


# ----------------------------------------------------------------------------------------------
# The mark inside a namespace: the alias of its loopback device, read over netlink


def _lo_alias_here() -> str:
    """The alias of lo (ifindex 1) in the calling thread's network namespace (RTM_GETLINK)."""
    import socket
    import struct

    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as s:  # NETLINK_ROUTE
        body = struct.pack("=BBHiII", 0, 0, 0, 1, 0, 0)  # ifinfomsg: any family, ifindex 1
        s.send(struct.pack("=LHHLL", 16 + len(body), 18, 1, 1, 0) + body)  # RTM_GETLINK, NLM_F_REQUEST
        data = s.recv(65536)
    length, kind = struct.unpack_from("=LH", data, 0)
    if kind != 16:  # RTM_NEWLINK: anything else (an error) tells nothing
        raise OSError("no answer about lo")
    offset = 32  # nlmsghdr + ifinfomsg
    while offset + 4 <= min(length, len(data)):
        size, attr = struct.unpack_from("=HH", data, offset)
        if size < 4:
            break
        if attr == 20:  # IFLA_IFALIAS
            return data[offset + 4: offset + size].rstrip(b"\0").decode(errors="replace")
        offset += (size + 3) & ~3
    return ""


_aliases: dict[tuple[int, int], str | None] = {}


def _read_aliases(paths: dict[tuple[int, int], str]) -> None:
    """Read the alias of lo in each namespace (identity -> path) into the cache: one short-lived
    thread enters them in turn; nothing else of nsgen ever runs in a container's namespace."""
    import threading

    from nsgen.execute import setns_function

    setns = setns_function()

    def read() -> None:
        for key, path in paths.items():
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if setns is None:
                        raise OSError("setns is not available")
                    setns(fd)
                finally:
                    os.close(fd)
                _aliases[key] = _lo_alias_here()
            except OSError:
                _aliases.setdefault(key, None)

    thread = threading.Thread(target=read, name="nsgen-netns")
    thread.start()
    thread.join()


def lo_alias(netns: str) -> str | None:
    """The alias of lo in the named namespace (None: there is no such namespace, or it cannot be
    read). The first question reads every named namespace not read yet, in one go."""
    path = f"{NETNS_DIR}/{netns}"
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_dev, st.st_ino)
    if key not in _aliases:
        unread = {key: path}
        try:
            names = os.listdir(NETNS_DIR)
        except OSError:
            names = []
        for name in names:
            try:
                other = os.stat(f"{NETNS_DIR}/{name}")
            except OSError:
                continue
            if (other.st_dev, other.st_ino) not in _aliases:
                unread[(other.st_dev, other.st_ino)] = f"{NETNS_DIR}/{name}"
        _read_aliases(unread)
    if _aliases.get(key) is None and key in _aliases:
        done = _run(("ip", "-n", netns, "-o", "link", "show", "lo"))  # where a thread cannot enter it
        if done.returncode == 0:
            _, found, alias = done.stdout.rstrip("\n").partition("\\    alias ")
            _aliases[key] = alias if found else ""
    return _aliases.get(key)


def _listed(path: str, name: str) -> bool:
    """Whether `name` is a line of `path`, a file of a state directory that is nsgen's own."""
    folder = os.path.dirname(path)
    if record.path_problem(folder, "dir") or record.path_problem(path, "file"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return name in f.read().split("\n")
    except OSError:
        return False


def netns_ours(topology: str, netns: str, intent: str) -> bool:
    """The namespace is the topology's: its lo carries the mark, or, unmarked, the topology's
    setup noted it was about to create it (the moment between `ip netns add` and the mark)."""
    alias = lo_alias(netns)
    if alias is None:
        return False
    if alias == mark(topology):
        return True
    return alias == "" and _listed(intent, netns)


def marked_namespaces(topology: str) -> list[str]:
    """Every named namespace whose lo carries the topology's mark."""
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []
    return [n for n in names if lo_alias(n) == mark(topology)]


# ----------------------------------------------------------------------------------------------
# Probes and commands over links


class Host:
    """What the builtins read of the host, cached until a command changes it."""

    def __init__(self) -> None:
        self._links: dict[str, Link] | None = None

    def links(self) -> dict[str, Link]:
        if self._links is None:
            self._links = host_links() or {}
        return self._links

    def changed(self, namespaces: bool = True) -> None:
        """A command ran: the links are read again, and the namespaces' marks too when it may have
        made, deleted or marked a namespace."""
        self._links = None
        if namespaces:
            _aliases.clear()

    def group_has_links(self, group: str) -> bool:
        found = in_group(self.links(), group)
        if found is None:
            done = _run(("ip", "-o", "link", "show", "group", group))
            return done.returncode == 0 and bool(done.stdout.strip())
        return bool(found)

    def link_ours(self, name: str, group: str, topology: str) -> bool:
        link = self.links().get(name)
        return link is not None and _number(link.group) == _number(group) and _ours(name, link, topology)

    def group_ours(self, group: str, topology: str, *names: str) -> bool:
        found = in_group(self.links(), group) or {}
        return all(_ours(n, link, topology, set(names)) for n, link in found.items())

    def delete_links(self, group: str, topology: str, *names: str) -> Result:
        """Every link of the group that is the topology's own: in one call when all of them are."""
        found = in_group(self.links(), group) or {}
        mine = [n for n, link in found.items() if _ours(n, link, topology, set(names))]
        self.changed()
        if not mine:
            return Result(0)
        if len(mine) == len(found):
            return _run(("ip", "link", "delete", "group", group))
        return _run(("ip", "-batch", "-"), "".join(f"link delete {n}\n" for n in mine))


# ----------------------------------------------------------------------------------------------
# Processes


def _netns_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _pids_in(targets: set[tuple[int, int]]) -> list[int]:
    """Every process whose network namespace is one of `targets` (one pass over /proc)."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _netns_key(f"/proc/{e}/ns/net") in targets]


def stop_processes(*namespaces: str, grace: float = STOP_GRACE) -> Result:
    """TERM every process in the namespaces, then KILL what is left after `grace` seconds.

    A pid is signalled only if, checked right before, it still lives in one of them."""
    targets = {key for ns in namespaces if (key := _netns_key(f"{NETNS_DIR}/{ns}")) is not None}
    if not targets:
        return Result(0)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_in(targets):
            if _netns_key(f"/proc/{pid}/ns/net") in targets:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _pids_in(targets):
                return Result(0)
            time.sleep(0.05)
    left = _pids_in(targets)
    return Result(1, "", f"processes still running in {', '.join(namespaces)}: {' '.join(map(str, left))}") if left else Result(0)


def _pid(pidfile: str) -> int | None:
    try:
        fd = os.open(pidfile, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _running(pid: int) -> bool:
    """Whether pid runs (a zombie, which has ended, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def process_alive(netns: str, pidfile: str, pid: int | None = None) -> bool:
    """Whether the process recorded in `pidfile` (or `pid`) still runs, inside namespace `netns`."""
    pid = pid if pid is not None else _pid(pidfile)
    if pid is None or not _running(pid):
        return False
    inside, target = _netns_key(f"/proc/{pid}/ns/net"), _netns_key(f"{NETNS_DIR}/{netns}")
    return inside is not None and inside == target


def _listening(pid: int, protocol: str, port: int) -> bool:
    """Whether a socket of the namespace `pid` lives in listens on `port` (TCP) or is bound to it
    (UDP), IPv4 or IPv6 (a socket on [::] only is listed in tcp6 or udp6 alone)."""
    state = "0A" if protocol == "tcp" else "07"
    for family in ("", "6"):
        try:
            with open(f"/proc/{pid}/net/{protocol}{family}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == state and int(fields[1].rpartition(":")[2], 16) == port:
                return True
    return False


def _ready_now(pid: int, netns: str, kind: str, values: list[str]) -> bool:
    if kind in ("tcp", "udp"):
        return _listening(pid, kind, int(values[0]))
    if kind == "file":
        return os.path.exists(values[0])
    if kind == "command":
        try:
            done = subprocess.run(("ip", "netns", "exec", netns, *values), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0
    return True


def _tail(path: str, lines: int = 10) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            rows = f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        rows = []
    return "\n".join(f"  {row}" for row in rows) if rows else "  (no output)"


def _wants(args: tuple[str, ...]) -> list[tuple[str, str, float, str, list[str], list[str]]]:
    """The processes `wait_ready` is given: NS BASE TIMEOUT KIND N VALUE... M WORD... each."""
    items, i = [], 0
    while i < len(args):
        netns, base, timeout, kind, n = args[i:i + 5]
        values = list(args[i + 5:i + 5 + int(n)])
        i += 5 + int(n)
        m = int(args[i])
        items.append((netns, base, float(timeout), kind, values, list(args[i + 1:i + 1 + m])))
        i += 1 + m
    return items


def wait_ready(*args: str) -> Result:
    """Wait until every process runs and is ready, each within its time; fail with the first
    that ended or is not ready in time, and its last lines of output."""
    from nsgen.plan import START_WINDOW as window

    for netns, base, timeout, kind, values, argv in _wants(args):
        problem = _wait_one(netns, base, timeout, kind, values, window)
        if problem:
            command = " ".join(argv)
            return Result(1, "", f"the process `{command}` in {netns} {problem}; the last lines of {base}.log:\n{_tail(base + '.log')}")
    return Result(0)


def _started(base: str) -> float:
    """When the process started: when the shell in front wrote its pid."""
    try:
        return os.stat(f"{base}.pid").st_mtime
    except OSError:
        return time.time()


def _exit_status(base: str) -> str | None:
    try:
        with open(f"{base}.exit") as f:
            return f.read().strip() or "?"
    except OSError:
        return None


def _wait_one(netns: str, base: str, timeout: float, kind: str, values: list[str], window: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        pid, shim = _pid(f"{base}.pid"), _pid(f"{base}.shim")
        if pid is not None and _running(pid):
            if _ready_now(pid, netns, kind, values) and (kind != "none" or time.time() >= _started(base) + window):
                return None
        elif shim is None or not _running(shim):  # neither the program nor the shell in front runs
            status = _exit_status(base)
            return f"ended with exit status {status}" if status else "is not running"
        if time.monotonic() > deadline:
            status = _exit_status(base)
            if status:
                return f"ended with exit status {status}"
            what = f"{kind}:{values[0]}" if kind in ("tcp", "udp", "file") else "its readiness check" if kind == "command" else "running"
            return f"was not ready ({what}) after {timeout:g} s"
        time.sleep(0.02)


# ----------------------------------------------------------------------------------------------
# Firewall and connection tracking


def _restore_words(line: str) -> tuple[str, str, list[str]]:
    words = line.split()
    return words[0], words[1] if len(words) > 1 else "", words[2:]


def _tagged(listing: str, tag: str) -> bool:
    """Whether `iptables -S` output holds a rule with the comment `tag` (quoted or not)."""
    return any(w.strip('"') == tag for line in listing.splitlines() for w in line.split() if "--comment" in line)


def iptables_undo(text: str, tool: str = "iptables") -> Result:
    """Undo a table's rules: one iptables-restore transaction of the `-D`, `-F` and `-X` lines of
    `text`; when that fails (a rule is already gone, say), each rule that is still there is
    deleted, and each chain that is still there and the topology's own (it holds a rule with the
    topology's comment, or one of its rules jumped to it) flushed and deleted, one by one. A chain
    of the same name that someone else made is left alone. `tool`: iptables (IPv4) or ip6tables."""
    done = _run((f"{tool}-restore", "-w", "--noflush"), text)
    if done.returncode == 0:
        return done
    table, tag, ours, errors = "filter", "", set(), []
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        if not line.startswith("-"):
            continue
        action, chain, rule = _restore_words(line)
        base = (tool, "-w", "-t", table)
        if action == "-D":
            tag = rule[rule.index("--comment") + 1] if "--comment" in rule[:-1] else tag
            found = _run((*base, "-C", chain, *rule))
        else:
            found = _run((*base, "-S", chain))
        target = rule[rule.index("-j") + 1] if "-j" in rule[:-1] else ""
        if found.returncode == 2 and target and _run((*base, "-S", target)).returncode == 1:
            continue  # a jump to a chain that is gone
        if found.returncode == 1:  # no such rule or chain: already gone
            continue
        if found.returncode != 0:
            errors.append(f"{tool} -t {table}: cannot tell whether this is still there: {line} ({found.stderr.strip()})")
            continue
        if action == "-D" and "-j" in rule[:-1]:
            ours.add((table, rule[rule.index("-j") + 1]))  # a jump reaches a chain of its own table only
        if action == "-X" and (table, chain) not in ours:
            continue
        if action == "-F" and (table, chain) not in ours and not _tagged(found.stdout, tag):
            continue
        ours.add((table, chain))
        result = _run((*base, action, chain, *rule))
        if result.returncode != 0:
            errors.append(f"{tool} -t {table} {line}: {result.stderr.strip() or 'failed'}")
    if errors:
        return Result(1, "", "; ".join(errors))
    return Result(0)


def ip6tables_undo(text: str) -> Result:
    """iptables_undo for IPv6: the same text shape, through ip6tables and ip6tables-restore."""
    return iptables_undo(text, "ip6tables")


# The builtins that read an ip(6)tables-restore text on standard input (a Command's input).
UNDO: dict[str, Callable[[str], Result]] = {"iptables_undo": iptables_undo, "ip6tables_undo": ip6tables_undo}


def nft_ours(table: str, tag: str) -> bool:
    """Whether the inet table `table` is there and carries the topology's comment `tag`."""
    listed = _run(("nft", "list", "table", "inet", table))
    return listed.returncode == 0 and f'\tcomment "{tag}"' in listed.stdout.splitlines()


def nft_undo(table: str, tag: str) -> Result:
    """Delete the inet table `table` in one transaction when it is the topology's own (it carries
    the comment `tag`); one that is gone is no error, one that someone else made is left alone."""
    listed = _run(("nft", "list", "table", "inet", table))
    if listed.returncode != 0:
        if "No such file or directory" in listed.stderr:
            return Result(0)
        return Result(1, "", f"nft list table inet {table}: {listed.stderr.strip() or 'failed'}")
    if f'\tcomment "{tag}"' not in listed.stdout.splitlines():
        return Result(0, "", f"nftables table inet {table} does not carry the comment {tag}: it is not nsgen's, and is left alone")
    deleted = _run(("nft", "delete", "table", "inet", table))
    if deleted.returncode != 0 and "No such file or directory" not in deleted.stderr:
        return Result(1, "", f"nft delete table inet {table}: {deleted.stderr.strip() or 'failed'}")
    return Result(0)


def _legacy_tables(tool: str) -> set[str]:
    """The tables of `tool`'s legacy backend that the kernel holds (iptables or ip6tables), read from
    /proc and never loaded by looking."""
    try:
        with open(f"/proc/net/{tool.removesuffix('tables')}_tables_names") as f:  # ip_tables_names, ip6_tables_names
            return set(f.read().split())
    except OSError:
        return set()


def _pass_programs(tool: str) -> list[str]:
    """The programs that write the FORWARD chain of each backend of `tool` (iptables or ip6tables)
    that can hold one: TOOL-nft, and TOOL-legacy where the kernel holds its filter table (both see
    every forwarded packet); TOOL itself where neither is installed (an iptables of one backend only)."""
    nft, legacy = shutil.which(f"{tool}-nft"), shutil.which(f"{tool}-legacy")
    if not nft and not legacy:
        return [tool] if shutil.which(tool) else []
    return [*([f"{tool}-nft"] if nft else []), *([f"{tool}-legacy"] if legacy and "filter" in _legacy_tables(tool) else [])]


def forward_pass(action: str, tool: str, tag: str, mark: str) -> Result:
    """add: in each backend of `tool` (iptables or ip6tables: its nft one, its legacy one where the
    kernel holds its filter table) whose FORWARD chain can drop (a policy other than ACCEPT, or
    rules: Docker's, ufw's), insert at its top one rule that accepts the packets nsgen's nftables
    table marked (`mark`); del: remove that rule wherever it is. Nothing to do without `tool`."""
    rule = ("FORWARD", "-m", "mark", "--mark", f"{mark}/{mark}", "-m", "comment", "--comment", tag, "-j", "ACCEPT")
    for program in _pass_programs(tool):
        if action == "del":
            while _run((program, "-w", "-C", *rule)).returncode == 0:
                gone = _run((program, "-w", "-D", *rule))
                if gone.returncode != 0:
                    return Result(1, "", f"{program} -D {' '.join(rule)}: {gone.stderr.strip() or 'failed'}")
            continue
        listed = _run((program, "-w", "-S", "FORWARD"))
        if listed.returncode != 0 or listed.stdout.strip() == "-P FORWARD ACCEPT" or _run((program, "-w", "-C", *rule)).returncode == 0:
            continue
        added = _run((program, "-w", "-I", rule[0], "1", *rule[1:]))
        if added.returncode != 0:
            return Result(1, "", f"{program} -I FORWARD 1: {added.stderr.strip() or 'failed'}")
    return Result(0)


def conntrack_flush(protocol: str, *ports: str) -> Result:
    """Delete the connection-tracking entries, IPv4 and IPv6, whose original destination port is
    one of `ports`. None found is no error; nor is a host without IPv6 (no /proc/net/if_inet6:
    it tracks no IPv6 connection, and conntrack cannot be asked about them). The entries of each
    family are listed once, and only the ports found there are deleted: a range of a thousand
    ports costs two listings, not two thousand calls."""
    families = ("ipv4", "ipv6") if os.path.exists("/proc/net/if_inet6") else ("ipv4",)
    for family in families:
        listed = _run(("conntrack", "-L", "-f", family, "-p", protocol))
        if listed.returncode != 0:
            return Result(listed.returncode, "", listed.stderr.strip())
        found = {word[6:] for word in listed.stdout.split() if word.startswith("dport=")}  # either direction's: a superset
        for port in (p for p in ports if p in found):
            done = _run(("conntrack", "-D", "-f", family, "-p", protocol, "--orig-port-dst", port))
            if done.returncode != 0 and "0 flow entries" not in done.stderr:
                return Result(done.returncode, "", done.stderr.strip())
    return Result(0)


# ----------------------------------------------------------------------------------------------
# Guards: the host checked under the lock, before any change


def _state_dirs(topology: str) -> list[str]:
    return [STATE_ROOT, FORWARD_DIR, f"{FORWARD_DIR}/users", FORWARD6_DIR, f"{FORWARD6_DIR}/users", state_dir(topology)]


def _dir_problem(path: str, own: bool) -> str | None:
    problem = record.path_problem(path, "dir")
    if problem:
        return f"{path}: {problem}"
    try:
        entries = sorted(os.listdir(path))
    except OSError as exc:
        return f"{path}: it cannot be read ({exc.strerror})"
    for entry in entries:
        if os.path.islink(os.path.join(path, entry)):
            return f"{path}/{entry}: it is a symbolic link"
    if own and entries:
        problem = record.path_problem(f"{path}/{record.RECORD}", "file")
        if problem:
            return f"{path}/{record.RECORD} (its record): {problem}"
    return None


def state_ok(topology: str) -> Result:
    """The folders nsgen keeps its state in are its own (root's, writable by nobody else, no
    link inside), and the topology's holds its record (or nothing at all)."""
    for path in _state_dirs(topology):
        if os.path.lexists(path):
            problem = _dir_problem(path, own=path == state_dir(topology))
            if problem:
                return Result(1, "", f"the state directory {problem}: it is not nsgen's; nothing was changed "
                                     "(remove it if nothing of nsgen's is up)")
    return Result(0)


def state_ours(topology: str) -> bool:
    """Whether the topology's state directory is there for a teardown to remove: a folder of
    root's, writable by nobody else, in a state root that is the same (what is inside it need
    not be trusted to be removed: nothing in it is followed)."""
    path = state_dir(topology)
    return os.path.lexists(path) and record.path_problem(path, "dir") is None and record.path_problem(STATE_ROOT, "dir") is None


def address_here(name: str, address: str) -> Result:
    """This host has `address`: it is host `name` of a topology across hosts, whose part is set up here."""
    from nsgen.hostinfo import host_addresses

    found = host_addresses()
    if found is None:
        return Result(1, "", f"cannot read this host's addresses (ip addr failed), so cannot tell whether it is host {name}; "
                             "nothing was changed")
    if ipaddress.ip_address(address) in found:
        return Result(0)
    return Result(1, "", f"hosts.{name}.address: {address} is not an address of this host, so this is not host {name}; "
                         "its part of the topology is set up on the host that has that address; nothing was changed")


def subnets_free(host: Host, group: str, topology: str, *subnets: str) -> Result:
    """No route of the host's main table overlaps a network's subnet (IPv4 or IPv6: a route of its
    family), except the routes of the topology's own devices (it is being set up again)."""
    from nsgen.hostinfo import host_routes, host_routes6

    links = host.links()
    routes: dict[int, list[tuple[str, str]]] = {}
    for item in subnets:
        name, _, text = item.rpartition("=")
        subnet = ipaddress.ip_network(text)
        if subnet.version not in routes:
            routes[subnet.version] = host_routes() if subnet.version == 4 else host_routes6()
        for dst, dev in routes[subnet.version]:
            if dst in ("", "default"):
                continue
            link = links.get(dev)
            if link is not None and _number(link.group) == _number(group) and _ours(dev, link, topology):
                continue
            route = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{subnet.max_prefixlen}", strict=False)
            if route.version == subnet.version and route.prefixlen > 0 and route.overlaps(subnet):
                return Result(1, "", f"network {name}: subnet {subnet} overlaps the host's route to {route} (dev {dev}); "
                                     "choose a subnet the host does not use; nothing was changed")
    return Result(0)


class Listener(NamedTuple):
    protocol: str
    address: str
    port: int
    inode: str


def listeners() -> list[Listener]:
    """Sockets of this network namespace that listen (TCP) or are bound (UDP), from /proc/net."""
    found = []
    for protocol, state in (("tcp", "0A"), ("udp", "07")):
        for family in ("", "6"):
            try:
                with open(f"/proc/net/{protocol}{family}") as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                if len(fields) < 10 or fields[3] != state:
                    continue
                address, _, port = fields[1].partition(":")
                found.append(Listener(protocol, _address(address), int(port, 16), fields[9]))
    return found + _sctp_listeners()


def _sctp_listeners() -> list[Listener]:
    """The kernel's SCTP endpoints (/proc/net/sctp/eps: ... LPORT UID INODE LADDRS...; none
    without SCTP). One bound to [::] is taken to hold both families (whether it is IPV6_V6ONLY is
    not told)."""
    try:
        with open("/proc/net/sctp/eps") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return []
    found = []
    for row in rows:
        fields = row.split()
        if len(fields) < 9 or not fields[5].isdigit():
            continue
        for address in fields[8:]:
            found.append(Listener("sctp", "*" if address == "::" else address, int(fields[5]), fields[7]))
    return found


def _address(hexed: str) -> str:
    raw = bytes.fromhex(hexed)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    six = ipaddress.IPv6Address(words)
    return str(six.ipv4_mapped) if six.ipv4_mapped else str(six)


def _holder(inode: str) -> str:
    """The program that owns a socket, as `name (pid N)`, when /proc tells."""
    pid = _holder_pid(inode)
    if pid is None:
        return "a program"
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f"{f.read().strip()} (pid {pid})"
    except OSError:
        return "a program"


def _own_proxy(inode: str, tag: str) -> bool:
    """Whether the socket is held by the topology's own port proxy: a process of root's (a user
    can name any command line, not run as root) whose words are `nsgen port-proxy ... --tag TAG`."""
    pid = _holder_pid(inode)
    try:
        if os.stat(f"/proc/{pid}").st_uid != 0:
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().decode(errors="replace").split("\0")
    except (OSError, TypeError):
        return False
    return "port-proxy" in words and any(words[i:i + 2] == ["--tag", tag] for i in range(len(words)))


def _holder_pid(inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                    return int(entry)
            except OSError:
                continue
    return None


def _overlaps(mine: str, theirs: str) -> bool:
    """Whether a port bound or published at `theirs` takes traffic for a port published at `mine`.
    Each is `*` (every address of both families: a dual-stack socket on [::], a port published on
    every address), 0.0.0.0 (every IPv4 address), :: (every IPv6 address: a socket on [::] with
    IPV6_V6ONLY, an ip6tables DNAT for any destination) or one address."""
    if "*" in (mine, theirs) or mine == theirs:
        return True
    return any((wide == "0.0.0.0" and ":" not in one) or (wide == "::" and ":" in one) for wide, one in ((mine, theirs), (theirs, mine)))


def _v6only(protocol: str) -> set[str] | None:
    """The inodes of the IPv6 sockets that listen (TCP) or are bound (UDP) with IPV6_V6ONLY, asked
    of the kernel over sock_diag as `ss` asks it (/proc/net does not tell); None when it cannot be."""
    import socket
    import struct

    states = 1 << 10 if protocol == "tcp" else 1 << 7  # TCP_LISTEN; TCP_CLOSE: an unconnected UDP socket
    request = struct.pack("=BBBxI", socket.AF_INET6, 6 if protocol == "tcp" else 17, 0, states) + bytes(48)  # inet_diag_req_v2
    found: set[str] = set()
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4) as s:  # NETLINK_SOCK_DIAG
            s.send(struct.pack("=LHHLL", 16 + len(request), 20, 0x301, 1, 0) + request)  # SOCK_DIAG_BY_FAMILY, a dump
            while True:
                data, offset = s.recv(1 << 16), 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=LH", data, offset)
                    if kind == 3:  # NLMSG_DONE
                        return found
                    if kind == 2 or length < 16 + 72:  # NLMSG_ERROR (no diag for the protocol, say)
                        return None
                    inode = struct.unpack_from("=I", data, offset + 16 + 68)[0]  # inet_diag_msg's idiag_inode
                    attr = offset + 16 + 72
                    while attr + 4 <= offset + length:
                        size, name = struct.unpack_from("=HH", data, attr)
                        if size < 4:
                            break
                        if name == 11 and size > 4 and data[attr + 4]:  # INET_DIAG_SKV6ONLY, set
                            found.add(str(inode))
                        attr += (size + 3) & ~3
                    offset += (length + 3) & ~3
                if not data:
                    return None
    except OSError:
        return None


def _dnat_rules() -> list[tuple[str, str, int, str, str]]:
    """(protocol, address, port, tag or '', line) of every DNAT rule of the nat tables, IPv4 and
    IPv6, and of the legacy backend's where the kernel holds its nat table (Docker's published ports
    through iptables-legacy); a rule for any destination has 0.0.0.0 or :: (every address of its family)."""
    rules = []
    saves = [("iptables-save", "0.0.0.0"), ("ip6tables-save", "::")]
    saves += [(f"{tool}-legacy-save", anywhere) for tool, anywhere in (("iptables", "0.0.0.0"), ("ip6tables", "::"))
              if "nat" in _legacy_tables(tool)]
    for save, anywhere in saves:
        done = _run((save, "-t", "nat"))  # ip6tables-save missing: no IPv6 rule
        for line in done.stdout.splitlines():
            words = line.split()
            if not words or words[0] != "-A" or "DNAT" not in words:
                continue
            protocol = words[words.index("-p") + 1] if "-p" in words[:-1] else ""
            if "--dport" not in words[:-1] or not words[words.index("--dport") + 1].isdigit():
                continue
            port = int(words[words.index("--dport") + 1])
            where = words[words.index("-d") + 1].removesuffix("/32").removesuffix("/128") if "-d" in words[:-1] else anywhere
            tag = words[words.index("--comment") + 1].strip('"') if "--comment" in words[:-1] else ""
            rules.append((protocol, where, port, tag, line))
    return rules + _nft_dnats()


def _nft_dnats() -> list[tuple[str, str, int, str, str]]:
    """(protocol, address, port, tag, element) of every port that an nsgen topology of the nftables
    backend publishes: the elements (PORT . ADDRESS : TARGET) of the maps dnat_FAMILY_PROTOCOL of
    each table inet nsgen-* (the tag is the table's comment); a key for any address (0.0.0.0/0,
    ::/0) has 0.0.0.0 or ::.
    Nothing where nft is not installed."""
    found, tag, kind = [], None, ""
    for raw in _run(("nft", "list", "ruleset")).stdout.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            tag, kind = ("" if line.startswith("table inet nsgen-") else None), ""
        elif tag == "" and line.startswith('comment "nsgen:'):
            tag = line[len('comment "'):-1]
        elif tag and line.startswith("map dnat_"):
            kind = line[len("map dnat_"):].removesuffix(" {")  # ip_tcp, ip6_udp...
        elif line == "}":
            kind = ""
        elif tag and kind and "_" in kind:
            words = line.removeprefix("elements = { ").split()
            if len(words) > 2 and words[1] == "." and words[0].isdigit():  # PORT . ADDRESS : TARGET
                where = {"0.0.0.0/0": "0.0.0.0", "::/0": "::"}.get(words[2], words[2])
                found.append((kind.split("_", 1)[1], where, int(words[0]), tag, line))
    return found


def _spec(spec: str) -> tuple[str, int, str]:
    """PROTOCOL:PORT:HOST, split on its first two colons; HOST is `*`, an IPv4 address, or an IPv6
    address in brackets ([2001:db8::1], [::])."""
    protocol, port, host = spec.split(":", 2)
    return protocol, int(port), host[1:-1] if host.startswith("[") and host.endswith("]") else host


def ports_free(tag: str, *specs: str) -> Result:
    """No host socket listens on a port the topology publishes (PROTOCOL:PORT:HOST...), and no
    other DNAT (another topology's, another program's; IPv4 or IPv6) takes it, at an address that
    overlaps. An IPv6 socket on [::] holds the port on every address of both families unless it is
    IPV6_V6ONLY; when the kernel cannot be asked which, it is taken to hold both, as `ss` (the
    scripts' half) takes it, so that both halves refuse alike."""
    wanted = [_spec(s) for s in specs]
    v6only: dict[str, set[str] | None] = {}
    for found in listeners():
        for protocol, port, ip in wanted:
            if found.protocol != protocol or found.port != port:
                continue
            address = found.address
            if address == "::":
                if protocol not in v6only:
                    v6only[protocol] = _v6only(protocol)
                only = v6only[protocol]
                address = "::" if only is not None and found.inode in only else "*"
            if _overlaps(ip, address) and not _own_proxy(found.inode, tag):
                shown = f"[{address}]" if ":" in address else address
                return Result(1, "", f"host port {port}/{protocol} is already in use: {_holder(found.inode)} listens on "
                                     f"{shown}:{port}; nothing was changed")
    for protocol, where, port, theirs, line in _dnat_rules():
        for want_protocol, want_port, ip in wanted:
            if theirs != tag and protocol == want_protocol and port == want_port and _overlaps(ip, where):
                holder = f"nsgen topology {theirs[6:]}" if theirs.startswith("nsgen:") else f"another program's rule ({line})"
                return Result(1, "", f"host port {port}/{protocol} is already published by {holder}; nothing was changed")
    return Result(0)


# ----------------------------------------------------------------------------------------------
# A second firewall: what the other iptables backend, or an nft table, drops


def _summary(saved: str) -> str:
    """What an iptables-save text holds, for a person: policies that drop, and the number of rules."""
    table, policies, rules = "", [], 0
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":") and len(line.split()) >= 2 and line.split()[1] in ("DROP", "REJECT"):
            policies.append(f"{table} {line.split()[0][1:]} policy {line.split()[1]}")
        elif line.startswith("-A"):
            rules += 1
    parts = policies + ([f"{rules} rule(s)"] if rules else [])
    return ", ".join(parts)


def _forward_drops(ruleset: str, passed: tuple[str, ...] = ("ip filter", "ip6 filter")) -> list[str]:
    """nft base chains on the forward hook whose policy is drop, outside the tables in `passed`
    (iptables-nft's own, whose FORWARD chains nsgen writes to)."""
    found, table, chain = [], "", ""
    for raw in ruleset.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            table = line[len("table "):].rstrip(" {")
        elif line.startswith("chain "):
            chain = line[len("chain "):].rstrip(" {")
        elif "hook forward" in line and "policy drop" in line and table not in passed:
            found.append(f"nft table {table}, chain {chain}: policy drop on the forward hook")
    return found


def _other_backend(tool: str) -> str:
    """A warning when the other backend of `tool` (iptables, or ip6tables for IPv6) than the one
    nsgen writes through holds rules, or nothing (nor when `tool` is not installed)."""
    version = _run((tool, "-V")).stdout
    found, mine, other = "", f"{tool}-nft" if "nf_tables" in version else f"{tool}-legacy", ""
    if "nf_tables" in version:
        if _legacy_tables(tool):
            found, other = _summary(_run((f"{tool}-legacy-save",)).stdout), f"{tool}-legacy"
    elif "legacy" in version:
        found, other = _summary(_run((f"{tool}-nft-save",)).stdout), f"{tool}-nft"
    if not found:
        return ""
    return (f"{other} also holds rules on this host ({found}), and nsgen writes through {mine}: a packet must pass both, "
            f"so {other}'s rules can cut the networks off; move them to {mine}, or make {other} the {tool} nsgen runs")


def other_firewall(*words: str) -> Result:
    """A warning (never a refusal) when another firewall than the one nsgen writes to can drop
    its networks' traffic. Words: "6" when the topology has IPv6, "nftables" when it writes
    through nftables. For iptables, a packet must pass both iptables backends (both ip6tables
    backends, for IPv6), and every nft base chain (of the ip, ip6 and inet families alike). For
    nftables, the FORWARD chains of iptables (either backend) let nsgen's marked packets through
    (forward_pass), where the program that writes them is installed; every other nft base chain
    on the forward hook can still drop."""
    tools = ("iptables", "ip6tables") if "6" in words else ("iptables",)
    if "nftables" not in words:
        lines = [line for line in map(_other_backend, tools) if line]
        return Result(0, "", "\n".join([*lines, *_forward_drops(_run(("nft", "list", "ruleset")).stdout)]))
    passed = tuple(f"{family} filter" for family, tool in (("ip", "iptables"), ("ip6", "ip6tables"))
                   if shutil.which(f"{tool}-nft") or "nf_tables" in _run((tool, "-V")).stdout)
    return Result(0, "", "\n".join(_forward_drops(_run(("nft", "list", "ruleset")).stdout, passed)))


# ----------------------------------------------------------------------------------------------


def probes(host: Host) -> dict[str, Callable[..., bool]]:
    return {
        "group_has_links": host.group_has_links,
        "link_ours": host.link_ours,
        "group_ours": host.group_ours,
        "netns_ours": netns_ours,
        "state_ours": state_ours,
        "process_alive": process_alive,
        "nft_ours": nft_ours,
    }


def commands(host: Host) -> dict[str, Callable[..., Result]]:
    return {
        "stop_processes": stop_processes,
        "delete_links": host.delete_links,
        "conntrack_flush": conntrack_flush,
        "nft_undo": nft_undo,
        "forward_pass": forward_pass,
        "state_ok": state_ok,
        "address_here": address_here,
        "subnets_free": lambda *args: subnets_free(host, *args),
        "ports_free": ports_free,
        "other_firewall": other_firewall,
        "wait_ready": wait_ready,
    }


__all__ = ["UNDO", "Host", "Result", "intent_path", "ip6tables_undo", "iptables_undo", "marked_namespaces", "stop_processes"]
