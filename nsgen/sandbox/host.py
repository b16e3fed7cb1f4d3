"""A throwaway Linux host: a mount + network namespace pair with a small "world" behind it.

The outside side (`Sandbox`) knows how to start the host, run commands in it, take a comparable
snapshot of it and kill everything in it; it knows nothing of nsgen's topologies. The helper side
(this same module, started by `unshare --mount --net --propagation private -- python -S -c ...`)
builds the host from the inside and then only waits; it is the process whose namespaces *are*
the sandbox. `nsgen sandbox` and the test suite's `sandbox` fixture both use it.

What the sandbox host looks like (all of it private to the sandbox, nothing reaches the real host):

    /run            tmpfs (so /run/netns and /run/nsgen are the sandbox's own)
    /etc            overlay: the real /etc below, a tmpfs above (writes never reach the disk)
    /etc/netns      tmpfs      /etc/sysctl.d   tmpfs (empty)
    /etc/resolv.conf           nameserver 203.0.113.53 (the world's DNS, over IPv4)
    lo up; world0 198.51.100.1/24 + 2001:db8:100::1/64; default via 198.51.100.2,
        IPv6 default via 2001:db8:100::2
    iptables and ip6tables: the filter, nat, mangle and raw tables exist, empty, policies ACCEPT
    sysctls (PINNED_SYSCTLS, the same in the world), whatever the machine has:
        net.ipv4.ip_forward 0, net.ipv4.conf.{all,default}.forwarding 0,
        net.ipv4.conf.{all,default}.route_localnet 0, net.ipv4.conf.{all,default}.rp_filter 2,
        net.ipv6.conf.{all,default}.forwarding 0, net.ipv6.conf.{all,default}.disable_ipv6 0,
        net.bridge.bridge-nf-call-{iptables,ip6tables} 1 (only where br_netfilter is loaded);
        the conf.default values also on each interface the helper made (lo, world0; in the
        world lo, host0): an interface's own copy counts too (rp_filter is the larger of all's
        and its own, route_localnet is on if either is)
    netns "world" (it forwards nothing: every address it answers for is its own):
        host0 198.51.100.2/24 + 2001:db8:100::2/64,
        lo 203.0.113.10/32 + 203.0.113.53/32 + 2001:db8:113::10/128 + 2001:db8:113::53/128,
        http://203.0.113.10/ and http://[2001:db8:113::10]/ answer the caller's source address
        (world/http_server.py),
        DNS on 203.0.113.53 and 2001:db8:113::53 answers web.world.test and example.test (A and
        AAAA), dns.world.test (A only) (world/dns_server.py).
    Every IPv6 address is added `nodad`: usable at once, without duplicate address detection's
    wait (only the kernel's own link-local addresses still go through it).

Why an overlay on /etc: `ip netns` needs /etc/netns, which does not exist on a clean host, and
`mkdir` inside a mount namespace still writes to the real disk. Creating it in an overlay whose
upper layer is a tmpfs leaves the disk untouched even if the owning process is killed mid-way.

Why pinned sysctls: a new network namespace does not start from the kernel's defaults. With
net.core.devconf_inherit_init_net at 0 (the default) it copies net.ipv4.conf.{all,default} (and so
ip_forward) from the machine's own namespace, and with 1 or 3 the IPv6 ones too: on a machine that
forwards (Docker, a router), a new sandbox would already forward, and nsgen's "turn forwarding
on if it is off" would have nothing to do. The values are written once the network is set up,
so that they hold for the interfaces the helper made as well. rp_filter is 2 (loose), as
systemd's 50-default.conf and Ubuntu set it on most hosts nsgen runs on: a topology whose packets
come from an address the host has no route back to works in the sandbox only if it would work
there; 0 (no check) would hide that, 1 (strict) is stricter than most hosts. (Namespaces made
later inside the sandbox, e.g. nsgen's containers, still copy the machine's values: only the
host and the world are pinned.)

Killing every process of the sandbox frees it: its mount namespace holds the /run tmpfs that
holds the bind mounts that keep its network namespaces alive. If the owning process dies without
close(), the helper sees its stdin close and kills the sandbox itself.

Simulated hosts (hosts.py, `simulated_hosts(box, n)`): for networks that span hosts, a sandbox
can hold hosts h1..hn, each a network and mount namespace of its own (its own /run, /etc/netns,
/etc/sysctl.d, pinned sysctls and empty tables, as here), with eth0 192.0.2.(10+i) on a bridge
`underlay` 192.0.2.1/24 of the sandbox host, which then forwards between it and the world
(without NAT: the world sees a host's own address). close() closes them first.

Standard library only: the helper runs with `python -S`, without site-packages.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False  # typing itself is not imported: the helper starts faster without it
if TYPE_CHECKING:
    from typing import Any

HOST_ADDR = "198.51.100.1"
WORLD_ADDR = "198.51.100.2"
WORLD_PREFIX = 24
WEB_ADDR = "203.0.113.10"
DNS_ADDR = "203.0.113.53"
HOST_ADDR6 = "2001:db8:100::1"
WORLD_ADDR6 = "2001:db8:100::2"
WORLD_PREFIX6 = 64
WEB_ADDR6 = "2001:db8:113::10"
DNS_ADDR6 = "2001:db8:113::53"
WORLD_NS = "world"
WORLD_LINK = "world0"  # the host's end of the veth
WORLD_PEER = "host0"  # the world's end
# world0's ifindex, unlike host0's (the next free one in the world, 2 there too unless set): a veth
# whose ifindex equals its peer's looks like a plain device to the kernel's link watch, which then
# reports its carrier up to a second late; until then IPv6 drops multicast on it, neighbour
# discovery included, and the first IPv6 packet of a new sandbox waited a second for a retry.
WORLD_LINK_INDEX = 100
WORLD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "world")  # the servers, run as scripts

REQUIRED_TOOLS = (
    "unshare", "nsenter", "mount", "umount", "ip",
    "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore",
)
# Written by the helper, in the host and in the world, whatever the machine's own values are (see
# "Why pinned sysctls" above). Keys the kernel does not have (net.bridge.* without br_netfilter,
# net.ipv6.* with IPv6 disabled) are left out. Each conf.default.KEY is also written to KEY of
# every interface that exists at that point.
PINNED_SYSCTLS = {
    "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.forwarding": "0",
    "net.ipv4.conf.default.forwarding": "0",
    "net.ipv4.conf.all.route_localnet": "0",
    "net.ipv4.conf.default.route_localnet": "0",
    "net.ipv4.conf.all.rp_filter": "2",
    "net.ipv4.conf.default.rp_filter": "2",
    "net.ipv6.conf.all.forwarding": "0",
    "net.ipv6.conf.default.forwarding": "0",
    # The world's IPv6 needs it (a machine booted with ipv6.disable_ipv6=1 starts every namespace
    # without); written first of all, before any IPv6 address is added (see _enable_ipv6).
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv6.conf.default.disable_ipv6": "0",
    # Per namespace since Linux 5.3; before, they exist only in the machine's own namespace (so
    # the sandbox skips them, and never writes the machine's). 1 is the kernel's default.
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


class SandboxUnavailable(Exception):
    """This machine cannot make a sandbox (not root, a tool missing, unshare or mount refused)."""


class SandboxError(RuntimeError):
    """The sandbox misbehaved (a server did not start, a process would not die...)."""


class SandboxCommandError(AssertionError):
    """A command run in the sandbox failed; carries what `subprocess.CalledProcessError` carries."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr
        super().__init__(
            f"command failed in the sandbox (exit status {returncode}): {argv!r}\n"
            f"--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
        )


