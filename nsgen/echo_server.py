"""The tutorial's echo server: GET /echo answers with the request's headers as JSON (standard library only)."""

from __future__ import annotations

import json
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    server_version = "nsgen-echo"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?", 1)[0] != "/echo":
            self._send(404, {"error": f"no such path: {self.path}; try /echo"})
            return
        header: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            header.setdefault(name, []).append(value)
        self._send(200, {"header": header, "body": "Echo response"})

    def _send(self, status: int, payload: dict) -> None:
        body = (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        client = self.client_address[0]
        client = client.removeprefix("::ffff:") if client.startswith("::ffff:") and "." in client else client  # IPv4 on the dual-stack socket
        sys.stderr.write(f"{client} {format % args}\n")


class DualStackServer(ThreadingHTTPServer):
    """Listens on [::], IPv4 included (IPV6_V6ONLY off): one socket answers both families."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _server(host: str, port: int) -> ThreadingHTTPServer:
    """Every address of both families by default (IPv4 alone where the host has no IPv6)."""
    if host in ("", "::"):
        try:
            return DualStackServer(("::", port), EchoHandler)
        except OSError:
            if host == "::":
                raise
    if ":" in host:
        return IPv6Server((host, port), EchoHandler)
    return ThreadingHTTPServer((host, port), EchoHandler)


def serve(port: int, host: str = "") -> None:
    server = _server(host, port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"echo server listening on port {port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
