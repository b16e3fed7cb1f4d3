"""Published ports beyond one port on every address, on real kernel objects in a sandbox: port
ranges (TCP and UDP, IPv4 and IPv6, [::1] through the port proxy), one host port published at
several host addresses (to one container, and to two containers on two loopback addresses other
than 127.0.0.1), and SCTP, which this machine's kernel may not have."""

from __future__ import annotations

import json
import re
import time

import pytest

from nsgen.sandbox.host import WORLD_LINK
from tests import fw
from tests.drive import NSGEN, Driver, curl, wait_for
from tests.faults import SYSTEM_PATH
from tests.sandbox import HOST_ADDR, HOST_ADDR6, WORLD_NS
from tests.test_exposure_sandbox import drivers, listener, published, route_loopback_out
from tests.test_reliability_sandbox import setup_argv

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

# Extra addresses of the host on its uplink, reached by the world like HOST_ADDR
EXTRA = ("198.51.100.24", "198.51.100.25")

# TCP servers that answer GET /who with NAME:PORT, one for each port given; UDP servers that
# answer any datagram with NAME:PORT. One process: it is ready when the last port is bound.
SERVERS = """
import http.server, os, socket, sys, threading
name, tcp, udp = sys.argv[1], sys.argv[2].split(","), [p for p in sys.argv[3:4] if p]
class Who(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name}:{self.server.server_address[1]}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
class Dual(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); super().server_bind()
def answer(s, port):
    while True:
        data, peer = s.recvfrom(100); s.sendto(f"{name}:{port}".encode(), peer)
for port in (int(p) for p in udp[0].split(",")) if udp else ():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); threading.Thread(target=answer, args=(s, port), daemon=True).start()
servers = [Dual(("::", int(p)), Who) for p in tcp]
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""


def servers(script, name: str, tcp: str, udp: str = "") -> str:
    """A process entry that serves NAME:PORT on each TCP port (and UDP port) listed, ready on the last TCP one."""
    return f'{{command: [python3, "{script}", {name}, "{tcp}", "{udp}"], ready: "tcp:{tcp.split(",")[-1]}"}}'


def ports_topology(tmp_path) -> str:
    script = tmp_path / "servers.py"
    script.write_text(SERVERS)
    return f"""
name: ports-lab
networks:
  front: {{subnet: [172.20.0.0/24, "fd00:20::/64"]}}
containers:
  web:
    networks: [front]
    ports:
      - "8080-8082:80-82"
      - "9090-9092:90-92/udp"
      - "[::1]:8180-8181:80-81"
      - "{EXTRA[0]}:7000:80"
      - "{EXTRA[1]}:7000:81"
      - "{EXTRA[0]}:7001:82"
      - "{EXTRA[1]}:7001:82"
    processes:
      - {servers(script, "web", "80,81,82", "90,91,92")}
  a:
    networks: [front]
    ports: ["127.0.1.2:1716:80"]
    processes:
      - {servers(script, "a", "80")}
  b:
    networks: [front]
    ports: ["127.0.1.3:1716:80"]
    processes:
      - {servers(script, "b", "80")}
