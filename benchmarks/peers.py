"""Peers benchmark: nsgen against netavark, the CNI reference plugins, Mininet and the commands by
hand, the same workload built and torn down by each, inside a throwaway sandbox.

    sudo python3 benchmarks/peers.py -n 100 -r 3                     # one size, three rounds
    sudo python3 benchmarks/peers.py -n 10 -n 100 -n 500 -r 3 --plot benchmarks/peers.svg --markdown

The workload: N containers (network namespaces) on one bridge, the subnet 10.100.0.0/16 with the
bridge's address 10.100.0.1 as every container's default route, the subnet masqueraded on its way
out, and one published TCP port each (host port 10000 + i to the container's port 8000). The ways:

- `nsgen run` and `nsgen run --teardown` (the reference: every ratio is to it);
- `nsgen render | bash` and `nsgen render --batch | bash` (and `--teardown` likewise);
- by hand: benchmarks/scale.py's tutorial commands (`ip netns exec`, one `iptables` call a rule);
- the CNI reference plugins (/usr/lib/cni, Debian's containernetworking-plugins), driven as the
  CNI specification says a runtime drives them: for each container `ip netns add`, then ADD of
  loopback (a network of its own, CNI_IFNAME=lo) and of the chain bridge (host-local IPAM in a
  temporary data directory, isGateway, ipMasq) -> portmap -> firewall (iptables backend), each
  plugin given the previous one's result as `prevResult`, the final result kept as a runtime
  caches it; DEL in reverse order (firewall, portmap, bridge, then loopback) with that result,
  then `ip netns delete`. One bash script runs every call, as a runtime would, one after another;
- netavark (Debian's netavark, /usr/lib/podman/netavark): for each container `ip netns add`,
  `netavark --config DIR setup /run/netns/NAME` with the network options Podman passes on stdin
  (container_id, container_name, networks with the static address Podman's own IPAM chose,
  network_info, port_mappings), then `teardown` and `ip netns delete`;
- Mininet with a Linux bridge (`LinuxBridge` switch, no controller, hosts as network namespaces,
  a NAT node as the gateway; published ports as DNAT rules, Mininet has none of its own), from
  one Python process that builds the network and later stops it (benchmarks/mininet_driver.py).

Each setup is checked before its time counts: the host pings every container, a TCP connection
from the sandbox's world namespace (198.51.100.2) to the host's address at the first and the last
published port reaches a server in that container, and a request from the first container to the
world's web server (203.0.113.10) arrives from the host's address (masquerade). After each
teardown, whatever differs from the sandbox as it was (sandbox snapshot: links, addresses,
routes, iptables, sysctls such as net.ipv4.ip_forward, files, processes), and whatever files
stay in the peer's own state directory, is what the way left behind; it is reported and removed
before the next way runs. A way whose setup, check or teardown fails says why and is left out of
the table, never silently; a peer not installed is reported as such.

Rounds alternate the ways (A B C D, A B C D, ...). The table gives, for setup and teardown, the
minimum and the median of the rounds' wall time, the median CPU time of the processes each way
started (user + system, from the kernel's accounting of the children: resource.getrusage
RUSAGE_CHILDREN, or os.wait4 for Mininet's process, whose hosts' shells are counted when they
end, at teardown), and each median against `nsgen run`'s.
`--plot FILE` draws median setup and teardown time against N for every way (log scales; needs
matplotlib, the `bench` extra, and says so when it is missing); `--markdown` prints the table
as Markdown too.

It reports; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import scale  # noqa: E402  (benchmarks/scale.py: the topology, the addresses and the commands by hand)

from nsgen.sandbox import HOST_ADDR, WEB_ADDR, WORLD_NS, Sandbox, SandboxCommandError, diff_snapshots  # noqa: E402

NSGEN = [sys.executable, "-m", "nsgen"]
SUBNET, GATEWAY, PREFIX = "10.100.0.0/16", "10.100.0.1", 16  # scale.topology's first bridge, scale.address's
FIRST_PORT, CONTAINER_PORT = 10000, 8000  # as scale.topology publishes them
MAX_N = scale.PER_BRIDGE  # one bridge
CNI_PATH = Path("/usr/lib/cni")
CNI_PLUGINS = ("loopback", "bridge", "host-local", "portmap", "firewall")
CNI_VERSION = "1.0.0"
NETAVARK = Path("/usr/lib/podman/netavark")
MININET_PYTHON = Path("/usr/bin/python3")  # Debian's mininet package installs for the system's Python
REFERENCE = "nsgen run"


def address(i: int) -> str:
    return scale.address(i)


# -- timing -------------------------------------------------------------------------------------


@dataclass
class Timing:
    wall: float
    cpu: float


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(sb: Sandbox, argv: list[str], env: dict[str, str] | None = None) -> Timing:
    """Run argv in the sandbox: wall time, and the CPU time of every process it started (they are
    all waited for before it returns, so the kernel has added theirs to this process's children's)."""
    cpu = children_cpu()
    started = time.perf_counter()
    sb.run(argv, timeout=7200, env=env)
    wall = time.perf_counter() - started
    return Timing(wall, children_cpu() - cpu)


# -- the ways ------------------------------------------------------------------------------------


class Way:
    """One way to build and tear down the workload. `missing()` says why it cannot run here."""

    key = ""
    label = ""
    note = ""  # what it does beyond, or short of, the workload

    def __init__(self, sb: Sandbox, folder: Path, n: int) -> None:
        self.sb, self.folder, self.n = sb, folder, n

    def missing(self) -> str | None:
        return None

    def prepare(self) -> None:
        """Write what the way reads (untimed: a runtime has it in memory)."""

    def before_up(self) -> None:
        """Untimed: what the host needs before this way can work (put back by after_down)."""

    def after_down(self) -> None:
        """Untimed: put back what before_up changed."""

    def up(self) -> Timing:
        raise NotImplementedError

    def down(self) -> Timing:
        raise NotImplementedError

    def inside(self, i: int) -> list[str]:
        """The argv prefix that runs a command in container i's network namespace."""
        raise NotImplementedError

    def own_leftovers(self) -> list[str]:
        """What stays in the way's own state outside the sandbox snapshot (files of its data directory)."""
        return []

    def forget(self) -> None:
        """Drop the way's own state before its next round (a runtime's fresh start)."""


