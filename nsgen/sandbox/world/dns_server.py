"""The world's DNS server: answers A and AAAA queries for a fixed table of names, NXDOMAIN for the rest.

It knows the DNS wire format just well enough to answer one question per UDP datagram
(what `dig`, glibc and Python's `getaddrinfo` send); it knows nothing of the sandbox it runs in.
A name's IPv4 addresses answer A, its IPv6 ones AAAA, both ANY; a name that has none of the type
asked gets an empty NOERROR answer (NODATA). It listens on every --address given, IPv4 or IPv6.
Standard library only, so it starts fast with `python -S`.

    python -S dns_server.py --address 203.0.113.53 [--address 2001:db8:113::53] [--port 53]
                            [--record NAME=ADDR ...] [--ready-fd N]
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import struct
import sys

RECORDS = {
    "web.world.test": ("203.0.113.10", "2001:db8:113::10"),
    "dns.world.test": ("203.0.113.53",),  # A only: its AAAA answer is NODATA
    "example.test": ("203.0.113.10", "2001:db8:113::10"),
}
TTL = 60

QR, AA = 0x8000, 0x0400
RD = 0x0100
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4
TYPE_A, TYPE_AAAA, TYPE_ANY, CLASS_IN, CLASS_ANY = 1, 28, 255, 1, 255


def _rdata(address: str) -> tuple[int, bytes]:
    """(record type, wire form) of an address: A for IPv4, AAAA for IPv6."""
    if ":" in address:
        return TYPE_AAAA, socket.inet_pton(socket.AF_INET6, address)
    return TYPE_A, socket.inet_pton(socket.AF_INET, address)


def answer(query: bytes, records: dict[str, tuple[str, ...]]) -> bytes | None:
    """The response datagram for one query datagram, or None to stay silent (not a query)."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!3H", query[:6])
    if flags & QR:
        return None
    opcode = (flags >> 11) & 0xF

    def reply(rcode: int, question: bytes = b"", answers: bytes = b"", ancount: int = 0) -> bytes:
        head = struct.pack(
            "!6H", ident, QR | (opcode << 11) | AA | (flags & RD) | rcode,
            1 if question else 0, ancount, 0, 0,
        )
        return head + question + answers

    if opcode != 0:
        return reply(NOTIMP)
    if qdcount != 1:
        return reply(FORMERR)
    labels, pos = [], 12
    try:
        while True:
            length = query[pos]
            if length == 0:
                pos += 1
                break
            if length & 0xC0:  # a compression pointer has no business in a question
                return reply(FORMERR)
            labels.append(query[pos + 1:pos + 1 + length])
            pos += 1 + length
        qtype, qclass = struct.unpack("!2H", query[pos:pos + 4])
    except (IndexError, struct.error):
        return reply(FORMERR)
    question = query[12:pos + 4]
    name = b".".join(labels).decode("ascii", "replace").lower().rstrip(".")
    addresses = records.get(name)
    if addresses is None:
        return reply(NXDOMAIN, question)
    found = []
    if qclass in (CLASS_IN, CLASS_ANY):
        for address in addresses:
            rtype, rdata = _rdata(address)
            if qtype in (rtype, TYPE_ANY):
                # 0xC00C: the answer's name is the question's name, at offset 12.
                found.append(b"\xc0\x0c" + struct.pack("!2HIH", rtype, CLASS_IN, TTL, len(rdata)) + rdata)
    # no record of that type: the name exists, the answer is empty (NODATA)
    return reply(NOERROR, question, b"".join(found), len(found))


def serve(socks: list[socket.socket], records: dict[str, tuple[str, ...]]) -> None:
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                sock: socket.socket = key.fileobj  # type: ignore[assignment,no-redef]  # only sockets are registered
                query, peer = sock.recvfrom(4096)
                try:
                    response = answer(query, records)
                except Exception as exc:  # never let one odd datagram stop the server
                    print(f"dns: {peer[0]}: cannot answer: {exc!r}", file=sys.stderr, flush=True)
                    continue
                if response is not None:
                    sock.sendto(response, peer)


def bind(address: str, port: int) -> socket.socket:
    """A UDP socket bound to address (IPv4 or IPv6) and port."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", action="append", required=True, help="listen here (repeatable)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--record", action="append", default=[], metavar="NAME=ADDR",
                        help="replace the built-in table (repeatable; a name given twice has both addresses)")
    parser.add_argument("--ready-fd", type=int, help="write 'ready' to this fd once bound, then close it")
    args = parser.parse_args(argv)
    records = dict(RECORDS)
    if args.record:
        records = {}
        for item in args.record:
            name, _, address = item.partition("=")
            _rdata(address)  # a bad address is an error now, not at the first query
            key = name.lower().rstrip(".")
            records[key] = (*records.get(key, ()), address)
    socks = [bind(address, args.port) for address in args.address]
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ready\n")
        os.close(args.ready_fd)
    serve(socks, records)


if __name__ == "__main__":
    main()
