"""Builtins without root: what ports_free reads from nft's listing of the ruleset (the sandbox tests refuse for real)."""

from __future__ import annotations

from nsgen import builtins

RULESET = """table ip filter {
\tchain FORWARD {
\t\ttype filter hook forward priority filter; policy accept;
\t}
}
table inet nsgen-first {
\tcomment "nsgen:first"
\tmap dnat_ip_udp {
\t\ttype inet_service . ipv4_addr : ipv4_addr . inet_service
\t\tflags interval
\t\telements = { 9000 . 0.0.0.0/0 comment "published port 9000-9001:90-91/udp (9000 to 90) goes to c" : 172.30.0.2 . 90,
\t\t\t     5353 . 127.0.0.1 comment "published port 127.0.0.1:5353:53/udp goes to c" : 172.30.0.2 . 53 }
\t}

\tmap dnat_ip6_tcp {
\t\ttype inet_service . ipv6_addr : ipv6_addr . inet_service
\t\tflags interval
\t\telements = { 8080 . ::/0 : fd00:30::2 . 80 }
\t}

\tset published_ip {
\t\ttype ifname . ipv4_addr . inet_proto . inet_service
\t\telements = { "br-n" . 172.30.0.2 . udp . 53 comment "connections to c's published port 127.0.0.1:5353:53/udp" }
\t}

\tchain published_ports {
\t\tdnat ip to udp dport . ip daddr map @dnat_ip_udp comment "published UDP ports (ip)"
\t}
}
table inet someone {
\tmap dnat_ip_tcp {
\t\ttype inet_service . ipv4_addr : ipv4_addr . inet_service
\t\telements = { 22 . 0.0.0.0/0 : 10.0.0.2 . 22 }
\t}
}
"""


def test_ports_free_reads_the_published_ports_of_nsgens_nft_tables(monkeypatch):
    """The elements of nsgen's tables' maps of published ports, by protocol, host address and port; no other table's."""
    monkeypatch.setattr(builtins, "_run", lambda argv, stdin=None: builtins.Result(0, RULESET if argv[0] == "nft" else "", ""))
    monkeypatch.setattr(builtins, "listeners", list)  # no socket listens
    assert [row[:4] for row in builtins._dnat_rules()] == [
        ("udp", "0.0.0.0", 9000, "nsgen:first"), ("udp", "127.0.0.1", 5353, "nsgen:first"), ("tcp", "::", 8080, "nsgen:first")]
    assert builtins.ports_free("nsgen:second", "udp:9000:198.51.100.1").stderr == (
        "host port 9000/udp is already published by nsgen topology first; nothing was changed")
    assert builtins.ports_free("nsgen:first", "udp:9000:*").returncode == 0  # its own
    assert builtins.ports_free("nsgen:second", "udp:5353:127.0.0.2").returncode == 0  # another address
