"""Firewall benchmark: the iptables backend against the nftables one, inside a throwaway sandbox.

    sudo python3 benchmarks/firewall.py                      # 10 and 1000 ports; 100 and 1000 containers
    sudo python3 benchmarks/firewall.py -n 10 -n 1000 --rounds 5 --seconds 2 --part connections
    sudo python3 benchmarks/firewall.py --quick              # a smoke run: 3 ports, 3 containers, 1 round

Connections: one container publishes N ports (`"20000-2xxxx:20000-2xxxx"`, one range) and runs
benchmarks/tcp_load.py's server on the last of them, the one whose rules iptables walks last. For
each backend, `nsgen run` brings it up, then from the sandbox's world namespace one loop (or
`--clients` processes) opens new TCP connections to the host's address at that port for `--seconds`
(connect, then close with SO_LINGER 0: a reset, no TIME_WAIT), through the DNAT and the forward
filter; then the same loop from the host straight to the container's address and port (no DNAT, no
forwarding: the baseline, what the machine does without nsgen's rules in the path); then
`nsgen run --teardown`, and the sandbox must be exactly as before. The connection-tracking table
is flushed (`conntrack -F`, the sandbox's own) before each measurement. Rounds alternate which
backend goes first. The table gives connections a second, the median of the rounds (and the
range); published/direct, the median of each round's ratio of the two (measured back to back, so
a busy moment of the machine weighs on both); and the client's CPU time a connection (user and
system: the kernel's work for the packets it sends, the host's netfilter hooks included, runs
in the sender's context), less sensitive than rates to other work on the machine. Below it, each
backend at the largest N against itself at the smallest.

Containers: scale.py's topology (N containers on bridges of at most 1000 ports, a published port
each) with `host.firewall` set to each backend in turn: `nsgen run` and `nsgen run --teardown`, and
the batched scripts (`nsgen render --batch` / `--teardown --batch`) run with bash, wall time,
median of the rounds. Every container answers a ping after each setup, and each teardown leaves
the sandbox as it was.

It reports; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import scale  # noqa: E402  (benchmarks/scale.py: the containers' topology, the ping check, the snapshot check)

from nsgen.sandbox import HOST_ADDR, Sandbox  # noqa: E402

NSGEN = [sys.executable, "-m", "nsgen"]
LOAD = [sys.executable, "-S", str(HERE / "tcp_load.py")]
BACKENDS = ("iptables", "nftables")
FIRST_PORT = 20000
SUBNET, CONTAINER_ADDR = "10.50.0.0/24", "10.50.0.2"


def ports_topology(ports: int, backend: str) -> str:
    """One container publishing `ports` ports as one range, serving the last of them."""
    last = FIRST_PORT + ports - 1
    command = ", ".join(f'"{word}"' for word in [*LOAD, "serve", str(last)])
    return "\n".join([
        "name: fwbench",
        "host:",
        f"  firewall: {backend}",
        "networks:",
        "  net:",
        f"    subnet: {SUBNET}",
        "    bridge: br-fwbench",
        "containers:",
        "  srv:",
        "    networks:",
        "      net:",
        f"        address: {CONTAINER_ADDR}",
        f'    ports: ["{FIRST_PORT}-{last}:{FIRST_PORT}-{last}"]',
        "    processes:",
        f"      - command: [{command}]",
        f"        ready: tcp:{last}",
    ]) + "\n"


def containers_topology(n: int, backend: str) -> str:
    return scale.topology(n) + f"host:\n  firewall: {backend}\n"


def connection_rate(sb: Sandbox, where: list[str], address: str, port: int, seconds: float, clients: int) -> tuple[float, int, float]:
    """(connections a second, errors, the client's CPU microseconds a connection) of one measurement;
    `where` prefixes the client's argv."""
    if shutil.which("conntrack"):
        sb.run(["conntrack", "-F"], check=False)
    done = sb.run([*where, *LOAD, "connect", address, str(port), str(seconds), str(clients)], timeout=seconds * 10 + 60)
    words = done.stdout.split()
    count, errors, elapsed, used = int(words[1]), int(words[3]), float(words[5]), float(words[7])
    if count == 0:
        raise SystemExit(f"no connection to {address}:{port} succeeded ({errors} errors)")
    return count / elapsed, errors, used / count * 1e6


def order(backends: tuple[str, ...], round_: int) -> tuple[str, ...]:
    """Which backend goes first alternates from round to round."""
    return backends if round_ % 2 == 0 else tuple(reversed(backends))


def connections(sb: Sandbox, folder: Path, sizes: list[int], backends: tuple[str, ...], args: argparse.Namespace) -> dict:
    """{(N, backend): {measure: [one value a round]}, "errors": n} over args.rounds rounds: connections
    a second through the published port ("world") and straight to the container ("direct"), their
    ratio, and the client's CPU microseconds a connection of each."""
    before = sb.snapshot()
    results: dict = {(n, b): {"world": [], "direct": [], "ratio": [], "world_cpu": [], "direct_cpu": [], "errors": 0}
                     for n in sizes for b in backends}
    for round_ in range(args.rounds):
        for n in sizes:
            last = FIRST_PORT + n - 1
            for backend in order(backends, round_):
                topo = folder / f"ports-{n}-{backend}.yaml"
                topo.write_text(ports_topology(n, backend))
                sb.run([*NSGEN, "run", "-q", "-f", str(topo)], timeout=600)
                row = results[(n, backend)]
                world, errors, world_cpu = connection_rate(sb, ["ip", "netns", "exec", "world"], HOST_ADDR, last, args.seconds, args.clients)
                direct, direct_errors, direct_cpu = connection_rate(sb, [], CONTAINER_ADDR, last, args.seconds, args.clients)
                for key, value in (("world", world), ("direct", direct), ("ratio", world / direct),
                                   ("world_cpu", world_cpu), ("direct_cpu", direct_cpu)):
                    row[key].append(value)
                row["errors"] += errors + direct_errors
                print(f"round {round_ + 1}, {n} ports, {backend}: {world:,.0f}/s ({world_cpu:.0f} us CPU a connection), "
                      f"direct {direct:,.0f}/s ({direct_cpu:.0f} us); {scale.load()}", file=sys.stderr, flush=True)
                sb.run([*NSGEN, "run", "-q", "--teardown", "-f", str(topo)], timeout=600)
                scale.same(sb, before, f"nsgen run --teardown ({backend}, {n} ports)")
    return results


def containers(sb: Sandbox, folder: Path, sizes: list[int], backends: tuple[str, ...], rounds: int) -> dict:
    """{(N, backend): {way: [seconds]}} for nsgen run, its teardown and the batched scripts."""
    bench = scale.Bench(sb, folder)
    before = sb.snapshot()
    results: dict = {(n, b): {"run": [], "teardown": [], "batch": [], "cleanup_batch": []} for n in sizes for b in backends}
    for round_ in range(rounds):
        for n in sizes:
            for backend in order(backends, round_):
                topo, batch, cleanup = (folder / f"containers-{n}-{backend}.{ext}" for ext in ("yaml", "sh", "cleanup.sh"))
                topo.write_text(containers_topology(n, backend))
                sb.run([*NSGEN, "render", "--batch", "-f", str(topo), "-o", str(batch)], timeout=600)
                sb.run([*NSGEN, "render", "--teardown", "--batch", "-f", str(topo), "-o", str(cleanup)], timeout=600)
                times = results[(n, backend)]
                times["run"].append(bench.timed([*NSGEN, "run", "-q", "-f", str(topo)])[0])
                bench.check_up(n, f"nsgen run ({backend})")
                times["teardown"].append(bench.timed([*NSGEN, "run", "-q", "--teardown", "-f", str(topo)])[0])
                scale.same(sb, before, f"nsgen run --teardown ({backend}, {n} containers)")
                times["batch"].append(bench.timed(["bash", str(batch)])[0])
                bench.check_up(n, f"bash {batch.name}")
                times["cleanup_batch"].append(bench.timed(["bash", str(cleanup)])[0])
                scale.same(sb, before, f"bash {cleanup.name}")
                print(f"round {round_ + 1}, {n} containers, {backend}: " + ", ".join(f"{way} {values[-1]:.3f} s" for way, values in times.items())
                      + f"; {scale.load()}", file=sys.stderr, flush=True)
    return results


def thousands(rate: float) -> str:
    return f"{rate:,.0f}"


def print_connections(results: dict, sizes: list[int], backends: tuple[str, ...], args: argparse.Namespace) -> None:
    print(f"new TCP connections a second to the last published port, median of {args.rounds} round(s) of {args.seconds:g} s, "
          f"{args.clients} client process(es); {scale.load()}")
    header = (f"{'ports':>5}  {'backend':<8}  {'published':>9}  {'(min-max)':>15}  {'direct':>7}  {'(min-max)':>15}  "
              f"{'published/direct':>16}  {'CPU us':>6}  {'direct':>6}  {'errors':>6}")
    print(header)
    print("-" * len(header))
    med = {key: {measure: statistics.median(row[measure]) for measure in ("world", "direct", "ratio", "world_cpu", "direct_cpu")}
           for key, row in results.items()}
    for n in sizes:
        for backend in backends:
            row, m = results[(n, backend)], med[(n, backend)]
            print(f"{n:>5}  {backend:<8}  {thousands(m['world']):>9}  {span(row['world']):>15}  {thousands(m['direct']):>7}  "
                  f"{span(row['direct']):>15}  {m['ratio']:>16.2f}  {m['world_cpu']:>6.0f}  {m['direct_cpu']:>6.0f}  {row['errors']:>6}")
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        for backend in backends:
            a, b = med[(small, backend)], med[(large, backend)]
            rate = b["world"] / a["world"]
            print(f"{backend}: {large} ports against {small}: {rate:.2f}x the connections a second "
                  f"({'within' if abs(1 - rate) <= 0.10 else 'not within'} 10%), published/direct {b['ratio'] / a['ratio']:.2f}x, "
                  f"CPU a connection {b['world_cpu'] / a['world_cpu']:.2f}x")


def span(values: list[float]) -> str:
    return f"{thousands(min(values))}-{thousands(max(values))}"


def print_containers(results: dict, sizes: list[int], backends: tuple[str, ...], rounds: int) -> None:
    print(f"setup and teardown of N containers (a published port each), seconds, median of {rounds} round(s); {scale.load()}")
    header = f"{'N':>5}  {'backend':<8}  {'run':>7}  {'teardown':>8}  {'setup-batch.sh':>14}  {'cleanup-batch.sh':>16}"
    print(header)
    print("-" * len(header))
    for n in sizes:
        for backend in backends:
            times = {way: statistics.median(values) for way, values in results[(n, backend)].items()}
            print(f"{n:>5}  {backend:<8}  {times['run']:>7.3f}  {times['teardown']:>8.3f}  {times['batch']:>14.3f}  "
                  f"{times['cleanup_batch']:>16.3f}", flush=True)


def version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{argv[0]}: unknown"


def machine() -> str:
    return (f"machine: {platform.machine()}, {platform.system()} {platform.release()}, "
            f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, Python {platform.python_version()}, "
            f"{version(['nft', '--version'])}, {version(['iptables', '--version'])}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--ports", type=int, action="append", help="published ports, one run each (default: 10 and 1000)")
    parser.add_argument("-c", "--containers", type=int, action="append", help="container counts (default: 100 and 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (backends alternate which goes first); medians are reported")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one connection measurement")
    parser.add_argument("--clients", type=int, default=1, help="processes opening connections at once")
    parser.add_argument("--backend", choices=BACKENDS, action="append", help="default: both")
    parser.add_argument("--part", choices=("connections", "containers", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 ports, 3 containers, 1 round of 0.5 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.ports, args.containers, args.rounds, args.seconds = args.ports or [3], args.containers or [3], 1, 0.5
    args.ports = args.ports or [10, 1000]
    args.containers = args.containers or [100, 1000]
    args.backend = tuple(args.backend or BACKENDS)
    return args


def own_sandbox(sandbox: Sandbox | None) -> contextlib.AbstractContextManager[Sandbox]:
    """The given sandbox, left open; or a new one, closed at the end."""
    return contextlib.nullcontext(sandbox) if sandbox is not None else Sandbox()


def main(argv: list[str] | None = None, sandbox: Sandbox | None = None) -> None:
    """The benchmark; in `sandbox` when given (the smoke test's), else in a sandbox of its own for each part."""
    args = parse(argv)
    # As installed from a wheel: modules compiled to bytecode once, not at every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nsgen")], check=True)
    print(machine())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nsgen-fwbench-") as tmp:
        folder = Path(tmp)
        if args.part in ("connections", "both"):
            with own_sandbox(sandbox) as sb:
                results = connections(sb, folder, args.ports, args.backend, args)
            print_connections(results, args.ports, args.backend, args)
        if args.part in ("containers", "both"):
            with own_sandbox(sandbox) as sb:
                timings = containers(sb, folder, args.containers, args.backend, args.rounds)
            print_containers(timings, args.containers, args.backend, args.rounds)
    print(f"the benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
