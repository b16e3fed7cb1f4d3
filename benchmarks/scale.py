"""Scale benchmark: N containers on bridges, a published port each, brought up and down inside a
throwaway sandbox, nsgen's ways against the tutorial's way by hand, all in the same run.

    sudo python3 benchmarks/scale.py                 # N = 10, 100, 500, 1000
    sudo python3 benchmarks/scale.py -n 100 -r 3     # one size, best of three
    sudo python3 benchmarks/scale.py --family dual   # every network dual stack (4, 6 or dual)
    sudo python3 benchmarks/scale.py -n 100 -r 3 --compare   # IPv4 against dual stack

Prints one table: seconds for each way (best of the repeats), the ratio of the hand-typed way to
each of nsgen's, and the peak memory of nsgen's process. `nsgen run` is timed twice: on a file
read before (the render came first, as when a user reviews the script before running it) and,
as "(first)", on a file nsgen has never read (an empty cache: PyYAML imported, the file parsed). After every setup it checks that every
container is really up (the host pings each one), and after every teardown that the sandbox is
exactly as before. `nsgen run` is timed a third time, as
"(again)", on the network it has just made (every step's probe finds it done). Teardown is timed
three ways: `nsgen run --teardown`, `bash cleanup.sh` and `bash cleanup-batch.sh` (rendered with
--teardown --batch); "down/run" is the batched cleanup script against `nsgen run --teardown`.
`--family` gives every network an IPv4 subnet (10.x.0.0/16, the default), an IPv6 one (fd00:x::/64,
a ULA prefix) or both; the host then pings each container at every address it has (ping -4,
ping -6). `--compare` instead brings the same topology up as IPv4 and as dual stack, in turns in
one sandbox, and prints each way's time in both and the ratio dual/IPv4.
Nothing here asserts on time; it reports.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nsgen.sandbox import Sandbox, diff_snapshots  # noqa: E402

NSGEN = [sys.executable, "-m", "nsgen"]
PER_BRIDGE = 1000  # a bridge holds at most 1024 ports
TIME = "/usr/bin/time"


FAMILIES = {"4": (4,), "6": (6,), "dual": (4, 6)}  # --family: the IP versions each network has


def subnets(b: int, family: str) -> str:
    """Bridge b's subnet: 10.(100+b).0.0/16, fd00:(100+b)::/64 (a ULA prefix, room for any N), or both."""
    v4, v6 = f"10.{100 + b}.0.0/16", f'"fd00:{100 + b}::/64"'
    return {"4": v4, "6": v6, "dual": f"[{v4}, {v6}]"}[family]


def topology(n: int, family: str = "4") -> str:
    """N containers, a published port each, on ceil(N / 1000) bridges; each network IPv4, IPv6 or both."""
    bridges = (n + PER_BRIDGE - 1) // PER_BRIDGE
    lines = ["name: scale", "networks:"]
    for b in range(bridges):
        lines += [f"  net{b}:", f"    subnet: {subnets(b, family)}", f"    bridge: br-scale{b}"]
    lines.append("containers:")
    for i in range(n):
        lines += [f"  c{i}:", f"    networks: [net{i // PER_BRIDGE}]", f'    ports: ["{10000 + i}:8000"]']
    return "\n".join(lines) + "\n"


def address(i: int, version: int = 4) -> str:
    """Container i's address as nsgen allocates it: the (i % 1000 + 2)-th of its bridge's subnet."""
    offset = i % PER_BRIDGE + 2
    if version == 6:
        return f"fd00:{100 + i // PER_BRIDGE}::{offset:x}"
    return f"10.{100 + i // PER_BRIDGE}.{offset // 256}.{offset % 256}"


def by_hand(n: int) -> tuple[str, str]:
    """The tutorial's way, typed out: veth made on the host then moved, configured through
    `ip netns exec`, one iptables call a rule."""
    bridges = (n + PER_BRIDGE - 1) // PER_BRIDGE
    up = ["set -e", "sysctl -q -w net.ipv4.ip_forward=1"]
    down = ["set +e"]
    for b in range(bridges):
        up += [
            f"ip link add br-hand{b} type bridge",
            f"ip addr add 10.{100 + b}.0.1/16 dev br-hand{b}",
            f"ip link set br-hand{b} up",
            f"iptables -t nat -A POSTROUTING -s 10.{100 + b}.0.0/16 ! -o br-hand{b} -j MASQUERADE",
        ]
        down += [f"iptables -t nat -D POSTROUTING -s 10.{100 + b}.0.0/16 ! -o br-hand{b} -j MASQUERADE", f"ip link delete br-hand{b}"]
    for i in range(n):
        b = i // PER_BRIDGE
        up += [
            f"ip netns add h{i}",
            f"ip netns exec h{i} ip link set lo up",
            f"ip link add hv{i} type veth peer name he{i}",
            f"ip link set he{i} netns h{i}",
            f"ip netns exec h{i} ip link set he{i} name eth0",
            f"ip netns exec h{i} ip addr add {address(i)}/16 dev eth0",
            f"ip netns exec h{i} ip link set eth0 up",
            f"ip link set hv{i} master br-hand{b}",
            f"ip link set hv{i} up",
            f"ip netns exec h{i} ip route add default via 10.{100 + b}.0.1",
            f"iptables -t nat -A PREROUTING -p tcp --dport {10000 + i} -j DNAT --to-destination {address(i)}:8000",
        ]
        down += [f"iptables -t nat -D PREROUTING -p tcp --dport {10000 + i} -j DNAT --to-destination {address(i)}:8000", f"ip netns delete h{i}"]
    down.append("sysctl -q -w net.ipv4.ip_forward=0")
    return "\n".join(up) + "\n", "\n".join(down) + "\n"


