"""Overlay benchmark: N containers on each of two hosts, all on one network across the hosts (a
VXLAN overlay), a published port each, brought up and down inside a throwaway sandbox with two
simulated hosts (nsgen/sandbox/hosts.py: h1 at 192.0.2.11, h2 at 192.0.2.12, joined by an
underlay), nsgen's ways against the tutorial's way by hand, all in the same run.

    sudo python3 benchmarks/overlay.py               # N = 10 and 100 on each host
    sudo python3 benchmarks/overlay.py -n 100 -r 3   # one size, best of three

Each host brings up its own part, in these ways:

- `nsgen run --host hX` on h1, then on h2 (the time of each), and on both hosts at once (the wall
  time from the first start to the last end); `nsgen run --teardown` likewise;
- `bash hX.setup.sh` from `nsgen render --host all -o DIR` and its `hX.teardown.sh`, and the same
  from `nsgen render --host all --batch`;
- the tutorial's way by hand, on each host: a bridge, a VXLAN device (`nolearning`) plugged into
  it with one `bridge fdb append` a peer, one `bridge fdb add` and one `ip neigh add` a remote
  container; each veth made on the host then moved into its namespace, configured inside through
  `ip netns exec`; one `iptables` call a rule (the masquerade and each published port).

After every setup each host's containers all ping the other host's first container, and each
host's first container pings every container of the other host (a ping that does not answer is
tried again, up to six rounds, else the run stops); after every teardown each host is exactly as
its snapshot before (else the run stops). Prints one table: seconds for each way and host (best
of the repeats; "both" is h1 then h2, or the wall time of both at once), and the ratio of the
hand-typed way's time to each way's. Nothing here asserts on time; it reports.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nsgen.sandbox import Sandbox, SimulatedHost, diff_snapshots, simulated_hosts  # noqa: E402

NSGEN = [sys.executable, "-m", "nsgen"]
HOSTS = ("h1", "h2")
SUBNET = "10.80.0.0/16"
GATEWAY = "10.80.0.1"
VNI = 4242
MTU = 1450  # 1500 less the 50 bytes VXLAN adds over IPv4
PORT = 10000  # container i publishes PORT + i
TIMEOUT = 3600
ATTEMPTS = 8  # rounds of pings before a pair counts as unreachable
PAUSE = 5  # seconds between rounds: unused neighbour entries older than 5 s can be evicted

SETUPS = ("run", "parallel", "script", "batch", "hand")
TEARDOWNS = ("teardown", "teardown_parallel", "cleanup", "cleanup_batch", "hand_down")
LABELS = {
    "run": "nsgen run --host hX",
    "parallel": "  (both hosts at once)",
    "script": "bash hX.setup.sh",
    "batch": "  (--batch)",
    "hand": "by hand",
    "teardown": "nsgen run --teardown",
    "teardown_parallel": "  (both hosts at once)",
    "cleanup": "bash hX.teardown.sh",
    "cleanup_batch": "  (--batch)",
    "hand_down": "by hand",
}


# ---------------------------------------------------------------------------------------------
# The topology, and where nsgen puts each container
# ---------------------------------------------------------------------------------------------

def members(n: int, host: int) -> range:
    """The indexes of host's containers (host 0 is h1): h1 has 0..n-1, h2 n..2n-1."""
    return range(host * n, (host + 1) * n)


def address(i: int) -> str:
    """Container i's address: nsgen gives the whole topology's containers addresses in their order
    in the file, from the subnet's second address (the first is the gateway)."""
    offset = i + 2
    return f"10.80.{offset // 256}.{offset % 256}"


def mac(i: int) -> str:
    """Container i's MAC address as nsgen derives it from its address (02:42 and the four bytes)."""
    return "02:42:" + ":".join(f"{int(part):02x}" for part in address(i).split("."))


def underlay(host: int) -> str:
    return f"192.0.2.{11 + host}"


def topology(n: int) -> str:
    """N containers on each of h1 and h2, a published port each, all on one overlay network."""
    lines = [
        "name: ovbench",
        "hosts:",
        *(f"  {name}: {{address: {underlay(h)}}}" for h, name in enumerate(HOSTS)),
        "networks:",
        "  ov:",
        f"    subnet: {SUBNET}",
        f"    overlay: {{vni: {VNI}}}",
        "containers:",
    ]
    for h, name in enumerate(HOSTS):
        for i in members(n, h):
            lines += [f"  c{i}:", f"    host: {name}", "    networks: [ov]", f'    ports: ["{PORT + i}:8000"]']
    return "\n".join(lines) + "\n"


