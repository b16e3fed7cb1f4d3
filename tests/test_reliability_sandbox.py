"""Reliability on real kernel objects: every fault point, signals, SIGKILL recovery, foreign
resources, user rules, side-by-side topologies, locking, stubborn processes, missing pieces."""

from __future__ import annotations

import time

import pytest

from tests.conftest import FIREWALL_BACKENDS, count
from tests.drive import NSGEN, Driver, example_text, wait_for
from tests.faults import SYSTEM_PATH, Faults
from tests.helpers import ROOT

TUTORIAL = example_text("tutorial.yaml")
BRIDGE = example_text("bridge.yaml")
# Containers on the uplink's own LAN (macvlan on the default route's interface) beside a bridge
# network whose traffic leaves from a second address of the host (outbound_addr).
LAN = """\
name: lan
networks:
  lan: {driver: macvlan, subnet: 198.51.100.0/24, gateway: 198.51.100.2}
  front: {subnet: 172.30.0.0/24, outbound_addr: 198.51.100.7}
containers:
  a: {networks: [lan], dns: [203.0.113.53]}
  b: {networks: [front, lan], dns: [203.0.113.53]}
"""
# Published ports of new shapes: a range (TCP and UDP), one host port at two loopback addresses
PORTS = """
name: ports-lab
networks:
  n: {subnet: 172.30.0.0/24}
containers:
  c:
    networks: [n]
    ports: ["8080-8081:80-81", "127.0.1.2:1716:80", "127.0.1.3:1716:81", "5300-5301:53-54/udp"]
"""
pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend (unless it names its own)

EXAMPLES = {"tutorial": TUTORIAL, "bridge": BRIDGE, "dual-stack": example_text("dual-stack.yaml"), "lan": LAN, "ports": PORTS,
            "jumbo": example_text("jumbo.yaml"), "names": example_text("names.yaml")}


def setup_argv(driver: Driver) -> list[str]:
    if driver.mode in ("script", "batch"):
        return ["bash", str(driver.setup_sh)]
    return [*NSGEN, "run", "-f", str(driver.topology)]


def total_calls(sb, driver: Driver, faults: Faults) -> int:
    sb.run(setup_argv(driver), env=faults.env())
    calls = faults.calls()
    driver.down()
    return calls


# -- 1. fault sweep: the k-th call of ip / iptables / iptables-restore / sysctl fails ----------


# Every example in every mode with iptables; with nftables, the examples that give its table every
# shape (both families, a veth network, bridges under a DROP policy, ranges, UDP, loopback
# addresses), the script's functions and nsgen run's builtins each faulted: the time stays bounded.
SWEPT = [(example, mode, "iptables") for example in EXAMPLES for mode in ("script", "batch", "run")] + [
    ("tutorial", "script", "nftables"), ("tutorial", "run", "nftables"), ("dual-stack", "run", "nftables"), ("ports", "script", "nftables")]


