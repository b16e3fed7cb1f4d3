"""Which firewall backend a plan writes through, and what the script's header and `nsgen run`
say of it: named by the topology, by NSGEN_FIREWALL, or chosen by auto from the programs the host
has; and the programs a plan of each backend needs (an nftables plan needs no iptables)."""

from __future__ import annotations

import pytest

from nsgen.plan import compile_plan
from tests.helpers import fixed_env, topology

TEXT = """
name: lab
networks:
  front: {subnet: 172.20.0.0/24}
containers:
  web: {networks: [front], ports: ["8080:80"]}
"""


def plan(host: str = "", installed: tuple[str, ...] = (), default: str = "iptables"):
    env = fixed_env()._replace(which=lambda name: f"/usr/sbin/{name}" if name in installed else None,
                               default_firewall=lambda: default)
    return compile_plan(topology(TEXT + host, env))


@pytest.mark.parametrize(("host", "installed", "default", "backend", "note"), [
    ("", ("nft", "iptables"), "iptables", "iptables", ""),
    ("host: {firewall: iptables}", ("nft",), "nftables", "iptables", ""),
    ("host: {firewall: nftables}", (), "iptables", "nftables", "firewall: nftables (one inet table, nsgen-lab), as the topology says"),
    ("", (), "nftables", "nftables", "firewall: nftables, as NSGEN_FIREWALL says (the topology names none)"),
    ("host: {firewall: auto}", ("nft",), "iptables", "nftables",
     "firewall: auto chose nftables: nft is installed and iptables is not"),
    ("", ("nft",), "auto", "nftables", "firewall: auto chose nftables: nft is installed and iptables is not"),
    ("host: {firewall: auto}", ("nft", "iptables"), "iptables", "iptables", "firewall: auto chose iptables: iptables is installed (nft too)"),
    ("host: {firewall: auto}", ("iptables",), "iptables", "iptables", "firewall: auto chose iptables: iptables is installed"),
    ("host: {firewall: auto}", (), "iptables", "iptables",
     "firewall: auto chose iptables: neither nft nor iptables is installed (setup will say which package to install)"),
])
def test_the_backend_and_why(host, installed, default, backend, note):
    chosen = plan(host, installed, default)
    assert (chosen.topology.host.firewall, chosen.firewall_note) == (backend, note)


def test_an_nftables_plan_needs_no_iptables_program():
    """ports_free and other_firewall read iptables' rules where it is installed, and demand it nowhere;
    forward_pass writes through it where it is installed."""
    assert plan("host: {firewall: nftables}").tools == ("flock", "ip", "nft", "nsenter", "ss", "sysctl")
    assert plan().tools == ("flock", "ip", "iptables", "iptables-restore", "nsenter", "ss", "sysctl")