class Bench:
    def __init__(self, sb: Sandbox, folder: Path):
        self.sb = sb
        self.folder = folder

    def timed(self, argv: list[str], memory: bool = False, env: dict[str, str] | None = None) -> tuple[float, int | None]:
        if memory:
            argv = [TIME, "-f", "NSGEN_MAXRSS_KB=%M", *argv]
        started = time.perf_counter()
        done = self.sb.run(argv, timeout=3600, env=env)
        elapsed = time.perf_counter() - started
        kb = None
        if memory:
            kb = int(next(line for line in done.stderr.splitlines() if line.startswith("NSGEN_MAXRSS_KB=")).split("=")[1])
        return elapsed, kb

    def check_up(self, n: int, prefix: str, family: str = "4") -> None:
        """Every container answers a ping from the host, at each of its addresses (ping -4 and
        ping -6). Pinged 100 at a time, and a container that does not answer is asked again: the
        kernel's neighbour table is shared by every namespace and holds
        net.ipv4.neigh.default.gc_thresh3 entries (1024 by default; net.ipv6's likewise), which a
        thousand containers and the host's side of them exceed (a host setting, left alone here)."""
        for version in FAMILIES[family]:
            missing = list(range(n))
            for _attempt in range(6):
                still = []
                for start in range(0, len(missing), 100):
                    chunk = missing[start : start + 100]
                    script = " ".join(
                        f"(ping -{version} -c1 -W2 {address(i, version)} >/dev/null 2>&1 || echo {i}) & " for i in chunk) + "wait"
                    still += [int(x) for x in self.sb.sh(script, timeout=600).stdout.split()]
                missing = sorted(still)
                if not missing:
                    break
                time.sleep(2)
            if missing:
                raise SystemExit(f"{prefix}: containers not reachable over IPv{version}: "
                                 f"{[address(i, version) for i in missing[:10]]} ({len(missing)} in all)")
        count = sum(1 for line in self.sb.run(["ip", "netns", "list"]).stdout.split("\n") if line.startswith(("c", "h")))
        if count < n:
            raise SystemExit(f"{prefix}: only {count} of {n} namespaces exist")


def same(sb: Sandbox, before: dict, what: str) -> None:
    after = sb.snapshot()
    if after != before:
        raise SystemExit(f"{what} left the sandbox changed:\n" + "\n".join(diff_snapshots(after, before)))


def best(values: list[float]) -> float:
    return min(values)