@pytest.mark.parametrize("example,mode,firewall_backend", SWEPT, indirect=["firewall_backend"])
def test_fault_sweep(sandbox, tmp_path, example, mode, firewall_backend):
    sb = sandbox
    if example == "lan":
        sb.run(["ip", "addr", "add", "198.51.100.7/24", "dev", "world0"])
    if example != "tutorial":
        sb.run(["iptables", "-P", "FORWARD", "DROP"])
        sb.run(["ip6tables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, EXAMPLES[example])
    faults = Faults(sb, tmp_path / "faults")
    n = total_calls(sb, driver, faults)
    assert sb.snapshot() == before
    failed_points = 0
    for k in range(1, n + 1):
        done = sb.run(setup_argv(driver), env=faults.env(at=k), check=False)
        if done.returncode != 0:
            failed_points += 1
            if done.stderr.rstrip().endswith("; nothing was changed"):
                # the failed call was the probe of a requirement (the parent exists, the host has the
                # outbound address): refused, in the requirement's own words, before any change
                assert example == "lan" and "injected failure at call" not in done.stderr, (k, done.stderr)
            else:
                assert "injected failure at call" in done.stderr, (k, done.stderr)  # the tool's own message
                assert ("setup failed" in done.stderr) if mode != "run" else ("error: step " in done.stderr), (k, done.stderr)
        else:  # the failed call was a probe: a "not there yet" answer is harmless
            driver.down()
        after = sb.snapshot()
        assert after == before, f"call {k} of {n} left the sandbox changed"
        count("fault-sweep points")
    assert failed_points > n // 3  # most calls are real changes, and each was undone


# -- SIGINT / SIGTERM during setup --------------------------------------------------------------


# Each signal in each mode with iptables; with nftables, each signal once, the script's and nsgen run's (time)
INTERRUPTS = [(mode, example, signal_name, "iptables") for mode, example in (("script", "tutorial"), ("run", "tutorial"), ("run", "bridge"))
              for signal_name in ("INT", "TERM")] + [("script", "tutorial", "TERM", "nftables"), ("run", "bridge", "INT", "nftables")]


@pytest.mark.parametrize("mode,example,signal_name,firewall_backend", INTERRUPTS, indirect=["firewall_backend"])
def test_interrupted_setup_undoes_itself(sandbox, tmp_path, mode, example, signal_name, firewall_backend):
    """For the bridge example, `nsgen run` configures its three containers side by side: an
    interrupt then arrives while several batches run."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, TUTORIAL if example == "tutorial" else BRIDGE)
    faults = Faults(sb, tmp_path / "faults")
    n = total_calls(sb, driver, faults)
    for k in range(1 if example == "tutorial" else 2, n + 1, 2):
        done = sb.run(setup_argv(driver), env=faults.env(at=k, mode=signal_name), check=False)
        if done.returncode == 0:
            driver.down()
        else:
            assert done.returncode in (1, 130, 143), (k, done.returncode, done.stderr)
        assert sb.snapshot() == before, f"{signal_name} at call {k} of {n} left the sandbox changed"
        count("fault-sweep points")


# -- SIGKILL midway: the state directory is enough to finish or undo ---------------------------


@pytest.mark.parametrize("mode", ["script", "run"])
def test_sigkill_then_teardown_or_setup_again(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, TUTORIAL)
    faults = Faults(sb, tmp_path / "faults")
    n = total_calls(sb, driver, faults)
    for k in range(1, n + 1, 2):
        done = sb.run(setup_argv(driver), env=faults.env(at=k, mode="KILL"), check=False)
        if (k // 2) % 2 == 0:
            driver.down()  # teardown from what the state directory recorded
        else:
            driver.up()  # or setup again: it completes
            assert wait_for(sb, ["ip", "netns", "exec", "container-1", "curl", "-sf", "localhost:8000/echo"]).returncode == 0
            driver.down()
        assert sb.snapshot() == before, f"SIGKILL at call {k} of {n} (exit {done.returncode}) was not recovered"
        count("fault-sweep points")


# -- 2. foreign resources and user rules --------------------------------------------------------

FOREIGN = [
    ("namespace", "ip netns add web", "network namespace web already exists"),
    ("link", "ip link add ve-web-794cd type veth peer name foreign0", "link ve-web-794cd already exists"),
    ("bridge", "ip link add br-front type bridge", "link br-front already exists"),
    ("netns dir", "mkdir -p /etc/netns/web && echo 'nameserver 192.0.2.1' > /etc/netns/web/resolv.conf", "file /etc/netns/web/resolv.conf already exists"),
    ("hosts file", "mkdir -p /etc/netns/db && echo '192.0.2.1 db' > /etc/netns/db/hosts", "file /etc/netns/db/hosts already exists"),
    ("chain", "iptables -N NSGEN-bridge-lab", "iptables chain NSGEN-bridge-lab (table filter) already exists"),
    # the nftables backend's table, of the same name but without nsgen's comment (an empty one, or one with a chain)
    ("nft table", "nft add table inet nsgen-bridge-lab", "nftables table inet nsgen-bridge-lab already exists"),
    ("nft table with chain", "nft add table inet nsgen-bridge-lab '{ comment \"nsgen:someone-else\"; }' && "
     "nft add chain inet nsgen-bridge-lab networks && nft add rule inet nsgen-bridge-lab networks counter",
     "nftables table inet nsgen-bridge-lab already exists"),
    # teardown deletes the topology's device group whole: a device already in it is not ours
    ("device group", "ip link add foreign0 group 0x6e7c5ce4 type veth peer name foreign1",
     "a link in device group 0x6e7c5ce4 (another topology's name hashes alike: rename one) already exists"),
]
# A firewall resource with each backend that makes it; the others with both
FOREIGN_BY_BACKEND = [pytest.param(*f, backend, id=f"{f[0]}-{backend}") for f in FOREIGN for backend in FIREWALL_BACKENDS
                      if backend == {"chain": "iptables", "nft table": "nftables", "nft table with chain": "nftables"}.get(f[0], backend)]


@pytest.mark.parametrize("mode", ["script", "run"])
@pytest.mark.parametrize("what,make,message,firewall_backend", FOREIGN_BY_BACKEND, indirect=["firewall_backend"])
def test_foreign_resource_is_refused_and_survives(sandbox, tmp_path, what, make, message, mode, firewall_backend):
    sb = sandbox
    sb.sh(make)
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, BRIDGE)
    done = driver.up(check=False)
    assert done.returncode != 0
    assert f"{message} and was not made by nsgen topology bridge-lab; nothing was changed" in done.stderr
    assert sb.snapshot() == before
    driver.down()  # a teardown of a topology that is not up leaves the foreign resource alone
    assert sb.snapshot() == before


USER_RULES = """
iptables -t nat -A POSTROUTING -s 10.99.0.0/24 -j MASQUERADE
iptables -t nat -A POSTROUTING -s 172.20.0.0/24 ! -o br-front -j MASQUERADE
iptables -t nat -A PREROUTING -p tcp --dport 9999 -j DNAT --to-destination 10.99.0.5:80
iptables -A FORWARD -m comment --comment nsgen:bridge-lab-extra -j ACCEPT
iptables -A FORWARD -m comment --comment nsgen:bridge-lab -s 10.99.0.0/24 -j ACCEPT
iptables -N NSGEN-bridge-la
"""


@pytest.mark.parametrize("mode", ["script", "run"])
def test_user_rules_come_through_teardown_exactly(sandbox, tmp_path, mode):
    """Rules beside nsgen's (another MASQUERADE, a DNAT on another port, a comment that only starts
    like nsgen's tag, even a rule with nsgen's tag that nsgen did not write) are left as they were."""
    sb = sandbox
    sb.sh(USER_RULES)
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, BRIDGE)
    driver.up()
    driver.down()
    assert sb.snapshot() == before


USER_NFT = """
nft add table inet filter
nft add chain inet filter forward '{ type filter hook forward priority 0; policy accept; }'
nft add rule inet filter forward ct state invalid counter drop
nft add chain inet filter mine
nft add rule inet filter forward ip saddr 10.99.0.0/24 jump mine
nft add table ip nsgen-bridge-lab '{ comment "nsgen:bridge-lab"; }'
nft add table inet nsgen-bridge-lab-extra '{ comment "nsgen:bridge-lab-extra"; }'
nft add chain inet nsgen-bridge-lab-extra postrouting '{ type nat hook postrouting priority srcnat; }'
nft add rule inet nsgen-bridge-lab-extra postrouting ip saddr 172.20.0.0/24 masquerade
"""


@pytest.mark.parametrize("mode", ["script", "run"])
def test_user_nft_tables_and_chains_come_through_setup_and_teardown_exactly(sandbox, tmp_path, mode):
    """A user's inet filter table (a forward chain of its own, a chain it jumps to), a table of
    nsgen's name and comment in another family (ip), one whose name and comment only start like
    nsgen's: setup leaves them as they are, working, and teardown too."""
    sb = sandbox
    sb.sh(USER_NFT)
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, BRIDGE)
    driver.up()
    users = ("table inet filter", "table ip nsgen-bridge-lab", "table inet nsgen-bridge-lab-extra")
    theirs = lambda snap: [line for line in snap["nft"] if line.split(" >")[0].split(":")[0] in users]  # noqa: E731
    assert theirs(sb.snapshot()) == theirs(before) and len(theirs(before)) > 6
    assert wait_for(sb, ["ip", "netns", "exec", "app", "curl", "-sf", "--max-time", "2", "http://172.20.0.2:8000/echo"]).returncode == 0
    driver.down()
    assert sb.snapshot() == before


