"""The world's web server: answers every request with the caller's source address as plain text.

A client behind masquerading therefore reads the address it was translated to (the sandbox
host's 198.51.100.1), not its own; an IPv6 caller reads its IPv6 address, unbracketed
(2001:db8:100::1). It listens on every --address given, IPv4 or IPv6. It knows nothing of the
sandbox it runs in. It speaks just enough HTTP/1.1 for curl, wget and urllib (any method, any
path, keep-alive), with the standard library's socketserver rather than http.server, which takes
three times as long to import.

    python -S http_server.py --address 203.0.113.10 [--address 2001:db8:113::10] [--port 80] [--ready-fd N]
"""

from __future__ import annotations

import argparse
import os
import socket
import socketserver
import sys
import threading

MAX_LINE = 8192


class WhoAmI(socketserver.StreamRequestHandler):
    timeout = 30  # an idle keep-alive connection is dropped after this

    def handle(self) -> None:
        try:
            while self.answer_one():
                pass
        except (OSError, ValueError):  # timeouts, resets, nonsense
            pass

    def answer_one(self) -> bool:
        """Read one request and answer it; False when the connection should close."""
        request_line = self.rfile.readline(MAX_LINE).decode("latin-1").strip()
        if not request_line:
            return False
        headers = {}
        while True:
            line = self.rfile.readline(MAX_LINE)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("content-length"):
            self.rfile.read(int(headers["content-length"]))
        method, _, rest = request_line.partition(" ")
        version = rest.rpartition(" ")[2]
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        body = f"{self.client_address[0]}\n".encode()
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
            "\r\n"
        ).encode()
        self.wfile.write(head if method == "HEAD" else head + body)
        print(f"http: {self.client_address[0]} {request_line!r} 200", file=sys.stderr, flush=True)
        return keep_alive


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Server6(Server):
    address_family = socket.AF_INET6


def listen(address: str, port: int) -> Server:
    return (Server6 if ":" in address else Server)((address, port), WhoAmI)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", action="append", required=True, help="listen here (repeatable)")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--ready-fd", type=int, help="write 'ready' to this fd once listening on all, then close it")
    args = parser.parse_args(argv)
    first, *others = [listen(address, args.port) for address in args.address]
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ready\n")
        os.close(args.ready_fd)
    for server in others:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    first.serve_forever()


if __name__ == "__main__":
    main()
