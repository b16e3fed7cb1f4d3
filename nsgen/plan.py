"""The plan is the only place that knows `ip`, `sysctl` and `iptables` syntax; it knows nothing of shells.

`compile_plan(topology)` turns a resolved topology into an ordered tuple of `Step`s. A step says
why it exists (a one-line summary in the tutorial's voice), the commands that make it happen and
the commands that undo it, all as argv tuples, and optionally a probe that tells whether it is
already done and one that tells whether what the probe found is this topology's own. The setup
script, the teardown script and `nsgen run` all consume this one plan.

Some operations are no single program: a builtin (`Command.builtin`) names one, done by a shell
function in the scripts (templates/_functions.sh.j2) and by a Python function in `nsgen run`
(nsgen/builtins.py), with the same outcome. `BUILTINS` lists them with the programs they use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from nsgen.names import (
    FORWARD_DIR,
    IP_FORWARD,
    LOCK_FILE,
    NETNS_DIR,
    NETNS_ETC,
    NSGEN_GROUPS,
    STATE_ROOT,
    SYSCTL_DIR,
    chain_name,
    device_group,
    intent_path,
    mark,
    record_path,
    resolv_mark,
    rule_tag,
    state_dir,
)

if TYPE_CHECKING:  # only for annotations: a recorded topology is compiled without validating it again
    from nsgen.models import Network, Topology

__all__ = ["NETNS_DIR", "NETNS_ETC", "STATE_ROOT", "Command", "Plan", "Step", "chain_name", "compile_plan", "device_group", "rule_tag", "state_dir"]

Argv = tuple[str, ...]

# A process runs under `sh -c EXIT_STATUS BASE PROGRAM...`: the program's words are passed as
# arguments, never parsed by the shell; the program's pid lands in BASE.pid, and its exit status
# in BASE.exit when it ends (the shell waits for it: it is what `nsgen ps` reports).
EXIT_STATUS = '"$@" & echo "$!" >"$0.pid"; wait "$!"; echo "$?" >"$0.exit"'
START_WINDOW = 0.5  # seconds a process with nothing to wait for must keep running after its start

# Builtin operations and the programs their shell functions run (the scripts check for them).
BUILTINS: dict[str, tuple[str, ...]] = {
    "stop_processes": ("ip",),
    "group_has_links": ("ip",),
    "netns_ours": ("ip",),
    "link_ours": ("ip",),
    "group_ours": ("ip",),
    "delete_links": ("ip",),
    "iptables_undo": ("iptables", "iptables-restore"),
    "ip6tables_undo": ("ip6tables", "ip6tables-restore"),
    "conntrack_flush": ("conntrack",),
    "state_ok": (),
    "state_ours": (),
    "subnets_free": ("ip",),
    "ports_free": ("ss", "iptables-save"),
    "other_firewall": ("iptables",),
    "process_alive": ("ip",),
    "wait_ready": ("ip",),
}
# The Debian and Ubuntu package of each program a plan may need (said when one is missing).
PACKAGES = {"ip": "iproute2", "ss": "iproute2", "iptables": "iptables", "iptables-restore": "iptables",
            "iptables-save": "iptables", "ip6tables": "iptables", "ip6tables-restore": "iptables",
            "ip6tables-save": "iptables", "sysctl": "procps", "flock": "util-linux", "nsenter": "util-linux",
            "setsid": "util-linux", "conntrack": "conntrack"}
# Programs every system has (coreutils, grep, findutils): not listed among a plan's tools.
BASIC = {"test", "!", "install", "rm", "rmdir", "mkdir", "cp", "cmp", "grep", "touch", "stat", "find", "sh"}


class Command(NamedTuple):
    """One program run: an argv, with what the shell would add around it described as data.

    input: text fed on standard input (a here-document in the script).
    only_if: probes that must all succeed for the command to run (silently checked, in order);
             a probe written ("!", argv...) succeeds when argv fails.
    detach: (log file, pid file): start in the background, output to the log, pid recorded.
    builtin: argv[0] names an operation of nsgen's own (see BUILTINS).
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
    resource: str | None = None  # what the probe finds, named for a person
    goes_with: str | None = None  # id of a step whose undo takes this step's effect with it
    ours: tuple[Argv, ...] = ()  # all succeed: what the probe found is this topology's own (else: a refusal)
    group: str = "topology"  # what it belongs to: "topology", "network:NAME" or "container:NAME"
    final: bool = False  # undone only when every other undo succeeded (it keeps what a retry needs)
    begun_with: str | None = None  # id of a step: this one is begun by a run exactly when that one is
    title: str = ""  # what it does in a few words, for progress (the summary says why)
    undo_summary: str = ""  # what its undo removes, in one line (the teardown script's comment)


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
    # Builtins run under the lock before any change; each says on stderr why it refuses.
    guards: tuple[Command, ...] = ()
    digest: str = ""
    functions: tuple[str, ...] = ()  # the builtins the plan uses (the scripts define only those)

    @property
    def name(self) -> str:
        return self.topology.name

    @property
    def state_dir(self) -> str:
        return state_dir(self.topology.name)

    @property
    def record(self) -> str:
        return record_path(self.topology.name)

    @property
    def digest_line(self) -> str:
        return f'"digest": "{self.digest}"'

    @property
    def up_marker(self) -> str:
        return f"{self.state_dir}/up"

    @property
    def lock_file(self) -> str:
        return LOCK_FILE

    @property
    def packages(self) -> list[tuple[str, str]]:
        """(program, package) for each of the plan's tools."""
        return [(tool, PACKAGES.get(tool, tool)) for tool in self.tools]

    def sections(self) -> list[tuple[str, list[Step]]]:
        """Steps grouped by consecutive section, in plan order."""
        groups: list[tuple[str, list[Step]]] = []
        for step in self.steps:
            if not groups or groups[-1][0] != step.section:
                groups.append((step.section, []))
            groups[-1][1].append(step)
        return groups

    def resources(self) -> list[Step]:
        """The steps that make a named resource (what a teardown that fails says is left)."""
        return [s for s in self.steps if s.resource and s.probe]


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