def run_size(n: int, repeats: int, hand_max: int, family: str = "4") -> dict[str, float | int | None]:
    if family != "4":
        hand_max = -1  # the hand-typed way is the tutorial's, IPv4 only
    with tempfile.TemporaryDirectory(prefix="nsgen-bench-") as tmp, Sandbox() as sb:
        folder = Path(tmp)
        bench = Bench(sb, folder)

        topo = folder / "scale.yaml"
        topo.write_text(topology(n, family))
        setup_sh, batch_sh = folder / "setup.sh", folder / "setup-batch.sh"
        cleanup_sh, cleanup_batch_sh = folder / "cleanup.sh", folder / "cleanup-batch.sh"
        hand_up, hand_down = folder / "hand-up.sh", folder / "hand-down.sh"
        up_text, down_text = by_hand(n)
        hand_up.write_text(up_text)
        hand_down.write_text(down_text)
        before = sb.snapshot()
        results: dict[str, list[float]] = {
            k: [] for k in ("render", "first", "run", "again", "teardown", "script", "batch", "cleanup", "cleanup_batch", "hand")}
        memory = 0
        for _ in range(repeats):
            t, kb = bench.timed([*NSGEN, "render", "-f", str(topo), "-o", str(setup_sh)], memory=True)
            results["render"].append(t)
            memory = max(memory, kb or 0)
            sb.run([*NSGEN, "render", "--batch", "-f", str(topo), "-o", str(batch_sh)])
            sb.run([*NSGEN, "render", "--teardown", "-f", str(topo), "-o", str(cleanup_sh)])
            sb.run([*NSGEN, "render", "--teardown", "--batch", "-f", str(topo), "-o", str(cleanup_batch_sh)])

            # A file nsgen has not read before: PyYAML imported, the file parsed (an empty cache).
            fresh = tempfile.mkdtemp(prefix="cache-", dir=folder)
            t, _ = bench.timed([*NSGEN, "run", "-q", "-f", str(topo)], env={"XDG_CACHE_HOME": fresh})
            results["first"].append(t)
            bench.check_up(n, "nsgen run (first)", family)
            sb.run([*NSGEN, "run", "-q", "--teardown", "-f", str(topo)], timeout=3600)
            same(sb, before, "nsgen run --teardown")

            t, kb = bench.timed([*NSGEN, "run", "-q", "-f", str(topo)], memory=True)
            results["run"].append(t)
            memory = max(memory, kb or 0)
            bench.check_up(n, "nsgen run", family)
            # The same file run again on a network that is up: every step's probe says done.
            t, _ = bench.timed([*NSGEN, "run", "-q", "-f", str(topo)])
            results["again"].append(t)
            bench.check_up(n, "nsgen run (again)", family)
            t, kb = bench.timed([*NSGEN, "run", "-q", "--teardown", "-f", str(topo)], memory=True)
            results["teardown"].append(t)
            same(sb, before, "nsgen run --teardown")

            for key, script, down_key, cleanup in (
                ("script", setup_sh, "cleanup", cleanup_sh),
                ("batch", batch_sh, "cleanup_batch", cleanup_batch_sh),
            ):
                t, _ = bench.timed(["bash", str(script)])
                results[key].append(t)
                bench.check_up(n, f"bash {script.name}", family)
                t, _ = bench.timed(["bash", str(cleanup)])
                results[down_key].append(t)
                same(sb, before, f"bash {cleanup.name} after {script.name}")

            if n <= hand_max:
                t, _ = bench.timed(["bash", str(hand_up)])
                results["hand"].append(t)
                bench.check_up(n, "by hand")
                sb.run(["bash", str(hand_down)], timeout=3600)
        row: dict[str, float | int | None] = {k: (best(v) if v else None) for k, v in results.items()}
        row["n"] = n
        row["memory_mb"] = round(memory / 1024, 1)
        return row


COMPARED = ("run", "teardown", "script", "batch", "cleanup", "cleanup_batch")


def compare_size(n: int, repeats: int) -> dict[str, dict[str, float]]:
    """The same N-container topology as IPv4 only and as dual stack, in one sandbox, the two
    families taking turns within each repeat (which goes first alternates, so that a busy moment of
    the machine does not fall on one family only). Each way's best time, by family."""
    with tempfile.TemporaryDirectory(prefix="nsgen-bench-") as tmp, Sandbox() as sb:
        folder = Path(tmp)
        bench = Bench(sb, folder)
        before = sb.snapshot()
        files: dict[str, dict[str, Path]] = {}
        for family in ("4", "dual"):
            files[family] = {k: folder / f"{k}-{family}.{'yaml' if k == 'topo' else 'sh'}"
                             for k in ("topo", "setup", "batch", "cleanup", "cleanup_batch")}
            files[family]["topo"].write_text(topology(n, family))
        results: dict[str, dict[str, list[float]]] = {f: {k: [] for k in COMPARED} for f in files}
        for repeat in range(repeats):
            for family in ("4", "dual") if repeat % 2 == 0 else ("dual", "4"):
                f, times = files[family], results[family]
                topo = str(f["topo"])
                sb.run([*NSGEN, "render", "-f", topo, "-o", str(f["setup"])])
                sb.run([*NSGEN, "render", "--batch", "-f", topo, "-o", str(f["batch"])])
                sb.run([*NSGEN, "render", "--teardown", "-f", topo, "-o", str(f["cleanup"])])
                sb.run([*NSGEN, "render", "--teardown", "--batch", "-f", topo, "-o", str(f["cleanup_batch"])])
                label = "IPv4" if family == "4" else "dual stack"

                times["run"].append(bench.timed([*NSGEN, "run", "-q", "-f", topo])[0])
                bench.check_up(n, f"nsgen run ({label})", family)
                times["teardown"].append(bench.timed([*NSGEN, "run", "-q", "--teardown", "-f", topo])[0])
                same(sb, before, f"nsgen run --teardown ({label})")
                for key, down_key in (("setup", "cleanup"), ("batch", "cleanup_batch")):
                    times["script" if key == "setup" else key].append(bench.timed(["bash", str(f[key])])[0])
                    bench.check_up(n, f"bash {f[key].name}", family)
                    times[down_key].append(bench.timed(["bash", str(f[down_key])])[0])
                    same(sb, before, f"bash {f[down_key].name} after {f[key].name}")
        return {family: {k: best(v) for k, v in by_way.items()} for family, by_way in results.items()}


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def ratio(slow: float | None, fast: float | None) -> str:
    return "—" if not slow or not fast else f"{slow / fast:.1f}x"


