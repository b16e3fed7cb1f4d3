"""Steps: what a plan is made of, and the one copy of the rules that order and describe them.

A step says why it exists (a one-line summary in the tutorial's voice), the commands that make it
happen and the commands that undo it, all as argv tuples, and optionally a probe that tells
whether it is already done and one that tells whether what the probe found is this topology's
own. The setup script, the teardown script and `nsgen run` all consume one plan of them.

Some operations are no single program: a builtin (`Command.builtin`) names one, done by a shell
function in the scripts (templates/_functions.sh.j2) and by a Python function in `nsgen run`
(nsgen/builtins.py), with the same outcome. `BUILTINS` lists them with the programs they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from nsgen.names import LOCK_FILE, device_group, nft_table, record_path, state_dir

if TYPE_CHECKING:  # only for annotations: a recorded topology is compiled without validating it again
    from nsgen.models import Topology

Argv = tuple[str, ...]

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
    "nft_ours": ("nft",),
    "nft_undo": ("nft",),
    "forward_pass": (),  # iptables or ip6tables, where installed (nothing to do without them)
    "state_ok": (),
    "address_here": ("ip",),
    "state_ours": (),
    "subnets_free": ("ip",),
    "ports_free": ("ss",),  # and iptables-save, ip6tables-save and nft, where installed (what they list)
    "other_firewall": (),  # iptables, ip6tables and nft, where installed (what they list)
    "process_alive": ("ip",),
    "wait_ready": ("ip",),
}
# The Debian and Ubuntu package of each program a plan may need (said when one is missing).
PACKAGES = {"ip": "iproute2", "ss": "iproute2", "bridge": "iproute2", "iptables": "iptables", "iptables-restore": "iptables",
            "iptables-save": "iptables",
            "ip6tables": "iptables", "ip6tables-restore": "iptables", "ip6tables-save": "iptables",
            "sysctl": "procps", "flock": "util-linux", "nsenter": "util-linux",
            "setsid": "util-linux", "setpriv": "util-linux", "conntrack": "conntrack", "nft": "nftables"}
# Programs every system has (coreutils, grep, findutils): not listed among a plan's tools.
BASIC = {"test", "!", "install", "rm", "rmdir", "mkdir", "cp", "cmp", "grep", "touch", "stat", "find", "sh", "dd"}


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


class Check(NamedTuple):
    """What proves that a step holds, for `nsgen check`: a probe that succeeds when it does (or whose
    output holds what the plan made), or a file that holds a text (a sysctl's value, read back from
    /proc/sys; a file setup wrote)."""

    kind: str  # what it concerns: firewall, sysctl, file, overlay
    what: str  # what it shows, for a person
    probe: Argv = ()
    path: str = ""
    text: str | None = None
    netns: str = ""  # the namespace the path is read in (a sysctl of a container's own); "": the host's
    # How the probe is judged: "" (it succeeds); "nft" (it lists an nft table as JSON, compared with
    # `text`, the plan's table as JSON: nftables.expected); "where_forward_drops" (it must succeed
    # where the FORWARD chain of its program, iptables or ip6tables, can drop; elsewhere it may fail);
    # "vxlan" (it shows a VXLAN device as `ip -j -d link show` does, compared with the facts in `text`
    # as JSON: check_overlay.vxlan); "fdb" (it lists a VXLAN device's forwarding entries, compared with
    # `text` with the neighbour entries of its bridge: check_overlay.entries).
    compare: str = ""


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
    checks: tuple[Check, ...] = ()  # what proves it holds (nsgen check runs them)
    replaces: bool = False  # its command replaces what is there in one transaction: a change does it again, never undoes it first


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
    def firewall_note(self) -> str:
        """Which firewall backend the plan writes through, and why auto or NSGEN_FIREWALL chose it ("": iptables, as named or by default)."""
        host = self.topology.host
        if host.firewall_why:
            return host.firewall_why
        if host.firewall == "nftables":
            return f"firewall: nftables (one inet table, {nft_table(self.topology.name)}), as the topology says"
        return ""

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

    def teardown_steps(self) -> list[Step]:
        """The steps a teardown undoes, in the order it undoes them (see undo_order)."""
        return undo_order(self.steps)

    def resources(self) -> list[Step]:
        """The steps that make a named resource (what a teardown that fails says is left)."""
        return [s for s in self.steps if s.resource and s.probe]


def undo_order(steps: tuple[Step, ...] | list[Step]) -> list[Step]:
    """The one order of undoing, for a teardown, a rollback and a change alike: newest first, each
    step with something to undo, except a step whose effect goes with another step among them (a
    veth pair goes with the topology's devices, deleted at once)."""
    ids = {s.id for s in steps}
    return [s for s in reversed(steps) if s.undo and s.goes_with not in ids]


def write_file(dest: str, text: str, *, parents: bool = False) -> tuple[Command, Check]:
    """Write `text` to `dest` (mode 0644; `parents`: make its folder too), and the check that it is there."""
    command = C("install", *(("-D",) if parents else ()), "-m", "0644", "/dev/stdin", dest, input=text)
    return command, Check("file", f"{dest} holds what setup wrote", path=dest, text=text)


def set_sysctl(key: str, value: str, only_if: tuple[Argv, ...] = ()) -> tuple[Command, Check]:
    """Set a sysctl (`net.ipv4.ip_forward`, or a path below /proc/sys), and the check that it is set."""
    path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
    return C("sysctl", "-q", "-w", f"{key}={value}", only_if=only_if), Check("sysctl", f"{key} = {value}", path=path, text=value)


def C(*argv: str, **kw) -> Command:
    return Command(tuple(argv), **kw)


def B(*argv: str, **kw) -> Command:
    """A builtin operation (see BUILTINS)."""
    assert argv[0] in BUILTINS, argv[0]
    return Command(tuple(argv), builtin=True, **kw)


def tools_and_functions(steps: list[Step], guards: tuple[Command, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The programs the plan runs (its commands, undos and probes, and those of its builtins),
    besides the ones every system has, with flock and nsenter (the scripts' own); and the
    builtins it uses (the scripts define only those)."""
    words: set[str] = set()
    commands = [*guards, *(c for s in steps for c in (*s.commands, *s.undo))]
    for cmd in commands:
        words.add(cmd.argv[0])
        if cmd.argv[0] == "nsenter":  # nsenter --net=FILE PROGRAM...: the program is a tool too
            words.add(cmd.argv[2])
        if cmd.detach:  # what runs a process as its user (setpriv) is a tool too
            words.update(w for w in cmd.argv if w == "setpriv")
        words.update(p[1] if p[0] == "!" else p[0] for p in cmd.only_if)
    for step in steps:
        words.update(p[1] if p[0] == "!" else p[0] for p in (*step.probe, *step.ours))
    tools = {"ip", "flock", "nsenter"}
    for word in words:
        tools.update(BUILTINS.get(word, (word,)))
    return tuple(sorted(tools - BASIC)), tuple(sorted(words & BUILTINS.keys()))


_TITLES = {
    "state": "record the topology", "ip_forward:restore": "put ip_forward back",
    "ipv6_forwarding:restore": "put IPv6 forwarding back", "namespaces": "note the namespaces to create",
    "netns": "namespace {0}", "devices": "delete the topology's devices", "reap": "stop the processes in {0}",
    "bridge": "bridge for {0}", "bridge-up": "gateway of {0}, up", "veth": "veth pair {0} / {1}", "macvlan": "macvlan interface of {0} on {1}",
    "ipvlan": "ipvlan interface of {0} on {1}", "host-end": "host end {0} / {1}, up",
    "lo": "lo up in {0}", "addr": "address of {0} on {1}", "route": "default route of {0}",
    "route6": "IPv6 default route of {0}", "routes": "static routes of {0} on {1}", "ip_forward": "forwarding on",
    "sysctls": "sysctls of {0}", "hosts": "names seen in {0}",
    "ipv6_forwarding": "IPv6 forwarding on", "ipv6_forwarding:persist": "IPv6 forwarding at boot", "firewall6": "{0} rules (IPv6)",
    "ip_forward:persist": "forwarding at boot", "firewall": "{0} rules", "nftables": "nftables table",
    "firewall:pass": "iptables FORWARD lets marked packets through", "firewall6:pass": "ip6tables FORWARD lets marked packets through",
    "conntrack:published": "forget the UDP flows of published ports",
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
    "ipv6_forwarding:restore": "Put net.ipv6.conf.all.forwarding back to its value from before the first nsgen topology, once no "
                               "topology needs IPv6 forwarding and this one's devices are gone.",
    "ipv6_forwarding": "No longer count topology {name} among the users of IPv6 forwarding.",
    "firewall6": "Remove the {0} rules (IPv6) of topology {name}, in one transaction (rule by rule when that fails).",
    "firewall": "Remove the {0} rules of topology {name}, in one transaction (rule by rule when that fails).",
    "firewall:pass": "Remove nsgen's rule from iptables' FORWARD chain (when it is there).",
    "firewall6:pass": "Remove nsgen's rule from ip6tables' FORWARD chain (when it is there).",
    "nftables": "Delete the nftables table of topology {name} (when it is nsgen's), in one transaction.",
    "conntrack:unpublished": "Forget the connection-tracking entries of the UDP ports that are no longer published.",
    "dns": "Remove the resolv.conf of {0} (when nsgen wrote it) and its folder (when empty).",
    "hosts": "Remove the hosts file of {0} (when nsgen wrote it) and its folder (when empty).",
    "process": "Stop process {1} of {0}, with every other process in {0}.", "up": "Unmark topology {name} as up: it is being taken down.",
}


def undo_summary(step: Step, topology: Topology) -> str:
    if not step.undo:
        return ""
    key = step.id if step.id in _UNDONE else step.id.split(":", 1)[0]
    parts = step.id.split(":")[1:] if key != step.id else []
    text = _UNDONE.get(key, f"Undo: {step.summary}")
    return text.format(*parts, "", "", name=topology.name, sdir=state_dir(topology.name), group=device_group(topology.name))


def title(step: Step) -> str:
    """A step's title: a few words from its id (`veth:web:front` is "veth pair web / front")."""
    key = step.id if step.id in _TITLES else step.id.split(":", 1)[0]
    parts = step.id.split(":")[1:] if key != step.id else []
    return _TITLES.get(key, step.id).format(*parts, "", "")