def files_under(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


class ScriptWay(Way):
    """A way that is one command for setup and one for teardown."""

    prefix = "c"

    def setup_argv(self) -> list[str]:
        raise NotImplementedError

    def teardown_argv(self) -> list[str]:
        raise NotImplementedError

    def up(self) -> Timing:
        return timed_run(self.sb, self.setup_argv())

    def down(self) -> Timing:
        return timed_run(self.sb, self.teardown_argv())

    def inside(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", f"{self.prefix}{i}"]


class NsgenRun(ScriptWay):
    key, label = "run", "nsgen run"

    def prepare(self) -> None:
        self.topo = self.folder / "peers.yaml"
        self.topo.write_text(scale.topology(self.n) + "host:\n  firewall: iptables\n")  # as every peer here

    def setup_argv(self) -> list[str]:
        return [*NSGEN, "run", "-q", "-f", str(self.topo)]

    def teardown_argv(self) -> list[str]:
        return [*NSGEN, "run", "-q", "--teardown", "-f", str(self.topo)]


class NsgenRender(NsgenRun):
    key, label = "render", "nsgen render | bash"
    flags: tuple[str, ...] = ()

    def pipe(self, *flags: str) -> list[str]:
        render = shlex.join([*NSGEN, "render", *self.flags, *flags, "-f", str(self.topo)])
        return ["bash", "-o", "pipefail", "-c", f"{render} | bash"]

    def setup_argv(self) -> list[str]:
        return self.pipe()

    def teardown_argv(self) -> list[str]:
        return self.pipe("--teardown")


class NsgenBatch(NsgenRender):
    key, label = "batch", "nsgen render --batch | bash"
    flags = ("--batch",)


class ByHand(ScriptWay):
    key, label, prefix = "hand", "by hand", "h"
    note = "no FORWARD rules (the sandbox's FORWARD policy is ACCEPT); ip_forward set to 0 at the end, not put back"

    def prepare(self) -> None:
        up, down = scale.by_hand(self.n)
        self.up_sh, self.down_sh = self.folder / "hand-up.sh", self.folder / "hand-down.sh"
        self.up_sh.write_text(up)
        self.down_sh.write_text(down)

    def setup_argv(self) -> list[str]:
        return ["bash", str(self.up_sh)]

    def teardown_argv(self) -> list[str]:
        return ["bash", str(self.down_sh)]


class Cni(ScriptWay):
    key, label, prefix = "cni", "CNI plugins", "cni"
    note = ("per container: a masquerade chain of its own (bridge ipMasq), a FORWARD chain entry (firewall), "
            "DNAT and hairpin SNAT chains (portmap); 4 plugin processes a container each way")

    def missing(self) -> str | None:
        absent = [name for name in CNI_PLUGINS if not (CNI_PATH / name).is_file()]
        return f"not installed ({', '.join(str(CNI_PATH / a) for a in absent)} missing)" if absent else None

    def conf(self, plugin: str, **extra: object) -> str:
        return json.dumps({"cniVersion": CNI_VERSION, "name": "peers", "type": plugin, **extra}, separators=(",", ":"))

    def prepare(self) -> None:
        self.data, self.results = self.folder / "cni-ipam", self.folder / "cni-results"
        bridge = self.conf("bridge", bridge="cni-peers0", isGateway=True, ipMasq=True, ipam={
            "type": "host-local", "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.data)})
        firewall = self.conf("firewall", backend="iptables")
        loopback = json.dumps({"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"})
        # prevResult is spliced in by bash: '{...,"prevResult":'"$r"'}'
        with_prev = lambda conf: shlex.quote(conf[:-1] + ',"prevResult":') + '"$r"' + shlex.quote("}")  # noqa: E731
        common = [
            "set -e",
            f"export CNI_PATH={shlex.quote(str(CNI_PATH))} CNI_IFNAME=eth0",
            f"mkdir -p {shlex.quote(str(self.results))}",
            # call PLUGIN CONF: run it with CONF on stdin; its result goes to $r (ADD) or nowhere (DEL)
            'call() { local out; out=$("$CNI_PATH/$1" <<< "$2") || { echo "$1 $CNI_COMMAND $CNI_CONTAINERID: $out" >&2; exit 1; }; '
            'if [ "$CNI_COMMAND" = ADD ]; then r=$out; fi; }',
        ]
        up, down = [*common, "export CNI_COMMAND=ADD"], [*common, "export CNI_COMMAND=DEL"]
        for i in range(self.n):
            name = f"{self.prefix}{i}"
            ports = self.conf("portmap", capabilities={"portMappings": True}, runtimeConfig={"portMappings": [
                {"hostPort": FIRST_PORT + i, "containerPort": CONTAINER_PORT, "protocol": "tcp"}]})
            ids = f"export CNI_CONTAINERID=peers{i} CNI_NETNS=/run/netns/{name}"
            saved = shlex.quote(str(self.results / f"{name}.json"))
            up += [
                f"ip netns add {name}", ids,
                f"CNI_IFNAME=lo call loopback {shlex.quote(loopback)}",
                f"call bridge {shlex.quote(bridge)}",
                f"call portmap {with_prev(ports)}",
                f"call firewall {with_prev(firewall)}",
                f"printf '%s' \"$r\" > {saved}",
            ]
            down += [
                ids, f"r=$(< {saved})",
                f"call firewall {with_prev(firewall)}",
                f"call portmap {with_prev(ports)}",
                f"call bridge {with_prev(bridge)}",
                f"CNI_IFNAME=lo call loopback {shlex.quote(loopback)}",
                f"rm {saved}", f"ip netns delete {name}",
            ]
        self.up_sh, self.down_sh = self.folder / "cni-up.sh", self.folder / "cni-down.sh"
        self.up_sh.write_text("\n".join(up) + "\n")
        self.down_sh.write_text("\n".join(down) + "\n")

    def setup_argv(self) -> list[str]:
        return ["bash", str(self.up_sh)]

    def teardown_argv(self) -> list[str]:
        return ["bash", str(self.down_sh)]

    def own_leftovers(self) -> list[str]:
        return [f"IPAM data directory: {name}" for name in files_under(self.data)] + \
               [f"results directory: {name}" for name in files_under(self.results)]

    def forget(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)
        shutil.rmtree(self.results, ignore_errors=True)


class Netavark(ScriptWay):
    key, label, prefix = "netavark", "netavark", "nv"
    note = "one process a container each way; its own chains (NETAVARK-*) for forwarding, masquerade and ports"

    def missing(self) -> str | None:
        return None if NETAVARK.is_file() else f"not installed ({NETAVARK} missing)"

    def prepare(self) -> None:
        self.config, self.options = self.folder / "netavark-config", self.folder / "netavark-options"
        self.options.mkdir(exist_ok=True)
        network = {
            "name": "peers", "id": "5e" * 32, "driver": "bridge", "network_interface": "nv-peers0",
            "subnets": [{"subnet": SUBNET, "gateway": GATEWAY}], "ipv6_enabled": False, "internal": False,
            "dns_enabled": False, "ipam_options": {"driver": "host-local"},
        }
        netavark = shlex.quote(str(NETAVARK))
        config = shlex.quote(str(self.config))
        up, down = ["set -e", f"mkdir -p {config}"], ["set -e"]
        for i in range(self.n):
            name = f"{self.prefix}{i}"
            options = self.options / f"{name}.json"
            options.write_text(json.dumps({
                "container_id": f"{i:064x}", "container_name": name,
                "networks": {"peers": {"interface_name": "eth0", "static_ips": [address(i)], "aliases": [name]}},
                "network_info": {"peers": network},
                "port_mappings": [{"host_ip": "", "container_port": CONTAINER_PORT, "host_port": FIRST_PORT + i,
                                   "range": 1, "protocol": "tcp"}],
            }))
            opts = shlex.quote(str(options))
            up += [f"ip netns add {name}", f"{netavark} --config {config} setup /run/netns/{name} < {opts} > /dev/null"]
            down += [f"{netavark} --config {config} teardown /run/netns/{name} < {opts}", f"ip netns delete {name}"]
        self.up_sh, self.down_sh = self.folder / "netavark-up.sh", self.folder / "netavark-down.sh"
        self.up_sh.write_text("\n".join(up) + "\n")
        self.down_sh.write_text("\n".join(down) + "\n")

    def up(self) -> Timing:
        return timed_run(self.sb, ["bash", str(self.up_sh)], env={"NETAVARK_FW": "iptables"})

    def down(self) -> Timing:
        return timed_run(self.sb, ["bash", str(self.down_sh)], env={"NETAVARK_FW": "iptables"})

    def own_leftovers(self) -> list[str]:
        return [f"config directory: {name}" for name in files_under(self.config)]

    def forget(self) -> None:
        shutil.rmtree(self.config, ignore_errors=True)


BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"


class MininetWay(Way):
    key, label = "mininet", "Mininet"
    note = ("one Python process; a NAT node (a veth from the bridge to the host) is the gateway; "
            "its hosts are shells, kept running; published ports added as DNAT rules by the same process; "
            "CPU: what the hosts' shells run is counted when they end, in teardown (the sum is right, not the split); "
            f"run with {BRIDGE_NF} = 0 (with 1, the kernel's default once br_netfilter is loaded, the NAT node's "
            "MASQUERADE rule also takes the frames the bridge forwards to it, and no host reaches the outside)")

    def __init__(self, sb: Sandbox, folder: Path, n: int) -> None:
        super().__init__(sb, folder, n)
        self.proc: subprocess.Popen[str] | None = None
        self.pids: list[int] = []
        self.setup_cpu = 0.0

    INTERFACES = "/etc/network/interfaces"

    def prepare(self) -> None:
        self.interfaces = self.read_interfaces()

    def read_interfaces(self) -> str:
        return self.sb.run(["cat", self.INTERFACES], check=False).stdout

    def own_leftovers(self) -> list[str]:
        # The NAT node appends "iface nat0-eth0 inet manual" to /etc/network/interfaces (kept from
        # network managers), and leaves it there; in the sandbox, /etc is an overlay that dies with it.
        now = self.read_interfaces()
        if now == self.interfaces:
            return []
        return [f"{self.INTERFACES}: {line.strip()!r}" for line in now.splitlines()
                if line.strip() and line not in self.interfaces.splitlines()]

    def missing(self) -> str | None:
        if not MININET_PYTHON.is_file() or subprocess.run(
                [str(MININET_PYTHON), "-c", "import mininet.net"], capture_output=True).returncode != 0:
            return f"not installed (no mininet module for {MININET_PYTHON})"
        absent = [tool for tool in ("mnexec", "brctl", "ifconfig") if not shutil.which(tool)]
        return f"not installed ({', '.join(absent)} missing)" if absent else None

    def before_up(self) -> None:
        self.bridge_nf = self.sb.run(["sysctl", "-n", BRIDGE_NF], check=False).stdout.strip()
        if self.bridge_nf:
            self.sb.run(["sysctl", "-q", "-w", f"{BRIDGE_NF}=0"])

    def after_down(self) -> None:
        if self.bridge_nf:
            self.sb.run(["sysctl", "-q", "-w", f"{BRIDGE_NF}={self.bridge_nf}"])

    def up(self) -> Timing:
        argv = ["nsenter", f"--target={self.sb.pid}", "--net", "--mount", "--",
                str(MININET_PYTHON), str(HERE / "mininet_driver.py"), str(self.n), SUBNET, GATEWAY,
                str(FIRST_PORT), str(CONTAINER_PORT), *(address(i) for i in range(self.n))]
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd="/")
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        wall = time.perf_counter() - started
        if not line.startswith("{"):
            self.finish()
            raise SetupFailed((line.removeprefix("error: ").strip() or "the driver ended without a word") + self.stderr)
        report = json.loads(line)
        self.pids, self.setup_cpu = report["pids"], report["cpu"]
        return Timing(wall, self.setup_cpu)

    def finish(self) -> float:
        """Tell the driver to stop the network; wait for it; its CPU time in all."""
        assert self.proc is not None and self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write("down\n")
            self.proc.stdin.close()
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.stderr = "; " + self.proc.stderr.read().strip().replace("\n", " ") if self.proc.stderr else ""
        if self.stderr == "; ":
            self.stderr = ""
        return usage.ru_utime + usage.ru_stime

    def down(self) -> Timing:
        started = time.perf_counter()
        total = self.finish()
        wall = time.perf_counter() - started
        if self.proc is not None and self.proc.returncode != 0:
            raise SetupFailed(f"the Mininet process exited with status {self.proc.returncode}{self.stderr}")
        return Timing(wall, max(total - self.setup_cpu, 0.0))

    def inside(self, i: int) -> list[str]:
        return ["mnexec", "-a", str(self.pids[i])]

    def abandon(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.finish()


WAYS: tuple[type[Way], ...] = (NsgenRun, NsgenRender, NsgenBatch, ByHand, Cni, Netavark, MininetWay)


class SetupFailed(Exception):
    pass


# -- checks --------------------------------------------------------------------------------------

SERVER = ("import socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"s.bind(('0.0.0.0', {CONTAINER_PORT})); s.listen(); s.settimeout(20)\n"
          "c, _ = s.accept(); c.sendall(b'peers-ok\\n'); c.close()\n")
CLIENT = ("import socket, sys\n"
          "c = socket.create_connection((sys.argv[1], int(sys.argv[2])), 1); c.settimeout(2)\n"
          "print(c.recv(64).decode().strip())\n")
FETCH = ("import sys, urllib.request\n"
         "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())\n")


def unreachable(sb: Sandbox, addresses: list[str]) -> list[str]:
    """The addresses that do not answer a ping from the host (each asked up to six times, 100 at a
    time, as scale.py's check does)."""
    missing = list(addresses)
    for _attempt in range(6):
        still: list[str] = []
        for start in range(0, len(missing), 100):
            chunk = missing[start:start + 100]
            script = " ".join(f"(ping -c1 -W2 {a} >/dev/null 2>&1 || echo {a}) & " for a in chunk) + "wait"
            still += sb.sh(script, timeout=600).stdout.split()
        missing = still
        if not missing:
            break
        time.sleep(1)
    return missing


def check(sb: Sandbox, way: Way, n: int) -> None:
    """Raise SetupFailed naming what does not work: ping, published ports, masquerade."""
    missing = unreachable(sb, [address(i) for i in range(n)])
    if missing:
        raise SetupFailed(f"{len(missing)} of {n} containers do not answer a ping from the host: {', '.join(missing[:5])}")
    python = shlex.quote(sys.executable)
    for i in sorted({0, n - 1}):
        script = (
            f"{shlex.join(way.inside(i))} {python} -S -c {shlex.quote(SERVER)} >/dev/null 2>&1 & s=$!\n"
            "for k in $(seq 50); do "
            f"out=$(ip netns exec {WORLD_NS} timeout 5 {python} -S -c {shlex.quote(CLIENT)} {HOST_ADDR} {FIRST_PORT + i} 2>/dev/null) "
            "&& break; sleep 0.1; done\n"
            "kill $s 2>/dev/null; wait $s 2>/dev/null\necho \"$out\"\n")
        answer = sb.sh(script, timeout=300, check=False).stdout.strip()
        if answer != "peers-ok":
            raise SetupFailed(f"published port {HOST_ADDR}:{FIRST_PORT + i} (container {i}) does not answer from the world"
                              + (f" (got {answer!r})" if answer else ""))
    seen = sb.run([*way.inside(0), sys.executable, "-S", "-c", FETCH, f"http://{WEB_ADDR}/"], check=False, timeout=60)
    if seen.stdout.strip() != HOST_ADDR:
        raise SetupFailed(f"masquerade: the world sees container 0 as {seen.stdout.strip() or 'nothing'} "
                          f"(expected the host's {HOST_ADDR}){': ' + seen.stderr.strip().splitlines()[-1] if seen.stderr.strip() else ''}")


# -- the sandbox between ways --------------------------------------------------------------------


class Baseline:
    """The sandbox as it was before any way ran, and how to put it back."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.snapshot = sb.snapshot()
        self.iptables = sb.run(["iptables-save"]).stdout
        self.ip6tables = sb.run(["ip6tables-save"]).stdout
        self.links = self.link_names()

    def link_names(self) -> set[str]:
        return {link["ifname"] for link in json.loads(self.sb.run(["ip", "-j", "link", "show"]).stdout)}

    def left_behind(self) -> list[str]:
        """What differs from the baseline, once the sandbox has settled: the kernel frees a deleted
        namespace's interfaces in the background, a moment after `ip netns delete` returns."""
        diff = diff_snapshots(self.sb.snapshot(), self.snapshot)
        for _attempt in range(8):
            if not diff:
                break
            time.sleep(0.25)
            diff = diff_snapshots(self.sb.snapshot(), self.snapshot)
        return diff

    def restore(self) -> None:
        """Remove what a way left: namespaces, links, firewall rules, sysctls, files."""
        sb = self.sb
        for ns in sorted(set(sb.snapshot()["netns"]) - set(self.snapshot["netns"])):
            sb.run(["ip", "netns", "delete", ns], check=False)
        for link in sorted(self.link_names() - self.links):
            sb.run(["ip", "link", "delete", link], check=False)
        sb.run(["iptables-restore"], input=self.iptables)
        sb.run(["ip6tables-restore"], input=self.ip6tables)
        for line in self.snapshot["sysctl"]:
            key, _, value = line.partition(" = ")
            if value != "(absent)":
                sb.run(["sysctl", "-q", "-w", f"{key}={value}"], check=False)
        sb.sh("rm -rf /run/nsgen/* /etc/netns/*", check=False)
        still = self.left_behind()
        if still:
            raise SystemExit("the sandbox could not be put back as it was:\n" + "\n".join(still))


def summary(lines: list[str]) -> str:
    """A short account of a snapshot diff: per key, how many lines were left (+) or are gone (-), and
    the first names: links, namespaces, chains, sysctls. nft is left out when iptables is there (with
    iptables-nft, the same rules seen twice)."""
    if not lines:
        return "nothing"
    sections: dict[str, list[str]] = {}
    key = ""
    for line in lines:
        if not line.startswith("  "):
            key = line.rstrip(":")
            sections[key] = []
        else:
            sections[key].append(line[2:])
    if "iptables" in sections:
        sections.pop("nft", None)
    parts = []
    for key, changes in sections.items():
        added = [c[2:] for c in changes if c.startswith("+")]
        gone = len(changes) - len(added)
        names: list[str] = []
        for text in added:
            if key in ("links", "netns"):
                names.append(text.split()[0].rstrip(":"))
            elif key == "sysctl":
                names.append(text.replace(" = ", "="))
            elif key in ("iptables", "ip6tables") and text.startswith(":"):
                names.append(text.split()[0][1:])  # a chain
        if key == "sysctl":
            parts.append(f"sysctl {', '.join(names)}" if names else f"sysctl -{gone}")
            continue
        count = f"+{len(added)}" + (f" -{gone}" if gone else "")
        shown = f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""
        parts.append(f"{key} {count}{shown}")
    return "; ".join(parts)


# -- the rounds ----------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    setup: list[Timing] = field(default_factory=list)
    teardown: list[Timing] = field(default_factory=list)
    left: str = ""
    left_lines: list[str] = field(default_factory=list)
    failed: str | None = None
    missing: str | None = None
    note: str = ""


class WayFailed(Exception):
    pass


def attempt(sb: Sandbox, way: Way, n: int) -> tuple[Timing, Timing]:
    """One round of one way: setup (timed), the checks, teardown (timed). WayFailed names the stage."""
    stage = "setup"
    try:
        way.before_up()
        up = way.up()
        stage = "check"
        check(sb, way, n)
        stage = "teardown"
        down = way.down()
        way.after_down()
    except (SetupFailed, SandboxCommandError, subprocess.TimeoutExpired, ValueError) as exc:
        raise WayFailed(f"{stage}: {one_line(exc)}") from None
    return up, down


def give_up(base: Baseline, way: Way) -> None:
    """After a failure: take down what the way left up, and put the sandbox back."""
    if isinstance(way, MininetWay):
        way.abandon()
    else:
        with contextlib.suppress(Exception):
            way.down()
    base.restore()
    way.forget()


def run_size(sb: Sandbox, folder: Path, n: int, rounds: int, only: list[str] | None,
             progress: Callable[[str], None]) -> dict[str, Result]:
    """Every way that is installed, `rounds` times in turn, on N containers."""
    base = Baseline(sb)
    ways = [cls(sb, folder, n) for cls in WAYS if only is None or cls.key in only]
    results = {way.key: Result(way.label, note=way.note) for way in ways}
    active = []
    for way in ways:
        results[way.key].missing = way.missing()
        if not results[way.key].missing:
            way.prepare()
            active.append(way)
    for round_ in range(rounds):
        for way in list(active):
            result = results[way.key]
            try:
                up, down = attempt(sb, way, n)
            except WayFailed as exc:
                result.failed = str(exc)
                active.remove(way)
                give_up(base, way)
                progress(f"N={n}, round {round_ + 1}: {way.label} failed ({result.failed}); left out")
                continue
            own = way.own_leftovers()
            left = base.left_behind() + (["own state:", *(f"  + {line}" for line in own)] if own else [])
            result.setup.append(up)
            result.teardown.append(down)
            if left and not result.left_lines:
                progress(f"N={n}: {way.label} left behind:\n" + "\n".join(left))
            if round_ == 0 or left:
                result.left_lines, result.left = left, summary(left)
            if left:
                base.restore()
            way.forget()
            progress(f"N={n}, round {round_ + 1}: {way.label}: setup {up.wall:.3f} s (CPU {up.cpu:.3f} s), "
                     f"teardown {down.wall:.3f} s (CPU {down.cpu:.3f} s); left {result.left}; {scale.load()}")
    return results


def one_line(exc: BaseException) -> str:
    if isinstance(exc, SandboxCommandError):
        err = (exc.stderr.strip() or exc.stdout.strip() or f"exit status {exc.returncode}").splitlines()
        return f"{shlex.join(exc.argv[:3])}...: {err[-1] if err else ''}".strip()
    return str(exc).replace("\n", " ")


# -- reporting -----------------------------------------------------------------------------------


def med(values: list[Timing], attr: str) -> float:
    return statistics.median(getattr(t, attr) for t in values)


def least(values: list[Timing]) -> float:
    return min(t.wall for t in values)


def rows_of(n: int, results: dict[str, Result]) -> list[dict]:
    ref = results.get("run")
    rows = []
    for key, r in results.items():
        if not r.setup:
            continue
        row = {"n": n, "key": key, "label": r.label,
               "setup_min": least(r.setup), "setup_med": med(r.setup, "wall"), "setup_cpu": med(r.setup, "cpu"),
               "down_min": least(r.teardown), "down_med": med(r.teardown, "wall"), "down_cpu": med(r.teardown, "cpu"),
               "left": r.left}
        if ref is not None and ref.setup:
            row["setup_ratio"] = row["setup_med"] / med(ref.setup, "wall")
            row["down_ratio"] = row["down_med"] / med(ref.teardown, "wall")
        rows.append(row)
    return rows


COLUMNS = (  # title, key, width, format ("" for text, left-aligned)
    ("N", "n", 5, "d"), ("way", "label", 27, ""),
    ("setup min", "setup_min", 9, ".3f"), ("median", "setup_med", 7, ".3f"), ("CPU", "setup_cpu", 7, ".3f"),
    ("/run", "setup_ratio", 6, ".2f"),
    ("teardown min", "down_min", 12, ".3f"), ("median", "down_med", 7, ".3f"), ("CPU", "down_cpu", 7, ".3f"),
    ("/run", "down_ratio", 6, ".2f"),
)


def cell(row: dict, key: str, width: int, form: str) -> str:
    value = row.get(key)
    if not form:
        return f"{value:<{width}}"
    return f"{'—':>{width}}" if value is None else f"{value:>{width}{form}}"


def print_header(rounds: int) -> None:
    print(f"setup and teardown of N containers, seconds of wall time (minimum and median of {rounds} round(s)), "
          f"the median CPU time of the processes each way started, and each median against nsgen run's", flush=True)
    header = " ".join(f"{title:<{width}}" if not form else f"{title:>{width}}" for title, _, width, form in COLUMNS)
    print(header + "  left behind")
    print("-" * (len(header) + 13), flush=True)


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        print(" ".join(cell(row, key, width, form) for _, key, width, form in COLUMNS) + f"  {row['left']}", flush=True)


def times(row: dict, key: str) -> str:
    return "—" if row.get(key) is None else f"{row[key]:.2f}x"


def print_markdown(rows: list[dict], rounds: int) -> None:
    print()
    print("| N | way | setup min | setup median | setup CPU | setup / run | teardown min | teardown median | "
          "teardown CPU | teardown / run | left behind |")
    print("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for row in rows:
        label = row["label"].replace("|", "\\|")
        print(f"| {row['n']} | {label} | {row['setup_min']:.3f} | {row['setup_med']:.3f} | {row['setup_cpu']:.3f} | "
              f"{times(row, 'setup_ratio')} | {row['down_min']:.3f} | {row['down_med']:.3f} | {row['down_cpu']:.3f} | "
              f"{times(row, 'down_ratio')} | {row['left']} |")
    print(f"\nseconds; minimum and median of {rounds} round(s); CPU: median, user + system, of the processes each way started")


def plot(rows: list[dict], path: Path, title: str) -> str:
    """Median setup and teardown time against N, each way a line; log scales. A sentence saying what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return f"plot skipped: matplotlib is not installed (pip install '.[bench]'); {path} not written"
    labels = list(dict.fromkeys(row["label"] for row in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, key, name in ((axes[0], "setup_med", "setup"), (axes[1], "down_med", "teardown")):
        for label in labels:
            points = sorted((row["n"], row[key]) for row in rows if row["label"] == label)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                    linewidth=2.5 if label == REFERENCE else 1.5, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        sizes = sorted({row["n"] for row in rows})
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _pos: f"{value:g}" if f"{value:.0e}"[0] in "25" else ""))
        ax.set_xlabel("containers (N)")
        ax.set_title(f"{name}, median wall time")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format=path.suffix.lstrip(".") or "svg", metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return f"plot written to {path}"


# -- main ----------------------------------------------------------------------------------------


def version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if out.returncode == 0 and text else None


def package(name: str) -> str | None:
    return version(["dpkg-query", "-W", "-f", "${Version}", name])


def versions() -> str:
    import importlib.metadata

    try:
        nsgen = importlib.metadata.version("nsgen")
    except importlib.metadata.PackageNotFoundError:
        nsgen = "checkout"
    found = [f"nsgen {nsgen}", version(["iptables", "--version"]), version(["ip", "-V"])]
    for name in ("containernetworking-plugins", "netavark", "mininet"):
        v = package(name)
        found.append(f"{name} {v}" if v else f"{name}: not installed")
    return ", ".join(f for f in found if f)


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (f"machine: {platform.machine()}, {platform.system()} {platform.release()}, {cores} cores, "
            f"Python {platform.python_version()}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, action="append", help=f"container counts, at most {MAX_N} (default: 10, 100, 500)")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds; each way runs once a round, in turn")
    parser.add_argument("--way", action="append", choices=[cls.key for cls in WAYS], help="only these ways (default: all)")
    parser.add_argument("--plot", type=Path, help="write the plot (SVG) to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown too")
    args = parser.parse_args(argv)
    args.n = args.n or [10, 100, 500]
    bad = [n for n in args.n if not 1 <= n <= MAX_N]
    if bad:
        parser.error(f"-n: {bad[0]} is out of range (1 to {MAX_N}: the workload is one bridge)")
    if args.way and "run" not in args.way:
        args.way.insert(0, "run")  # the reference of every ratio
    return args


def own_sandbox(sandbox: Sandbox | None) -> contextlib.AbstractContextManager[Sandbox]:
    return contextlib.nullcontext(sandbox) if sandbox is not None else Sandbox()


def main(argv: list[str] | None = None, sandbox: Sandbox | None = None) -> list[dict]:
    """The benchmark, in `sandbox` when given (the smoke test's), else in one of its own per N.
    Returns the table's rows."""
    args = parse(argv)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nsgen")], check=True)
    print(machine())
    print(f"versions: {versions()}")
    started = time.perf_counter()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    rows: list[dict] = []
    everything: dict[int, dict[str, Result]] = {}
    print_header(args.rounds)
    for n in args.n:  # each size's rows as soon as they are measured
        with tempfile.TemporaryDirectory(prefix="nsgen-peers-") as tmp, own_sandbox(sandbox) as sb:
            everything[n] = run_size(sb, Path(tmp), n, args.rounds, args.way, progress)
        rows += rows_of(n, everything[n])
        print_rows(rows_of(n, everything[n]))
    notes: dict[str, str] = {}
    for n, results in everything.items():
        for r in results.values():
            if r.missing:
                notes.setdefault(r.label, f"{r.label}: {r.missing}; left out")
            elif r.failed:
                notes[f"{r.label} {n}"] = f"{r.label}: failed at N={n}, {r.failed}; left out"
            elif r.note:
                notes.setdefault(r.label, f"{r.label}: {r.note}")
    for line in notes.values():
        print(line)
    if args.markdown:
        print_markdown(rows, args.rounds)
    if args.plot:
        title = f"{machine().removeprefix('machine: ')}; {args.rounds} round(s)"
        print(plot(rows, args.plot, title))
    print(f"the benchmark took {time.perf_counter() - started:.0f} s; {scale.load()}")
    return rows


if __name__ == "__main__":
    main()