# -- 3. side by side, locking, parallel ---------------------------------------------------------


def other_topology(name: str, subnet: str, port: int) -> str:
    return f"""
name: {name}
networks:
  n: {{subnet: {subnet}}}
containers:
  {name}-c:
    networks: [n]
    ports: ["{port}:8000"]
    processes: [nsgen echo-server --port 8000]
"""


def test_two_topologies_side_by_side(sandbox, tmp_path):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Driver(sb, tmp_path / "a", "run", other_topology("left", "172.24.0.0/24", 8101))
    b = Driver(sb, tmp_path / "b", "script", other_topology("right", "172.25.0.0/24", 8102))
    a.up()
    b.up()
    for port, ns in ((8101, "left-c"), (8102, "right-c")):
        assert wait_for(sb, ["curl", "-sf", f"http://198.51.100.1:{port}/echo"]).returncode == 0, ns
    # isolated from each other, in both directions; a published port of the other is reachable
    assert sb.in_ns("left-c", ["ping", "-c1", "-W1", "172.25.0.2"], check=False).returncode != 0
    assert sb.in_ns("right-c", ["ping", "-c1", "-W1", "172.24.0.2"], check=False).returncode != 0
    assert sb.in_ns("left-c", ["curl", "-sf", "--max-time", "3", "http://198.51.100.1:8102/echo"]).returncode == 0
    a.down()
    # the other one still works, forwarding and published port included
    assert sb.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert sb.in_ns("right-c", ["curl", "-sf", "--max-time", "3", "http://203.0.113.10/"]).stdout.strip() == "198.51.100.1"
    assert sb.in_ns("world", ["curl", "-sf", "--max-time", "3", "http://198.51.100.1:8102/echo"]).returncode == 0
    b.down()
    assert sb.snapshot() == before