def by_hand(n: int, host: int, ip_forward: str) -> tuple[str, str]:
    """Host's part typed as a tutorial does: the bridge, the VXLAN device and its forwarding
    entries, each veth made on the host then moved into its namespace and configured there through
    `ip netns exec`, one iptables call a rule. The teardown puts ip_forward back to its value."""
    other = 1 - host
    peer = underlay(other)
    up = [
        "set -e",
        "sysctl -q -w net.ipv4.ip_forward=1",
        "ip link add br-hand type bridge",
        f"ip addr add {GATEWAY}/16 dev br-hand",
        "ip link set br-hand up",
        f"ip link add vx-hand type vxlan id {VNI} local {underlay(host)} dstport 4789 nolearning",
        "ip link set vx-hand master br-hand",
        # the bridge answers neighbour requests for remote containers itself (from the entries
        # below), so that each host's gateway, the same address on both, stays its own
        "bridge link set dev vx-hand neigh_suppress on",
        "ip link set vx-hand up",
        f"bridge fdb append 00:00:00:00:00:00 dev vx-hand dst {peer}",
    ]
    for i in members(n, other):
        up += [
            f"bridge fdb add {mac(i)} dev vx-hand dst {peer} self permanent",
            f"ip neigh add {address(i)} lladdr {mac(i)} dev br-hand nud permanent",
        ]
    masquerade = f"-t nat -A POSTROUTING -s {SUBNET} ! -o br-hand -j MASQUERADE"
    up.append(f"iptables {masquerade}")
    down = ["set +e"]
    for i in members(n, host):
        dnat = f"-t nat -A PREROUTING -p tcp --dport {PORT + i} -j DNAT --to-destination {address(i)}:8000"
        up += [
            f"ip netns add m{i}",
            f"ip netns exec m{i} ip link set lo up",
            f"ip link add hv{i} mtu {MTU} type veth peer name he{i} mtu {MTU}",
            f"ip link set he{i} netns m{i}",
            f"ip netns exec m{i} ip link set he{i} name eth0",
            f"ip netns exec m{i} ip link set eth0 address {mac(i)}",
            f"ip netns exec m{i} ip addr add {address(i)}/16 dev eth0",
            f"ip netns exec m{i} ip link set eth0 up",
            f"ip link set hv{i} master br-hand",
            f"ip link set hv{i} up",
            f"ip netns exec m{i} ip route add default via {GATEWAY}",
            f"iptables {dnat}",
        ]
        down += [f"iptables {dnat.replace(' -A ', ' -D ')}", f"ip link delete hv{i}", f"ip netns delete m{i}"]
    down += [
        f"iptables {masquerade.replace(' -A ', ' -D ')}",
        "ip link delete vx-hand",
        "ip link delete br-hand",
        f"sysctl -q -w net.ipv4.ip_forward={ip_forward}",
    ]
    return "\n".join(up) + "\n", "\n".join(down) + "\n"


