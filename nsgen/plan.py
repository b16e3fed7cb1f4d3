"""The plan is the only place that knows `ip`, `sysctl` and `iptables` syntax; it knows nothing of shells.

`compile_plan(topology)` turns a resolved topology into an ordered tuple of `Step`s. A step says
why it exists (a one-line summary in the tutorial's voice), the commands that make it happen and
the commands that undo it, all as argv tuples, and optionally a probe that tells whether it is
already done. The setup script, the teardown script and `nsgen run` all consume this one plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from nsgen.models import Attachment, Container, Network, PublishedPort, Topology

Argv = tuple[str, ...]

STATE_ROOT = "/run/nsgen"
LOCK_FILE = "/run/lock/nsgen.lock"
FORWARD_DIR = f"{STATE_ROOT}/.ip_forward"  # shared by every topology: a name no topology can have
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
NETNS_DIR = "/run/netns"
NETNS_ETC = "/etc/netns"
SYSCTL_DIR = "/etc/sysctl.d"


@dataclass(frozen=True)
class Command:
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


@dataclass(frozen=True)
class Step:
    id: str
    section: str  # the part of the tutorial this step belongs to (a heading in the script)
    summary: str  # why, in one line
    commands: tuple[Command, ...]
    undo: tuple[Command, ...] = ()
    probe: tuple[Argv, ...] = ()  # all succeed: the step is already done and is skipped
    resource: str | None = None  # what the probe finds; found while the topology is not up = not ours


@dataclass(frozen=True)
class Requirement:
    """Checked before setup changes anything: met when any of the probes succeeds."""

    any_of: tuple[Argv, ...]
    message: str


@dataclass(frozen=True)
class Plan:
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


def rule_tag(topology: str) -> str:
    """The comment every firewall rule of a topology carries (iptables allows 255 bytes)."""
    return f"nsgen:{topology}"


def chain_name(topology: str) -> str:
    """The topology's own FORWARD chain (iptables allows 28 characters)."""
    return f"NSGEN-{topology}"


def C(*argv: str, **kw) -> Command:
    return Command(tuple(argv), **kw)


def _link_exists(name: str, netns: str | None = None) -> Argv:
    return ("ip", "-n", netns, "link", "show", name) if netns else ("ip", "link", "show", name)


def _iptables(table: str, action: str, chain: str, rule: Argv) -> Argv:
    return ("iptables", "-w", "-t", table, action, chain, *rule)


def _rule_step(topology: Topology, sid: str, section: str, summary: str, table: str, chain: str, rule: Argv) -> Step:
    """A firewall rule tagged as the topology's own: added once, found with -C, removed exactly."""
    tagged = (*rule[:-2], "-m", "comment", "--comment", rule_tag(topology.name), *rule[-2:])
    return Step(
        id=sid,
        section=section,
        summary=summary,
        commands=(C(*_iptables(table, "-A", chain, tagged)),),
        undo=(C(*_iptables(table, "-D", chain, tagged), only_if=(_iptables(table, "-C", chain, tagged),)),),
        probe=(_iptables(table, "-C", chain, tagged),),
    )


