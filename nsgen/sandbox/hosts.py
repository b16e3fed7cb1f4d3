"""Simulated hosts inside a sandbox: several machines on one underlay, for networks that span hosts.

`simulated_hosts(box, n)` gives a started Sandbox n hosts h1..hn. Each is a network namespace and
a mount namespace of its own, made inside the sandbox by a holder process (this module, started
by `unshare --net --mount --propagation private -- python -S -c ...` in the sandbox's namespaces),
which builds the host from the inside and then only waits; it is the process whose namespaces
*are* the host. What a simulated host looks like:

    /run            tmpfs of its own (so /run/netns and nsgen's /run/nsgen are the host's own)
    /etc/netns      tmpfs      /etc/sysctl.d   tmpfs (empty)
    /etc/resolv.conf           nameserver 203.0.113.53 (a copy of its own, bound over the sandbox's)
    lo up; eth0 192.0.2.(10+i)/24 + 2001:db8:2::(10+i)/64 (+ fe80::2:(10+i)), default via
        192.0.2.1, IPv6 default via 2001:db8:2::1
    iptables and ip6tables: the sandbox's tables, empty, policies ACCEPT
    sysctls: PINNED_SYSCTLS, as on the sandbox host (and conf.default's on lo and eth0)

The underlay, on the sandbox host: a bridge `underlay` 192.0.2.1/24 + 2001:db8:2::1/64, each
host's eth0 a veth whose other end (`ul-hI`) is a port of it. The sandbox host forwards between
the underlay and the world (ip_forward and IPv6 forwarding on, nothing else of it changes) and the
world routes 192.0.2.0/24 and 2001:db8:2::/64 back to it: no NAT, so the world's web server sees
a host's own underlay address (when that host masquerades, say).

The hosts die with the sandbox (Sandbox.close closes them first), or with close(). If the owning
process dies outright, a holder sees its stdin close and kills its host's processes itself.

Standard library only, like host.py: the holder runs with `python -S`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from nsgen.sandbox.host import (
    DNS_ADDR,
    HOST_ADDR,
    HOST_ADDR6,
    WORLD_NS,
    Sandbox,
    SandboxCommandError,
    SandboxError,
    Snapshot,
    _do,
    _enable_ipv6,
    _ip_batch,
    _kill_own_sandbox,
    _Membership,
    _pin_sysctls,
    _start_iptables,
    _wait_iptables,
    call_in,
    take_snapshot,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

UNDERLAY = "underlay"  # the bridge on the sandbox host
UNDERLAY_ADDR = "192.0.2.1"
UNDERLAY_ADDR6 = "2001:db8:2::1"
UNDERLAY_NET = "192.0.2.0/24"
UNDERLAY_NET6 = "2001:db8:2::/64"
HOST_LINK = "eth0"  # a simulated host's end of its veth
MAX_HOSTS = 9
# The sandbox's end of host i's veth gets ifindex PORT_INDEX + i: never 2, eth0's in its new
# namespace (a veth whose ifindex equals its peer's reports its carrier late: see host.py).
PORT_INDEX = 200


def host_address(i: int) -> str:
    return f"192.0.2.{10 + i}"


def host_address6(i: int) -> str:
    return f"2001:db8:2::{10 + i}"


def _port(i: int) -> str:
    return f"ul-h{i}"


class SimulatedHost:
    """One simulated host of a sandbox (see the module docstring); made by simulated_hosts()."""

    def __init__(self, box: Sandbox, index: int, proc: subprocess.Popen[bytes], run_source: str) -> None:
        self.box = box
        self.index = index
        self.name = f"h{index}"
        self.address = host_address(index)
        self.address6 = host_address6(index)
        self.pid = proc.pid  # the holder (nsenter and unshare exec it: same process)
        self.closed = False
        self._proc = proc
        self._run_source = run_source
        self._members: _Membership | None = None

    def _attach(self) -> None:
        self._members = _Membership(self.pid, self._run_source)
        if self._members.run is None:
            raise SandboxError(f"simulated host {self.name}: its /run is not its own tmpfs")

    # -- running things ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed or self.box.closed:
            raise SandboxError(f"simulated host {self.name} is closed")

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
        """Run argv on this host (its network and mount namespaces); as Sandbox.run."""
        self._check_open()
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

    def call(self, argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None,
             cwd: str | os.PathLike[str] | None = None) -> int:
        """Run argv on this host with this process's stdin, stdout and stderr; as Sandbox.call."""
        self._check_open()
        return call_in(self.pid, argv, env=env, cwd=cwd)

    def sh(self, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a bash script on this host (same keywords as run)."""
        return self.run(["bash", "-c", script], **kwargs)

    def in_ns(self, ns: str, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run argv in this host's network namespace ns via `ip netns exec` (keywords as run)."""
        return self.run(["ip", "netns", "exec", ns, *argv], **kwargs)

    def snapshot(self) -> Snapshot:
        """A normalized picture of this host, with Sandbox.snapshot()'s keys and normalisation."""
        self._check_open()
        assert self._members is not None
        return take_snapshot(self.run, self._members, {self.pid})

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process on this host other than its holder."""
        from nsgen.sandbox.host import _cmdline

        self._check_open()
        assert self._members is not None
        self._members.refresh()
        return {pid: _cmdline(pid) or "" for pid in self._members.pids({self.pid})}

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process of this host, then its holder, and wait for them. Idempotent."""
        if self.closed:
            return
        self.closed = True
        members, proc = self._members, self._proc
        try:
            if members is not None:
                members.refresh()
                members.kill_all(exclude={self.pid})
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
            if members is not None:
                members.close()

    def __repr__(self) -> str:
        return f"<SimulatedHost {self.name} {self.address} pid={self.pid}{' closed' if self.closed else ''}>"


class SimulatedHosts(list):
    """The hosts simulated_hosts() made (a list of SimulatedHost), with a close() for them all."""

    def close(self) -> None:
        errors = []
        for host in reversed(self):
            try:
                host.close()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> SimulatedHosts:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def simulated_hosts(box: Sandbox, count: int, *, timeout: float = 10.0) -> SimulatedHosts:
    """Make count hosts h1..hcount on an underlay in the started sandbox box (once per sandbox)."""
    if not 1 <= count <= MAX_HOSTS:
        raise ValueError(f"simulated hosts: count {count} is out of range (1 to {MAX_HOSTS})")
    if box.closed:
        raise SandboxError("the sandbox is closed")
    if box.run(["ip", "link", "show", UNDERLAY], check=False).returncode == 0:
        raise SandboxError(f"the sandbox already has simulated hosts (its bridge {UNDERLAY} exists)")
    hosts = SimulatedHosts()
    box._closers.append(hosts.close)
    try:
        _setup_underlay(box)
        for i in range(1, count + 1):
            hosts.append(_start_holder(box, i))
        for host in hosts:  # they all start at once; now wait for each
            _expect(host, "netns", timeout)
            host._attach()
        box.run(["ip", "-batch", "-"], input="".join(
            f"link add {_port(h.index)} index {PORT_INDEX + h.index} type veth peer name {HOST_LINK} netns {h.pid}\n"
            f"link set {_port(h.index)} addrgenmode none\n"
            f"link set {_port(h.index)} master {UNDERLAY}\n"
            f"link set {_port(h.index)} up\n"
            for h in hosts
        ))
        for host in hosts:
            stdin = host._proc.stdin
            assert stdin is not None
            stdin.write(b"link\n")
            stdin.flush()
        for host in hosts:
            _expect(host, "ready", timeout)
    except BaseException:
        hosts.close()
        raise
    return hosts


def _setup_underlay(box: Sandbox) -> None:
    box.run(["ip", "-batch", "-"], input="".join(f"{line}\n" for line in (
        f"link add {UNDERLAY} type bridge",
        # a link-local address of its own, never tentative (see world0 in host.py)
        f"link set {UNDERLAY} addrgenmode none",
        f"addr add fe80::2:1/64 dev {UNDERLAY} nodad",
        f"addr add {UNDERLAY_ADDR}/24 dev {UNDERLAY}",
        f"addr add {UNDERLAY_ADDR6}/64 dev {UNDERLAY} nodad",
        f"link set {UNDERLAY} up",
    )))
    box.run(["ip", "-n", WORLD_NS, "-batch", "-"], input=(
        f"route add {UNDERLAY_NET} via {HOST_ADDR}\n"
        f"route add {UNDERLAY_NET6} via {HOST_ADDR6}\n"
    ))
    # The sandbox host routes between the underlay and the world.
    box.sh("echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")


def _start_holder(box: Sandbox, index: int) -> SimulatedHost:
    run_source = f"simhost-run-h{index}-{os.urandom(6).hex()}"
    config = {"index": index, "run_source": run_source, "iptables_tables": list(box.iptables_tables)}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {root!r}); from nsgen.sandbox import hosts; "
            "sys.exit(hosts._holder_main(sys.argv[1]))")
    proc = subprocess.Popen(
        ["nsenter", f"--target={box.pid}", "--net", "--mount", "--wdns=/", "--",
         "unshare", "--net", "--mount", "--propagation", "private", "--",
         sys.executable, "-S", "-c", code, json.dumps(config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=box._log,
        start_new_session=True,  # a ^C in the terminal is the owner's to handle
    )
    return SimulatedHost(box, index, proc, run_source)


def _expect(host: SimulatedHost, word: str, timeout: float) -> None:
    """Wait for the holder's next message; it must say word."""
    assert host._proc.stdout is not None
    line, _ended = Sandbox._read_line(host._proc.stdout, timeout)
    message: dict = {}
    if line:
        try:
            message = json.loads(line)
        except ValueError:
            message = {"error": f"unexpected output from the holder: {line!r}"}
    if message.get("stage") == word:
        return
    error = message.get("error") or f"no answer within {timeout}s (waiting for {word!r})"
    raise SandboxError(f"simulated host {host.name}: {error}\n{host.box.log()}".strip())


# ---------------------------------------------------------------------------------------------
# The holder side: runs inside the host's new namespaces (see _start_holder)
# ---------------------------------------------------------------------------------------------

def _holder_mounts(run_source: str) -> None:
    # The sandbox's own mounts there go first (the namespace is private: the sandbox keeps them),
    # so that the host holds nothing of the sandbox's, such as the world's namespace under /run/netns.
    for point in ("/run", "/etc/netns", "/etc/sysctl.d"):
        _do("umount", "--recursive", "--lazy", point)
    _do("mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", run_source, "/run")
    for point in ("/etc/netns", "/etc/sysctl.d"):  # the mount points are directories of the overlay
        _do("mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", f"simhost-{os.path.basename(point)}", point)
    # A resolv.conf of its own: the sandbox's /etc is one overlay, shared by every host.
    source = "/run/.simhost-resolv.conf"
    with open(source, "w") as f:
        f.write(f"# the sandbox world's DNS server\nnameserver {DNS_ADDR}\noptions timeout:1 attempts:2\n")
    _do("mount", "--bind", source, "/etc/resolv.conf")
    os.unlink(source)  # the bind mount keeps the file


def _holder_link(index: int) -> None:
    _ip_batch([
        f"link set {HOST_LINK} addrgenmode none",
        f"addr add fe80::2:{10 + index}/64 dev {HOST_LINK} nodad",
        f"addr add {host_address(index)}/24 dev {HOST_LINK}",
        f"addr add {host_address6(index)}/64 dev {HOST_LINK} nodad",
        f"link set {HOST_LINK} up",
        f"route add default via {UNDERLAY_ADDR} dev {HOST_LINK}",
        f"route add default via {UNDERLAY_ADDR6} dev {HOST_LINK}",
    ])


def _holder_main(config_json: str) -> int:
    config = json.loads(config_json)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stage = "mounts"

    def report(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        _holder_mounts(config["run_source"])
        stage = "network"
        iptables = _start_iptables(config["iptables_tables"])
        _enable_ipv6()  # before eth0 is made: it takes conf.default's value
        _do("ip", "link", "set", "lo", "up")
        report({"stage": "netns"})
        stage = "link"
        if sys.stdin.buffer.readline().strip() != b"link":
            raise RuntimeError("the owner went away")
        _holder_link(config["index"])
        stage = "sysctl"  # once eth0 exists: it gets the pinned values too
        _pin_sysctls()
        stage = "iptables"
        _wait_iptables(iptables)
    except BaseException as exc:
        report({"error": f"simulated host setup ({stage}): {exc or type(exc).__name__}"})
        _kill_own_sandbox(config["run_source"])
        return 1
    report({"stage": "ready"})
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        _kill_own_sandbox(config["run_source"])
    return 0