def import_baseline(repeats: int = 5) -> tuple[float, float]:
    """Render of the tutorial against `python -c "import click, jinja2, yaml"`, measured alike."""
    def best_of(argv: list[str]) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        return min(times)

    return best_of([*NSGEN, "render"]), best_of([sys.executable, "-c", "import click, jinja2, yaml"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, action="append", help="container counts (default: 10, 100, 500, 1000)")
    parser.add_argument("-r", "--repeats", type=int, default=1, help="runs of each way; the best is reported")
    parser.add_argument("--hand-max", type=int, default=1000, help="skip the hand-typed way above this N")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="4",
                        help="each network's subnet: IPv4 (10.x.0.0/16, the default), IPv6 (fd00:x::/64) or both "
                             "(dual stack); the hand-typed way is IPv4 only")
    parser.add_argument("--compare", action="store_true",
                        help="instead of the table of every way: IPv4 against dual stack, the same topology, in turns, "
                             "with the ratio dual/IPv4 of each way")
    args = parser.parse_args()
    sizes = args.n or [10, 100, 500, 1000]
    # As installed from a wheel: modules compiled to bytecode once, not at every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nsgen")], check=True)

    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, "
          f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, Python {platform.python_version()}")
    if args.compare:
        compare(sizes, args.repeats)
        return
    print(f"family: {args.family}; {load()}")
    render_tutorial, imports = import_baseline()
    print(f"render of the tutorial: {render_tutorial * 1000:.0f} ms; python -c 'import click, jinja2, yaml': {imports * 1000:.0f} ms "
          f"(ratio {render_tutorial / imports:.2f})")
    header = (f"{'N':>5} {'render':>7} {'run':>7} {'(first)':>7} {'(again)':>7} {'teardown':>8} {'setup.sh':>8} {'--batch':>8} "
              f"{'cleanup':>8} {'(batch)':>8} {'by hand':>8} {'hand/run':>8} {'(first)':>7} {'hand/sh':>8} {'batch/run':>9} "
              f"{'down/run':>8} {'peak MB':>7}")
    print(header)
    print("-" * len(header))
    rows = []
    for n in sizes:
        row = run_size(n, args.repeats, args.hand_max, args.family)
        rows.append(row)
        print(
            f"{n:>5} {fmt(row['render']):>7} {fmt(row['run']):>7} {fmt(row['first']):>7} {fmt(row['again']):>7} {fmt(row['teardown']):>8} "
            f"{fmt(row['script']):>8} {fmt(row['batch']):>8} {fmt(row['cleanup']):>8} {fmt(row['cleanup_batch']):>8} {fmt(row['hand']):>8} "
            f"{ratio(row['hand'], row['run']):>8} {ratio(row['hand'], row['first']):>7} {ratio(row['hand'], row['script']):>8} "
            f"{ratio(row['batch'], row['run']):>9} {ratio(row['cleanup_batch'], row['teardown']):>8} {row['memory_mb']:>7}",
            flush=True,
        )
    by_n = {r["n"]: r for r in rows}
    if 100 in by_n and 1000 in by_n and by_n[100]["run"]:
        print(f"growth, nsgen run from 100 to 1000 containers: {by_n[1000]['run'] / by_n[100]['run']:.1f}x (linear: 10x)")

    print(load())


def compare(sizes: list[int], repeats: int) -> None:
    """The table of --compare: for each way, IPv4, dual stack and dual/IPv4."""
    names = {"run": "run", "teardown": "teardown", "script": "setup.sh", "batch": "--batch", "cleanup": "cleanup",
             "cleanup_batch": "(batch)"}
    print(f"IPv4 against dual stack, best of {repeats}; {load()}")
    print((f"{'':>5} " + " ".join(f"{names[k]:^23}" for k in COMPARED)).rstrip())
    header = f"{'N':>5} " + " ".join(f"{'IPv4':>7} {'dual':>7} {'ratio':>7}" for _ in COMPARED)
    print(header)
    print("-" * len(header))
    for n in sizes:
        by = compare_size(n, repeats)
        print(f"{n:>5} " + " ".join(
            f"{fmt(by['4'][k]):>7} {fmt(by['dual'][k]):>7} {by['dual'][k] / by['4'][k]:>6.2f}x" for k in COMPARED), flush=True)
    print(load())


if __name__ == "__main__":
    main()