class _Builder:
    def __init__(self, topology: Topology):
        self.t = topology
        self.steps: list[Step] = []
        self.tools: set[str] = {"ip"}
        self.requirements: list[Requirement] = []
        # Named resources are ours only while the topology's state directory exists: teardown
        # never deletes a namespace or link of the same name that this topology did not make.
        self.owned: Argv = ("test", "-d", state_dir(topology.name))

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
                commands=(C("mkdir", "-p", sdir),),
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
                    undo=(
                        C("stop_processes", c.name, builtin=True, only_if=(self.owned,)),
                        C("ip", "netns", "delete", c.name, only_if=(self.owned, ("test", "-e", f"{NETNS_DIR}/{c.name}"))),
                    ),
                    probe=(("test", "-e", f"{NETNS_DIR}/{c.name}"),),
                    resource=f"network namespace {c.name}",
                )
            )
            self.add(
                Step(
                    id=f"lo:{c.name}",
                    section="Namespaces",
                    summary=f"Bring up lo in {c.name}, so that a server listening on localhost answers inside it.",
                    commands=(C("ip", "-n", c.name, "link", "set", "lo", "up"),),
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
                    commands=(C("ip", "link", "add", net.bridge, "type", "bridge"),),
                    undo=(C("ip", "link", "delete", net.bridge, only_if=(self.owned, _link_exists(net.bridge))),),
                    probe=(_link_exists(net.bridge),),
                    resource=f"link {net.bridge}",
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
        for c in self.t.containers.values():
            for a in c.attachments:
                net = self.t.networks[a.network]
                self._veth(c, a, net)

    def _veth(self, c: Container, a: Attachment, net: Network) -> None:
        inside = f"{a.address}/{a.prefixlen}"
        self.add(
            Step(
                id=f"veth:{c.name}:{a.network}",
                section="Links",
                summary=f"Create the veth pair {a.host_interface} (host) <-> {a.interface} (in {c.name}), "
                "its inner end made directly inside the namespace.",
                commands=(C("ip", "link", "add", a.host_interface, "type", "veth", "peer", "name", a.interface, "netns", c.name),),
                undo=(C("ip", "link", "delete", a.host_interface, only_if=(self.owned, _link_exists(a.host_interface))),),
                probe=(_link_exists(a.host_interface),),
                resource=f"link {a.host_interface}",
            )
        )
        host_side: list[Command] = []
        if net.driver == "veth":
            gw = f"{net.gateway}/{net.subnet.prefixlen}"
            summary = f"Address the ends: {a.host_interface} gets the gateway {gw}, {a.interface} gets {inside}; bring both up."
            host_side.append(C("ip", "addr", "replace", gw, "dev", a.host_interface))
        else:
            summary = f"Plug {a.host_interface} into bridge {net.bridge} (no address on it; hairpin on, so the container reaches its own published ports), address {a.interface} with {inside}; bring both up."
            host_side.append(C("ip", "link", "set", a.host_interface, "master", str(net.bridge)))
            host_side.append(C("ip", "link", "set", a.host_interface, "type", "bridge_slave", "hairpin", "on"))
        host_side.append(C("ip", "link", "set", a.host_interface, "up"))
        self.add(
            Step(
                id=f"addr:{c.name}:{a.network}",
                section="Links",
                summary=summary,
                commands=(
                    *host_side,
                    C("ip", "-n", c.name, "addr", "replace", inside, "dev", a.interface),
                    C("ip", "-n", c.name, "link", "set", a.interface, "up"),
                ),
            )
        )

    def routes(self) -> None:
        for c in self.t.containers.values():
            a = next((a for a in c.attachments if not self.t.networks[a.network].internal), None)
            if a is None:
                continue
            self.add(
                Step(
                    id=f"route:{c.name}",
                    section="Routes",
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

    def _chain(self, table: str, hooks: tuple[tuple[str, Argv], ...], summary: str) -> None:
        """The topology's own chain in `table`, reached from each hook chain by a tagged jump."""
        chain = chain_name(self.t.name)
        exists = _iptables(table, "-S", chain, ())
        self.add(
            Step(
                id=f"chain:{table}",
                section="Firewall",
                summary=summary,
                resource=f"iptables chain {chain} (table {table})",
                commands=(C(*_iptables(table, "-N", chain, ())),),
                undo=(
                    C(*_iptables(table, "-F", chain, ()), only_if=(self.owned, exists)),
                    C(*_iptables(table, "-X", chain, ()), only_if=(self.owned, exists)),
                ),
                probe=(exists,),
            )
        )
        for hook, match in hooks:
            rule = (*match, "-m", "comment", "--comment", rule_tag(self.t.name), "-j", chain)
            first = table == "filter"  # ahead of whatever else FORWARD holds (a DROP, Docker's chains)
            self.add(
                Step(
                    id=f"jump:{table}:{hook}",
                    section="Firewall",
                    summary=f"Send {hook} traffic through {chain}" + (" first." if first else "."),
                    commands=(C(*_iptables(table, "-I" if first else "-A", hook, ("1", *rule) if first else rule)),),
                    undo=(C(*_iptables(table, "-D", hook, rule), only_if=(_iptables(table, "-C", hook, rule),)),),
                    probe=(_iptables(table, "-C", hook, rule),),
                )
            )

    def _rule(self, sid: str, summary: str, table: str, chain: str, rule: Argv) -> None:
        self.add(_rule_step(self.t, sid, "Firewall", summary, table, chain, rule))

    def firewall(self) -> None:
        nets = [(net, dev) for net in self.t.networks.values() if (dev := self._host_dev(net))]
        if not nets:
            return
        self.tools.add("iptables")
        chain = chain_name(self.t.name)
        published = [(c, c.default_attachment, p) for c in self.t.containers.values() for p in c.ports]
        self._chain(
            "filter",
            (("FORWARD", ()),),
            f"Give the topology its own FORWARD chain {chain}, reached first, so its networks work even where FORWARD's policy is DROP.",
        )
        # Traffic into each network first (replies, published ports, its own members; nothing
        # else), then traffic out of the networks that route out. Order matters: the accept for
        # traffic leaving one network must not let it into another.
        for net, dev in nets:
            if net.routes_out:
                self._rule(f"forward:{net.name}:replies", f"Let replies to {net.name}'s own connections back in.", "filter", chain,
                           ("-o", dev, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"))
            for c, a, p in published:
                if a and a.network == net.name:
                    self._rule(f"forward:{c.name}:{p.protocol}/{p.host_port}", f"Let connections to published port {p.spec} through to {c.name} ({a.address}:{p.container_port}).",
                               "filter", chain, ("-o", dev, "-d", str(a.address), "-p", p.protocol, "--dport", str(p.container_port), "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"))
            if net.driver == "bridge":
                self._rule(f"forward:{net.name}:within", f"Let {net.name}'s containers reach each other across {dev} (this traffic crosses FORWARD when br_netfilter is loaded).",
                           "filter", chain, ("-i", dev, "-o", dev, "-j", "ACCEPT"))
            self._rule(f"forward:{net.name}:isolate", f"Drop anything else entering {net.name}: other networks cannot reach it through the host.", "filter", chain,
                       ("-o", dev, "-j", "DROP"))
        for net, dev in nets:
            if net.routes_out:
                self._rule(f"forward:{net.name}:out", f"Let traffic out of {net.name} be forwarded.", "filter", chain, ("-i", dev, "-j", "ACCEPT"))
            else:
                self._rule(f"forward:{net.name}:out", f"{net.name} is internal: nothing leaves it through the host.", "filter", chain, ("-i", dev, "-j", "DROP"))
        for net, dev in nets:
            if net.masquerade:
                self._rule(f"masquerade:{net.name}", f"Masquerade {net.subnet}: traffic leaving the host (not through {dev}) takes the host's address, so replies find their way back.",
                           "nat", "POSTROUTING", ("-s", str(net.subnet), "!", "-o", dev, "-j", "MASQUERADE"))
        if published:
            self._published(published)

    def _published(self, published: list[tuple[Container, Attachment | None, PublishedPort]]) -> None:
        """Published ports, reached from outside, from the host (its addresses and localhost), from the bridge, and hairpin."""
        chain = chain_name(self.t.name)
        local = ("-m", "addrtype", "--dst-type", "LOCAL")
        self._chain(
            "nat",
            (("PREROUTING", local), ("OUTPUT", local)),
            f"Give published ports their own nat chain {chain}, for connections to any local address: arriving from outside (PREROUTING) and made on the host itself (OUTPUT).",
        )
        devs: dict[str, Network] = {}
        for c, a, p in published:
            assert a is not None
            where = ("-d", str(p.host_ip)) if p.host_ip else ()
            self._rule(f"dnat:{c.name}:{p.protocol}/{p.host_port}", f"Publish {p.spec}: connections to {p.host_ip or 'any host address'} port {p.host_port}/{p.protocol} go to {c.name} at {a.address}:{p.container_port}.",
                       "nat", chain, (*where, "-p", p.protocol, "--dport", str(p.host_port), "-j", "DNAT", "--to-destination", f"{a.address}:{p.container_port}"))
            devs.setdefault(self._host_dev(self.t.networks[a.network]) or "", self.t.networks[a.network])
        for dev, net in devs.items():
            self._rule(f"masquerade:{net.name}:hairpin", f"Masquerade published connections that come from {net.name} itself, so replies return through the host (a container reaching its own or a neighbour's published port).",
                       "nat", "POSTROUTING", ("-o", dev, "-s", str(net.subnet), "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"))
            if any(p.host_ip is None or p.host_ip.is_loopback for c, a, p in published if a and a.network == net.name):
                self._rule(f"masquerade:{net.name}:localhost", f"Masquerade published connections the host makes from localhost, which cannot leave through {dev} with a 127.0.0.0/8 source.",
                           "nat", "POSTROUTING", ("-o", dev, "-s", "127.0.0.0/8", "-j", "MASQUERADE"))
                self.tools.add("sysctl")
                self.add(
                    Step(
                        id=f"route_localnet:{net.name}",
                        section="Firewall",
                        summary=f"Let {dev} route packets to localhost's published ports (route_localnet); the setting goes away with {dev}.",
                        commands=(C("sysctl", "-q", "-w", f"net/ipv4/conf/{dev}/route_localnet=1"),),
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


def compile_plan(topology: Topology) -> Plan:
    b = _Builder(topology)
    b.state()
    b.namespaces()
    b.bridges()
    b.links()
    b.routes()
    b.forwarding()
    b.firewall()
    b.dns()
    b.processes()
    tools = {"ip", "flock"} | b.tools
    if any(c.processes for c in topology.containers.values()):
        tools.add("setsid")
    return Plan(topology=topology, steps=tuple(b.steps), tools=tuple(sorted(tools)), warnings=topology.warnings, requirements=tuple(b.requirements))