# ---------------------------------------------------------------------------------------------
# Running, timing and checking on the two hosts
# ---------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, hosts: Sequence[SimulatedHost], n: int):
        self.hosts = list(hosts)
        self.n = n
        self.before = {h.name: h.snapshot() for h in self.hosts}

    def run(self, host: SimulatedHost, argv: list[str]) -> float:
        """Run argv on host (from the checkout, so `python -m nsgen` is this one); its seconds."""
        started = time.perf_counter()
        host.run(argv, timeout=TIMEOUT, cwd=ROOT)
        return time.perf_counter() - started

    def each(self, argv: Callable[[SimulatedHost], list[str]]) -> list[float]:
        """argv(host) on h1, then on h2: the seconds of each."""
        return [self.run(h, argv(h)) for h in self.hosts]

    def both(self, argv: Callable[[SimulatedHost], list[str]]) -> float:
        """argv(host) on both hosts at once: the wall time from the first start to the last end."""
        errors: list[BaseException] = []

        def go(host: SimulatedHost) -> None:
            try:
                host.run(argv(host), timeout=TIMEOUT, cwd=ROOT)
            except BaseException as exc:  # reported by the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(h,)) for h in self.hosts]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
        return elapsed

    def check_up(self, what: str, ns: Callable[[int], str]) -> None:
        """Containers on one host reach those on the other: every container of each host pings the
        other host's first container, and each host's first container pings every container of the
        other host. ns(i) is container i's namespace. Pinged 100 at a time, and a pair that gets no
        answer is tried again after a pause: each ping makes a neighbour entry at both ends, and the
        kernel's neighbour table, shared by every namespace of the machine, evicts unused entries
        only once they are 5 s old (net.ipv4.neigh.default.gc_thresh3 entries at most, 1024 by
        default; a machine-wide setting, left alone here)."""
        for h, host in enumerate(self.hosts):
            local, remote = members(self.n, h), members(self.n, 1 - h)
            pairs = list(dict.fromkeys([(ns(i), remote[0]) for i in local] + [(ns(local[0]), j) for j in remote]))
            for _attempt in range(ATTEMPTS):
                failed = []
                for start in range(0, len(pairs), 100):
                    chunk = pairs[start : start + 100]
                    script = " ".join(
                        f"(ip netns exec {src} ping -c1 -W2 {address(dst)} >/dev/null 2>&1 || echo {k}) &"
                        for k, (src, dst) in enumerate(chunk)) + " wait"
                    failed += [chunk[int(k)] for k in host.sh(script, timeout=600).stdout.split()]
                pairs = failed
                if not pairs:
                    break
                time.sleep(PAUSE)
            if pairs:
                shown = ", ".join(f"{src} -> {address(dst)}" for src, dst in pairs[:10])
                raise SystemExit(f"{what}: on {host.name}, no answer to {shown} ({len(pairs)} in all; "
                                 f"{neighbours()})")

    def check_down(self, what: str) -> None:
        """Each host is exactly as before the setup."""
        for host in self.hosts:
            after = host.snapshot()
            if after != self.before[host.name]:
                raise SystemExit(f"{what} left {host.name} changed:\n" + "\n".join(diff_snapshots(after, self.before[host.name])))


def neighbours() -> str:
    """The machine's neighbour entries (IPv4, all namespaces) against gc_thresh3, as the kernel counts them."""
    try:
        entries = int(Path("/proc/net/stat/arp_cache").read_text().splitlines()[1].split()[0], 16)
        limit = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read_text().strip()
    except (OSError, IndexError, ValueError):
        return "the neighbour table's use could not be read"
    return f"neighbour entries on the machine now: {entries} of gc_thresh3 {limit}"


def best(values: list[float]) -> float | None:
    return min(values) if values else None


def run_size(hosts: Sequence[SimulatedHost], folder: Path, n: int, repeats: int) -> dict[str, list[float | None]]:
    """Every way, repeats times, for N containers a host: for each way the best [h1, h2, both]."""
    bench = Bench(hosts, n)
    topo = folder / f"overlay-{n}.yaml"
    topo.write_text(topology(n))
    plain, batched = folder / f"plain-{n}", folder / f"batch-{n}"
    hosts[0].run([*NSGEN, "render", "-f", topo, "--host", "all", "-o", plain], cwd=ROOT)
    hosts[0].run([*NSGEN, "render", "-f", topo, "--host", "all", "--batch", "-o", batched], cwd=ROOT)
    hand = folder / f"hand-{n}"
    hand.mkdir()
    for h, host in enumerate(hosts):
        ip_forward = host.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
        up_text, down_text = by_hand(n, h, ip_forward)
        (hand / f"{host.name}.setup.sh").write_text(up_text)
        (hand / f"{host.name}.teardown.sh").write_text(down_text)

    def nsgen(*words: str) -> Callable[[SimulatedHost], list[str]]:
        return lambda host: [*NSGEN, "run", "-q", *words, "-f", str(topo), "--host", host.name]

    def bash(scripts: Path, what: str) -> Callable[[SimulatedHost], list[str]]:
        return lambda host: ["bash", str(scripts / f"{host.name}.{what}.sh")]

    def container(i: int) -> str:
        return f"c{i}"

    times: dict[str, list[list[float]]] = {k: [] for k in (*SETUPS, *TEARDOWNS)}

    def each(key: str, argv: Callable[[SimulatedHost], list[str]]) -> None:
        t1, t2 = bench.each(argv)
        times[key].append([t1, t2, t1 + t2])

    for _ in range(repeats):
        each("run", nsgen())
        bench.check_up("nsgen run", container)
        each("teardown", nsgen("--teardown"))
        bench.check_down("nsgen run --teardown")

        times["parallel"].append([bench.both(nsgen())])
        bench.check_up("nsgen run on both hosts at once", container)
        times["teardown_parallel"].append([bench.both(nsgen("--teardown"))])
        bench.check_down("nsgen run --teardown on both hosts at once")

        for up, down, scripts in (("script", "cleanup", plain), ("batch", "cleanup_batch", batched)):
            each(up, bash(scripts, "setup"))
            bench.check_up(f"bash {scripts.name}/hX.setup.sh", container)
            each(down, bash(scripts, "teardown"))
            bench.check_down(f"bash {scripts.name}/hX.teardown.sh")

        each("hand", bash(hand, "setup"))
        bench.check_up("by hand", lambda i: f"m{i}")
        each("hand_down", bash(hand, "teardown"))
        bench.check_down("by hand")

    result: dict[str, list[float | None]] = {}
    for key, rounds in times.items():
        columns = list(zip(*rounds, strict=True))
        result[key] = [best(list(column)) for column in columns]
    return result


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def ratio(slow: float | None, fast: float | None) -> str:
    return "—" if not slow or not fast else f"{slow / fast:.1f}x"


