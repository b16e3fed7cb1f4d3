"""Sweep without root: what it reads from an nftables table's listing (the sandbox tests find and remove it for real)."""

from __future__ import annotations

import json

from nsgen import sweep

# `nft -j list table inet nsgen-t1` (nft 1.0.6) of a topology publishing 9000-9001/udp on every
# address of both families, 5353/udp at 127.0.0.1 and 8080/tcp: elements with and without comments
LISTED = {"nftables": [
    {"metainfo": {"version": "1.0.6"}},
    {"table": {"family": "inet", "name": "nsgen-t1", "handle": 9}},
    {"map": {"family": "inet", "name": "dnat_ip_udp", "table": "nsgen-t1", "elem": [
        [{"elem": {"val": {"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, 9000]}, "comment": "a"}}, {"concat": ["172.30.0.2", 90]}],
        [{"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, 9001]}, {"concat": ["172.30.0.2", 91]}],
        [{"elem": {"val": {"concat": ["127.0.0.1", 5353]}, "comment": "b"}}, {"concat": ["172.30.0.2", 53]}]]}},
    {"map": {"family": "inet", "name": "dnat_ip_tcp", "table": "nsgen-t1", "elem": [
        [{"elem": {"val": {"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, 8080]}, "comment": "c"}}, {"concat": ["172.30.0.2", 80]}]]}},
    {"map": {"family": "inet", "name": "dnat_ip6_udp", "table": "nsgen-t1", "elem": [
        [{"elem": {"val": {"concat": [{"prefix": {"addr": "::", "len": 0}}, 9000]}, "comment": "d"}}, {"concat": ["fd00:30::2", 90]}]]}},
    {"set": {"family": "inet", "name": "published_ip", "table": "nsgen-t1", "elem": [{"concat": ["br-n", "172.30.0.2", "udp", 53]}]}},
]}


def test_the_udp_ports_of_the_tables_maps_are_those_its_teardown_forgets():
    assert sorted(sweep._udp_elements(json.loads(json.dumps(LISTED)))) == [5353, 9000, 9000, 9001]
    assert sweep._udp_elements({"nftables": []}) == []