def B(*argv: str, **kw) -> Command:
    """A builtin operation (see BUILTINS)."""
    assert argv[0] in BUILTINS, argv[0]
    return Command(tuple(argv), builtin=True, **kw)


def _link_exists(name: str) -> Argv:
    return ("ip", "link", "show", name)


def _iptables(table: str, action: str, chain: str, rule: Argv) -> Argv:
    return ("iptables", "-w", "-t", table, action, chain, *rule)


class _Builder:
    def __init__(self, topology: Topology):
        self.t = topology
        self.steps: list[Step] = []
        self.requirements: list[Requirement] = []
        self.group = device_group(topology.name)
        self.mark = mark(topology.name)
        self.intent = intent_path(topology.name)

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def netns_ours(self, ns: str) -> Argv:
        return ("netns_ours", self.t.name, ns, self.intent)

    def link_ours(self, name: str) -> Argv:
        return ("link_ours", name, self.group, self.t.name)

    def host_devices(self) -> list[str]:
        """Every host device the topology makes: its bridges and the host ends of its veth pairs."""
        names = [n.bridge for n in self.t.networks.values() if n.bridge]
        return names + [a.host_interface for c in self.t.containers.values() for a in c.attachments]

    # -- the tutorial, in its order ------------------------------------------------------------

    def state(self, record_text: str, digest_line: str) -> None:
        sdir, record = state_dir(self.t.name), record_path(self.t.name)
        self.add(
            Step(
                id="state",
                section="State",
                summary=f"Record what topology {self.t.name} is, in {record}: teardown and later runs undo exactly what is up. "
                f"Its processes' pids and logs live beside it.",
                commands=(C("install", "-D", "-m", "0644", "/dev/stdin", record, input=record_text),),
                undo=(
                    C("rm", "-rf", sdir, only_if=(("state_ours", self.t.name),)),
                    C("rmdir", "--ignore-fail-on-non-empty", STATE_ROOT, only_if=(("test", "-d", STATE_ROOT),)),
                ),
                probe=(("grep", "-qF", digest_line, record),),
                final=True,
            )
        )
        # Nothing to do at setup. At teardown this comes after every device is gone: the last
        # topology that needed forwarding puts back the value from before the first (only when
        # it differs: nothing is written that needs no writing), never while this topology's
        # own devices are still there (a teardown that could not delete them).
        self.add(
            Step(
                id="ip_forward:restore",
                section="State",
                summary="Teardown puts net.ipv4.ip_forward back to the value it had before the first nsgen topology turned it on, "
                "once no topology needs forwarding and this one's devices are gone.",
                commands=(),
                undo=restore_forwarding(self.group),
            )
        )

    def namespaces(self) -> None:
        self.add(
            Step(
                id="namespaces",
                section="Namespaces",
                summary=f"Note which namespaces this setup is about to create, in {self.intent}: until each carries the topology's mark "
                "(the alias of its lo), that note tells it from someone else's.",
                commands=(C("install", "-m", "0644", "/dev/stdin", self.intent, input="".join(f"{c}\n" for c in self.t.containers)),),
            )
        )
        for c in self.t.containers.values():
            self.add(
                Step(
                    id=f"netns:{c.name}",
                    section="Namespaces",
                    summary=f"Create the network namespace {c.name}: the container's own interfaces, routes and firewall.",
                    commands=(C("ip", "netns", "add", c.name),),
                    undo=(C("ip", "netns", "delete", c.name, only_if=(self.netns_ours(c.name),)),),
                    probe=(("test", "-e", f"{NETNS_DIR}/{c.name}"),),
                    resource=f"network namespace {c.name}",
                    ours=(self.netns_ours(c.name),),
                    group=f"container:{c.name}",
                )
            )
        if any(c.attachments for c in self.t.containers.values()):
            # Nothing to do at setup. At teardown this runs before the namespaces are deleted:
            # deleting a namespace would leave its veth pairs to the kernel's background work.
            names = self.host_devices()
            self.add(
                Step(
                    id="devices",
                    section="Namespaces",
                    summary=f"Teardown deletes every host device of topology {self.t.name} at once: its bridges and veth host ends "
                    f"are in device group {self.group} and carry the alias {self.mark}, and deleting one end of a veth pair deletes the other.",
                    commands=(),
                    undo=(B("delete_links", self.group, self.t.name, *names),),
                    probe=(("group_has_links", self.group),),
                    resource=f"a link in device group {self.group} (another topology's name hashes alike: rename one)",
                    ours=(("group_ours", self.group, self.t.name, *names),),
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
                    undo=(B("stop_processes", c.name, only_if=(self.netns_ours(c.name),)),),
                    # a run that finds the namespace there (a second run) never stops its
                    # processes when it fails
                    begun_with=f"netns:{c.name}",
                    group=f"container:{c.name}",
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
                    undo=(C("ip", "link", "delete", net.bridge, only_if=(self.link_ours(net.bridge),)),),
                    probe=(_link_exists(net.bridge),),
                    resource=f"link {net.bridge}",
                    ours=(self.link_ours(net.bridge),),
                    goes_with="devices",
                    group=f"network:{net.name}",
                )
            )
            self.add(
                Step(
                    id=f"bridge-up:{net.name}",
                    section="Bridges",
                    summary=f"Give {net.bridge} the gateway address {gw}, mark it as topology {self.t.name}'s (alias {self.mark}) "
                    "and bring it up: the host is the network's router.",
                    commands=(
                        C("ip", "addr", "replace", gw, "dev", net.bridge),
                        C("ip", "link", "set", net.bridge, "alias", self.mark, "up"),
                    ),
                    group=f"network:{net.name}",
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
                        commands=(C("ip", "link", "add", a.host_interface, "group", self.group, "type", "veth",
                                   "peer", "name", a.interface, "netns", c.name),),
                        undo=(C("ip", "link", "delete", a.host_interface, only_if=(self.link_ours(a.host_interface),)),),
                        probe=(_link_exists(a.host_interface),),
                        resource=f"link {a.host_interface}",
                        ours=(self.link_ours(a.host_interface),),
                        goes_with="devices",
                        group=f"container:{c.name}",
                    )
                )
        for c in self.t.containers.values():
            for a in c.attachments:
                net = self.t.networks[a.network]
                if net.driver == "veth":
                    gw = f"{net.gateway}/{net.subnet.prefixlen}"
                    summary = (f"Give {a.host_interface} the gateway address {gw}, mark it (alias {self.mark}) and bring it up "
                               f"(no IPv6 link-local address): the host is {c.name}'s router.")
                    commands = (
                        C("ip", "addr", "replace", gw, "dev", a.host_interface),
                        C("ip", "link", "set", a.host_interface, "alias", self.mark, "addrgenmode", "none", "up"),
                    )
                else:
                    summary = (f"Plug {a.host_interface} into bridge {net.bridge} (it has no address of its own, not even IPv6 link-local) "
                               f"with hairpin on, so {c.name} reaches its own published ports; mark it (alias {self.mark}) and bring it up.")
                    commands = (
                        C("ip", "link", "set", a.host_interface, "master", str(net.bridge), "alias", self.mark, "addrgenmode", "none", "up"),
                        C("ip", "link", "set", a.host_interface, "type", "bridge_slave", "hairpin", "on"),
                    )
                self.add(Step(id=f"host-end:{c.name}:{a.network}", section="Links", summary=summary, commands=commands, group=f"container:{c.name}"))

    def inside(self) -> None:
        """Each container's own configuration, contiguous, so that it can run as one batch inside it."""
        for c in self.t.containers.values():
            self.add(
                Step(
                    id=f"lo:{c.name}",
                    section="Inside the containers",
                    summary=f"Bring up lo in {c.name}, so that a server listening on localhost answers inside it; its alias {self.mark} "
                    "marks the namespace as this topology's.",
                    commands=(C("ip", "-n", c.name, "link", "set", "lo", "alias", self.mark, "up"),),
                    group=f"container:{c.name}",
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
                        group=f"container:{c.name}",
                    )
                )
            a = next((a for a in c.attachments if not self.t.networks[a.network].internal), None)  # type: ignore[assignment]
            if a is None:
                continue
            self.add(
                Step(
                    id=f"route:{c.name}",
                    section="Inside the containers",
                    summary=f"Send {c.name}'s traffic for everywhere else to the host at {a.gateway}, from {a.address}.",
                    commands=(C("ip", "-n", c.name, "route", "replace", "default", "via", str(a.gateway),
                               "dev", a.interface, "src", str(a.address)),),
                    group=f"container:{c.name}",
                )
            )

    def forwarding(self) -> None:
        if not self.t.host.ip_forward:
            return
        self.requirements.append(
            Requirement(
                (("grep", "-qx", "1", IP_FORWARD), ("test", "-w", IP_FORWARD)),
                f"net.ipv4.ip_forward is off and cannot be turned on: {IP_FORWARD} is not writable"
                " (is /proc/sys read-only here?); nothing was changed",
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
                # No longer a user of forwarding; the value goes back with ip_forward:restore.
                undo=(C("rm", "-f", me),),
                probe=(("test", "-e", me), ("grep", "-qx", "1", IP_FORWARD)),
            )
        )
        if self.t.host.persist:
            conf = f"{SYSCTL_DIR}/60-nsgen-{self.t.name}.conf"
            header = f"# Written by nsgen for topology {self.t.name}."
            self.add(
                Step(
                    id="ip_forward:persist",
                    section="Forwarding",
                    summary=f"Keep forwarding on after a reboot: {conf} is read at boot.",
                    commands=(C("install", "-m", "0644", "/dev/stdin", conf, input=f"{header}\nnet.ipv4.ip_forward = 1\n"),),
                    undo=(C("rm", "-f", conf, only_if=(("grep", "-qxF", header, conf),)),),
                )
            )

    def dns(self) -> None:
        for c in self.t.containers.values():
            if not c.dns:
                continue
            folder = f"{NETNS_ETC}/{c.name}"
            head = resolv_mark(self.t.name)
            text = f"{head} nameservers from {c.dns_source}.\n" + "".join(f"nameserver {s}\n" for s in c.dns)
            conf = f"{folder}/resolv.conf"
            self.add(
                Step(
                    id=f"dns:{c.name}",
                    section="DNS",
                    summary=f"Give {c.name} its own resolver: ip netns exec shows {conf} as /etc/resolv.conf inside.",
                    commands=(C("install", "-D", "-m", "0644", "/dev/stdin", conf, input=text),),
                    undo=(
                        C("rm", "-f", conf, only_if=(("grep", "-qF", head, conf),)),
                        C("rmdir", "--ignore-fail-on-non-empty", folder, only_if=(("test", "-d", folder), self.netns_ours(c.name))),
                    ),
                    probe=(("test", "-e", folder),),
                    resource=f"directory {folder}",
                    ours=(("grep", "-qF", head, conf),),
                    group=f"container:{c.name}",
                )
            )

    def processes(self) -> None:
        sdir = state_dir(self.t.name)
        waits: list[str] = []
        for c in self.t.containers.values():
            for i, p in enumerate(c.processes):
                base = f"{sdir}/{c.name}.{i}"
                self.add(
                    Step(
                        id=f"process:{c.name}:{i}",
                        section="Processes",
                        summary=f"Start `{' '.join(p.argv)}` in {c.name}, detached; output in {base}.log; the `sh -c` in front "
                        f"records its pid in {base}.pid and, when it ends, its exit status in {base}.exit.",
                        commands=(
                            C("rm", "-f", f"{base}.pid", f"{base}.exit", f"{base}.shim"),
                            C("setsid", "ip", "netns", "exec", c.name, "sh", "-c", EXIT_STATUS, base, *p.argv,
                              detach=(f"{base}.log", f"{base}.shim")),
                        ),
                        undo=(B("stop_processes", c.name, only_if=(self.netns_ours(c.name),)),),
                        probe=(("process_alive", c.name, f"{base}.pid"),),
                        group=f"container:{c.name}",
                    )
                )
                waits += [c.name, base, f"{p.ready_timeout:g}", *(p.ready[:1] or ("none",)), str(len(p.ready[1:])), *p.ready[1:],
                          str(len(p.argv)), *p.argv]
        if waits:
            self.add(
                Step(
                    id="ready",
                    section="Processes",
                    summary="Wait until every process runs and is ready (listening on its port, its file there, its check "
                    f"passing), or, with nothing to wait for, still runs after {START_WINDOW:g} s; one that ends or is not "
                    "ready in time fails the setup, with its last lines of output.",
                    commands=(B("wait_ready", *waits),),
                )
            )

    def done(self) -> None:
        marker = f"{state_dir(self.t.name)}/up"
        self.add(
            Step(
                id="up",
                section="Done",
                summary=f"Mark topology {self.t.name} as completely up.",
                commands=(C("touch", marker),),
                undo=(C("rm", "-f", marker),),
                probe=(("test", "-e", marker),),
            )
        )

    def guards(self) -> tuple[Command, ...]:
        """What is checked against the host under the lock, before any change."""
        guards = [B("state_ok", self.t.name)]
        subnets = [f"{n.name}={n.subnet}" for n in self.t.networks.values()]
        if subnets:
            guards.append(B("subnets_free", self.group, self.t.name, *subnets))
        ports = [f"{p.protocol}:{p.host_port}:{p.host_ip or '*'}" for c in self.t.containers.values() for p in c.ports]
        if ports:
            guards.append(B("ports_free", rule_tag(self.t.name), *ports))
        guards.append(B("other_firewall"))
        return tuple(guards)