def row(n: int, key: str, values: list[float | None], hand: list[float | None]) -> str:
    """One way's line: N, the way, h1, h2, both, and the hand-typed way's time over this one's
    (for each host and both; for both hosts at once, the hand-typed way on h1 then h2 over it)."""
    if len(values) == 1:  # both hosts at once: one wall time
        h1, h2, both = None, None, values[0]
        ratios = ("—", "—", ratio(hand[2], both))
    else:
        h1, h2, both = values
        ratios = (ratio(hand[0], h1), ratio(hand[1], h2), ratio(hand[2], both))
    return (f"{n:>5}  {LABELS[key]:<23} {fmt(h1):>7} {fmt(h2):>7} {fmt(both):>7}   "
            f"{ratios[0]:>6} {ratios[1]:>6} {ratios[2]:>6}").rstrip()


HEADER = f"{'N':>5}  {'way':<23} {'h1':>7} {'h2':>7} {'both':>7}   {'hand/this':^20}".rstrip()
SUBHEADER = f"{'':>5}  {'':<23} {'':>7} {'':>7} {'':>7}   {'h1':>6} {'h2':>6} {'both':>6}"


def print_size(n: int, result: dict[str, list[float | None]]) -> None:
    for keys, hand in ((SETUPS, result["hand"]), (TEARDOWNS, result["hand_down"])):
        for key in keys:
            print(row(n, key, result[key], hand), flush=True)


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return (f"machine: {platform.machine()}, {platform.system()} {platform.release()}, {cores} cores, "
            f"Python {platform.python_version()}, {version(['ip', '-V'])}, {version(['iptables', '-V'])}")


@contextlib.contextmanager
def two_hosts(sandbox: Sandbox | None, hosts: Sequence[SimulatedHost] | None) -> Iterator[Sequence[SimulatedHost]]:
    """The hosts given (left open); or two simulated hosts in the sandbox given, or in a sandbox of
    the benchmark's own (closed at the end, with its hosts)."""
    if hosts is not None:
        yield hosts
        return
    with contextlib.ExitStack() as stack:
        box = sandbox if sandbox is not None else stack.enter_context(Sandbox())
        yield stack.enter_context(simulated_hosts(box, len(HOSTS)))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("-n", type=int, action="append", help="containers on each host (default: 10, 100)")
    parser.add_argument("-r", "--repeats", type=int, default=1, help="runs of each way; the best is reported")
    args = parser.parse_args(argv)
    args.n = args.n or [10, 100]
    for n in args.n:
        if not 1 <= n <= 1000:
            parser.error(f"-n {n}: containers on each host, from 1 to 1000 (a bridge holds at most 1024 ports)")
    if args.repeats < 1:
        parser.error(f"-r {args.repeats}: at least one run of each way")
    return args


def main(argv: list[str] | None = None, sandbox: Sandbox | None = None,
         hosts: Sequence[SimulatedHost] | None = None) -> None:
    """The benchmark, on the simulated hosts given (the smoke test's), else on two in the sandbox
    given, else in a sandbox of its own."""
    args = parse(argv)
    # As installed from a wheel: modules compiled to bytecode once, not at every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nsgen")], check=True)
    print(machine())
    print(f"N containers on each of two hosts, one overlay network ({SUBNET}, VNI {VNI}), a published port each; "
          f"seconds, best of {args.repeats}; {load()}")
    print(HEADER)
    print(SUBHEADER)
    print("-" * len(SUBHEADER))
    with tempfile.TemporaryDirectory(prefix="nsgen-ovbench-") as tmp, two_hosts(sandbox, hosts) as pair:
        for n in args.n:
            print_size(n, run_size(pair, Path(tmp), n, args.repeats))
    print(load())


if __name__ == "__main__":
    main()
