"""The port proxy: a container's ports published on [::1], served from the host's IPv6 loopback.

The kernel never sends a packet from ::1 anywhere but the host itself (IPv6 has no
route_localnet), so no DNAT rule can carry a connection to [::1]:PORT into a container; as
Docker's userland proxy does, a process accepts it and opens its own connection to the container.

It starts in the host's namespace (`setsid sh -c ... nsgen port-proxy`), opens its listening
sockets on [::1] there, then moves into the container's namespace: every connection it opens
from then on starts inside the container (to the container's own address, so a server bound to
it answers), and it is one of the container's processes, stopped with them and seen by `nsgen ps`.
Only then does it write its ready file. TCP connections are relayed both ways; UDP datagrams go
out from one socket per client, whose replies go back to that client.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import sys
from typing import NamedTuple

from nsgen.names import NETNS_DIR

UDP_IDLE = 60.0  # seconds a UDP client's socket is kept without traffic


class Forward(NamedTuple):
    protocol: str
    host_port: int
    container_port: int


def parse(spec: str) -> Forward:
    """PROTOCOL:HOST_PORT:CONTAINER_PORT"""
    protocol, host_port, container_port = spec.split(":")
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"{spec}: protocol {protocol} is not tcp or udp")
    return Forward(protocol, int(host_port), int(container_port))


def _listen(forward: Forward) -> socket.socket:
    kind = socket.SOCK_STREAM if forward.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET6, kind)
    if kind == socket.SOCK_STREAM:  # a restart while old connections linger; for UDP it would let another socket share the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::1", forward.host_port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def _enter(netns: str) -> None:
    from nsgen.execute import setns_function

    setns = setns_function()
    if setns is None:
        raise OSError("setns is not available")
    fd = os.open(f"{NETNS_DIR}/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
    finally:
        os.close(fd)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        try:
            writer.write_eof()
        except OSError:
            writer.close()


async def _relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, target: str, port: int) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(target, port)
    except OSError:
        client_w.close()  # the container refuses: so does the proxy
        return
    await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
    for w in (client_w, server_w):
        w.close()


class _Upstream(asyncio.DatagramProtocol):
    """One UDP client's socket to the container: its replies go back to the client."""

    def __init__(self, listener: asyncio.DatagramTransport, client: tuple) -> None:
        self.listener, self.client = listener, client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = asyncio.get_running_loop().time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.last = asyncio.get_running_loop().time()
        self.listener.sendto(data, self.client)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, target: str, port: int) -> None:
        self.target, self.port = target, port
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[tuple, _Upstream] = {}
        self.pending: set[asyncio.Future] = set()  # sends under way (kept until done)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        future = asyncio.ensure_future(self._send(data, addr))
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)

    async def _send(self, data: bytes, addr: tuple) -> None:
        loop = asyncio.get_running_loop()
        upstream = self.clients.get(addr)
        if upstream is None or upstream.transport is None or upstream.transport.is_closing():
            assert self.transport is not None
            _t, upstream = await loop.create_datagram_endpoint(lambda: _Upstream(self.transport, addr),  # type: ignore[arg-type]
                                                               remote_addr=(self.target, self.port))
            self.clients[addr] = upstream
        upstream.last = loop.time()
        assert upstream.transport is not None
        upstream.transport.sendto(data)

    async def expire(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE / 4)
            now = asyncio.get_running_loop().time()
            for addr, up in list(self.clients.items()):
                if now - up.last > UDP_IDLE and up.transport is not None:
                    up.transport.close()
                    del self.clients[addr]


async def _serve(sockets: list[tuple[Forward, socket.socket]], target: str, ready: str) -> None:
    loop = asyncio.get_running_loop()
    tasks = []
    for forward, sock in sockets:
        port = forward.container_port
        if forward.protocol == "tcp":
            await asyncio.start_server(functools.partial(_relay, target=target, port=port), sock=sock)
        else:
            _t, listener = await loop.create_datagram_endpoint(functools.partial(_Listener, target, port), sock=sock)
            tasks.append(asyncio.ensure_future(listener.expire()))
    with open(ready, "w"):
        pass
    await asyncio.Event().wait()


def run(netns: str, target: str, ready: str, specs: list[str]) -> None:
    """Listen on [::1] here (the host), move into `netns`, relay to `target` there."""
    forwards = [parse(s) for s in specs]
    sockets = [(f, _listen(f)) for f in forwards]  # in the host's namespace
    _enter(netns)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    shown = ", ".join(f"[::1]:{f.host_port}/{f.protocol} -> [{target}]:{f.container_port}" for f in forwards)
    print(f"port proxy in {netns}: {shown}", file=sys.stderr, flush=True)
    try:
        asyncio.run(_serve(sockets, target, ready))
    except KeyboardInterrupt:
        pass
