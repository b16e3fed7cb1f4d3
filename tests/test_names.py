"""Names and per-container options without root: what each container's hosts file says, the sysctls
a container sets in its own namespace, how a process is started as its user, in its folder, with
its environment; and that a record, a check and a change carry them."""

from __future__ import annotations

from nsgen import converge, record
from nsgen.check import _started
from nsgen.hostinfo import Environment
from nsgen.plan import compile_plan
from nsgen.plan.dns import hosts_text
from nsgen.plan.processes import prefix
from tests.helpers import EXAMPLES, fixed_env, plan_of, topology

NAMES = (EXAMPLES / "names.yaml").read_text()
HEAD = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def env(**accounts: tuple[int, int]) -> Environment:
    """This machine's accounts replaced by `accounts` (a name or uid: (uid, gid)); groups: staff is 50."""
    return fixed_env()._replace(account=accounts.get, group={"staff": 50, "50": 50}.get, is_dir=lambda path: path in ("/srv", "/tmp"))


def test_each_container_names_itself_and_those_it_shares_a_network_with_at_their_address_there():
    t = topology(NAMES, env(nobody=(65534, 65534)))
    head = "# Written by nsgen for topology names-lab; the names {} sees.\n" + HEAD
    assert hosts_text(t, t.containers["web"]) == head.format("web") + "172.24.0.2\tweb\n172.24.0.3\tapi api.internal\n"
    assert hosts_text(t, t.containers["api"]) == head.format("api") + (
        "172.24.0.3\tapi api.internal\n172.25.0.2\tapi\n172.24.0.2\tweb\n172.25.0.3\tdb postgres\n")
    assert hosts_text(t, t.containers["db"]) == head.format("db") + "172.25.0.3\tdb postgres\n172.25.0.2\tapi\n"


def test_dual_stack_names_have_both_families_and_an_alias_may_repeat_on_another_network():
    t = topology("""
name: two
networks:
  a: {subnet: [10.1.0.0/24, "fd00:1::/64"]}
  b: {subnet: 10.2.0.0/24}
containers:
  x: {networks: {a: {aliases: [svc, svc]}}}
  y: {networks: {b: {aliases: [svc]}}}
  z: {networks: [a, b]}
""")
    assert hosts_text(t, t.containers["z"]).split("\n", 3)[3] == (
        "10.1.0.3\tz\nfd00:1::3\tz\n10.2.0.3\tz\n10.1.0.2\tx svc\nfd00:1::2\tx svc\n10.2.0.2\ty svc\n")
    assert "y" not in hosts_text(t, t.containers["x"]).split("\n", 3)[3]


def test_the_hosts_step_writes_in_place_and_removes_only_its_own_file():
    plan = plan_of(NAMES, env(nobody=(65534, 65534)))
    step = next(s for s in plan.steps if s.id == "hosts:db")
    assert [c.argv for c in step.commands] == [("install", "-D", "-m", "0644", "/dev/null", "/etc/netns/db/hosts"),
                                               ("dd", "of=/etc/netns/db/hosts", "status=none")]
    assert step.commands[0].only_if == (("test", "!", "-e", "/etc/netns/db/hosts"),)
    assert step.commands[1].input == hosts_text(plan.topology, plan.topology.containers["db"])
    assert step.probe == (("test", "-e", "/etc/netns/db/hosts"),) and step.group == "hosts:db"
    assert step.undo[0].argv == ("rm", "-f", "/etc/netns/db/hosts")
    assert [(c.kind, c.path) for c in step.checks] == [("file", "/etc/netns/db/hosts")]
    order = [s.id for s in plan.steps]
    assert order.index("dns:api") < order.index("hosts:web") < order.index("process:web:0")


def test_a_container_sets_its_sysctls_inside_its_namespace_before_its_processes_start():
    plan = plan_of(NAMES, env(nobody=(65534, 65534)))
    step = next(s for s in plan.steps if s.id == "sysctls:api")
    assert [c.argv for c in step.commands] == [("nsenter", "--net=/run/netns/api", "sysctl", "-q", "-w", "net.core.somaxconn=1024")]
    assert [(c.path, c.text, c.netns) for c in step.checks] == [("/proc/sys/net/core/somaxconn", "1024", "api")]
    order = [s.id for s in plan.steps]
    assert order.index("addr:api:back") < order.index("sysctls:api") < order.index("process:api:0")
    assert "sysctl" in plan.tools