"""


def udp_answer(sb, ns: str | None, address: str, port: int) -> str | None:
    """The answer to one datagram to address:port (from the host, or from inside ns), or None."""
    code = ("import socket, sys; s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM); "
            "s.settimeout(1); s.sendto(b'hi', (sys.argv[1], int(sys.argv[2]))); print(s.recv(100).decode())")
    argv = ["python3", "-c", code, address, str(port)]
    for _ in range(3):
        done = sb.run(argv if ns is None else ["ip", "netns", "exec", ns, *argv], check=False)
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def who(sb, ns: str | None, address: str, port: int) -> str | None:
    host = f"[{address}]" if ":" in address else address
    return curl(sb, ns, f"http://{host}:{port}/who")


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_port_ranges_and_one_port_at_several_addresses(sandbox, tmp_path, mode, firewall_backend):
    sb = sandbox
    for address in EXTRA:
        sb.run(["ip", "addr", "add", f"{address}/32", "dev", WORLD_LINK])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, ports_topology(tmp_path))
    driver.up()
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8082/who"]).stdout == "web:82"

    # each port of a range reaches its own port in the container: from outside, from the host, by hairpin
    for offset in range(3):
        expected = f"web:{80 + offset}"
        assert who(sb, WORLD_NS, HOST_ADDR, 8080 + offset) == expected
        assert who(sb, WORLD_NS, HOST_ADDR6, 8080 + offset) == expected
        assert who(sb, None, "127.0.0.1", 8080 + offset) == expected
        assert who(sb, None, HOST_ADDR, 8080 + offset) == expected
        assert who(sb, "a", HOST_ADDR, 8080 + offset) == expected
        assert who(sb, "web", "172.20.0.1", 8080 + offset) == expected
        assert udp_answer(sb, WORLD_NS, HOST_ADDR, 9090 + offset) == f"web:{90 + offset}"
        assert udp_answer(sb, "web", HOST_ADDR, 9090 + offset) == f"web:{90 + offset}"
    assert who(sb, None, "::1", 8180) == "web:80" and who(sb, None, "::1", 8181) == "web:81"  # the port proxy serves a range
    assert who(sb, WORLD_NS, HOST_ADDR, 8083) is None and who(sb, WORLD_NS, HOST_ADDR, 8079) is None

    # one host port at two host addresses, each to its own container port; at neither, nothing
    for ns in (WORLD_NS, None, "a", "web"):
        assert who(sb, ns, EXTRA[0], 7000) == "web:80", ns
        assert who(sb, ns, EXTRA[1], 7000) == "web:81", ns
        assert who(sb, ns, EXTRA[0], 7001) == "web:82" and who(sb, ns, EXTRA[1], 7001) == "web:82"
    assert who(sb, WORLD_NS, HOST_ADDR, 7000) is None

    # one host port at two loopback addresses, each to its own container; from the host only
    assert who(sb, None, "127.0.1.2", 1716) == "a:80"
    assert who(sb, None, "127.0.1.3", 1716) == "b:80"
    assert who(sb, None, "127.0.0.1", 1716) is None
    route_loopback_out(sb, WORLD_NS, HOST_ADDR, "host0")
    assert who(sb, WORLD_NS, "127.0.1.2", 1716) is None

    saved = fw.rules(sb, "ports-lab")
    if firewall_backend == "iptables":
        assert "-A NSGEN-ports-lab -d 198.51.100.24/32 -p tcp -m tcp --dport 7000 " in saved
        assert "-A NSGEN-ports-lab -d 127.0.1.3/32 -p tcp -m tcp --dport 1716 " in saved
    else:  # elements of the map of published TCP ports: host port . host address : container address . port
        assert re.search(r"7000 \. 198\.51\.100\.24 comment \"[^\"]*\" : 172\.20\.0\.2 \. 80\b", saved), saved
        assert re.search(r"1716 \. 127\.0\.1\.3 comment \"[^\"]*\" : 172\.20\.0\.4 \. 80\b", saved), saved
    checked = sb.run([*NSGEN, "check", "--probe", "-f", str(driver.topology)], check=False)
    assert checked.returncode == 0, checked.stdout
    for probe in ("host → published 127.0.1.3:1716 → b 172.20.0.4:80", "a → published 198.51.100.25:7000 → web 172.20.0.2:81",
                  "host → published [::1]:8181 → web [fd00:20::2]:81", "web → published [fd00:20::1]:8082 → web [fd00:20::2]:82"):
        assert f"PASS  probe      {probe}" in checked.stdout, checked.stdout
    status = json.loads(sb.run([*NSGEN, "status", "--json", "-f", str(driver.topology)]).stdout)
    assert status["containers"][0]["ports"] == ["*:8080-8082->80-82/tcp", "*:9090-9092->90-92/udp", "[::1]:8180-8181->80-81/tcp", "198.51.100.24:7000->80/tcp",
                                  "198.51.100.25:7000->81/tcp", "198.51.100.24:7001->82/tcp", "198.51.100.25:7001->82/tcp"]

    driver.down()
    assert sb.snapshot() == before


# -- SCTP ---------------------------------------------------------------------------------------

SCTP = """
name: sctp-lab
networks:
  n: {subnet: 172.30.0.0/24}
containers:
  web:
    networks: [n]
    ports: ["8080:80/sctp", "9000-9001:90-91/sctp"]