def unavailable_reason() -> str | None:
    """Why a sandbox cannot be made here without trying (None: worth trying)."""
    import shutil

    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux namespaces (this is {sys.platform})"
    if not os.path.isdir("/proc/sys/net/ipv6"):
        return "the sandbox needs IPv6 (this kernel has none: booted with ipv6.disable=1?)"
    if os.geteuid() != 0:
        return f"the sandbox needs root (euid is {os.geteuid()})"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the sandbox needs {', '.join(missing)} on PATH"
    return None


# ---------------------------------------------------------------------------------------------
# Who belongs to a sandbox (shared by both sides)
# ---------------------------------------------------------------------------------------------

def _fd_key(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _key(path: str) -> tuple[int, int] | None:
    """(device, inode) of what path resolves to; for /proc/N/ns/* that identifies the namespace."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class _Membership:
    """Recognises the processes of one sandbox from the outside, by /proc alone.

    A process belongs when it is in the sandbox's mount namespace, or in one of its network
    namespaces (the host's and every one bound under its /run/netns), or sees the sandbox's
    /run tmpfs (a mount namespace copied from the sandbox's, e.g. by `ip netns exec`, even after
    its network namespace was deleted from /run/netns).

    It holds file descriptors on the sandbox's mount and network namespaces and on its root
    directory: while they are open, the namespaces cannot be freed, so their inode numbers (which
    the kernel reuses, lowest first) cannot come to name another sandbox's. close() lets go.
    """

    def __init__(self, pid: int, run_source: str, *, outside: bool = True) -> None:
        self._fds: list[int] = []
        try:
            mnt = self._hold(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
            net = self._hold(f"/proc/{pid}/ns/net", os.O_RDONLY)
            self._root = self._hold(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            self.close()
            raise SandboxError(f"sandbox helper {pid} is gone: {exc}") from None
        self.mnt, self.net = _fd_key(mnt), _fd_key(net)
        if outside and (self.mnt == _key("/proc/self/ns/mnt") or self.net == _key("/proc/self/ns/net")):
            self.close()  # not (yet) in namespaces of its own: "members" would be everyone
            raise SandboxError(f"process {pid} does not live in a sandbox")
        # /run is only evidence if it is the tmpfs the helper mounted (named after this sandbox);
        # before that mount, it is the real /run, which every process on the machine sees.
        self.run = _key(self.path("/run")) if _run_source(pid) == run_source else None
        self.netns: dict[tuple[int, int], str] = {}
        self.refresh()

    def _hold(self, path: str, flags: int) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC)
        self._fds.append(fd)
        return fd

    def path(self, inside: str) -> str:
        """A path that reaches `inside` as the sandbox sees it (whether or not its helper lives)."""
        return f"/proc/self/fd/{self._root}{inside}"

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def refresh(self) -> None:
        """Re-read the sandbox's named network namespaces."""
        netns = {self.net: "host"}
        if self.run is None:  # /run/netns would be the real host's
            self.netns = netns
            return
        directory = self.path("/run/netns")
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        for name in names:
            key = _key(f"{directory}/{name}")
            if key is not None and key not in netns:
                netns[key] = name
        self.netns = netns

    def netns_of(self, pid: int) -> str | None:
        """The sandbox's name for pid's network namespace ('host', 'world', ..., '?'), or None."""
        net = _key(f"/proc/{pid}/ns/net")
        if net is None:
            return None  # gone, or a zombie: it holds no namespace any more
        if net in self.netns:
            return self.netns[net]
        if _key(f"/proc/{pid}/ns/mnt") == self.mnt or (self.run is not None and _key(f"/proc/{pid}/root/run") == self.run):
            return "?"  # an unnamed namespace made inside the sandbox
        return None

    def pids(self, exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pid = int(entry)
                if pid not in exclude and pid != os.getpid() and self.netns_of(pid) is not None:
                    found.append(pid)
        return found

    def kill_all(self, exclude: set[int] | frozenset[int] = frozenset(), timeout: float = 10.0) -> None:
        """SIGKILL every member not in exclude and wait until none is left."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids(exclude)
            if not pids:
                return
            if time.monotonic() > deadline:
                raise SandboxError(f"sandbox processes would not die: {pids}")
            pidfds = []
            for pid in pids:
                try:  # a pidfd pins the process: no signal can hit a recycled pid
                    pidfd = os.pidfd_open(pid)
                except OSError:
                    continue
                if self.netns_of(pid) is None:
                    os.close(pidfd)
                    continue
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pidfds.append(pidfd)
            with selectors.DefaultSelector() as waiting:  # a pidfd turns readable when its process exits
                for pidfd in pidfds:
                    waiting.register(pidfd, selectors.EVENT_READ)
                left = set(pidfds)
                while left and time.monotonic() < deadline:
                    for ready, _ in waiting.select(max(0.0, deadline - time.monotonic())):
                        waiting.unregister(ready.fd)
                        left.discard(ready.fd)
            for pidfd in pidfds:
                os.close(pidfd)


def _run_source(pid: int) -> str | None:
    """The source ("device") of the mount on /run as pid sees it, if it is a tmpfs."""
    source = None
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == "/run":
                    rest = fields[fields.index("-") + 1:]
                    source = rest[1] if rest[0] == "tmpfs" else None  # the last one is on top
    except (OSError, ValueError, IndexError):
        return None
    return source


def _cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None
    import shlex

    return shlex.join(arg.decode(errors="replace") for arg in raw.rstrip(b"\0").split(b"\0"))


# ---------------------------------------------------------------------------------------------
# The outside: the process that owns the sandbox
# ---------------------------------------------------------------------------------------------

SNAPSHOT_SYSCTLS = tuple(PINNED_SYSCTLS)
SNAPSHOT_DIRS = ("/etc/netns", "/etc/sysctl.d", "/run/nsgen")
_SECTION = "@@sandbox-section "


class Snapshot(dict):
    """What Sandbox.snapshot() returns: a plain dict of str -> list[str] (== works with any dict),
    of its own type so that the test suite can show `assert snapshot == before` failures as a diff."""


def diff_snapshots(left: dict[str, list[str]], right: dict[str, list[str]]) -> list[str]:
    """Lines naming what differs, per key: '+ x' only in left, '- x' only in right."""
    import difflib

    lines = []
    for key in sorted(set(left) | set(right)):
        mine, theirs = left.get(key, []), right.get(key, [])
        if mine == theirs:
            continue
        lines.append(f"{key}:")
        changes = [
            line for line in difflib.unified_diff(theirs, mine, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("---", "+++"))
        ]
        if not changes:  # same items, other order (iptables/nft rule order)
            changes = [f"- {line}" for line in theirs] + [f"+ {line}" for line in mine]
        lines.extend(f"  {line[0]} {line[1:]}" for line in changes)
    return lines


class Sandbox:
    """A started sandbox (starting is what the constructor does, like `subprocess.Popen`).

    `with Sandbox() as sb:` or `sb = Sandbox(); ...; sb.close()`. Two may exist at once.
    """

    def __init__(
        self,
        *,
        iptables_tables: tuple[str, ...] = ("filter", "nat", "mangle", "raw"),
        start_timeout: float = 10.0,
    ) -> None:
        import tempfile

        unknown = set(iptables_tables) - set(BUILTIN_CHAINS)
        if unknown:
            raise ValueError(f"unknown iptables tables: {sorted(unknown)}")
        reason = unavailable_reason()
        if reason:
            raise SandboxUnavailable(reason)
        self.iptables_tables = tuple(iptables_tables)
        self.pid: int = 0
        self.world_pids: dict[str, int] = {}
        self.closed = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._members: _Membership | None = None
        # what else dies with the sandbox, first of all (simulated hosts: see hosts.py)
        self._closers: list[Callable[[], None]] = []
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the helper's and the world servers' stderr
        self._run_source = f"sandbox-run-{os.urandom(6).hex()}"  # names this sandbox's /run tmpfs
        config = {"iptables_tables": list(iptables_tables), "timeout": start_timeout, "run_source": self._run_source}
        try:
            self._start(config, start_timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, config: dict, timeout: float) -> None:
        self._proc = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "--", *_helper_command(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True,  # a ^C in the terminal is the owner's to handle, not the helper's
        )
        self.pid = self._proc.pid  # unshare execs the helper: same process
        line, ended = self._read_line(self._proc.stdout, timeout)
        message: dict = {}
        if line:
            try:
                message = json.loads(line)
            except ValueError:
                message = {"error": f"unexpected output from the helper: {line!r}"}
        if message.get("ready"):
            self.world_pids = message["world_pids"]
            self._members = _Membership(self.pid, self._run_source)
            if self._members.run is None:
                raise SandboxError("the sandbox's /run is not its own tmpfs")
            return
        if not ended and not message:
            raise SandboxError(f"the sandbox did not get ready within {timeout}s\n{self.log()}")
        self._proc.wait(timeout=10)
        log = self.log()
        if not message and log.startswith("unshare:"):
            raise SandboxUnavailable(log.strip())
        error = message.get("error", f"the helper exited with status {self._proc.returncode}")
        if message.get("unavailable"):
            raise SandboxUnavailable(f"{error}\n{log}".strip())
        raise SandboxError(f"{error}\n{log}".strip())

    @staticmethod
    def _read_line(pipe, timeout: float) -> tuple[bytes, bool]:
        """One line from pipe within timeout, and whether the pipe ended (the writer exited)."""
        data = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(pipe, selectors.EVENT_READ)
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return data.strip(), False
                chunk = os.read(pipe.fileno(), 4096)
                if not chunk:
                    return data.strip(), True
                data += chunk
        return data.strip(), False

    # -- running things ------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = 60,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv on the sandbox host (its network and mount namespaces), output captured as text.

        The environment is inherited (plus `env`); the working directory is `cwd`, by default
        the caller's. With check, a non-zero exit raises SandboxCommandError. A command that
        leaves a process in the background must redirect that process's output, or this waits
        for it (as `subprocess.run` does).
        """
        if self.closed:
            raise SandboxError("the sandbox is closed")
        argv = [os.fspath(arg) for arg in argv]
        directory = os.fspath(cwd) if cwd is not None else os.getcwd()
        result = subprocess.run(
            ["nsenter", f"--target={self.pid}", "--net", "--mount", f"--wdns={directory}", "--", *argv],
            input=input, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **env} if env else None,
        )
        result.args = argv
        if check and result.returncode != 0:
            raise SandboxCommandError(result.args, result.returncode, result.stdout, result.stderr)
        return result

    def call(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> int:
        """Run argv on the sandbox host with this process's stdin, stdout and stderr; return its exit status.

        A terminal stays a terminal, so this can run an interactive shell. While it runs, this
        process ignores SIGINT, as a shell does while its foreground job runs: a ^C is the
        command's to handle.
        """
        if self.closed:
            raise SandboxError("the sandbox is closed")
        return call_in(self.pid, argv, env=env, cwd=cwd)

    def sh(self, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a bash script on the sandbox host (same keywords as run)."""
        return self.run(["bash", "-c", script], **kwargs)

    def in_ns(self, ns: str, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run argv in the sandbox's network namespace ns via `ip netns exec` (keywords as run)."""
        return self.run(["ip", "netns", "exec", ns, *argv], **kwargs)

    def log(self) -> str:
        """What the helper and the world servers wrote to stderr so far (requests are logged)."""
        if self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    # -- snapshot ------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """A normalized picture of the sandbox host, comparable with ==.

        Keys (each a list of strings): netns, links, addresses (IPv4 and IPv6), routes (IPv4),
        routes6, iptables, ip6tables, forward_policy (IPv4's), nft, sysctl, files, processes.
        Lists are sorted, except iptables, ip6tables and nft, which are in a canonical order that
        keeps the order of rules inside a chain. Left out on purpose: ifindexes, MAC addresses,
        counters, operstate/carrier (they change on their own), IPv6 link-local addresses and
        the routes to them (made from the MAC address).
        """
        if self.closed:
            raise SandboxError("the sandbox is closed")
        assert self._members is not None
        return take_snapshot(self.run, self._members, {self.pid, *self.world_pids.values()})

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process in the sandbox other than the helper and the world servers."""
        assert self._members is not None
        self._members.refresh()
        exclude = {self.pid, *self.world_pids.values()}
        return {pid: _cmdline(pid) or "" for pid in self._members.pids(exclude)}

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process of the sandbox, then the helper, and wait for them. Idempotent."""
        if self.closed:
            return
        self.closed = True
        errors = []
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # the sandbox itself goes anyway
                errors.append(exc)
        self._closers = []
        proc = self._proc
        members = self._members
        if members is None and proc is not None and proc.poll() is None:
            try:  # closing a sandbox that failed to start: its world servers may be up already
                members = _Membership(self.pid, self._run_source)
            except SandboxError:
                pass
        try:
            if members is not None:  # even if the helper died: its namespaces may live on
                members.refresh()
                members.kill_all(exclude={self.pid})
        finally:
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None:
                        pipe.close()
            if members is not None:
                members.close()  # now the kernel can free the namespaces
            self._log.close()
        if errors:
            raise errors[0]

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Sandbox pid={self.pid}{' closed' if self.closed else ''}>"


def take_snapshot(
    run: Callable[..., subprocess.CompletedProcess[str]], members: _Membership, exclude: set[int],
) -> Snapshot:
    """A normalized picture of one host (see Sandbox.snapshot): `run(argv, cwd=...)` runs a command
    there, `members` recognises its processes and reaches its files, `exclude` are the processes
    that make it (the helper, the world servers, a simulated host's holder)."""
    raw = _snapshot_sections(run)
    iptables = _normalize_iptables(raw["iptables"])
    return Snapshot({
        "netns": sorted(ns["name"] for ns in _json_list(raw["netns"])),
        "links": sorted(_link(link) for link in _json_list(raw["links"])),
        "addresses": sorted(
            _address(link["ifname"], info)
            for link in _json_list(raw["addresses"])
            for info in link.get("addr_info", [])
            if not (info.get("family") == "inet6" and info.get("scope") == "link")
        ),
        "routes": sorted(_route(route) for route in _json_list(raw["routes"])),
        "routes6": sorted(
            _route(route) for route in _json_list(raw["routes6"]) if not _link_local(route.get("dst", ""))
        ),
        "iptables": iptables,
        "ip6tables": _normalize_iptables(raw["ip6tables"]),
        "forward_policy": [_forward_policy(iptables)],
        "nft": _normalize_nft(raw["nft"]),
        "sysctl": sorted(line.strip() for line in raw["sysctl"].splitlines() if line.strip()),
        "files": _files(members),
        "processes": _processes(members, exclude),
    })


def _snapshot_sections(run: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, str]:
    """The raw output of each of the snapshot's commands, all run in one bash."""
    sections = {
        "netns": "ip -j netns list",
        "links": "ip -j -d link show",
        "addresses": "ip -j addr show",
        "routes": "ip -4 -j route show table all",
        "routes6": "ip -6 -j route show table all",
        "iptables": "iptables-save",
        "ip6tables": "ip6tables-save",
        "nft": "if command -v nft >/dev/null; then nft list ruleset; else echo '# nft is not installed'; fi",
        "sysctl": (  # bash builtins only: no process per key
            f"for key in {' '.join(SNAPSHOT_SYSCTLS)}; do f=/proc/sys/${{key//.//}}; "
            'if [ -r "$f" ]; then read -r value < "$f"; echo "$key = $value"; '
            'else echo "$key = (absent)"; fi; done'
        ),
    }
    script = "".join(
        f"echo '{_SECTION}begin {name}'; {{ {command}; }} 2>&1; echo \"{_SECTION}exit $?\"\n"
        for name, command in sections.items()
    )
    out = run(["bash", "-c", script], cwd="/").stdout
    lines: dict[str, list[str]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith(_SECTION):
            word, _, arg = line[len(_SECTION):].partition(" ")
            if word == "begin":
                current = arg
                lines[current] = []
            elif arg != "0":
                output = "\n".join(lines[current])
                raise SandboxError(f"snapshot: {sections[current]!r} exited with status {arg}:\n{output}")
        else:
            lines[current].append(line)
    return {name: "\n".join(body) for name, body in lines.items()}


def _files(members: _Membership) -> list[str]:
    import hashlib

    root = members.path("")
    entries = []
    for top in SNAPSHOT_DIRS:
        if not os.path.isdir(root + top):
            continue
        for directory, dirnames, filenames in os.walk(root + top):
            path = directory[len(root):]
            entries.append(f"{path}/ (dir {os.lstat(directory).st_mode & 0o7777:04o})")
            for name in dirnames + filenames:
                full = os.path.join(directory, name)
                shown = full[len(root):]
                st = os.lstat(full)
                if os.path.islink(full):
                    entries.append(f"{shown} -> {os.readlink(full)}")
                elif os.path.isfile(full):
                    with open(full, "rb") as f:
                        data = f.read()
                    try:
                        content = repr(data.decode()) if len(data) <= 65536 else None
                    except UnicodeDecodeError:
                        content = None
                    if content is None:
                        content = f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"
                    entries.append(f"{shown} (file {st.st_mode & 0o7777:04o}): {content}")
                elif name not in dirnames:
                    entries.append(f"{shown} (special {st.st_mode:o})")
    return sorted(entries)


def _processes(members: _Membership, exclude: set[int]) -> list[str]:
    members.refresh()
    found = []
    for pid in members.pids(exclude):
        ns, cmdline = members.netns_of(pid), _cmdline(pid)
        if ns is not None and cmdline is not None:
            found.append(f"[netns {ns}] {cmdline}")
    return sorted(found)


def call_in(pid: int, argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None) -> int:
    """Run argv in the network and mount namespaces of process pid with this process's stdin, stdout
    and stderr, ignoring SIGINT meanwhile (see Sandbox.call); its exit status."""
    directory = os.fspath(cwd) if cwd is not None else os.getcwd()
    child = subprocess.Popen(
        ["nsenter", f"--target={pid}", "--net", "--mount", f"--wdns={directory}", "--", *(os.fspath(arg) for arg in argv)],
        env={**os.environ, **env} if env else None,
    )
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        return child.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _helper_command(config: dict) -> list[str]:
    # -S skips site-packages and their .pth files (the helper needs the standard library only):
    # that takes Python's start from ~60 ms to ~15 ms here. Imported rather than run as a script,
    # so that a cached compiled module can be used where bytecode is written.
    # The folder that holds the nsgen package goes first on the path (site-packages is skipped).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {root!r}); from nsgen.sandbox import host; "
            "sys.exit(host._helper_main(sys.argv[1]))")
    return [sys.executable, "-S", "-c", code, json.dumps(config)]


def _json_list(text: str) -> list[dict]:
    text = text.strip()
    return json.loads(text) if text else []


def _link(link: dict) -> str:
    info = link.get("linkinfo", {})
    state = "UP" if "UP" in link.get("flags", []) else "DOWN"  # administrative: operstate lags behind
    fields = [
        link["ifname"],
        f"kind={info.get('info_kind', '-')}",
        f"state={state}",
        f"mtu={link.get('mtu')}",
        f"master={link.get('master', '-')}",
    ]
    if "info_slave_kind" in info:
        fields.append(f"port={info['info_slave_kind']}")
    if isinstance(link.get("link"), str):  # the peer's name when it lives in the same namespace
        fields.append(f"peer={link['link']}")
    return " ".join(fields)


def _address(ifname: str, info: dict) -> str:
    text = f"{ifname} {info.get('family')} {info.get('local')}/{info.get('prefixlen')}"
    if info.get("address") not in (None, info.get("local")):
        text += f" peer {info['address']}"
    if info.get("broadcast"):
        text += f" brd {info['broadcast']}"
    text += f" scope {info.get('scope')}"
    if info.get("label") not in (None, ifname):
        text += f" label {info['label']}"
    return text


_ROUTE_FIELDS = ("type", "dst", "gateway", "via", "dev", "table", "protocol", "scope", "prefsrc", "metric", "nexthops")


def _route(route: dict) -> str:
    route = {"type": "unicast", "table": "main", **route}
    return " ".join(
        f"{field}={json.dumps(route[field], sort_keys=True) if isinstance(route[field], (dict, list)) else route[field]}"
        for field in _ROUTE_FIELDS
        if field in route
    )


def _link_local(dst: str) -> bool:
    """Whether a route's destination ("fe80::/64", "fe80::1", "default", ...) is IPv6 link-local."""
    import ipaddress

    try:
        return ipaddress.ip_network(dst, strict=False).network_address.is_link_local
    except ValueError:
        return False


def _normalize_iptables(text: str) -> list[str]:
    """iptables-save without comments, counters and dates; chains sorted, rules kept in order per chain."""
    tables: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    table = "?"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
            tables.setdefault(table, ([], {}))
            continue
        chains, rules = tables.setdefault(table, ([], {}))
        if line.startswith(":"):
            name, policy = [*line[1:].split(), "-"][:2]
            chains.append(f"{table} :{name} {policy}")
        else:
            words = line.split()
            chain = words[1] if len(words) > 1 and words[0] == "-A" else ""
            rules.setdefault(chain, []).append(f"{table} {line}")
    result = []
    for table in sorted(tables):
        chains, rules = tables[table]
        result.extend(sorted(chains))
        for chain in sorted(rules):
            result.extend(rules[chain])
    return result


def _forward_policy(iptables: list[str]) -> str:
    for line in iptables:
        if line.startswith("filter :FORWARD "):
            return line.split()[-1]
    return "ACCEPT (no filter table)"


def _normalize_nft(text: str) -> list[str]:
    """`nft list ruleset` as one line per statement, each prefixed by its block path.

    Blocks (tables, chains, sets...) are sorted by path; the lines inside a block keep their
    order (rule order matters). Counter values and set element expiry times are blanked.
    """
    import re

    blocks: dict[tuple[str, ...], list[str]] = {}
    path: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = f"{pending} {line}" if pending else line
        if line.count("{") > line.count("}") and not line.endswith("{"):
            pending = line  # an element list wrapped over several lines
            continue
        pending = ""
        if line.endswith("{"):
            path.append(line[:-1].strip())
            blocks.setdefault(tuple(path), [])
        elif line == "}":
            if path:
                path.pop()
        else:
            line = re.sub(r"\bpackets \d+ bytes \d+", "packets * bytes *", line)
            line = re.sub(r"\bexpires \S+", "", line)
            line = re.sub(r"\bused \d+ bytes", "used * bytes", line)
            blocks.setdefault(tuple(path), []).append(" ".join(line.split()))
    result = []
    for block in sorted(blocks):
        where = " > ".join(block)
        result.append(where)
        result.extend(f"{where}: {line}" for line in blocks[block])
    return result


# ---------------------------------------------------------------------------------------------
# The helper side: runs inside the new namespaces (see _helper_command)
# ---------------------------------------------------------------------------------------------

def _do(*argv: str) -> None:
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit status {result.returncode}): {result.stderr.strip()}")


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    # mountinfo escapes space, tab, newline and backslash as octal
    return [point.encode().decode("unicode_escape") for point in points]


def _setup_mounts(run_source: str) -> None:
    # What container runtimes mount over files in /etc (hosts, hostname, resolv.conf) would be
    # hidden by the overlay: copy files (so writes stay in the sandbox), re-bind directories
    # read-only. Our own resolv.conf replaces the host's.
    under_etc = sorted({p for p in _mount_points() if p.startswith("/etc/")})
    tops = [p for p in under_etc if not any(p.startswith(other + "/") for other in under_etc)]
    skip = ("/etc/resolv.conf", "/etc/netns", "/etc/sysctl.d")
    tops = [p for p in tops if not any(p == s or p.startswith(s + "/") for s in skip)]
    copied = {}
    rebound = []
    for point in tops:
        if os.path.isdir(point):
            rebound.append(point)
        elif os.path.isfile(point):
            with open(point, "rb") as f:
                copied[point] = f.read()

    _do("mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", run_source, "/run")
    stage = "/run/.sandbox-etc"
    os.mkdir(stage, 0o700)
    _do("mount", "-t", "tmpfs", "-o", "mode=0700", "sandbox-etc-upper", stage)
    os.mkdir(f"{stage}/upper")
    os.mkdir(f"{stage}/work")
    for i, point in enumerate(rebound):
        os.mkdir(f"{stage}/bind{i}")
        _do("mount", "--rbind", point, f"{stage}/bind{i}")
    _do("mount", "-t", "overlay", "-o",
        f"lowerdir=/etc,upperdir={stage}/upper,workdir={stage}/work", "sandbox-etc", "/etc")
    for i, point in enumerate(rebound):
        os.makedirs(point, exist_ok=True)
        _do("mount", "--move", f"{stage}/bind{i}", point)
        _do("mount", "-o", "remount,bind,ro", point)
    for point, data in copied.items():
        with open(point, "wb") as f:
            f.write(data)
    # The overlay keeps its own reference to the upper layer: the staging mount can go.
    _do("umount", "--lazy", stage)
    os.rmdir(stage)

    if os.path.lexists("/etc/resolv.conf"):
        os.unlink("/etc/resolv.conf")  # may be a symlink into the real /run
    with open("/etc/resolv.conf", "w") as f:
        f.write(f"# the sandbox world's DNS server\nnameserver {DNS_ADDR}\noptions timeout:1 attempts:2\n")
    for point in ("/etc/netns", "/etc/sysctl.d"):
        os.makedirs(point, mode=0o755, exist_ok=True)  # in the overlay: the disk is not touched
        _do("mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", f"sandbox-{os.path.basename(point)}", point)


def _ip_batch(commands: list[str], netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    result = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}\ncommands: {commands}")


def _setup_world_addresses() -> None:
    # First, so that the servers can bind while the rest is being set up.
    _do("ip", "netns", "add", WORLD_NS)  # not in a batch: it would leave the batch in the new namespace
    # nodad: an IPv6 address is never tentative, so the servers can bind it at once. `replace`,
    # not `add`, so that the batch can run again.
    batch = [
        "link set lo up",
        f"addr replace {WEB_ADDR}/32 dev lo",
        f"addr replace {DNS_ADDR}/32 dev lo",
        f"addr replace {WEB_ADDR6}/128 dev lo nodad",
        f"addr replace {DNS_ADDR6}/128 dev lo nodad",
    ]
    try:
        _ip_batch(batch, WORLD_NS)
    except RuntimeError:
        # The world may have started with IPv6 off (lo, like host0 to come, took its
        # conf.default value): on, and again. Only then, as entering the world costs ~10 ms.
        _wait_child(_in_world(_enable_ipv6))
        _ip_batch(batch, WORLD_NS)


def _setup_world_link() -> None:
    _enable_ipv6()  # before world0 is made: it takes conf.default's value
    _ip_batch([
        "link set lo up",
        f"link add {WORLD_LINK} index {WORLD_LINK_INDEX} type veth peer name {WORLD_PEER} netns {WORLD_NS}",
        f"addr add {HOST_ADDR}/{WORLD_PREFIX} dev {WORLD_LINK}",
        f"addr add {HOST_ADDR6}/{WORLD_PREFIX6} dev {WORLD_LINK} nodad",
        # a link-local address of its own, never tentative: a generated one would spend its first
        # second in duplicate address detection, and the host's neighbour solicitations for
        # packets it forwards would go unanswered until then (one second lost, or two)
        f"link set {WORLD_LINK} addrgenmode none",
        f"addr add fe80::1/64 dev {WORLD_LINK} nodad",
        f"link set {WORLD_LINK} up",
        f"route add default via {WORLD_ADDR} dev {WORLD_LINK}",
        f"route add default via {WORLD_ADDR6} dev {WORLD_LINK}",
    ])
    _ip_batch([
        f"addr add {WORLD_ADDR}/{WORLD_PREFIX} dev {WORLD_PEER}",
        f"addr add {WORLD_ADDR6}/{WORLD_PREFIX6} dev {WORLD_PEER} nodad",
        f"link set {WORLD_PEER} addrgenmode none",
        f"addr add fe80::2/64 dev {WORLD_PEER} nodad",
        f"link set {WORLD_PEER} up",
    ], WORLD_NS)


def _start_iptables(tables: list[str]) -> dict[str, subprocess.Popen[str]]:
    """Start making the iptables and ip6tables tables (see _wait_iptables): nothing else of the
    setup depends on them, so they run while it goes on, and add nothing to the start's time."""
    # Like a host where iptables is in use: the usual tables exist, empty, policies ACCEPT, for
    # IPv4 and IPv6 alike. (iptables-nft creates a table the first time a rule goes in, and never
    # removes it; with the tables already there, "after teardown == before" compares rules, not that.)
    if not tables:
        return {}
    text = "".join(
        f"*{table}\n" + "".join(f":{chain} ACCEPT [0:0]\n" for chain in BUILTIN_CHAINS[table]) + "COMMIT\n"
        for table in tables
    )
    procs = {}
    for restore in ("iptables-restore", "ip6tables-restore"):  # iptables-nft retries a raced transaction
        procs[restore] = proc = subprocess.Popen(
            [restore], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(text)  # a few hundred bytes: the pipe takes them without waiting
        proc.stdin.close()
    return procs


def _wait_iptables(procs: dict[str, subprocess.Popen[str]]) -> None:
    failed = []
    for restore, proc in procs.items():
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        proc.stderr.close()
        if proc.wait() != 0:
            failed.append(f"{restore} failed (exit status {proc.returncode}): {stderr.strip()}")
    if failed:
        raise RuntimeError("; ".join(failed))


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def _pin_sysctls(pinned: Mapping[str, str] | None = None) -> None:
    """Write pinned (by default PINNED_SYSCTLS) in this process's network namespace, and each
    conf.default value to every interface there is; a key the kernel does not have is skipped."""
    pinned = PINNED_SYSCTLS if pinned is None else pinned
    writes = [(_sysctl_path(key), value) for key, value in pinned.items()]
    for key, value in pinned.items():
        parts = key.split(".")  # net.FAMILY.conf.default.NAME
        if parts[2:4] != ["conf", "default"]:
            continue
        family, name = parts[1], parts[4]
        try:
            interfaces = sorted(set(os.listdir(f"/proc/sys/net/{family}/conf")) - {"all", "default"})
        except FileNotFoundError:
            continue
        # built as a path: an interface name may hold a dot, which the dotted notation cannot show
        writes += [(f"/proc/sys/net/{family}/conf/{ifname}/{name}", value) for ifname in interfaces]
    for path, value in writes:
        try:
            with open(path) as f:
                if f.read().strip() == value:
                    continue  # already so: nothing to write (a read-only /proc/sys is fine then)
            with open(path, "w") as f:
                f.write(value + "\n")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RuntimeError(f"cannot set {path} to {value}: {exc}") from None


def _enable_ipv6() -> None:
    """The disable_ipv6 part of PINNED_SYSCTLS, at once: adding an IPv6 address needs it, and an
    interface made afterwards takes conf.default's value."""
    _pin_sysctls({key: value for key, value in PINNED_SYSCTLS.items() if key.endswith(".disable_ipv6")})


def _in_world(function: Callable[[], None]) -> int:
    """function() in the world's network namespace, in a forked child (its pid is returned; see
    _wait_child). A fork, not a new Python: that would add ~40 ms to every sandbox's start."""
    fd = os.open(f"/run/netns/{WORLD_NS}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:  # the child never returns: the helper's own error handling is not its to run
            status = 1
            try:
                _setns_net(fd)
                function()
                status = 0
            except BaseException as exc:
                os.write(2, f"sandbox helper: in the world: {exc}\n".encode())
            finally:
                os._exit(status)
    finally:
        os.close(fd)
    return pid


def _setns_net(fd: int) -> None:
    """Move this (single-threaded) process into the network namespace fd refers to."""
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, os.CLONE_NEWNET)  # type: ignore[attr-defined]  # Python 3.12+
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _wait_child(pid: int) -> None:
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != 0:
        raise RuntimeError(f"setting the world's sysctls failed (exit status {status}; the helper's log says why)")


def _start_world() -> tuple[dict[str, subprocess.Popen[bytes]], dict[int, str]]:
    """Start the world's servers; they signal readiness on the returned pipes (fd -> name)."""
    servers = {
        "http": ["http_server.py", "--address", WEB_ADDR, "--address", WEB_ADDR6, "--port", "80"],
        "dns": ["dns_server.py", "--address", DNS_ADDR, "--address", DNS_ADDR6, "--port", "53"],
    }
    procs, readers = {}, {}
    for name, (script, *args) in servers.items():
        read_end, write_end = os.pipe()
        procs[name] = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{WORLD_NS}", "--",
             sys.executable, "-S", os.path.join(WORLD_DIR, script), *args, "--ready-fd", str(write_end)],
            pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        os.close(write_end)
        readers[read_end] = name
    return procs, readers


def _wait_world(procs: dict[str, subprocess.Popen[bytes]], readers: dict[int, str], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in readers:
            sel.register(fd, selectors.EVENT_READ)
        waiting = dict(readers)
        while waiting:
            events = sel.select(max(0.0, deadline - time.monotonic()))
            if not events:
                raise RuntimeError(f"world servers not ready after {timeout}s: {sorted(waiting.values())}")
            for key, _ in events:
                name = waiting.pop(key.fd)
                sel.unregister(key.fd)
                ready = os.read(key.fd, 64)
                os.close(key.fd)
                if not ready.startswith(b"ready"):
                    raise RuntimeError(f"the world's {name} server exited with status {procs[name].wait()}")
    return {name: proc.pid for name, proc in procs.items()}


def _helper_main(config_json: str) -> int:
    config = json.loads(config_json)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SIGTERM cleans up too
    stage = "mounts"

    def report(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        _setup_mounts(config["run_source"])
        stage = "network"
        iptables = _start_iptables(config["iptables_tables"])
        _setup_world_addresses()
        world = _start_world()
        _setup_world_link()
        stage = "sysctl"  # once the network is set up: its interfaces get the pinned values too
        world_pin = _in_world(_pin_sysctls)  # while the host's are pinned and its iptables set up
        _pin_sysctls()
        stage = "iptables"
        _wait_iptables(iptables)
        stage = "world servers"
        _wait_child(world_pin)
        world_pids = _wait_world(*world, config["timeout"])
    except BaseException as exc:  # SIGTERM too: clean up what was started
        # a read-only /proc/sys, like a refused mount, is this machine's limit, not a bug
        unavailable = stage in ("mounts", "sysctl")
        report({"error": f"sandbox setup ({stage}): {exc or type(exc).__name__}", "unavailable": unavailable})
        _kill_own_sandbox(config["run_source"])
        return 1
    report({"ready": True, "world_pids": world_pids})
    try:
        # Wait until the owning process closes our stdin or dies. A normal close() kills us
        # first; this path cleans up after an owner that was killed outright.
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        _kill_own_sandbox(config["run_source"])
    return 0


def _kill_own_sandbox(run_source: str) -> None:
    try:
        _Membership(os.getpid(), run_source, outside=False).kill_all(exclude={os.getpid()})
    except BaseException as exc:
        print(f"sandbox helper: cleanup failed: {exc}", file=sys.stderr)