def test_a_process_runs_as_its_user_in_its_folder_with_its_environment():
    text = """
name: p
networks: {n: {subnet: 10.3.0.0/24}}
containers:
  c:
    networks: [n]
    processes:
      - {command: [sleep, "9"], user: "app:staff", working_dir: /srv, environment: {A: "x y", N: 3}, ready: tcp:80}
      - {command: [sleep, "9"], user: 1234}
      - {command: [sleep, "9"], environment: {A: 1}}
"""
    plan = plan_of(text, env(app=(1000, 1000)))
    a, b, _c = plan.topology.containers["c"].processes
    assert (a.user, a.working_dir, a.environment, a.ready) == ((1000, 50, True), "/srv", (("A", "x y"), ("N", "3")), ("tcp", "80"))
    assert b.user == (1234, 1234, False)  # no entry on this host: no groups to take, its group is its number
    starts = [next(cmd for cmd in s.commands if cmd.detach) for s in plan.steps if s.id.startswith("process:")]
    assert starts[0].argv[9:] == ("setpriv", "--reuid=1000", "--regid=50", "--init-groups", "env", "-C", "/srv", "A=x y", "N=3", "sleep", "9")
    assert starts[1].argv[9:] == ("setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", "sleep", "9")
    assert starts[2].argv[9:] == ("env", "A=1", "sleep", "9")
    assert [_started(s) for s in starts] == [("c", "sleep 9")] * 3
    assert "setpriv" in plan.tools
    assert plan.steps[-2].commands[0].argv[-3:] == ("2", "sleep", "9")  # wait_ready names the program, not what runs it


def test_a_record_keeps_aliases_sysctls_and_process_options_and_a_plain_topology_keeps_its_digest():
    t = topology(NAMES, env(nobody=(65534, 65534)))
    again = record.from_text(record.text(t))
    assert again == t
    assert '"aliases"' not in record.text(topology((EXAMPLES / "bridge.yaml").read_text()))


def test_a_change_of_names_only_rewrites_the_hosts_files_in_place():
    old = compile_plan(topology(NAMES, env(nobody=(65534, 65534))))
    edited = NAMES.replace("aliases: [postgres]", "aliases: [postgres, pg]")
    new = compile_plan(topology(edited, env(nobody=(65534, 65534))))
    change = converge.diff(old, new)
    assert change.lines == ["change the names seen in api, db"]
    assert change.undo == [] and [s.id for s in change.rewrite] == ["hosts:api", "hosts:db"]
    gone = compile_plan(topology(NAMES.replace("        aliases: [postgres]     # api reaches db as db or as postgres\n", "")
                                 .replace("  db:\n    networks:\n      back:\n", "  db2:\n    networks:\n      back:\n"),
                                 env(nobody=(65534, 65534))))
    change = converge.diff(old, gone)
    assert "remove container db" in change.lines and "add container db2" in change.lines
    assert "hosts:db" in [s.id for s in change.undo] and [s.id for s in change.rewrite] == ["hosts:api"]


def test_this_hosts_name_is_loopback_in_every_hosts_file_unless_a_container_has_it():
    t = topology(NAMES, env(nobody=(65534, 65534))._replace(hostname=lambda: "build-7"))
    assert hosts_text(t, t.containers["db"]).endswith("172.25.0.2\tapi\n127.0.1.1\tbuild-7\n")
    assert record.from_text(record.text(t)) == t
    for name in ("db", "bad_name", ""):
        t = topology(NAMES, env(nobody=(65534, 65534))._replace(hostname=lambda name=name: name))
        assert t.hostname == "" and "127.0.1.1" not in hosts_text(t, t.containers["db"])


def test_empty_options_are_no_options():
    t = topology("""
name: e
networks: {n: {subnet: 10.4.0.0/24}}
containers:
  c:
    networks: {n: {aliases: null}}
    sysctls: {}
    processes: [{command: [sleep, "9"], environment: null}]
""")
    c = t.containers["c"]
    assert (c.attachments[0].aliases, c.sysctls, prefix(c.processes[0])) == ((), (), ())


def test_a_container_that_forwards_ipv6_gets_a_link_local_address_on_each_ipv6_interface():
    from nsgen.plan.addressing import router_link_local
    from tests.helpers import plan_of

    text = """name: r
networks:
  a: {subnet: [10.1.0.0/24, "fd00:1::/64"]}
  b: {subnet: "fd00:2::/64", gateway: "fd00:2::9"}
  c: {subnet: 10.3.0.0/24}
containers:
  router:
    networks: {a: {}, b: {address: "fd00:2::1"}, c: {}}
    sysctls: {net.ipv6.conf.all.forwarding: 1}
  host1:
    networks: [a]
    sysctls: {net.ipv6.conf.all.forwarding: 0}
"""
    plan = plan_of(text)
    t = plan.topology
    router, host1 = t.containers["router"], t.containers["host1"]
    assert [router_link_local(router, a) for a in router.attachments] == ["fe80::2/64", "fe80::ffff:ffff:ffff:fffe/64", None]
    assert router_link_local(host1, host1.attachments[0]) is None
    step = next(s for s in plan.steps if s.id == "addr:router:a")
    assert ("ip", "-n", "router", "addr", "replace", "fe80::2/64", "dev", "eth0", "nodad") in [c.argv for c in step.commands]
