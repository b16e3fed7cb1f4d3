"""Schema writes the JSON Schema of the topology file, for editors; the rules themselves live in
resolve.

Every object's properties are exactly the key sets of `models` that `resolve` accepts (checked when
the schema is built), with the same name patterns, byte limits (names are ASCII, so characters are bytes),
drivers, protocols and defaults. The schema catches what an editor can show while typing;
`nsgen validate` remains the judge of the rest (overlapping subnets, duplicate addresses,
references between objects).
"""

from __future__ import annotations

from typing import Any

from nsgen import models

DRAFT = "http://json-schema.org/draft-07/schema#"  # what editors' YAML language servers read

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_IPV6 = r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"  # the form only: nsgen validate judges the rest
IPV4_PATTERN = rf"^{_IPV4}$"
IPV6_PATTERN = rf"^{_IPV6}$"
SUBNET_PATTERN = rf"^{_IPV4}/([0-9]|[12][0-9]|30)$"  # at least a /30
SUBNET6_PATTERN = rf"^{_IPV6}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-6])$"  # at most a /{models.SUBNET6_MAX_PREFIX}
# An IPv6 address, with a scope only when it is an interface name (fe80::1%eth0)
IPV6_NAMESERVER_PATTERN = rf"^{_IPV6}(%[A-Za-z0-9][A-Za-z0-9_.-]{{0,{models.IFNAME_MAX - 1}}})?$"
ROUTE4_PATTERN = rf"^{_IPV4}/([1-9]|[12][0-9]|3[0-2])$"
ROUTE6_PATTERN = rf"^{_IPV6}/([1-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$"
# six hex pairs whose first octet's lowest bit (multicast) is clear; all zeros is refused by nsgen validate
MAC_PATTERN = r"^[0-9A-Fa-f][02468ACEace](:[0-9A-Fa-f]{2}){5}$"
_PORTS = rf"{_PORT}(-{_PORT})?"  # a port or a range LOW-HIGH (nsgen validate judges the order and the lengths)
PORT_PATTERN = rf"^({_IPV4}:|\[{_IPV6}\]:)?{_PORTS}:{_PORTS}(/({'|'.join(models.PROTOCOLS)}))?$"