class Rule(NamedTuple):
    """A firewall rule: its chain, its words (without the topology's comment), what it is for."""

    chain: str
    argv: Argv
    why: str
    how: str = "-A"  # -A (appended), or -I (first in its chain)


class _Firewall:
    """The firewall steps: every rule lives in the topology's own chains, except the jumps into
    them and the rules that must sit in a built-in chain (masquerade, the loopback guard). Each
    table is loaded in one `iptables-restore --noflush` (one atomic transaction: all of it or
    none) and removed the same way (rule by rule, whatever is there, when that fails)."""

    def __init__(self, b: _Builder):
        self.b, self.t = b, b.t
        self.tag = ("-m", "comment", "--comment", rule_tag(self.t.name))
        self.chain = chain_name(self.t.name)  # one name, in filter and in nat
        self.nets = [(net, dev) for net in self.t.networks.values() if (dev := self._host_dev(net))]
        self.published = [(c, c.default_attachment, p) for c in self.t.containers.values() for p in c.ports]

    def build(self) -> None:
        if not self.nets:
            return
        self.raw()
        udp = sorted({p.host_port for _c, _a, p in self.published if p.protocol == "udp"})
        if udp:
            self.conntrack(udp, before_nat=True)
        self.filter()
        self.nat()
        if udp:
            self.conntrack(udp, before_nat=False)

    def raw(self) -> None:
        # Before any NAT: a packet for 127.0.0.0/8 that did not start on this host (a neighbour
        # routing 127.0.0.1 to it, a container) is dropped, so that neither a port published on
        # 127.0.0.1 nor a host service bound to loopback can be reached from elsewhere.
        rule = Rule("PREROUTING", ("!", "-i", "lo", "-d", "127.0.0.0/8", "-j", "DROP"),
                    "packets for 127.0.0.0/8 that did not start on this host stop here, before any NAT")
        self.table("raw", chains=(), jumps=(), rules=[rule],
                   summary="Loopback stays loopback: packets for 127.0.0.0/8 that arrive on any interface but lo are dropped before NAT "
                   "(raw PREROUTING), so ports published on 127.0.0.1 and host services bound to it are reached from the host only.")

    def filter(self) -> None:
        # Traffic into each network first (replies, published ports, its own members; nothing
        # else), then traffic out of the networks that route out. Order matters: the accept for
        # traffic leaving one network must not let it into another.
        rules: list[Rule] = []
        for net, dev in self.nets:
            if net.routes_out:
                rules.append(Rule(self.chain, ("-o", dev, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
                                  f"replies into network {net.name}"))
            for c, a, p in self.published:
                if a and a.network == net.name:
                    rules.append(Rule(self.chain, ("-o", dev, "-d", str(a.address), "-p", p.protocol, "--dport", str(p.container_port),
                                                   "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"),
                                      f"connections to {c.name}'s published port {p.spec}"))
            if net.driver == "bridge":
                rules.append(Rule(self.chain, ("-i", dev, "-o", dev, "-j", "ACCEPT"), f"traffic within network {net.name}"))
            rules.append(Rule(self.chain, ("-o", dev, "-j", "DROP"), f"nothing else into network {net.name}"))
        for net, dev in self.nets:
            if net.routes_out:
                # Out to anywhere but another container network: those (this topology's or
                # another's) are in nsgen's device groups, and their own rules decide.
                rules.append(Rule(self.chain, ("-i", dev, "-m", "devgroup", "!", "--dst-group", NSGEN_GROUPS, "-j", "ACCEPT"),
                                  f"traffic out of network {net.name}, unless it is headed into another container network"))
            else:
                rules.append(Rule(self.chain, ("-i", dev, "-j", "DROP"), f"nothing out of internal network {net.name}"))
        self.table("filter", chains=(self.chain,), jumps=(("FORWARD", "-I", (), f"forwarded packets go through {self.chain} first"),),
                   rules=rules,
                   summary=f"Filter: the topology's own chain {self.chain}, reached first from FORWARD (so its networks work even where "
                   "FORWARD's policy is DROP): replies and published connections into each network, traffic within a bridge, nothing "
                   "else in; traffic out of each network that is not internal.")

    def nat(self) -> None:
        # Masquerade on the way out (in POSTROUTING itself, as the tutorial writes it); published
        # ports (DNAT) in the topology's own chain, for connections to any local address.
        post = [Rule("POSTROUTING", ("-s", str(net.subnet), "!", "-o", dev, "-j", "MASQUERADE"), f"network {net.name} reaches out as the host")
                for net, dev in self.nets if net.masquerade]
        dnat: list[Rule] = []
        self.localnet: list[tuple[str, str]] = []
        for net, dev in self.nets:
            mine = [(c, a, p) for c, a, p in self.published if a and a.network == net.name]
            for c, a, p in mine:
                where = ("-d", str(p.host_ip)) if p.host_ip else ()
                dnat.append(Rule(self.chain, (*where, "-p", p.protocol, "--dport", str(p.host_port), "-j", "DNAT", "--to-destination",
                                              f"{a.address}:{p.container_port}"), f"published port {p.spec} goes to {c.name}"))
            if mine:
                post.append(Rule("POSTROUTING", ("-o", dev, "-s", str(net.subnet), "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"),
                                 f"a container of {net.name} reaching a published port of its own network: replies come back through the host"))
            if any(p.host_ip is None or p.host_ip.is_loopback for _, _, p in mine):
                post.append(Rule("POSTROUTING", ("-o", dev, "-s", "127.0.0.0/8", "-j", "MASQUERADE"),
                                 f"the host reaching a published port of {net.name} at 127.0.0.1"))
                self.localnet.append((net.name, dev))
        if post or dnat:
            local = ("-m", "addrtype", "--dst-type", "LOCAL")
            what = ["masquerade in POSTROUTING"] if post else []
            if dnat:
                what.append(f"published ports in {self.chain} (reached from PREROUTING and OUTPUT for local destinations)")
            self.table("nat", chains=(self.chain,) if dnat else (),
                       jumps=(("PREROUTING", "-A", local, f"connections from elsewhere to this host's addresses: published ports in {self.chain}"),
                              ("OUTPUT", "-A", local,
                               f"connections from this host to its own addresses: published ports in {self.chain}")) if dnat else (),
                       rules=post + dnat, summary="NAT: " + "; ".join(what) + ".")
        for net_name, dev in self.localnet:
            members = self.t.members(net_name)
            group = f"network:{net_name}" if self.t.networks[net_name].driver == "bridge" else f"container:{members[0][0].name}"
            self.b.add(
                Step(
                    id=f"route_localnet:{dev}",
                    section="Firewall",
                    summary=f"Let {dev} carry connections from localhost to published ports (route_localnet); the setting goes away with {dev}. "
                    "Nothing else for 127.0.0.0/8 gets in through it: the loopback guard above drops it.",
                    commands=(C("sysctl", "-q", "-w", f"net/ipv4/conf/{dev}/route_localnet=1"),),
                    group=group,
                )
            )

    def conntrack(self, ports: list[int], *, before_nat: bool) -> None:
        shown = ", ".join(map(str, ports))
        flush = B("conntrack_flush", "udp", *map(str, ports))
        if before_nat:  # nothing to do at setup; at teardown, after the published ports' rules are gone
            self.b.add(Step(id="conntrack:unpublished", section="Firewall", commands=(), undo=(flush,),
                            summary=f"Teardown forgets the connection-tracking entries of UDP ports {shown}, once they are no longer published: "
                            "a flow that is still going would otherwise keep going to the container."))
        else:
            self.b.add(Step(id="conntrack:published", section="Firewall", commands=(flush,),
                            summary=f"Forget the host's connection-tracking entries of UDP ports {shown} (conntrack -D): a flow that began "
                            "before the port was published would otherwise keep going to the host, never to the container."))

    def table(self, table: str, *, chains: tuple[str, ...], jumps, rules: list[Rule], summary: str) -> None:
        """One table's rules as one iptables-restore transaction, and its undo as another, each
        rule under a comment that says what it is for.

        Everything of the topology in a table is added at once or not at all, so a single probe
        (its chain, or its first rule) tells whether the table is done."""
        tag = self.tag
        tagged = [r._replace(argv=_tagged(r.argv, tag)) for r in rules]
        jump_rules = [Rule(hook, (*match, *tag, "-j", chains[0]), why, how) for hook, how, match, why in jumps]
        builtin = [r for r in tagged if r.chain not in chains]
        setup = [f"*{table}", *(f":{chain} - [0:0]" for chain in chains)]
        for r in [*tagged, *jump_rules]:
            setup += [f"# {r.why}", _restore_line(r.how, r.chain, ("1", *r.argv) if r.how == "-I" else r.argv)]
        teardown = [f"*{table}"]
        for r in [*jump_rules, *builtin]:
            teardown += [f"# {r.why}", _restore_line("-D", r.chain, r.argv)]
        if chains:
            teardown += [f"# the chain {chains[0]} and all its rules", *(f"-F {chain}" for chain in chains), *(f"-X {chain}" for chain in chains)]
        if chains:
            exists = _iptables(table, "-S", chains[0], ())
        else:
            exists = _iptables(table, "-C", builtin[0].chain, builtin[0].argv)
        restore = ("iptables-restore", "-w", "--noflush")
        self.b.add(
            Step(
                id=f"firewall:{table}",
                section="Firewall",
                summary=summary,
                commands=(C(*restore, input="\n".join([*setup, "COMMIT"]) + "\n"),),
                undo=(B("iptables_undo", input="\n".join([*teardown, "COMMIT"]) + "\n"),),
                probe=(exists,),
                resource=f"iptables chain {chains[0]} (table {table})" if chains else None,
                # A chain of this topology's name is its own when the topology is recorded as up.
                ours=(("test", "-e", record_path(self.t.name)),) if chains else (),
            )
        )

    def _host_dev(self, net: Network) -> str | None:
        """The host device that holds the network's gateway address."""
        if net.driver == "bridge":
            return net.bridge
        members = self.t.members(net.name)
        return members[0][1].host_interface if members else None


def restore_forwarding(group: str) -> tuple[Command, ...]:
    """Put net.ipv4.ip_forward back when no topology is a user of forwarding any more (the users'
    folder is empty) and no device of group `group` is left."""
    before, users = f"{FORWARD_DIR}/before", f"{FORWARD_DIR}/users"
    return (
        C("rmdir", "--ignore-fail-on-non-empty", users, only_if=(("test", "-d", users), ("!", "group_has_links", group))),
        C("cp", before, IP_FORWARD, only_if=(("test", "-e", before), ("test", "!", "-d", users), ("!", "cmp", "-s", before, IP_FORWARD))),
        C("rm", "-rf", FORWARD_DIR, only_if=(("test", "-d", FORWARD_DIR), ("test", "!", "-d", users))),
    )


def _tools_and_functions(steps: list[Step], guards: tuple[Command, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The programs the plan runs (its commands, undos and probes, and those of its builtins),
    besides the ones every system has, with flock and nsenter (the scripts' own); and the
    builtins it uses (the scripts define only those)."""
    words: set[str] = set()
    commands = [*guards, *(c for s in steps for c in (*s.commands, *s.undo))]
    for cmd in commands:
        words.add(cmd.argv[0])
        words.update(p[1] if p[0] == "!" else p[0] for p in cmd.only_if)
    for step in steps:
        words.update(p[1] if p[0] == "!" else p[0] for p in (*step.probe, *step.ours))
    tools = {"ip", "flock", "nsenter"}
    for word in words:
        tools.update(BUILTINS.get(word, (word,)))
    return tuple(sorted(tools - BASIC)), tuple(sorted(words & BUILTINS.keys()))


_TITLES = {
    "state": "record the topology", "ip_forward:restore": "put ip_forward back", "namespaces": "note the namespaces to create",
    "netns": "namespace {0}", "devices": "delete the topology's devices", "reap": "stop the processes in {0}",
    "bridge": "bridge for {0}", "bridge-up": "gateway of {0}, up", "veth": "veth pair {0} / {1}", "host-end": "host end {0} / {1}, up",
    "lo": "lo up in {0}", "addr": "address of {0} on {1}", "route": "default route of {0}", "ip_forward": "forwarding on",
    "ip_forward:persist": "forwarding at boot", "firewall": "{0} rules", "conntrack:published": "forget the UDP flows of published ports",
    "conntrack:unpublished": "forget the UDP flows of unpublished ports", "route_localnet": "route_localnet on {0}", "dns": "resolver of {0}",
    "process": "start process {1} in {0}", "ready": "wait until the processes are ready", "up": "mark the topology up",
}


_UNDONE = {
    "state": "Remove the state directory {sdir}: last, and only when everything else is gone (a second teardown needs it).",
    "ip_forward:restore": "Put net.ipv4.ip_forward back to its value from before the first nsgen topology, once no topology "
                          "needs forwarding and this one's devices are gone.",
    "netns": "Delete the network namespace {0} (when its lo carries the topology's mark).",
    "devices": "Delete the bridges and veth pairs of topology {name}: every device of group {group} that carries its alias, in one call.",
    "reap": "Stop the processes still running in {0}: TERM, then KILL after 3 seconds.",
    "bridge": "Delete bridge {0}.", "veth": "Delete the veth pair of {0} on {1}.",
    "ip_forward": "No longer count topology {name} among the users of forwarding.",
    "ip_forward:persist": "Remove the sysctl.d file that kept forwarding on at boot.",
    "firewall": "Remove the {0} rules of topology {name}, in one transaction (rule by rule when that fails).",
    "conntrack:unpublished": "Forget the connection-tracking entries of the UDP ports that are no longer published.",
    "dns": "Remove the resolv.conf of {0} (when nsgen wrote it) and its folder (when empty).",
    "process": "Stop process {1} of {0}, with every other process in {0}.", "up": "Unmark topology {name} as up: it is being taken down.",
}


def _undo_summary(step: Step, topology: Topology) -> str:
    if not step.undo:
        return ""
    key = step.id if step.id in _UNDONE else step.id.split(":", 1)[0]
    parts = step.id.split(":")[1:] if key != step.id else []
    text = _UNDONE.get(key, f"Undo: {step.summary}")
    return text.format(*parts, "", "", name=topology.name, sdir=state_dir(topology.name), group=device_group(topology.name))


def _title(step: Step) -> str:
    """A step's title: a few words from its id (`veth:web:front` is "veth pair web / front")."""
    key = step.id if step.id in _TITLES else step.id.split(":", 1)[0]
    parts = step.id.split(":")[1:] if key != step.id else []
    return _TITLES.get(key, step.id).format(*parts, "", "")


def compile_plan(topology: Topology) -> Plan:
    from nsgen import record

    b = _Builder(topology)
    digest = record.digest(topology)
    b.state(record.text(topology, digest), record.digest_line(digest))
    b.bridges()  # before the namespaces: torn down after them, once their veths (its ports) are gone
    b.namespaces()
    b.links()
    b.inside()
    b.forwarding()
    _Firewall(b).build()
    b.dns()
    b.processes()
    b.done()
    guards = b.guards()
    tools, functions = _tools_and_functions(b.steps, guards)
    steps = tuple(s._replace(title=_title(s), undo_summary=_undo_summary(s, topology)) for s in b.steps)
    return Plan(topology=topology, steps=steps, tools=tools, warnings=topology.warnings,
                requirements=tuple(b.requirements), guards=guards, digest=digest, functions=functions)
