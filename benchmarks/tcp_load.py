"""New TCP connections, as many as a loop can open: a server that accepts and closes, and a client
that connects and resets, for benchmarks/firewall.py (standard library only, run with `python3 -S`).

    python3 -S benchmarks/tcp_load.py serve PORT
    python3 -S benchmarks/tcp_load.py connect ADDRESS PORT SECONDS [CLIENTS]

`serve` listens on PORT (every IPv4 address) and closes each connection as soon as it accepts it.
`connect` opens connections to ADDRESS:PORT in a loop for SECONDS, in CLIENTS processes (default
1), each socket closed with SO_LINGER 0 (a reset: no TIME_WAIT, so the loop never runs out of
local ports), and prints one line: `connections N errors E seconds S cpu C` (all clients together;
S is the longest client's time, C the CPU seconds, user and system, the clients used while counting:
the kernel's work for a connection, the netfilter hooks of the namespaces a packet crosses included,
runs mostly in the client's own system time, since a veth hands a packet on in the sender's
context). Each client opens 50 connections before its clock starts (ARP, the first conntrack
entries, the caches), which are not counted.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import sys
import time

WARM_UP = 50
BATCH = 64  # connections between two looks at the clock
LINGER_0 = struct.pack("ii", 1, 0)


def serve(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("", port))
    listener.listen(4096)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # a connection reset before it was accepted
            continue
        conn.close()


def _once(family: int, target: tuple[str, int]) -> bool:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        sock.connect(target)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client(address: str, port: int, seconds: float) -> tuple[int, int, float, float]:
    """(connections, errors, seconds, CPU seconds) of one loop."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    target = (address, port)
    for _ in range(WARM_UP):
        _once(family, target)
    ok = errors = 0
    cpu_started = cpu()
    started = time.monotonic()
    end = started + seconds
    while True:
        for _ in range(BATCH):
            if _once(family, target):
                ok += 1
            else:
                errors += 1
        now = time.monotonic()
        if now >= end:
            return ok, errors, now - started, cpu() - cpu_started


def connect(address: str, port: int, seconds: float, clients: int) -> str:
    readers = []
    for _ in range(clients):
        read_end, write_end = os.pipe()
        if os.fork() == 0:
            os.close(read_end)
            ok, errors, elapsed, used = client(address, port, seconds)
            os.write(write_end, f"{ok} {errors} {elapsed} {used}\n".encode())
            os._exit(0)
        os.close(write_end)
        readers.append(read_end)
    total_ok = total_errors = 0
    longest = total_cpu = 0.0
    for fd in readers:
        with os.fdopen(fd) as pipe:
            text = pipe.read().split()
        if len(text) != 4:
            raise SystemExit("a client ended without a result")
        total_ok += int(text[0])
        total_errors += int(text[1])
        longest = max(longest, float(text[2]))
        total_cpu += float(text[3])
    for _ in readers:
        os.wait()
    return f"connections {total_ok} errors {total_errors} seconds {longest:.6f} cpu {total_cpu:.6f}"


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "serve":
        serve(int(argv[1]))
    elif len(argv) in (4, 5) and argv[0] == "connect":
        print(connect(argv[1], int(argv[2]), float(argv[3]), int(argv[4]) if len(argv) == 5 else 1), flush=True)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