def _name(cap: int, description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": models.NAME_RE.pattern, "minLength": 1, "maxLength": cap, "description": description}


def _ifname(description: str) -> dict[str, Any]:
    schema = _name(models.IFNAME_MAX, description + " At most 15 bytes (the kernel's limit); not lo, nor a word "
                   "iproute2's ip reads as a keyword (dev, up, group, ... and their abbreviations), nor all or default.")
    schema["not"] = {"enum": ["lo", *models.reserved_ifnames()]}
    return schema


def _per_family(v4: str, v6: str, description: str) -> dict[str, Any]:
    """One value of either family, or a list of one of each (dual stack)."""
    one = {"anyOf": [{"type": "string", "pattern": v4}, {"type": "string", "pattern": v6}]}
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": 2}], "description": description}


def _object(keys: set[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object with exactly the keys resolve accepts, and no others."""
    if set(properties) != keys:
        raise AssertionError(f"the schema's properties {sorted(properties)} are not the models' keys {sorted(keys)}")
    return {"type": "object", "properties": properties, "additionalProperties": False, **extra}


def _overlay() -> dict[str, Any]:
    return _object(
        models.OVERLAY_KEYS,
        {
            "vni": {"type": "integer", "minimum": models.VNI_MIN, "maximum": models.VNI_MAX,
                    "description": "The VXLAN network identifier: each overlay has its own."},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": models.VXLAN_PORT,
                     "description": "The UDP port VXLAN travels on between the hosts."},
        },
        required=["vni"],
        description="A bridge network stretched across the hosts that have containers on it (VXLAN over their addresses). "
                    "Its MTU is 1450 (1430 over IPv6) unless mtu says otherwise; every host's bridge holds the gateway.",
    )


def _network() -> dict[str, Any]:
    return _object(
        models.NETWORK_KEYS,
        {
            "overlay": _overlay(),
            "driver": {"enum": list(models.DRIVERS), "default": "bridge",
                       "description": "bridge: containers plugged into a Linux bridge that holds the gateway; "
                                      "veth: one container joined to the host, whose end holds the gateway; "
                                      "macvlan (mode bridge), ipvlan (mode l2): containers on the parent interface's own LAN, "
                                      "with their own addresses, the LAN's router their gateway, no NAT, nothing published."},
            "subnet": _per_family(SUBNET_PATTERN, SUBNET6_PATTERN,
                                  "An IPv4 subnet (like 172.18.0.0/24, at least a /30), an IPv6 one (like fd00:18::/64, at least a /126), "
                                  "or a list of one of each for dual stack; host bits clear; networks must not overlap."),
            "gateway": _per_family(IPV4_PATTERN, IPV6_PATTERN, "The host's address in the subnet, or one per family (macvlan, "
                                   "ipvlan: the LAN's router). Default: the first usable address of each."),
            "masquerade": {"type": "boolean",
                           "description": "NAT traffic leaving the host (false: routed, the outside sees the containers' own addresses). "
                                          "Default: true; false for macvlan and ipvlan, which cannot masquerade."},
            "internal": {"type": "boolean", "default": False,
                         "description": "Nothing enters or leaves this network through the host; no default route through it."},
            "bridge": _ifname("Bridge device name (driver bridge only). Default: derived, br-<network>-<hash>."),
            "parent": _ifname("The host interface whose LAN the containers join (driver macvlan or ipvlan only). "
                              "Default: the interface of the host's default route."),
            "outbound_addr": _per_family(IPV4_PATTERN, IPV6_PATTERN,
                                         "An address of the host (or one per family the network has) that the network's traffic "
                                         "leaves with, instead of the outgoing interface's (SNAT instead of masquerade). "
                                         "Not with masquerade: false, internal: true, macvlan or ipvlan."),
            "mtu": {"type": "integer", "minimum": models.MTU_MIN, "maximum": models.MTU_MAX,
                    "description": f"The MTU of the bridge and of both ends of every veth pair ({models.MTU_MIN}-{models.MTU_MAX}; "
                                   f"at least {models.MTU6_MIN} with an IPv6 subnet). Default: the kernel's (1500)."},
            "routes": {"type": ["array", "null"], "items": _route(),
                       "description": "Static routes installed in each container on the network (not in the one that is the "
                                      "gateway, nor in one on a network whose subnet holds the destination)."},
            "no_default_route": {"type": "boolean", "default": False,
                                 "description": "Still routed (and masqueraded) through the host, but its containers take no default "
                                                "route through it: the next network that gives one does, or none."},
        },
        required=["subnet"],
        allOf=[
            {"if": {"properties": {"driver": {"const": "veth"}}, "required": ["driver"]},
             "then": {"not": {"required": ["bridge"]}}},
            {"if": {"properties": {"driver": {"enum": list(models.DIRECT_DRIVERS)}}, "required": ["driver"]},
             "then": {"not": {"anyOf": [{"required": ["bridge"]}, {"required": ["outbound_addr"]}]},
                      "properties": {"masquerade": {"const": False}}},
             "else": {"not": {"required": ["parent"]}}},
            {"if": {"anyOf": [{"properties": {"internal": {"const": True}}, "required": ["internal"]},
                              {"properties": {"masquerade": {"const": False}}, "required": ["masquerade"]}]},
             "then": {"not": {"required": ["outbound_addr"]}}},
            {"if": {"properties": {"internal": {"const": True}}, "required": ["internal"]},
             "then": {"properties": {"masquerade": {"const": False}}}},
        ],
    )


def _route() -> dict[str, Any]:
    return _object(
        models.ROUTE_KEYS,
        {
            "destination": {"anyOf": [{"type": "string", "pattern": ROUTE4_PATTERN}, {"type": "string", "pattern": ROUTE6_PATTERN}],
                            "description": "The prefix the route leads to (like 10.89.0.0/24 or fd00:89::/64), host bits clear; "
                                           "not the default route, not inside the network's own subnet."},
            "gateway": {"anyOf": [{"type": "string", "pattern": IPV4_PATTERN}, {"type": "string", "pattern": IPV6_PATTERN}],
                        "description": "The address it goes through: inside the network's subnet of the destination's family."},
        },
        required=["destination", "gateway"],
    )


def _attachment() -> dict[str, Any]:
    return _object(
        models.ATTACHMENT_KEYS,
        {
            "address": _per_family(IPV4_PATTERN, IPV6_PATTERN, "The container's address in the network's subnet, or one per family. "
                                   "Default: the first free address of each family, in file order."),
            "interface": _ifname("The interface's name inside the container. Default: eth0, eth1, ... in the order listed."),
            "host_interface": _ifname("The host end of the veth pair (not on a macvlan or ipvlan network, which has none). "
                                      "Default: derived from the topology, container and network."),
            "mac_address": {"type": "string", "pattern": MAC_PATTERN,
                            "description": "The MAC address of the container's interface: six hex pairs (like \"02:42:ac:11:00:02\", "
                                           "in quotes), unicast, not all zeros, unique in the topology. Default: the kernel's random one."},
            "aliases": {"type": ["array", "null"], "items": HOSTNAME,
                        "description": "More names of the container's addresses on this network, for the containers on it "
                                       "(and the container itself); none may be another container's name or alias on the network."},
        },
    )


# A host name (RFC 1123): dot-separated labels of letters, digits and '-' (not first or last), at most 253 characters
HOSTNAME = {"type": "string", "maxLength": models.HOSTNAME_MAX,
            "pattern": rf"^{models.HOSTNAME_LABEL_RE.pattern}(\.{models.HOSTNAME_LABEL_RE.pattern})*$",
            "not": {"enum": list(models.LOCALHOST_NAMES)}}
SYSCTL_KEY_PATTERN = r"^net(\.[a-z0-9_-]+)+$"  # models.SYSCTL_KEY_RE, under net.
ONE_LINE = r"^[^\n\r\x00]*\S[^\n\r\x00]*$"  # words apart, no newline or NUL


def _process() -> dict[str, Any]:
    command = {"oneOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    return _object(
        models.PROCESS_KEYS,
        {
            "command": {**command, "description": "The program and its arguments: a string split as a shell would split it, "
                                                  "or a list of words."},
            "ready": {"oneOf": [{"type": "string", "pattern": rf"^(tcp:{_PORT}|udp:{_PORT}|file:/.*)$"},
                                {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                      "description": "When it is ready: tcp:PORT or udp:PORT listening inside, file:PATH existing, or a "
                                     "command (a list of words) that succeeds inside."},
            "ready_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": models.READY_TIMEOUT_MAX,
                              "default": models.READY_TIMEOUT, "description": "Seconds it has to become ready."},
            "environment": {"type": ["object", "null"], "propertyNames": {"pattern": rf"^{models.ENV_NAME_RE.pattern}$"},
                            "additionalProperties": {"type": ["string", "number"]},
                            "description": "Variables added to its environment: NAME: value."},
            "user": {"type": ["string", "integer"], "pattern": r"^[^:\s]+(:[^:\s]+)?$",
                     "description": "NAME, UID, NAME:GROUP or UID:GID of this host: the process runs as that user "
                                    "(with the user's groups; a uid without an entry: its group is its number)."},
            "working_dir": {"type": "string", "pattern": "^/", "description": "Its working directory: an absolute path that exists."},
        },
        required=["command"],
    )


def _container() -> dict[str, Any]:
    network_name = _name(models.NETWORK_NAME_MAX, "A network declared under networks.")
    return _object(
        models.CONTAINER_KEYS,
        {
            "host": _name(models.HOST_NAME_MAX, "The host (of hosts) the container runs on: required when the topology lists "
                          "more than one."),
            "networks": {
                "description": "The networks the container is attached to, in order: a list of names, or a mapping of names "
                               "to settings. The default route goes through the first that is neither internal nor no_default_route.",
                "oneOf": [
                    {"type": "array", "items": network_name, "minItems": 1, "uniqueItems": True},
                    {"type": "object", "propertyNames": network_name, "minProperties": 1,
                     "additionalProperties": {"oneOf": [{"type": "null"}, _attachment()]}},
                ],
            },
            "dns": {
                "type": ["array", "null"], "maxItems": 3,
                "description": "Nameservers written to /etc/netns/<container>/resolv.conf (at most 3). "
                               "Without it, the namespace sees the host's /etc/resolv.conf.",
                "items": {"anyOf": [{"type": "string", "pattern": IPV4_PATTERN},
                                    {"type": "string", "pattern": IPV6_NAMESERVER_PATTERN}]},
            },
            "ports": {
                "type": ["array", "null"],
                "description": "Published ports, Docker's -p syntax: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp]; "
                               "an IPv6 host IP in brackets ([::1]:8080:80); a range maps one to one onto a range of the same "
                               "length (8080-8082:80-82). A host port is published once per protocol and host address.",
                "items": {"type": "string", "pattern": PORT_PATTERN},
            },
            "processes": {
                "type": ["array", "null"],
                "description": "Programs started inside the namespace, never through a shell: a string split as a shell "
                               "would split it, or a list of words, or a mapping (command, ready, ready_timeout, environment, "
                               "user, working_dir). `nsgen` is resolved to the installed program.",
                "items": {"oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    _process(),
                ]},
            },
            "sysctls": {
                "type": ["object", "null"],
                "description": "net.* sysctls set inside the container's namespace only (the host keeps its own): "
                               "key: value, a value on one line (words apart, like \"0 2147483647\").",
                "propertyNames": {"pattern": SYSCTL_KEY_PATTERN},
                "additionalProperties": {"anyOf": [{"type": "string", "pattern": ONE_LINE}, {"type": "number"}]},
            },
        },
        required=["networks"],
    )


def _hosts() -> dict[str, Any]:
    entry = _object(models.HOSTS_ENTRY_KEYS, {"address": {"anyOf": [{"type": "string", "pattern": IPV4_PATTERN},
                                                                   {"type": "string", "pattern": IPV6_PATTERN}],
                                                         "description": "The address the other hosts reach this one at."}},
                    required=["address"])
    return {"type": "object", "minProperties": 1, "propertyNames": _name(models.HOST_NAME_MAX, "A host's name."),
            "additionalProperties": entry,
            "description": "The hosts a topology spans (a network across them is an overlay); without it, everything is on this host."}


def _host() -> dict[str, Any]:
    schema = _object(
        models.HOST_KEYS,
        {
            "ip_forward": {"enum": ["auto", True, False], "default": "auto",
                           "description": "net.ipv4.ip_forward: auto turns it on when any network routes out."},
            "persist": {"type": "boolean", "default": False,
                        "description": "Also keep forwarding on after a reboot (/etc/sysctl.d), and allow "
                                       "`nsgen render --systemd`: a unit that brings the topology up at boot."},
            "firewall": {"enum": list(models.FIREWALLS), "default": "iptables",
                         "description": "The firewall backend: iptables (the tutorial's), nftables (one inet table nsgen-<name>, "
                                        "published ports in maps), or auto (nftables where nft is installed and iptables is not). "
                                        "Without it, $NSGEN_FIREWALL, else iptables."},
        },
    )
    schema["type"] = ["object", "null"]
    return schema


def schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a topology file."""
    body = _object(
        models.TOPOLOGY_KEYS,
        {
            "name": _name(models.TOPOLOGY_NAME_MAX,
                          "Names the state directory (/run/nsgen/<name>), the firewall rules' tag and the chain NSGEN-<name>; "
                          f"at most {models.TOPOLOGY_NAME_MAX} bytes."),
            "networks": {"type": "object", "minProperties": 1, "description": "The networks, by name.",
                         "propertyNames": _name(models.NETWORK_NAME_MAX, "A network's name."),
                         "additionalProperties": _network()},
            "containers": {"type": "object", "minProperties": 1,
                           "description": "The containers, by name: each is a network namespace of that name.",
                           "propertyNames": _name(models.NAMESPACE_NAME_MAX, "A container's (and its namespace's) name."),
                           "additionalProperties": _container()},
            "host": _host(),
            "hosts": _hosts(),
        },
        required=["name", "networks", "containers"],
    )
    return {"$schema": DRAFT, "title": "nsgen topology", "description": "A network of containers built by nsgen.", **body}
