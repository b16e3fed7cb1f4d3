"""The input catalogue: every bad input gets one exact message, exit status 1, and nothing is run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from nsgen import hostinfo
from nsgen.cli import main
from tests.conftest import count
from tests.helpers import ROOT
from tests.test_models import BRIDGE, BRIDGE_CASES, CASES, TUTORIAL

EXTRA = [
    # names: every character class that could escape a path, a tag or a shell line
    ("  container-1:", "  'web/../../etc':", "containers.web/../../etc: container name 'web/../../etc' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c:1':", "containers.c:1: container name 'c:1' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c 1':", "containers.c 1: container name 'c 1' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c%1':", "containers.c%1: container name 'c%1' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  '-c':", "containers.-c: container name '-c' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  '$(reboot)':", "containers.$(reboot): container name '$(reboot)' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'c`id`':", "containers.c`id`: container name 'c`id`' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  '..':", "containers...: container name '..' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  'contäiner':", "containers.contäiner: container name 'contäiner' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("  container-1:", "  " + "c" * 65 + ":", f"containers.{'c' * 65}: container name '{'c' * 56}... is 65 bytes long; the limit is 64"),
    ("networks:\n  link0:", "networks:\n  'li;nk': {subnet: 10.1.0.0/24}\n  link0:", "networks.li;nk: network name 'li;nk' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("name: tutorial", "name: \"tutorial\\nx\"", "name: topology name 'tutorial\\nx' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("name: tutorial", "name: 42", "name: topology name must be a string, got 42"),
    ("name: tutorial", "name: \"tutorial\\n\"", "name: topology name 'tutorial\\n' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    ("networks:\n  link0:", "networks:\n  \"n\\nx\": {subnet: 10.1.0.0/24}\n  link0:", "networks.'n\\nx': network name 'n\\nx' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"),
    # addresses
    ("address: 172.18.0.2", "address: 172.18.0.0", "containers.container-1.networks.link0.address: 172.18.0.0 is the network address of 172.18.0.0/24"),
    ("address: 172.18.0.2", "address: 0172.18.0.2", "containers.container-1.networks.link0.address: '0172.18.0.2' is not an IP address (like 172.18.0.2 or fd00:18::2)"),
    ("address: 172.18.0.2", "address: 172.18.0.2/24", "containers.container-1.networks.link0.address: '172.18.0.2/24' is not an IP address (like 172.18.0.2 or fd00:18::2)"),
    ("address: 172.18.0.2", "address: 2886860802", "containers.container-1.networks.link0.address: must be an IP address written as a string, got 2886860802"),
    ("subnet: 172.18.0.0/24", "subnet: 010.0.0.0/8", "networks.link0.subnet: '010.0.0.0/8' is not a subnet (like 172.18.0.0/24 or fd00:18::/64)"),
    ("gateway: 172.18.0.1", "gateway: 172.18.0.255", "networks.link0.gateway: 172.18.0.255 is the broadcast address of 172.18.0.0/24, not a usable host address"),
    ("subnet: 172.18.0.0/24", "subnet: 0.0.0.0/0", "networks.link0.subnet: 0.0.0.0/0 overlaps 0.0.0.0/8 ('this network') and cannot be a container network"),
    ("subnet: 172.18.0.0/24", "subnet: 240.0.0.0/24", "networks.link0.subnet: 240.0.0.0/24 is a reserved range and cannot be a container network"),
    # DNS
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1, 1.0.0.1, 8.8.8.8, 9.9.9.9]", "containers.container-1.dns: lists 4 nameservers; resolv.conf uses at most 3"),
    ("    dns: [1.1.1.1]", "    dns: 1.1.1.1", "containers.container-1.dns: must be a list of nameserver addresses, got '1.1.1.1'"),
    ("    dns: [1.1.1.1]", "    dns: ['1.1.1.1 # x']", "containers.container-1.dns[0]: '1.1.1.1 # x' is not an IP address"),
    # processes
    ("      - nsgen echo-server --port 8000", "      - ''", "containers.container-1.processes[0]: is an empty command"),
    ("      - nsgen echo-server --port 8000", "      - [nsgen, 3]", "containers.container-1.processes[0]: must be a command string or a list of strings, got ['nsgen', 3]"),
    ("      - nsgen echo-server --port 8000", '      - "a\\0b"', "containers.container-1.processes[0]: word 'a\\x00b' contains a NUL byte or a newline"),
    ("    dns: [1.1.1.1]", "    dns: [\"fe80::1%eth0\\nnameserver 6.6.6.6\"]", "containers.container-1.dns[0]: 'fe80::1%eth0\\nnameserver 6.6.6.6' has a scope after '%' that is not an interface name (letters, digits, '_', '.', '-', at most 15 bytes)"),
    ("    dns: [1.1.1.1]", "    dns: ['fe80::1%$(reboot)']", "containers.container-1.dns[0]: 'fe80::1%$(reboot)' has a scope after '%' that is not an interface name (letters, digits, '_', '.', '-', at most 15 bytes)"),
    ("    dns: [1.1.1.1]", "    dns: ['fe80::1%']", "containers.container-1.dns[0]: 'fe80::1%' has a scope after '%' that is not an interface name (letters, digits, '_', '.', '-', at most 15 bytes)"),
    ("    dns: [1.1.1.1]", "    dns: ['fe80::1%abcdefghijklmnop']", "containers.container-1.dns[0]: 'fe80::1%abcdefghijklmnop' has a scope after '%' that is not an interface name (letters, digits, '_', '.', '-', at most 15 bytes)"),
    ("    dns: [1.1.1.1]", "    dns: ['1.1.1.1%eth0']", "containers.container-1.dns[0]: '1.1.1.1%eth0' is not an IP address (an IPv4 address has no scope)"),
    # interface names that iproute2's ip reads as keywords, or that the kernel refuses
    ("interface: veth1", "interface: dev", "containers.container-1.networks.link0.interface: interface name 'dev' is a keyword of iproute2's ip, which would not read it as a device name"),
    ("interface: veth1", "interface: up", "containers.container-1.networks.link0.interface: interface name 'up' is a keyword of iproute2's ip, which would not read it as a device name"),
    ("interface: veth1", "interface: help", "containers.container-1.networks.link0.interface: interface name 'help' is a keyword of iproute2's ip, which would not read it as a device name"),
    ("interface: veth1", "interface: default", "containers.container-1.networks.link0.interface: interface name 'default' is refused by the kernel (net.ipv4.conf.default names a setting, not a device)"),
    ("interface: veth1", "interface: secondary", "containers.container-1.networks.link0.interface: interface name 'secondary' is a keyword of iproute2's ip, which would not read it as a device name"),
    ("host_interface: vethc1", "host_interface: group", "containers.container-1.networks.link0.host_interface: interface name 'group' is a keyword of iproute2's ip, which would not read it as a device name"),
    ("host_interface: vethc1", "host_interface: all", "containers.container-1.networks.link0.host_interface: interface name 'all' is refused by the kernel (net.ipv4.conf.all names a setting, not a device)"),
    ("host_interface: vethc1", "host_interface: br", "containers.container-1.networks.link0.host_interface: interface name 'br' is read by iproute2's ip as its keyword 'broadcast' (ip takes abbreviations), not as a device name"),
    ("host_interface: vethc1", "host_interface: a", "containers.container-1.networks.link0.host_interface: interface name 'a' is read by iproute2's ip as its keyword 'address' (ip takes abbreviations), not as a device name"),
    ("host_interface: vethc1", "host_interface: lo", "containers.container-1.networks.link0.host_interface: 'lo' is the host's loopback interface; nsgen cannot make a device of that name"),
    # names: aliases are host names (RFC 1123)
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: [api_v1]", "containers.container-1.networks.link0.aliases[0]: 'api_v1' is not a host name: dot-separated labels of letters, digits and '-' (not first or last), each 1 to 63 characters"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: [-api]", "containers.container-1.networks.link0.aliases[0]: '-api' is not a host name: dot-separated labels of letters, digits and '-' (not first or last), each 1 to 63 characters"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: [api..internal]", "containers.container-1.networks.link0.aliases[0]: 'api..internal' is not a host name: dot-separated labels of letters, digits and '-' (not first or last), each 1 to 63 characters"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: ['api;reboot']", "containers.container-1.networks.link0.aliases[0]: 'api;reboot' is not a host name: dot-separated labels of letters, digits and '-' (not first or last), each 1 to 63 characters"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: [" + ".".join(["a" * 50] * 5) + "]", f"containers.container-1.networks.link0.aliases[0]: '{'a' * 50}.{'a' * 5}... is 254 characters long; the limit is 253"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: [10.0.0.1]", "containers.container-1.networks.link0.aliases[0]: '10.0.0.1' is an IP address, not a host name"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: [LocalHost]", "containers.container-1.networks.link0.aliases[0]: 'LocalHost' is a name of the loopback address in every container"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: api", "containers.container-1.networks.link0.aliases: must be a list of host names like [api, api.internal], got 'api'"),
    ("address: 172.18.0.2", "address: 172.18.0.2\n        aliases: [3]", "containers.container-1.networks.link0.aliases[0]: must be a host name (a string), got 3"),
    # a container's own sysctls: net.* only, one word each
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1]\n    sysctls: {kernel.pid_max: 100}", "containers.container-1.sysctls.kernel.pid_max: 'kernel.pid_max' is not a net.* sysctl: only those belong to the container's network namespace; any other is the whole host's"),
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1]\n    sysctls: {net.ipv4.IP_forward: 1}", "containers.container-1.sysctls.net.ipv4.IP_forward: 'net.ipv4.IP_forward' is not a sysctl key: dotted words of a-z, 0-9, '_' and '-' (like net.ipv4.ip_forward)"),
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1]\n    sysctls: {net/ipv4/ip_forward: 1}", "containers.container-1.sysctls.net/ipv4/ip_forward: 'net/ipv4/ip_forward' is not a sysctl key: dotted words of a-z, 0-9, '_' and '-' (like net.ipv4.ip_forward)"),
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1]\n    sysctls: {net.ipv4.ip_forward: \"1\\n\"}", "containers.container-1.sysctls.net.ipv4.ip_forward: '1\\n' must be a value on one line, without NUL (a number, a word, or words like '0 2147483647')"),
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1]\n    sysctls: {net.ipv4.ip_forward: true}", "containers.container-1.sysctls.net.ipv4.ip_forward: must be a string or a number, got True"),
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1]\n    sysctls: [net.ipv4.ip_forward=1]", "containers.container-1.sysctls: must be a mapping (key: value), got list ['net.ipv4.ip_forward=1']"),
    # a process's environment, user and working directory
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, environment: {A-B: x}}", "containers.container-1.processes[0].environment.A-B: 'A-B' is not an environment variable name: use letters, digits and '_', not starting with a digit"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, environment: {1A: x}}", "containers.container-1.processes[0].environment.1A: '1A' is not an environment variable name: use letters, digits and '_', not starting with a digit"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, environment: {A: [x]}}", "containers.container-1.processes[0].environment.A: must be a string or a number, got ['x']"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, environment: {A: \"x\\ny\"}}", "containers.container-1.processes[0].environment.A: 'x\\ny' contains a NUL byte or a newline"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, environment: [A=x]}", "containers.container-1.processes[0].environment: must be a mapping (key: value), got list ['A=x']"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, user: no-such-user-nsgen}", "containers.container-1.processes[0].user: user 'no-such-user-nsgen' does not exist on this host"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, user: 'nobody:no-such-group-nsgen'}", "containers.container-1.processes[0].user: group 'no-such-group-nsgen' does not exist on this host"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, user: 'a:b:c'}", "containers.container-1.processes[0].user: 'a:b:c' is not NAME, UID, NAME:GROUP or UID:GID"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, user: 'nobody:'}", "containers.container-1.processes[0].user: 'nobody:' is not NAME, UID, NAME:GROUP or UID:GID"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, user: 4294967295}", "containers.container-1.processes[0].user: uid 4294967295 is out of range 0-4294967294"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, user: [nobody]}", "containers.container-1.processes[0].user: must be NAME, UID, NAME:GROUP or UID:GID (a string), got ['nobody']"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, working_dir: tmp}", "containers.container-1.processes[0].working_dir: must be an absolute path (starting with '/', without NUL or newline), got 'tmp'"),
    ("      - nsgen echo-server --port 8000", "      - {command: sleep 1, working_dir: /no/such/dir/nsgen}", "containers.container-1.processes[0].working_dir: '/no/such/dir/nsgen' is not a directory on this host"),
    # shapes
    ("host:\n", "hostx:\n", "hostx: unknown key 'hostx'; did you mean 'host'?"),
    # a key indented one level off lands in another mapping: the message says where it belongs
    ("    masquerade: true            # default true", "masquerade: true",
     "masquerade: unknown key 'masquerade'; 'masquerade' is a key of a network (under networks.<name>): check its indentation"),
    ("  persist: false", "persist: false",
     "persist: unknown key 'persist'; 'persist' is a key of the host settings (under host): check its indentation"),
    ("    masquerade: true            # default true", "  masquerade: true",
     "networks.masquerade: must be a mapping (key: value), got bool True; 'masquerade' is a key of a network (under networks.<name>): check its indentation"),
    ("    dns: [1.1.1.1]", "    dns: [1.1.1.1]\n    subnet: 172.18.0.0/24",
     "containers.container-1.subnet: unknown key 'subnet'; 'subnet' is a key of a network (under networks.<name>): check its indentation"),
]

BRIDGE_EXTRA = [
    ("    bridge: br-back", "    bridge: type", "networks.back.bridge: interface name 'type' is a keyword of iproute2's ip, which would not read it as a device name"),
    ("    bridge: br-back", "    bridge: typ", "networks.back.bridge: interface name 'typ' is read by iproute2's ip as its keyword 'type' (ip takes abbreviations), not as a device name"),
    ("    bridge: br-back", "    bridge: lo", "networks.back.bridge: 'lo' is the host's loopback interface; nsgen cannot make a device of that name"),
    # published ports: an IPv6 host IP needs IPv6 on the first network; Docker writes it in brackets
    ('ports: ["8080:8000"]', 'ports: ["[::]:8080:8000"]', "containers.web.ports[0]: '[::]:8080:8000' publishes on an IPv6 host address, but network 'front' (the first, where ports are published) has no IPv6 subnet"),
    ('ports: ["8080:8000"]', 'ports: ["::1:8080:8000/udp"]', "containers.web.ports[0]: '::1:8080:8000/udp': an IPv6 host IP is written in brackets: [::1]:PORT:PORT"),
    ('ports: ["8080:8000"]', 'ports: ["[::1]:8080"]', "containers.web.ports[0]: '[::1]:8080' is not [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp]"),
    ('ports: ["8080:8000"]', 'ports: ["localhost:8080:8000"]', "containers.web.ports[0]: 'localhost:8080:8000': host IP 'localhost' is not an IP address (like 127.0.0.1, or [::1] for IPv6)"),
    ('ports: ["8080:8000"]', 'ports: ["8080:8000", "0.0.0.0:8080:9000"]', "containers.web.ports[1]: host port 8080/tcp at every IPv4 address is already published by containers.web.ports[0] (8080:8000)"),
    # port ranges map one to one; one host port at several host addresses, but not twice at one
    ('ports: ["8080:8000"]', 'ports: ["8080-8082:80-81"]', "containers.web.ports[0]: '8080-8082:80-81': host port range 8080-8082 has 3 ports, container port range 80-81 has 2 ports; a host range maps one to one onto a container range of the same length"),
    ('ports: ["8080:8000"]', 'ports: ["8080-8082:80"]', "containers.web.ports[0]: '8080-8082:80': host port range 8080-8082 has 3 ports, container port 80 is 1 port; a host range maps one to one onto a container range of the same length"),
    ('ports: ["8080:8000"]', 'ports: ["8082-8080:80-82"]', "containers.web.ports[0]: '8082-8080:80-82': host port range 8082-8080 is reversed; write it low to high (8080-8082)"),
    ('ports: ["8080:8000"]', 'ports: ["127.0.0.1:8080-:80"]', "containers.web.ports[0]: '127.0.0.1:8080-:80': host port '8080-' is not a port number range (LOW-HIGH)"),
    ('ports: ["8080:8000"]', 'ports: ["65535-65536:1-2/udp"]', "containers.web.ports[0]: '65535-65536:1-2/udp': host port 65536 is out of range 1-65535"),
    ('ports: ["8080:8000"]', 'ports: ["8080-8090:80-90", "127.0.0.1:8085:85"]', "containers.web.ports[1]: host port 8085/tcp at 127.0.0.1 is already published by containers.web.ports[0] (8080-8090:80-90)"),
    ('ports: ["8080:8000"]', 'ports: ["127.0.1.2:1716:80", "127.0.1.3:1716:80", "127.0.1.2:1716:81"]', "containers.web.ports[2]: host port 1716/tcp at 127.0.1.2 is already published by containers.web.ports[0] (127.0.1.2:1716:80)"),
    ('ports: ["8080:8000"]', 'ports: ["[::1]:8080:80/sctp"]', "containers.web.ports[0]: '[::1]:8080:80/sctp': SCTP cannot be published on [::1]: the kernel never carries ::1 into a container, and nsgen's port proxy, which serves [::1], relays TCP and UDP only"),
    ('ports: ["8080:8000"]', 'ports: ["8080:80/sctp", "8080:80/udp", "8080:80", "8080:80/sctp"]', "containers.web.ports[3]: host port 8080/sctp is already published by containers.web.ports[0] (8080:80/sctp)"),
    # a name belongs to one container on a network
    ("        address: 172.21.0.10", "        address: 172.21.0.10\n        aliases: [App]", "containers.db.networks.back.aliases[0]: 'App' is already a name of container 'app' on network 'back'"),
    ("        address: 172.21.0.10", "        address: 172.21.0.10\n        aliases: [api]\n  cache: {networks: {back: {aliases: [x, api]}}}", "containers.cache.networks.back.aliases[1]: 'api' is already a name of container 'db' on network 'back'"),
    # a key indented one level off
    ("    internal: true", "    internal: true\n    ports: [\"80:80\"]",
     "networks.back.ports: unknown key 'ports'; 'ports' is a key of a container (under containers.<name>): check its indentation"),
    ("        address: 172.21.0.10", "      address: 172.21.0.10",
     "containers.db.networks.address: must be a mapping (key: value), got str '172.21.0.10'; 'address' is a key of a container's network (under containers.<name>.networks.<network>): check its indentation"),
    ("eth1 on back\n    dns: [1.1.1.1]", "eth1 on back\n  dns: [1.1.1.1]",
     "containers.dns: must be a mapping (key: value), got list ['1.1.1.1']; 'dns' is a key of a container (under containers.<name>): check its indentation"),
]

# Several problems in one file: every one is reported, in file order, none hides another, and none
# is reported again through the rules that depend on it (an address against a subnet that is invalid).
# (the file, what is changed in it, every line after "error: t.yaml: ")
MULTI_CASES = [
    ("a bad driver hides neither the subnet nor an address on the network", TUTORIAL,
     [("driver: veth", "driver: vxlan"), ("subnet: 172.18.0.0/24", "subnet: 172.18.0.1/24"), ("address: 172.18.0.2", "address: 172.18.0.300")],
     ["networks.link0.driver: 'vxlan' is not a known driver; known drivers: bridge, veth, macvlan, ipvlan",
      "networks.link0.subnet: '172.18.0.1/24' has host bits set; the subnet is 172.18.0.0/24",
      "containers.container-1.networks.link0.address: '172.18.0.300' is not an IP address (like 172.18.0.2 or fd00:18::2)"]),
    ("a network with a bad driver has each of its fields checked", BRIDGE,
     [("    subnet: 172.20.0.0/24", "    driver: vlan\n    gateway: 10.0.0.1\n    masquerade: maybe\n    subnet: 172.20.0.0/24"),
      ("bridge: br-front", "bridge: 'br front'")],
     ["networks.front.driver: 'vlan' is not a known driver; known drivers: bridge, veth, macvlan, ipvlan",
      "networks.front.gateway: 10.0.0.1 is not inside subnet 172.20.0.0/24",
      "networks.front.masquerade: must be true or false, got 'maybe'",
      "networks.front.bridge: interface name 'br front' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit"]),
    ("a container on a network whose subnet is bad has all its fields checked, but not its address against that subnet", TUTORIAL,
     [("subnet: 172.18.0.0/24", "subnet: 172.18.0.0"), ("address: 172.18.0.2", "address: 10.0.0.5"), ("interface: veth1", "interface: dev"),
      ("host_interface: vethc1", "host_interface: lo"), ("dns: [1.1.1.1]", "dns: [1.1.1.1x]"), ("- nsgen echo-server --port 8000", "- ''")],
     ["networks.link0.subnet: '172.18.0.0' has no prefix length; write it like 172.18.0.0/24 or fd00:18::/64",
      "containers.container-1.networks.link0.interface: interface name 'dev' is a keyword of iproute2's ip, which would not read it as a device name",
      "containers.container-1.networks.link0.host_interface: 'lo' is the host's loopback interface; nsgen cannot make a device of that name",
      "containers.container-1.dns[0]: '1.1.1.1x' is not an IP address",
      "containers.container-1.processes[0]: is an empty command"]),
    ("a bad container name hides none of its fields", BRIDGE,
     [("  web:", "  web/1:"), ('ports: ["8080:8000"]', 'ports: ["8080:70000"]'), ("    dns: [1.1.1.1]", "    dns: 5")],
     ["containers.web/1: container name 'web/1' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit",
      "containers.web/1.ports[0]: '8080:70000': container port 70000 is out of range 1-65535",
      "containers.web/1.dns: must be a list of nameserver addresses, got 5"]),
    ("a bad address does not hide a second container on a veth network", TUTORIAL,
     [("host:\n", "  container-2:\n    networks: {link0: {address: 172.18.0.256}}\nhost:\n")],
     ["containers.container-2.networks.link0.address: '172.18.0.256' is not an IP address (like 172.18.0.2 or fd00:18::2)",
      "networks.link0: a veth network joins exactly one container to the host, but container-1, container-2 all attach to it; use driver: bridge"]),
    ("an address given twice is reported with the other problems", BRIDGE,
     [("networks: [front, back]", "networks: {front: {}, back: {address: 172.21.0.10}}"), ("    dns: [1.1.1.1]", "    dns: [1.1.1.1, 1.1.1.2, 1.1.1.3, 1.1.1.4]")],
     ["containers.web.dns: lists 4 nameservers; resolv.conf uses at most 3",
      "containers.db.networks.back.address: 172.21.0.10 is already the address of container 'app'"]),
    ("bad names hide no field, and an address is not checked against a gateway that is invalid", TUTORIAL,
     [("name: tutorial", "name: 'tu/torial'"), ("networks:\n  link0:", "networks:\n  'link 0':"), ("gateway: 172.18.0.1", "gateway: 172.18.0.0"),
      ("address: 172.18.0.2", "address: 172.18.0.1")],
     ["name: topology name 'tu/torial' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit",
      "networks.link 0: network name 'link 0' is not allowed: use letters A-Z a-z, digits, '_', '.' and '-', starting with a letter or digit",
      "networks.link 0.gateway: 172.18.0.0 is the network address of 172.18.0.0/24, not a usable host address",
      "containers.container-1.networks.link0: network 'link0' is not declared under 'networks' (declared: link 0)"]),
    ("an internal flag that is not a boolean does not make a port on it a problem", BRIDGE,
     [("    internal: true", "    internal: yes please"), ("  db:", "  db:\n    ports: [\"9000:9000\"]")],
     ["networks.back.internal: must be true or false, got 'yes please'"]),
    ("a masquerade that is not a boolean is not also said to conflict with internal", BRIDGE,
     [("    internal: true", "    internal: true\n    masquerade: maybe")],
     ["networks.back.masquerade: must be true or false, got 'maybe'"]),
]

# A "billion laughs": under 500 bytes, whose aliases expand to 9**10 (3.4 billion) strings, under an unknown key.
BOMB = "name: bomb\nlol:\n  a: &a [" + ", ".join(["lol"] * 9) + "]\n" + "".join(
    f"  {key}: &{key} [" + ", ".join([f"*{previous}"] * 9) + "]\n" for previous, key in zip("abcdefghi", "bcdefghij")
)
EXPANDS = "the document expands to more than 1000000 values through YAML aliases; nsgen refuses it"
TOO_DEEP = "the document nests deeper than 100 levels; nsgen refuses it"

# Refused while the file is read, before any rule: (file name, text, the exact line after "error: NAME: ")
LOAD_CASES = [
    ("t.yaml", "[" * 100000, f"line 1, column 101: {TOO_DEEP}"),
    ("t.yaml", "name: x\nlol: " + "{a: " * 100 + "1" + "}" * 100 + "\n", f"line 2, column 402: {TOO_DEEP}"),
    ("t.yaml", "lol: &a [1, [2, *a]]\n", "line 1, column 17: the alias *a stands for a value that holds it; nsgen refuses it"),
    ("t.yaml", "lol: &a [[[[[[[[[[1]]]]]]]]]]\nx: " + "[" * 91 + "*a" + "]" * 91 + "\n", f"line 2, column 95: {TOO_DEEP}"),
    ("t.yaml", "name: 2001-13-45\n", "line 1, column 7: cannot read '2001-13-45': month must be in 1..12"),
    ("t.yaml", "name: 0x" + "f" * 4000 + "\n",
     "line 1, column 7: cannot read '0x" + "f" * 35 + "'...: Exceeds the limit (4300 digits) for integer string conversion"),
    ("t.yaml", "? [name]\n: x\n", "line 1, column 3: a key must be a single value, not a list"),
    ("t.json", "[" * 100000, f"line 1, column 101: {TOO_DEEP}"),
    ("t.json", "[" * 500 + "]" * 500, f"line 1, column 101: {TOO_DEEP}"),
    ("t.json", '{"name": "a",\n "name": "b"}', "line 2, column 2: key 'name' is given twice in one object"),
    ("t.json", '{"networks": {"n": {"subnet": "10.1.0.0/24"}, "m": {"subnet": "10.2.0.0/24", "subnet": "x"}}}',
     "line 1, column 78: key 'subnet' is given twice in one object"),
]

# YAML syntax errors caused by a tab or the indentation get a hint (libyaml's words for the error).
SYNTAX_CASES = [
    ("name: lab\nnetworks:\n  front:\n\tsubnet: 10.1.0.0/24\n",
     "line 4, column 1: YAML syntax error: found character '\\t' that cannot start any token (YAML indents with spaces, never tabs)"),
    ("name: lab\nnetworks:\n  front:\n    driver: bridge\n\tsubnet: 10.1.0.0/24\n",
     "line 5, column 1: YAML syntax error: found a tab character that violates indentation (YAML indents with spaces, never tabs)"),
    ("name: lab\nnetworks:\n  front:\n    driver: bridge\n      subnet: 10.1.0.0/24\n",
     ("line 5, column 13: YAML syntax error: mapping values are not allowed in this context "
      "(check the indentation: this line is deeper than 'driver' on line 4, which already has a value)")),
    ("name: lab\nnetworks:\n  front:\n    driver: bridge\n   subnet: 10.1.0.0/24\n",
     ("line 5, column 4: YAML syntax error: did not find expected key "
      "(check the indentation: this line is shallower than 'driver' on line 4 but deeper than 'front' on line 3)")),
    ("name: lab\ncontainers:\n  web:\n    processes:\n      - nsgen echo-server\n     - sleep 1\n",
     ("line 6, column 6: YAML syntax error: did not find expected key "
      "(check the indentation: this line is shallower than the list item on line 5 but deeper than 'processes' on line 4)")),
    ("name: lab\ncontainers:\n  web:\n    processes:\n      - sleep 1\n      dns: [1.1.1.1]\n",
     ("line 6, column 7: YAML syntax error: did not find expected '-' indicator "
      "(check the indentation: this line lines up with the list item on line 5, where only another '- ' item may stand)")),
    ("  name: lab\nnetworks: {}\n",
     ("line 2, column 1: YAML syntax error: did not find expected <document start> "
      "(check the indentation: this line is shallower than the document's top level ('name' on line 1))")),
    ("name: lab\nnetworks:\n  front:\n    subnet: 10.1.0.0/24\n    bridge: @br\n",
     "line 5, column 13: YAML syntax error: found character '@' that cannot start any token"),
]

WHOLE_FILES = [
    ("", "the topology is empty; it needs at least 'name', 'networks' and 'containers'"),
    ("- a\n- b\n", "the topology must be a mapping at the top level, got a list"),
    ("just a string\n", "the topology must be a mapping at the top level, got a str"),
]

JUMBO = (ROOT / "examples" / "jumbo.yaml").read_text()
ROUTE = "{destination: 203.0.113.0/24, gateway: 172.29.0.1}"
JUMBO_EXTRA = [
    # mtu: a whole number the kernel takes, and IPv6's minimum on a network with IPv6
    ("    mtu: 9000 ", "    mtu: 67 ", "networks.storage.mtu: 67 is out of range 68-65535 (the least an IPv4 link carries, the most a bridge or veth takes)"),
    ("    mtu: 9000 ", "    mtu: 65536 ", "networks.storage.mtu: 65536 is out of range 68-65535 (the least an IPv4 link carries, the most a bridge or veth takes)"),
    ("    mtu: 9000 ", "    mtu: 1279 ", "networks.storage.mtu: 1279 is below 1280, the least an IPv6 link may carry, and the network has IPv6 subnet fd00:28::/64"),
    ("    mtu: 9000 ", '    mtu: "9000" ', "networks.storage.mtu: must be a whole number of bytes (68-65535), got '9000'"),
    ("    mtu: 9000 ", "    mtu: 9000.5 ", "networks.storage.mtu: must be a whole number of bytes (68-65535), got 9000.5"),
    # mac_address: six hex pairs, unicast, not all zeros, one interface's only
    ('"02:42:ac:1c:00:0a"', '"01:00:5e:00:00:01"', "containers.nas.networks.storage.mac_address: 01:00:5e:00:00:01 is a multicast address (the lowest bit of its first octet is set); an interface needs a unicast one"),
    ('"02:42:ac:1c:00:0a"', '"00:00:00:00:00:00"', "containers.nas.networks.storage.mac_address: 00:00:00:00:00:00 is all zeros, which the kernel refuses as an interface's address"),
    ('"02:42:ac:1c:00:0a"', '"02:42:ac:1c:00"', "containers.nas.networks.storage.mac_address: '02:42:ac:1c:00' is not a MAC address (six pairs of hex digits separated by ':', like \"02:42:ac:11:00:02\")"),
    ('"02:42:ac:1c:00:0a"', '"02-42-ac-1c-00-0a"', "containers.nas.networks.storage.mac_address: '02-42-ac-1c-00-0a' is not a MAC address (six pairs of hex digits separated by ':', like \"02:42:ac:11:00:02\")"),
    ('"02:42:ac:1c:00:0a"', "12:34:56:12:34:56", "containers.nas.networks.storage.mac_address: must be a MAC address in quotes (like \"02:42:ac:11:00:02\"); YAML reads an unquoted one of only digits as the number 9783981296"),
    ('"02:42:ac:1c:00:0a"', '"02:42:AC:1D:00:0A"', "containers.nas.networks.storage.mac_address: 02:42:ac:1d:00:0a is already the MAC address of containers.nas.networks.mgmt"),
    # routes: exactly destination and gateway; the gateway inside the network's subnet of its family
    (ROUTE, "{destination: 203.0.113.0/24, gateway: 172.28.0.1}", "networks.mgmt.routes[0].gateway: 172.28.0.1 is not inside subnet 172.29.0.0/24"),
    (ROUTE, "{destination: 203.0.113.0/24, gateway: 172.29.0.0}", "networks.mgmt.routes[0].gateway: 172.29.0.0 is the network address of 172.29.0.0/24, not a usable host address"),
    (ROUTE, '{destination: 203.0.113.0/24, gateway: "fd00:29::1"}', "networks.mgmt.routes[0].gateway: fd00:29::1 is an IPv6 address, but destination 203.0.113.0/24 is IPv4"),
    (ROUTE, '{destination: "2001:db8:113::/64", gateway: "fd00:29::1"}', "networks.mgmt.routes[0].gateway: fd00:29::1 is an IPv6 address, but this network has no IPv6 subnet (its subnet: 172.29.0.0/24)"),
    (ROUTE, "{destination: 203.0.113.1/24, gateway: 172.29.0.1}", "networks.mgmt.routes[0].destination: '203.0.113.1/24' has host bits set; the prefix is 203.0.113.0/24"),
    (ROUTE, "{destination: 203.0.113.0, gateway: 172.29.0.1}", "networks.mgmt.routes[0].destination: must be a prefix written as a string, like 10.89.0.0/24 or fd00:89::/64, got '203.0.113.0'"),
    (ROUTE, "{destination: 0.0.0.0/0, gateway: 172.29.0.1}", "networks.mgmt.routes[0].destination: 0.0.0.0/0 is the default route; it goes through the first network that gives one (no_default_route: false)"),
    (ROUTE, "{destination: 172.29.0.128/25, gateway: 172.29.0.1}", "networks.mgmt.routes[0].destination: 172.29.0.128/25 is inside the network's own subnet 172.29.0.0/24, which its containers reach directly"),
    (ROUTE, "{destination: 203.0.113.0/24, gateway: 172.29.0.1, metric: 5}", "networks.mgmt.routes[0].metric: unknown key 'metric'; known keys: destination, gateway"),
    (ROUTE, "{destination: 203.0.113.0/24}", "networks.mgmt.routes[0].gateway: is required: the address it goes through"),
    (ROUTE, "{destination: 203.0.113.0/24, gatway: 172.29.0.1}", "networks.mgmt.routes[0].gatway: unknown key 'gatway'; did you mean 'gateway'?"),
    (ROUTE, "203.0.113.0/24", "networks.mgmt.routes[0]: must be a mapping {destination: PREFIX, gateway: ADDRESS}, got '203.0.113.0/24'"),
    (f"      - {ROUTE}", f"      - {ROUTE}\n      - {{destination: 203.0.113.0/24, gateway: 172.29.0.5}}", "networks.mgmt.routes[1].destination: 203.0.113.0/24 is already routed by this network (via 172.29.0.1)"),
    ("    mtu: 9000 ", "    mtu: 9000\n    routes: [{destination: 203.0.113.0/24, gateway: 172.28.0.1}] ", "containers.nas.networks.storage: network 'storage' routes 203.0.113.0/24 via 172.28.0.1 and network 'mgmt' routes 203.0.113.0/24 via 172.29.0.1: a container takes only one"),
    # no_default_route: a flag; ports are published on the first network, which must give the default route
    ("    no_default_route: true ", "    no_default_route: 1 ", "networks.mgmt.no_default_route: must be true or false, got 1"),
    ("  client:\n    networks: [storage]", '  client:\n    networks: [mgmt, storage]\n    ports: ["8080:80"]', "containers.client.ports: published ports need a first network that gives the default route (replies leave by it); 'mgmt' has no_default_route: true"),
]


def _case_id(case) -> str:
    return case[2].split(": ", 1)[0][:40] + "|" + case[1].strip()[:16]


# macvlan, ipvlan and outbound addresses (the host's addresses and routes cannot be read here: see nothing_runs)
OUTBOUND_AND_LAN = [
    ("    bridge: br-front", "    bridge: br-front\n    parent: eth0",
     "networks.front.parent: only a macvlan or ipvlan network has a parent interface; this network's driver is bridge"),
    ("    bridge: br-back", "    bridge: br-back\n    outbound_addr: 198.51.100.7",
     "networks.back.outbound_addr: an internal network sends nothing out, so it has no outbound address"),
    ("    bridge: br-front", "    bridge: br-front\n    masquerade: false\n    outbound_addr: 198.51.100.7",
     "networks.front.outbound_addr: with masquerade: false its traffic leaves with the containers' own addresses, so it has no outbound address"),
    ("    bridge: br-front", "    bridge: br-front\n    outbound_addr: 2001:db8::7",
     "networks.front.outbound_addr: 2001:db8::7 is an IPv6 address, but this network has no IPv6 subnet"),
    ("    bridge: br-front", "    bridge: br-front\n    outbound_addr: 127.0.0.1",
     "networks.front.outbound_addr: 127.0.0.1 cannot be the source of traffic that leaves the host: use a unicast address of one of its interfaces"),
    ("    bridge: br-front", "    bridge: br-front\n    outbound_addr: [198.51.100.7, 198.51.100.8]",
     "networks.front.outbound_addr: lists two IPv4 outbound addresses (198.51.100.7, 198.51.100.8); a network has at most one outbound address per family"),
    ("  back:\n", "  lan: {driver: macvlan, subnet: 192.168.1.0/24}\n  back:\n",
     "networks.lan.parent: is required: this host has no default route whose interface could be the parent; name the host interface on the containers' LAN (like eth0)"),
    ("  back:\n", "  lan: {driver: ipvlan, parent: eth0, subnet: 192.168.1.0/24, masquerade: true}\n  back:\n",
     "networks.lan.masquerade: an ipvlan network's containers are on the parent's LAN with their own addresses: the host does not route their traffic, so it cannot masquerade it"),
    ("  back:\n", "  lan: {driver: macvlan, parent: eth0, subnet: 192.168.1.0/24, outbound_addr: 198.51.100.7}\n  back:\n",
     "networks.lan.outbound_addr: a macvlan network's containers reach out on the parent's LAN with their own addresses, not through the host, so it has no outbound address"),
    ("  back:\n", "  lan: {driver: macvlan, parent: eth0, subnet: 192.168.1.0/24, bridge: br0}\n  back:\n",
     "networks.lan.bridge: only a network with driver bridge has a bridge device"),
    ("  back:\n", "  lan: {driver: macvlan, parent: eth0, subnet: 192.168.1.0/24}\n  wlan: {driver: ipvlan, parent: eth0, subnet: 192.168.2.0/24}\n"
     "  back:\n", "networks.wlan.parent: 'eth0' is already the parent of macvlan network 'lan'; an interface carries macvlan or ipvlan "
     "networks, not both"),
    ("    networks: [front, back]", "    networks:\n      lan: {host_interface: ve-app}\n      back:\n",
     "containers.app.networks.lan.host_interface: a macvlan network has no host end: app's interface is made on the parent eth0"),
    ("    networks: [front]           # eth0 172.20.0.2", "    networks: [lan, front]",
     "containers.web.ports: nothing is published from a macvlan network: 'lan' (the first, where ports are published) puts the container on the parent's LAN, reached directly at its own address"),
]
LAN = "  lan: {driver: macvlan, parent: eth0, subnet: 192.168.1.0/24}\n  back:\n"
IPVLAN_MAC = ("    networks: [front, back]", "    networks:\n      lan: {mac_address: \"02:00:00:00:00:01\"}\n      back:\n",
              "containers.app.networks.lan.mac_address: an ipvlan interface has its parent's MAC address and cannot have its own; "
              "use driver: macvlan for a MAC address of its own")

ALL = (
    [(TUTORIAL, *c) for c in CASES + EXTRA]
    + [(BRIDGE, old, new, expected) for old, new, expected in OUTBOUND_AND_LAN[:11]]
    + [(BRIDGE.replace("  back:\n", LAN, 1), old, new, expected) for old, new, expected in OUTBOUND_AND_LAN[11:]]
    + [(BRIDGE.replace("  back:\n", LAN.replace("macvlan", "ipvlan"), 1), *IPVLAN_MAC)]
    + [(BRIDGE, old, new, expected[0]) for old, new, expected in BRIDGE_CASES]
    + [(BRIDGE, *c) for c in BRIDGE_EXTRA]
    + [(JUMBO, *c) for c in JUMBO_EXTRA]
)


@pytest.fixture
def nothing_runs(monkeypatch):
    """Root, but any command nsgen would run is recorded instead (reading routes included)."""
    ran: list = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(hostinfo, "host_routes", list)
    monkeypatch.setattr(hostinfo, "host_routes6", list)
    monkeypatch.setattr(hostinfo, "host_addresses", lambda: None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: ran.append(a))
    return ran


def _invoke(tmp_path, data: bytes, command: str, name: str = "t.yaml"):
    (tmp_path / name).write_bytes(data)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(main, [command, "-f", name], catch_exceptions=False)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("base,old,new,expected", ALL, ids=[_case_id(c[1:]) for c in ALL])
def test_input_case(tmp_path, nothing_runs, base, old, new, expected):
    assert old in base, old
    for command in ("run", "render", "validate"):
        result = _invoke(tmp_path, base.replace(old, new, 1).encode(), command)
        assert (result.exit_code, result.stdout) == (1, ""), command
        assert result.stderr == f"error: t.yaml: {expected}\n", command
    assert nothing_runs == []
    count("input cases")


@pytest.mark.parametrize("title,base,changes,expected", MULTI_CASES, ids=[c[0][:60] for c in MULTI_CASES])
def test_every_problem_in_a_file_is_reported_at_once(tmp_path, nothing_runs, title, base, changes, expected):
    text = base
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    for command in ("run", "render", "validate"):
        result = _invoke(tmp_path, text.encode(), command)
        assert (result.exit_code, result.stdout) == (1, ""), command
        assert result.stderr.splitlines() == [f"error: t.yaml: {line}" for line in expected], command
    assert nothing_runs == []
    count("input cases")


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="the messages are libyaml's (tests/test_load.py checks both parsers)")
@pytest.mark.parametrize("text,expected", SYNTAX_CASES, ids=[c[1].split(": ", 2)[2][:50] for c in SYNTAX_CASES])
def test_yaml_syntax_case(tmp_path, nothing_runs, text, expected):
    for command in ("run", "render", "validate"):
        result = _invoke(tmp_path, text.encode(), command)
        assert (result.exit_code, result.stdout) == (1, ""), command
        assert result.stderr == f"error: t.yaml: {expected}\n", command
    assert nothing_runs == []
    count("input cases")


@pytest.mark.parametrize("text,expected", WHOLE_FILES)
def test_whole_file_case(tmp_path, nothing_runs, text, expected):
    result = _invoke(tmp_path, text.encode(), "run")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"error: t.yaml: {expected}\n")
    assert nothing_runs == []
    count("input cases")


def test_not_utf8(tmp_path, nothing_runs):
    result = _invoke(tmp_path, b"name: caf\xe9\n", "run")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "error: t.yaml: not UTF-8 text (invalid byte at offset 9)\n"
    assert nothing_runs == []
    count("input cases")


@pytest.mark.parametrize("name,text,expected", LOAD_CASES, ids=[f"{c[0]}|{c[2][:40]}" for c in LOAD_CASES])
def test_load_case(tmp_path, nothing_runs, name, text, expected):
    for command in ("run", "render", "validate"):
        result = _invoke(tmp_path, text.encode(), command, name)
        assert (result.exit_code, result.stdout) == (1, ""), command
        assert result.stderr == f"error: {name}: {expected}\n", command
    assert nothing_runs == []
    count("input cases")


@pytest.mark.parametrize(
    "text,expected",
    [(BOMB, f"line 9, column 10: {EXPANDS}"), ("[" * 100000, f"line 1, column 101: {TOO_DEEP}")],
    ids=["billion laughs", "100000 ["],
)
def test_hostile_yaml_is_refused_at_once(tmp_path, text, expected):
    """In a process of its own, which a timeout can stop: the document is refused while it is read,
    before anything expands it (an unknown key would be reported after that, and nothing could run)."""
    path = tmp_path / "t.yaml"
    path.write_text(text)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for command in ("run", "render", "validate"):
        done = subprocess.run([sys.executable, "-m", "nsgen", command, "-f", str(path)],
                              capture_output=True, text=True, timeout=5, cwd=ROOT, env=env)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", f"error: {path}: {expected}\n"), command
    count("input cases")