def test_same_topology_twice_at_once_and_setup_during_teardown(sandbox, tmp_path):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "script", TUTORIAL)
    run = [*NSGEN, "run", "-q", "-f", str(driver.topology)]
    script = f"({' '.join(run)}) & (bash {driver.setup_sh} 2>/dev/null) & wait"
    sb.sh(script)
    # one winner made everything; the other found it done: exactly one of each resource
    snap = sb.snapshot()
    assert snap["netns"].count("container-1") == 1
    assert sum("MASQUERADE" in r for r in snap["iptables"]) + sum(r.startswith("table inet nsgen-tutorial ") and " masquerade " in r for r in snap["nft"]) == 1
    pids = sb.run(["ip", "netns", "pids", "container-1"]).stdout.split()
    programs = sorted(sb.run(["cat", f"/proc/{pid}/comm"]).stdout.strip() for pid in pids)
    assert len(programs) == 2 and programs.count("sh") == 1, programs  # one echo server, with the shell in front of it
    # setup while it is being torn down: serialized; whichever ran last decides, and no mess
    sb.sh(f"(bash {driver.cleanup_sh} 2>/dev/null) & ({' '.join(run)} 2>/dev/null) & wait")
    driver.down()
    assert sb.snapshot() == before


def test_ten_topologies_in_parallel(sandbox, tmp_path):
    sb = sandbox
    before = sb.snapshot()
    files = []
    for i in range(10):
        path = tmp_path / f"t{i}.yaml"
        path.write_text(other_topology(f"par{i}", f"172.26.{i}.0/24", 8200 + i))
        files.append(path)
    ups = " & ".join(f"{' '.join(NSGEN)} run -q -f {p}" for p in files)
    done = sb.sh(f"{ups} & wait; echo done")
    assert done.stdout.strip() == "done"
    for i in range(10):
        assert wait_for(sb, ["curl", "-sf", f"http://198.51.100.1:{8200 + i}/echo"]).returncode == 0, i
    downs = " & ".join(f"{' '.join(NSGEN)} run -q --teardown -f {p}" for p in files)
    sb.sh(f"{downs} & wait")
    assert sb.snapshot() == before


