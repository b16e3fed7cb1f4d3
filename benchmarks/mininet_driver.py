"""The Mininet side of benchmarks/peers.py: N hosts on one Linux bridge, a NAT node as their gateway
and default route, one published TCP port each, brought up and down by Mininet's Python API.

Run inside the sandbox with the Python that has Mininet (/usr/bin/python3), by peers.py only:

    python3 mininet_driver.py N SUBNET GATEWAY FIRST_PORT CONTAINER_PORT ADDRESS...

It builds and starts the network, then prints one JSON line: its CPU seconds so far (its own and
its children's) and each host's shell PID (peers.py runs its checks in a host with `mnexec -a PID`).
Then it waits for a line on stdin, stops the network and exits. A line on stdout that starts with
"error:" says why it could not.

Mininet has no published ports: each is one `iptables -t nat -A PREROUTING ... -j DNAT` run in the
NAT node (the host's own namespace), and removed again before the network stops, as the tutorial's
way by hand does it.
"""

from __future__ import annotations

import json
import resource
import sys


def cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    n, subnet, gateway, first_port, container_port = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                                      int(sys.argv[4]), int(sys.argv[5]))
    prefix = subnet.split("/")[1]
    addresses = sys.argv[6:6 + n]
    try:
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.nodelib import LinuxBridge
    except ImportError as exc:
        print(f"error: Mininet cannot be imported: {exc}", flush=True)
        return
    setLogLevel("error")
    net = Mininet(switch=LinuxBridge, controller=None, build=False, waitConnected=False,
                  ipBase=subnet)
    switch = net.addSwitch("s1")
    hosts = []
    for i, address in enumerate(addresses):
        host = net.addHost(f"h{i}", ip=f"{address}/{prefix}")
        net.addLink(host, switch)
        hosts.append(host)
    nat = net.addNAT(name="nat0", ip=f"{gateway}/{prefix}", connect=switch)
    rules = [f"-p tcp --dport {first_port + i} -j DNAT --to-destination {address}:{container_port}"
             for i, address in enumerate(addresses)]
    try:
        net.build()
        net.start()
        # addNAT gives every host its default route when it is called, before build() has given
        # the hosts their addresses (the route is refused then): give it again, as Mininet would.
        for host in hosts:
            host.setDefaultRoute(f"via {gateway}")
        for rule in rules:
            nat.cmd(f"iptables -t nat -A PREROUTING {rule}")
    except Exception as exc:  # Mininet raises bare Exceptions
        print(f"error: {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
        net.stop()
        return
    print(json.dumps({"cpu": cpu(), "pids": [host.pid for host in hosts]}), flush=True)
    sys.stdin.readline()
    for rule in rules:
        nat.cmd(f"iptables -t nat -D PREROUTING {rule}")
    net.stop()


if __name__ == "__main__":
    main()
