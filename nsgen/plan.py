"""The plan is the only place that knows `ip`, `sysctl` and `iptables` syntax; it knows nothing of shells.

`compile_plan(topology)` turns a resolved topology into an ordered tuple of `Step`s. A step says
why it exists (a one-line summary in the tutorial's voice), the commands that make it happen and
the commands that undo it, all as argv tuples, and optionally a probe that tells whether it is
already done. The setup script, the teardown script and `nsgen run` all consume this one plan.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # only for annotations: a recorded plan is torn down without the models
    from nsgen.models import Network, Topology

Argv = tuple[str, ...]

STATE_ROOT = "/run/nsgen"
LOCK_FILE = "/run/lock/nsgen.lock"
FORWARD_DIR = f"{STATE_ROOT}/.ip_forward"  # shared by every topology: a name no topology can have
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
# Every host device nsgen makes (bridges, veth host ends) is in a device group whose high byte is
# 0x6e ("n"): firewall rules tell container networks from the rest of the host by it, across
# topologies. The low 24 bits are the topology's own (see device_group).
NSGEN_GROUPS = "0x6e000000/0xff000000"
NETNS_DIR = "/run/netns"
NETNS_ETC = "/etc/netns"
SYSCTL_DIR = "/etc/sysctl.d"


class Command(NamedTuple):
    """One program run: an argv, with what the shell would add around it described as data.

    input: text fed on standard input (a here-document in the script).
    only_if: probes that must all succeed for the command to run (silently checked, in order);
             a probe written ("!", argv...) succeeds when argv fails.
    detach: (log file, pid file): start in the background, output to the log, pid recorded.
    builtin: argv[0] names an operation of nsgen's own (a shell function in the script, a Python
             function in `execute`), for what no single program does (stopping a namespace's processes).
    """

    argv: Argv
    input: str | None = None
    only_if: tuple[Argv, ...] = ()
    detach: tuple[str, str] | None = None
    builtin: bool = False


class Step(NamedTuple):
    id: str
    section: str  # the part of the tutorial this step belongs to (a heading in the script)
    summary: str  # why, in one line
    commands: tuple[Command, ...]
    undo: tuple[Command, ...] = ()
    probe: tuple[Argv, ...] = ()  # all succeed: the step is already done and is skipped
    resource: str | None = None  # what the probe finds; found while the topology is not up = not ours
    goes_with: str | None = None  # id of a step whose undo takes this step's effect with it


class Requirement(NamedTuple):
    """Checked before setup changes anything: met when any of the probes succeeds."""

    any_of: tuple[Argv, ...]
    message: str


class Plan(NamedTuple):
    topology: Topology
    steps: tuple[Step, ...]
    tools: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    requirements: tuple[Requirement, ...] = ()

    @property
    def name(self) -> str:
        return self.topology.name

    @property
    def state_dir(self) -> str:
        return state_dir(self.topology.name)

    @property
    def up_marker(self) -> str:
        return f"{self.state_dir}/up"

    @property
    def lock_file(self) -> str:
        return LOCK_FILE

    @property
    def lock_dir(self) -> str:
        return LOCK_FILE.rsplit("/", 1)[0]

    def sections(self) -> list[tuple[str, list[Step]]]:
        """Steps grouped by consecutive section, in plan order."""
        groups: list[tuple[str, list[Step]]] = []
        for step in self.steps:
            if not groups or groups[-1][0] != step.section:
                groups.append((step.section, []))
            groups[-1][1].append(step)
        return groups


def state_dir(topology: str) -> str:
    return f"{STATE_ROOT}/{topology}"


def device_group(topology: str) -> str:
    """The device group of the topology's host devices: teardown deletes all of them, veth pairs
    and bridges, in one kernel call (`ip link delete group`), where one by one each deletion
    waits for the kernel. Setup refuses to start while any device is already in it."""
    return f"0x6e{zlib.crc32(topology.encode()) & 0xFFFFFF:06x}"


def rule_tag(topology: str) -> str:
    """The comment every firewall rule of a topology carries (iptables allows 255 bytes)."""
    return f"nsgen:{topology}"


def chain_name(topology: str) -> str:
    """The topology's own chain, in filter (from FORWARD) and in nat (published ports); iptables allows 28 characters."""
    return f"NSGEN-{topology}"


_UNSAFE_IN_RESTORE = re.compile(r"[\s\"'#]")


def _tagged(rule: Argv, tag: Argv) -> Argv:
    """The rule with the topology's comment placed before its target."""
    j = rule.index("-j")
    return (*rule[:j], *tag, *rule[j:])


def _restore_line(action: str, chain: str, rule: Argv) -> str:
    """One iptables-restore line. Every value here is validated (names, addresses, numbers, the
    tag), so none holds whitespace or quotes; a value that did would be a bug, and is refused."""
    for word in rule:
        if not word or _UNSAFE_IN_RESTORE.search(word):
            raise ValueError(f"cannot place {word!r} in an iptables-restore line")
    return " ".join((action, chain, *rule))


def C(*argv: str, **kw) -> Command:
    return Command(tuple(argv), **kw)


def _link_exists(name: str, netns: str | None = None) -> Argv:
    return ("ip", "-n", netns, "link", "show", name) if netns else ("ip", "link", "show", name)


def _iptables(table: str, action: str, chain: str, rule: Argv) -> Argv:
    return ("iptables", "-w", "-t", table, action, chain, *rule)


class _Builder:
    def __init__(self, topology: Topology):
        self.t = topology
        self.steps: list[Step] = []
        self.tools: set[str] = {"ip"}
        self.requirements: list[Requirement] = []
        # Named resources are ours only while the topology's state directory exists: teardown
        # never deletes a namespace or link of the same name that this topology did not make.
        self.owned: Argv = ("test", "-d", state_dir(topology.name))
        self.group = device_group(topology.name)

    def add(self, step: Step) -> None:
        self.steps.append(step)

    # -- the tutorial, in its order ------------------------------------------------------------

    def state(self) -> None:
        sdir = state_dir(self.t.name)
        self.add(
            Step(
                id="state",
                section="State",
                summary=f"Record that topology {self.t.name} is up: its processes' pids and logs live in {sdir}.",
                commands=(
                    C("mkdir", "-p", sdir),
                    C("install", "-m", "0644", "/dev/stdin", f"{sdir}/containers", input="".join(f"{c}\n" for c in self.t.containers)),
                ),
                undo=(C("rm", "-rf", sdir), C("rmdir", "--ignore-fail-on-non-empty", STATE_ROOT, only_if=(("test", "-d", STATE_ROOT),))),
                probe=(("test", "-d", sdir),),
            )
        )

    def namespaces(self) -> None:
        for c in self.t.containers.values():
            self.add(
                Step(
                    id=f"netns:{c.name}",
                    section="Namespaces",
                    summary=f"Create the network namespace {c.name}: the container's own interfaces, routes and firewall.",
                    commands=(C("ip", "netns", "add", c.name),),
                    undo=(C("ip", "netns", "delete", c.name, only_if=(self.owned, ("test", "-e", f"{NETNS_DIR}/{c.name}"))),),
                    probe=(("test", "-e", f"{NETNS_DIR}/{c.name}"),),
                    resource=f"network namespace {c.name}",
                )
            )
        if any(c.attachments for c in self.t.containers.values()):
            # Nothing to do at setup. At teardown this runs before the namespaces are deleted:
            # deleting a namespace would leave its veth pairs to the kernel's background work.
            has = ("group_has_links", self.group)
            self.add(
                Step(
                    id="devices",
                    section="Namespaces",
                    summary=f"Teardown deletes every host device of topology {self.t.name} at once: its bridges and veth host ends "
                    f"are in device group {self.group}, and deleting one end of a veth pair deletes the other.",
                    commands=(),
                    undo=(C("ip", "link", "delete", "group", self.group, only_if=(self.owned, has)),),
                    probe=(has,),
                    resource=f"a link in device group {self.group} (another topology's name hashes alike: rename one)",
                )
            )
        for c in self.t.containers.values():
            # Nothing to do at setup; at teardown (after every namespace's other contents are
            # gone, before any namespace is deleted) whatever still runs inside is stopped,
            # or the namespace would outlive its name.
            self.add(
                Step(
                    id=f"reap:{c.name}",
                    section="Namespaces",
                    summary=f"Teardown stops every process still running in {c.name} before the namespace is deleted.",
                    commands=(),
                    undo=(C("stop_processes", c.name, builtin=True, only_if=(self.owned,)),),
                )
            )

    def bridges(self) -> None:
        for net in self.t.networks.values():
            if net.driver != "bridge":
                continue
            assert net.bridge
            gw = f"{net.gateway}/{net.subnet.prefixlen}"
            self.add(
                Step(
                    id=f"bridge:{net.name}",
                    section="Bridges",
                    summary=f"Create bridge {net.bridge} for network {net.name}: a virtual switch for its containers.",
                    commands=(C("ip", "link", "add", net.bridge, "group", self.group, "type", "bridge"),),
                    undo=(C("ip", "link", "delete", net.bridge, only_if=(self.owned, _link_exists(net.bridge))),),
                    probe=(_link_exists(net.bridge),),
                    resource=f"link {net.bridge}",
                    goes_with="devices",
                )
            )
            self.add(
                Step(
                    id=f"bridge-up:{net.name}",
                    section="Bridges",
                    summary=f"Give {net.bridge} the gateway address {gw} and bring it up: the host is the network's router.",
                    commands=(
                        C("ip", "addr", "replace", gw, "dev", net.bridge),
                        C("ip", "link", "set", net.bridge, "up"),
                    ),
                )
            )

    def links(self) -> None:
        """Every veth pair, each made with its inner end already inside its namespace, then the host ends.

        Neither end gets an IPv6 link-local address (addrgenmode none; nsgen's networks are IPv4,
        and Docker does the same for networks without IPv6): otherwise every interface that comes
        up sends neighbour discovery and multicast reports, which a bridge floods to all its ports,
        so bringing up the n-th container costs in proportion to n."""
        for c in self.t.containers.values():
            for a in c.attachments:
                self.add(
                    Step(
                        id=f"veth:{c.name}:{a.network}",
                        section="Links",
                        summary=f"Create the veth pair {a.host_interface} (host) <-> {a.interface} (in {c.name}), "
                        "its inner end made directly inside the namespace.",
                        commands=(C("ip", "link", "add", a.host_interface, "group", self.group, "type", "veth", "peer", "name", a.interface, "netns", c.name),),
                        undo=(C("ip", "link", "delete", a.host_interface, only_if=(self.owned, _link_exists(a.host_interface))),),
                        probe=(_link_exists(a.host_interface),),
                        resource=f"link {a.host_interface}",
                        goes_with="devices",
                    )
                )
        for c in self.t.containers.values():
            for a in c.attachments:
                net = self.t.networks[a.network]
                if net.driver == "veth":
                    gw = f"{net.gateway}/{net.subnet.prefixlen}"
                    summary = f"Give {a.host_interface} the gateway address {gw} and bring it up (no IPv6 link-local address): the host is {c.name}'s router."
                    commands = (C("ip", "addr", "replace", gw, "dev", a.host_interface), C("ip", "link", "set", a.host_interface, "addrgenmode", "none", "up"))
                else:
                    summary = f"Plug {a.host_interface} into bridge {net.bridge} (it has no address of its own, not even IPv6 link-local) with hairpin on, so {c.name} reaches its own published ports; bring it up."
                    commands = (
                        C("ip", "link", "set", a.host_interface, "master", str(net.bridge), "addrgenmode", "none", "up"),
                        C("ip", "link", "set", a.host_interface, "type", "bridge_slave", "hairpin", "on"),
                    )
                self.add(Step(id=f"host-end:{c.name}:{a.network}", section="Links", summary=summary, commands=commands))

    def inside(self) -> None:
        """Each container's own configuration, contiguous, so that it can run as one batch inside it."""
        for c in self.t.containers.values():
            self.add(
                Step(
                    id=f"lo:{c.name}",
                    section="Inside the containers",
                    summary=f"Bring up lo in {c.name}, so that a server listening on localhost answers inside it.",
                    commands=(C("ip", "-n", c.name, "link", "set", "lo", "up"),),
                )
            )
            for a in c.attachments:
                inside = f"{a.address}/{a.prefixlen}"
                self.add(
                    Step(
                        id=f"addr:{c.name}:{a.network}",
                        section="Inside the containers",
                        summary=f"Give {a.interface} in {c.name} the address {inside} (and no IPv6 link-local one) and bring it up.",
                        commands=(
                            C("ip", "-n", c.name, "addr", "replace", inside, "dev", a.interface),
                            C("ip", "-n", c.name, "link", "set", a.interface, "addrgenmode", "none", "up"),
                        ),
                    )
                )
            a = next((a for a in c.attachments if not self.t.networks[a.network].internal), None)
            if a is None:
                continue
            self.add(
                Step(
                    id=f"route:{c.name}",
                    section="Inside the containers",
                    summary=f"Send {c.name}'s traffic for everywhere else to the host at {a.gateway}, from {a.address}.",
                    commands=(C("ip", "-n", c.name, "route", "replace", "default", "via", str(a.gateway), "dev", a.interface, "src", str(a.address)),),
                )
            )

    def forwarding(self) -> None:
        if not self.t.host.ip_forward:
            return
        self.tools.add("sysctl")
        self.requirements.append(
            Requirement(
                (("grep", "-qx", "1", IP_FORWARD), ("test", "-w", IP_FORWARD)),
                f"net.ipv4.ip_forward is off and cannot be turned on: {IP_FORWARD} is not writable (is /proc/sys read-only here?); nothing was changed",
            )
        )
        before, users = f"{FORWARD_DIR}/before", f"{FORWARD_DIR}/users"
        me = f"{users}/{self.t.name}"
        self.add(
            Step(
                id="ip_forward",
                section="Forwarding",
                summary="Make the host a router (net.ipv4.ip_forward=1), keeping the value it had so teardown can put it back.",
                commands=(
                    C("mkdir", "-p", users),
                    C("cp", IP_FORWARD, before, only_if=(("test", "!", "-e", before),)),
                    C("touch", me),
                    C("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", only_if=(("!", "grep", "-qx", "1", IP_FORWARD),)),
                ),
                undo=(
                    C("rm", "-f", me),
                    # The last topology that needed forwarding puts back the value from before the
                    # first (only when it differs: nothing is written that needs no writing).
                    C("cp", before, IP_FORWARD, only_if=(("test", "-e", before), ("rmdir", users), ("!", "cmp", "-s", before, IP_FORWARD))),
                    C("rm", "-rf", FORWARD_DIR, only_if=(("test", "!", "-d", users),)),
                ),
            )
        )
        if self.t.host.persist:
            conf = f"{SYSCTL_DIR}/60-nsgen-{self.t.name}.conf"
            self.add(
                Step(
                    id="ip_forward:persist",
                    section="Forwarding",
                    summary=f"Keep forwarding on after a reboot: {conf} is read at boot.",
                    commands=(C("install", "-m", "0644", "/dev/stdin", conf, input=f"# Written by nsgen for topology {self.t.name}.\nnet.ipv4.ip_forward = 1\n"),),
                    undo=(C("rm", "-f", conf),),
                )
            )

    def firewall(self) -> None:
        """Every rule lives in the topology's own chains; only the jumps into them sit in the
        built-in chains. Each table is loaded in one `iptables-restore --noflush` (one atomic
        transaction: all of it or none) and removed the same way."""
        nets = [(net, dev) for net in self.t.networks.values() if (dev := self._host_dev(net))]
        if not nets:
            return
        self.tools.add("iptables")
        self.tools.add("iptables-restore")
        tag = ("-m", "comment", "--comment", rule_tag(self.t.name))
        fwd = nat = chain_name(self.t.name)  # one name, in filter and in nat
        published = [(c, c.default_attachment, p) for c in self.t.containers.values() for p in c.ports]

        # filter: traffic into each network first (replies, published ports, its own members;
        # nothing else), then traffic out of the networks that route out. Order matters: the
        # accept for traffic leaving one network must not let it into another.
        filter_rules: list[Argv] = []
        for net, dev in nets:
            if net.routes_out:
                filter_rules.append(("-o", dev, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"))
            for c, a, p in published:
                if a and a.network == net.name:
                    filter_rules.append(("-o", dev, "-d", str(a.address), "-p", p.protocol, "--dport", str(p.container_port), "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"))
            if net.driver == "bridge":
                filter_rules.append(("-i", dev, "-o", dev, "-j", "ACCEPT"))
            filter_rules.append(("-o", dev, "-j", "DROP"))
        for net, dev in nets:
            if net.routes_out:
                # Out to anywhere but another container network: those (this topology's or
                # another's) are in nsgen's device groups, and their own rules decide.
                filter_rules.append(("-i", dev, "-m", "devgroup", "!", "--dst-group", NSGEN_GROUPS, "-j", "ACCEPT"))
            else:
                filter_rules.append(("-i", dev, "-j", "DROP"))
        self._table(
            "filter",
            chains=(fwd,),
            jumps=(("FORWARD", "-I", ()),),
            rules=[(fwd, r) for r in filter_rules],
            tag=tag,
            summary=f"Filter: the topology's own chain {fwd}, reached first from FORWARD (so its networks work even where FORWARD's policy is DROP): "
            "replies and published connections into each network, traffic within a bridge, nothing else in; traffic out of each network that is not internal.",
        )

        # nat: masquerade on the way out (in POSTROUTING itself, as the tutorial writes it);
        # published ports (DNAT) in the topology's own chain, for connections to any local address.
        post_rules: list[Argv] = [("-s", str(net.subnet), "!", "-o", dev, "-j", "MASQUERADE") for net, dev in nets if net.masquerade]
        dnat_rules: list[Argv] = []
        localnet: list[str] = []
        for net, dev in nets:
            mine = [(c, a, p) for c, a, p in published if a and a.network == net.name]
            for c, a, p in mine:
                where = ("-d", str(p.host_ip)) if p.host_ip else ()
                dnat_rules.append((*where, "-p", p.protocol, "--dport", str(p.host_port), "-j", "DNAT", "--to-destination", f"{a.address}:{p.container_port}"))
            if mine:
                # a container reaching its own or a neighbour's published port: replies must come back through the host
                post_rules.append(("-o", dev, "-s", str(net.subnet), "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"))
            if any(p.host_ip is None or p.host_ip.is_loopback for _, _, p in mine):
                # the host reaching a published port at 127.0.0.1: that source cannot leave through dev unmasqueraded
                post_rules.append(("-o", dev, "-s", "127.0.0.0/8", "-j", "MASQUERADE"))
                localnet.append(dev)
        if post_rules or dnat_rules:
            local = ("-m", "addrtype", "--dst-type", "LOCAL")
            what = ["masquerade in POSTROUTING"] if post_rules else []
            if dnat_rules:
                what.append(f"published ports in {nat} (reached from PREROUTING and OUTPUT for local destinations)")
            self._table(
                "nat",
                chains=(nat,) if dnat_rules else (),
                jumps=(("PREROUTING", "-A", local), ("OUTPUT", "-A", local)) if dnat_rules else (),
                rules=[("POSTROUTING", r) for r in post_rules] + [(nat, r) for r in dnat_rules],
                tag=tag,
                summary="NAT: " + "; ".join(what) + ".",
            )
        for dev in localnet:
            self.tools.add("sysctl")
            self.add(
                Step(
                    id=f"route_localnet:{dev}",
                    section="Firewall",
                    summary=f"Let {dev} carry connections from localhost to published ports (route_localnet); the setting goes away with {dev}.",
                    commands=(C("sysctl", "-q", "-w", f"net/ipv4/conf/{dev}/route_localnet=1"),),
                )
            )

    def _table(self, table: str, *, chains: tuple[str, ...], jumps, rules: list[tuple[str, Argv]], tag: Argv, summary: str) -> None:
        """One table's rules as one iptables-restore transaction, and its undo as another.

        Everything of the topology in a table is added at once or not at all, so a single probe
        (its chain, or its first rule) tells whether the table is done, and the undo never meets
        a half-present state."""
        tagged = [(chain, _tagged(rule, tag)) for chain, rule in rules]
        jump_rules = [(hook, how, (*match, *tag, "-j", chains[0])) for hook, how, match in jumps]
        builtin = [(chain, rule) for chain, rule in tagged if chain not in chains]
        setup = [f"*{table}", *(f":{chain} - [0:0]" for chain in chains)]
        setup += [_restore_line("-A", chain, rule) for chain, rule in tagged]
        setup += [_restore_line(how, hook, ("1", *rule) if how == "-I" else rule) for hook, how, rule in jump_rules]
        teardown = [f"*{table}", *(_restore_line("-D", hook, rule) for hook, _how, rule in jump_rules)]
        teardown += [_restore_line("-D", chain, rule) for chain, rule in builtin]
        teardown += [f"-F {chain}" for chain in chains] + [f"-X {chain}" for chain in chains]
        if chains:
            exists = _iptables(table, "-S", chains[0], ())
        else:
            exists = _iptables(table, "-C", builtin[0][0], builtin[0][1])
        restore = ("iptables-restore", "-w", "--noflush")
        self.add(
            Step(
                id=f"firewall:{table}",
                section="Firewall",
                summary=summary,
                commands=(C(*restore, input="\n".join([*setup, "COMMIT"]) + "\n"),),
                undo=(C(*restore, input="\n".join([*teardown, "COMMIT"]) + "\n", only_if=(self.owned, exists)),),
                probe=(exists,),
                resource=f"iptables chain {chains[0]} (table {table})" if chains else None,
            )
        )

    def _host_dev(self, net: Network) -> str | None:
        """The host device that holds the network's gateway address."""
        if net.driver == "bridge":
            return net.bridge
        members = self.t.members(net.name)
        return members[0][1].host_interface if members else None

    def dns(self) -> None:
        for c in self.t.containers.values():
            if not c.dns:
                continue
            folder = f"{NETNS_ETC}/{c.name}"
            mark = f"# Written by nsgen for topology {self.t.name}"
            text = f"{mark}; nameservers from {c.dns_source}.\n" + "".join(f"nameserver {s}\n" for s in c.dns)
            self.add(
                Step(
                    id=f"dns:{c.name}",
                    section="DNS",
                    summary=f"Give {c.name} its own resolver: ip netns exec shows {folder}/resolv.conf as /etc/resolv.conf inside.",
                    commands=(
                        C("mkdir", "-p", folder),
                        C("install", "-m", "0644", "/dev/stdin", f"{folder}/resolv.conf", input=text),
                    ),
                    undo=(
                        C("rm", "-f", f"{folder}/resolv.conf", only_if=(("grep", "-qF", mark, f"{folder}/resolv.conf"),)),
                        C("rmdir", folder, only_if=(self.owned, ("test", "-d", folder))),
                    ),
                    probe=(("test", "-e", folder),),
                    resource=f"directory {folder}",
                )
            )

    def done(self) -> None:
        self.add(_done_step(self.t))

    def processes(self) -> None:
        sdir = state_dir(self.t.name)
        for c in self.t.containers.values():
            for i, p in enumerate(c.processes):
                base = f"{sdir}/{c.name}.{i}"
                self.add(
                    Step(
                        id=f"process:{c.name}:{i}",
                        section="Processes",
                        summary=f"Start `{' '.join(p.argv)}` in {c.name}, detached; output in {base}.log.",
                        commands=(C("setsid", "ip", "netns", "exec", c.name, *p.argv, detach=(f"{base}.log", f"{base}.pid")),),
                        undo=(C("stop_processes", c.name, builtin=True, only_if=(self.owned,)),),
                        probe=(("test", "-e", f"{base}.pid"),),
                    )
                )


def _done_step(topology: Topology) -> Step:
    marker = f"{state_dir(topology.name)}/up"
    return Step(
        id="up",
        section="Done",
        summary=f"Mark topology {topology.name} as completely up.",
        commands=(C("touch", marker),),
        probe=(("test", "-e", marker),),
    )


def compile_plan(topology: Topology) -> Plan:
    b = _Builder(topology)
    b.state()
    b.bridges()  # before the namespaces: torn down after them, once their veths (its ports) are gone
    b.namespaces()
    b.links()
    b.inside()
    b.forwarding()
    b.firewall()
    b.dns()
    b.processes()
    b.done()
    tools = {"ip", "flock", "nsenter"} | b.tools  # nsenter: the batched setup's way into a namespace
    if any(c.processes for c in topology.containers.values()):
        tools.add("setsid")
    return Plan(topology=topology, steps=tuple(b.steps), tools=tuple(sorted(tools)), warnings=topology.warnings, requirements=tuple(b.requirements))