# -- 4. processes --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["script", "run"])
def test_teardown_kills_processes_that_ignore_term_and_only_those(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    text = TUTORIAL.replace("      - nsgen echo-server --port 8000\n", "      - nsgen echo-server --port 8000\n      - [sh, -c, 'trap \"\" TERM; while :; do sleep 1; done']\n")
    driver = Driver(sb, tmp_path, mode, text)
    driver.up()
    # a process the user started in the namespace by hand is stopped too
    sb.run(["sh", "-c", "ip netns exec container-1 sleep 1000 >/dev/null 2>&1 &"])
    # a host process whose pid is planted in the state directory must not be signalled
    outsider = sb.run(["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"]).stdout.strip()
    sb.run(["sh", "-c", f"echo {outsider} > /run/nsgen/tutorial/container-1.0.pid"])
    wait_for(sb, ["sh", "-c", "[ $(ip netns pids container-1 | wc -l) -ge 3 ]"])
    started = time.monotonic()
    driver.down()
    assert time.monotonic() - started < 15
    assert sb.run(["kill", "-0", outsider], check=False).returncode == 0, "a pid outside the namespace was signalled"
    sb.run(["kill", outsider])
    assert sb.snapshot() == before


# -- 7. missing pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["script", "run"])
def test_missing_tool_is_a_preflight_error(sandbox, tmp_path, mode, firewall_backend):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, TUTORIAL)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # with nftables, iptables is there (its FORWARD chain is read) and nft is what is missing
    others = ("iptables", "iptables-save", "ip6tables", "ip6tables-save") if firewall_backend == "nftables" else ()
    for tool in ("ip", "sysctl", "flock", "setsid", "id", "bash", "sh", "mkdir", "test", "cp", "rm", "touch", "install", "grep", "cat", "env", "nsenter", *others):
        real = sb.run(["sh", "-c", f"PATH={SYSTEM_PATH} command -v {tool} || true"]).stdout.strip()
        if real.startswith("/"):
            (bin_dir / tool).symlink_to(real)
    done = sb.run(setup_argv(driver), env={"PATH": str(bin_dir)}, check=False)
    assert done.returncode != 0
    assert f"required tool not found: {'iptables' if firewall_backend == 'iptables' else 'nft ('}" in done.stderr
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_read_only_proc_sys_is_a_clear_error_and_a_clean_host(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, TUTORIAL)
    argv = setup_argv(driver)
    # /proc/sys read-only for this one command only (a mount namespace of its own)
    wrapped = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -o bind,ro /proc/sys /proc/sys && exec "$@"', "_", *argv]
    done = sb.run(wrapped, check=False)
    assert done.returncode != 0
    assert "net.ipv4.ip_forward is off and cannot be turned on" in done.stderr
    assert sb.snapshot() == before


# -- teardown follows what was set up ----------------------------------------------------------


def test_teardown_removes_what_was_set_up_even_after_the_file_changed(sandbox, tmp_path):
    """nsgen run records the plan it set up; its teardown undoes that plan, not the edited file."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    driver.up()
    assert (driver.topology.parent / "topology.yaml").exists()
    edited = BRIDGE.replace('ports: ["8080:8000"]', 'ports: ["8081:8000"]')
    edited = edited[: edited.index("  db:")]  # the db container is gone from the file
    assert edited != BRIDGE
    driver.topology.write_text(edited)
    done = driver.down()
    assert "no longer describes what is up; removing what topology bridge-lab was set up with" in done.stderr
    assert sb.snapshot() == before


@pytest.mark.parametrize("spoil,firewall_backend", [("writable by others", "iptables"), ("another owner", "iptables"), ("garbage", "iptables"),
                                                      ("garbage", "nftables")], indirect=["firewall_backend"])
def test_a_record_that_is_not_nsgens_own_is_ignored(sandbox, tmp_path, spoil, firewall_backend):
    """A record nsgen cannot trust is not followed: teardown goes by the marks on what nsgen made.
    The record is rewritten to claim a namespace `victim` made by another tool (and noted among
    those the setup was about to create): followed, it would be deleted with its process."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    driver.up()
    record = "/run/nsgen/bridge-lab/topology.json"
    sb.sh("ip netns add victim && (ip netns exec victim sleep 600 >/dev/null 2>&1 &) && echo victim >> /run/nsgen/bridge-lab/namespaces")
    sb.run(["python3", "-c", f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from nsgen import record
t = record.from_text(open({record!r}).read())
c = t.containers["db"]
t.containers["victim"] = c._replace(name="victim", attachments=())
open({record!r}, "w").write(record.text(t))
"""])
    if spoil == "writable by others":
        sb.run(["chmod", "0666", record])
    elif spoil == "another owner":
        sb.run(["chown", "65534", record])
    else:
        sb.sh(f"echo '{{not json' > {record}")
    done = driver.down()
    assert sb.run(["test", "-e", "/run/netns/victim"], check=False).returncode == 0, done.stderr
    assert sb.run(["ip", "netns", "pids", "victim"]).stdout.strip(), "the process of another tool was stopped"
    sb.sh("kill $(ip netns pids victim); ip netns delete victim")
    assert sb.snapshot() == before