"""
NO_SCTP = ("published port 8080:80/sctp needs SCTP, which this kernel does not have (no /proc/net/sctp, and modprobe finds "
           "no sctp module); nothing was changed")


def kernel_has_sctp(sb) -> bool:
    """Whether the sandbox's kernel opens SCTP sockets (loading the module if it is one)."""
    code = "import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)"
    return sb.run(["python3", "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("mode", ["script", "run"])
def test_sctp_without_the_kernels_sctp_is_a_preflight_error(sandbox, tmp_path, mode):
    sb = sandbox
    if kernel_has_sctp(sb):
        pytest.skip("this kernel has SCTP: nothing to refuse")
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, SCTP)
    done = sb.run(setup_argv(driver), check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith(NO_SCTP), done.stderr
    assert "Traceback" not in done.stderr and "failed" not in done.stderr
    assert sb.snapshot() == before


# An SCTP INIT from the world to HOST:PORT, over a raw socket: it needs no SCTP in the kernel. The
# checksum is CRC32c, as connection tracking checks it (sent in little-endian byte order).
SEND_INIT = """
import socket, struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
init = struct.pack("!BBHIIHHI", 1, 0, 20, 0x12345678, 65536, 1, 1, 1)
packet = struct.pack("!HHII", 40000, int(sys.argv[2]), 0, 0) + init
packet = packet[:8] + struct.pack("<I", crc32c(packet)) + packet[12:]
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_SCTP).sendto(packet, (sys.argv[1], 0))
"""
# In the container: every SCTP packet that arrives, as DESTINATION:PORT lines in a file.
RECEIVE = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_SCTP)
while True:
    data = s.recv(2000)
    header = (data[0] & 15) * 4
    with open(sys.argv[1], "a") as f:
        f.write(f"{socket.inet_ntoa(data[16:20])}:{struct.unpack('!H', data[header + 2:header + 4])[0]}\\n")
"""


@pytest.mark.parametrize("mode", ["script", "run"])
def test_sctp_ports_are_published_like_tcp_and_udp(sandbox, tmp_path, mode, firewall_backend):
    """The rules for SCTP load in the kernel and carry SCTP from outside to the container's port.
    On a kernel without SCTP sockets (but with SCTP's connection tracking and iptables match), a
    stand-in modprobe lets setup past the preflight check; the packets are raw SCTP."""
    sb = sandbox
    env = None
    if not kernel_has_sctp(sb):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "modprobe").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "modprobe").chmod(0o755)
        env = {"PATH": f"{bin_dir}:{SYSTEM_PATH}"}
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, SCTP)
    sb.run(setup_argv(driver), env=env)
    got = tmp_path / "received"
    got.write_text("")
    receiver = tmp_path / "receive.py"
    receiver.write_text(RECEIVE)
    sb.sh(f"ip netns exec web python3 {receiver} {got} >/dev/null 2>&1 &")
    for port, inside in ((8080, 80), (9000, 90), (9001, 91)):
        for _ in range(20):
            sb.in_ns(WORLD_NS, ["python3", "-c", SEND_INIT, HOST_ADDR, str(port)])
            if f"172.30.0.2:{inside}\n" in got.read_text():
                break
            time.sleep(0.1)
        assert f"172.30.0.2:{inside}\n" in got.read_text(), (port, got.read_text())
    if firewall_backend == "iptables":  # (nsgen's nft rules count nothing: the packets received are the proof)
        counted = sb.run(["iptables", "-t", "nat", "-L", "NSGEN-sctp-lab", "-v", "-n", "-x"]).stdout
        assert all(int(line.split()[0]) > 0 for line in counted.splitlines() if "sctp dpt:" in line), counted
    assert sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False).returncode == 0
    driver.down()
    assert sb.snapshot() == before


# -- one host port at several addresses, against what the host already holds --------------------


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_port_held_at_one_loopback_address_is_free_at_another(sandbox, tmp_path, mode):
    """A host program on 127.0.1.2:1716, and topology first publishing 1716 at 127.0.1.3: a second
    topology is refused the port at either of those addresses, and gets it at 127.0.1.4."""
    sb = sandbox
    pid = listener(sb, "tcp", "127.0.1.2", 1716)
    (first,) = drivers(sb, tmp_path, ("run", published("127.0.1.3:1716:80", name="first")))
    first.up()
    before = sb.snapshot()
    refused = {"127.0.1.2": f"host port 1716/tcp is already in use: python3 (pid {pid}) listens on 127.0.1.2:1716; nothing was changed",
               "127.0.1.3": "host port 1716/tcp is already published by nsgen topology first; nothing was changed",
               "0.0.0.0": f"host port 1716/tcp is already in use: python3 (pid {pid}) listens on 127.0.1.2:1716; nothing was changed"}
    for address, message in refused.items():
        (tmp_path / address).mkdir()
        second = Driver(sb, tmp_path / address, mode, published(f"{address}:1716:80", name="second", subnet="172.31.0.0/24"))
        done = second.up(check=False)
        assert done.returncode != 0 and message in done.stderr, (address, done.stderr)
        assert sb.snapshot() == before
    (tmp_path / "free").mkdir()
    second = Driver(sb, tmp_path / "free", mode, published("127.0.1.4:1716:80", name="second", subnet="172.31.0.0/24"))
    second.up()
    second.down()
    first.down()
