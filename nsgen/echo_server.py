"""The tutorial's echo server: GET /echo answers with the request's headers as JSON (standard library only)."""

from __future__ import annotations

import json
import signal
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
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")


def serve(port: int, host: str = "") -> None:
    server = ThreadingHTTPServer((host, port), EchoHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"echo server listening on port {port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
