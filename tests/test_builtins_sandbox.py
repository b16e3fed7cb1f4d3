"""The builtins' two halves, the shell functions of the scripts (templates/_functions.sh.j2) and the
Python functions of `nsgen run` (nsgen/builtins.py), run against the same real kernel state in a
sandbox, each asserted to give the same exit status and message: IPv6 routes, sockets, ip6tables
rules and conntrack entries beside the IPv4 ones."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent

# One builtin, run by nsgen's executor as `nsgen run` runs it (the undo builtins, which read a
# restore text on standard input, are called directly): argv[1] names it, the rest are its words.
PYTHON = """
import sys
from nsgen import builtins
from nsgen.execute import SubprocessRunner
from nsgen.plan import Command

name, args = sys.argv[1], tuple(sys.argv[2:])
if name in builtins.UNDO:
    done = builtins.UNDO[name](sys.stdin.read())
else:
    done = SubprocessRunner().run(Command((name, *args), builtin=True))
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr.rstrip("\\n") + "\\n" if done.stderr.strip() else "")
sys.exit(done.returncode)
"""


def functions() -> str:
    """Every shell function of the scripts, rendered as a script defines them."""
    from nsgen.names import NETNS_DIR
    from nsgen.plan import BUILTINS, START_WINDOW
    from nsgen.render import environment, template_paths

    return environment().get_template("_functions.sh.j2").render(
        plan=SimpleNamespace(functions=tuple(BUILTINS)),
        paths=template_paths(),
        start_window=START_WINDOW,
        netns_dir=NETNS_DIR,
    )


def shell(sb, name: str, *args: str, input: str | None = None):
    """The builtin's shell function, run as the scripts run it (set -u, pipefail)."""
    script = f"{functions()}\nset -uo pipefail\n\"$@\"\n"
    return sb.run(["bash", "-c", script, "nsgen-builtin", name, *args], input=input, check=False)


def python(sb, name: str, *args: str, input: str | None = None):
    """The builtin's Python function, run as `nsgen run` runs it."""
    return sb.run([sys.executable, "-c", PYTHON, name, *args], input=input, check=False, env={"PYTHONPATH": str(ROOT)})


HALVES = {"shell": shell, "python": python}


def both(sb, name: str, *args: str, input: str | None = None) -> tuple[int, str]:
    """Run both halves; assert they agree on the exit status and on what they say; return those."""
    results = {half: run(sb, name, *args, input=input) for half, run in HALVES.items()}
    said = {half: (done.returncode, done.stderr.replace("nsgen: ", "", 1).strip()) for half, done in results.items()}
    assert said["shell"] == said["python"], said
    return said["python"]


# ----------------------------------------------------------------------------------------------
# ip6tables_undo


SETUP6 = """*filter
:NSGEN-t6 - [0:0]
-A FORWARD -m comment --comment nsgen:t6 -j NSGEN-t6
-A NSGEN-t6 -d fd00:20::/64 -m comment --comment nsgen:t6 -j ACCEPT
COMMIT
*nat
:NSGEN-t6 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment nsgen:t6 -j NSGEN-t6
-A NSGEN-t6 -p tcp --dport 8080 -m comment --comment nsgen:t6 -j DNAT --to-destination [fd00:20::2]:80
-A POSTROUTING -s fd00:20::/64 ! -o br-t6 -m comment --comment nsgen:t6 -j MASQUERADE
COMMIT
"""

UNDO6 = """*nat
# connections from elsewhere to this host's addresses: published ports in NSGEN-t6
-D PREROUTING -m addrtype --dst-type LOCAL -m comment --comment nsgen:t6 -j NSGEN-t6
# network n reaches out as the host
-D POSTROUTING -s fd00:20::/64 ! -o br-t6 -m comment --comment nsgen:t6 -j MASQUERADE
-F NSGEN-t6
-X NSGEN-t6
COMMIT
*filter
-D FORWARD -m comment --comment nsgen:t6 -j NSGEN-t6
-F NSGEN-t6
-X NSGEN-t6
COMMIT
"""


def ip6_rules(sb, tool: str = "ip6tables") -> list[str]:
    """The ip6tables (or iptables) rules and chains of every table, without counters."""
    saved = sb.run([f"{tool}-save"]).stdout
    return [line.split(" [")[0].replace('"', "") for line in saved.splitlines() if line.startswith((":", "-A", "*"))]


@pytest.mark.parametrize("half", HALVES)
def test_ip6tables_undo_removes_the_tagged_ip6tables_rules_and_chain_and_can_run_twice(sandbox, half):
    sb, undo = sandbox, HALVES[half]
    sb.run(["ip6tables", "-w", "-A", "FORWARD", "-s", "2001:db8:5::/48", "-j", "DROP"])  # someone else's
    sb.run(["ip6tables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "2001:db8:5::/48", "-j", "RETURN"])
    sb.run(["iptables", "-w", "-A", "FORWARD", "-m", "comment", "--comment", "nsgen:t6", "-j", "ACCEPT"])  # IPv4: not its business
    before6, before4 = ip6_rules(sb), ip6_rules(sb, "iptables")
    sb.run(["ip6tables-restore", "-w", "--noflush"], input=SETUP6)
    assert "-A NSGEN-t6 -d fd00:20::/64 -m comment --comment nsgen:t6 -j ACCEPT" in ip6_rules(sb)
    done = undo(sb, "ip6tables_undo", input=UNDO6)
    assert (done.returncode, done.stderr) == (0, "")
    assert ip6_rules(sb) == before6
    # again, with nothing left to remove: the transaction fails, and rule by rule finds all gone
    done = undo(sb, "ip6tables_undo", input=UNDO6)
    assert (done.returncode, done.stderr) == (0, "")
    assert ip6_rules(sb) == before6
    assert ip6_rules(sb, "iptables") == before4


def test_ip6tables_undo_rule_by_rule_leaves_a_chain_of_the_same_name_alone(sandbox):
    """Half the rules already gone: each half removes what is left; a chain of the same name that
    holds no rule of the topology's, and that none of its rules jumps to, is someone else's."""
    sb = sandbox
    for half in HALVES:
        sb.run(["ip6tables-restore", "-w", "--noflush"], input=SETUP6)
        sb.run(["ip6tables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", "fd00:20::/64", "!", "-o", "br-t6",
                "-m", "comment", "--comment", "nsgen:t6", "-j", "MASQUERADE"])
        sb.run(["ip6tables", "-w", "-D", "FORWARD", "-m", "comment", "--comment", "nsgen:t6", "-j", "NSGEN-t6"])
        sb.run(["ip6tables", "-w", "-F", "NSGEN-t6"])
        sb.run(["ip6tables", "-w", "-A", "NSGEN-t6", "-j", "RETURN"])  # the filter chain: now someone else's
        done = HALVES[half](sb, "ip6tables_undo", input=UNDO6)
        assert (half, done.returncode, done.stderr) == (half, 0, "")
        rules = ip6_rules(sb)
        assert "-A NSGEN-t6 -j RETURN" in rules, (half, rules)
        assert not [r for r in rules if "nsgen:t6" in r or r.startswith("-A PREROUTING")], (half, rules)
        assert not [r for r in rules[rules.index("*nat"):] if "NSGEN-t6" in r], (half, rules)
        sb.run(["ip6tables", "-w", "-F", "NSGEN-t6"])
        sb.run(["ip6tables", "-w", "-X", "NSGEN-t6"])


# ----------------------------------------------------------------------------------------------
# conntrack_flush


def peer(sb, name: str = "peer", n: int = 7) -> None:
    """A namespace `name` linked to the sandbox host by a veth: 2001:db8:N::1 and 192.0.2.1 on the
    host's end, 2001:db8:N::2 and 192.0.2.2 on its own."""
    sb.sh(f"ip netns add {name} && ip link add ct{n} type veth peer name eth0 netns {name} && "
          f"ip addr add 2001:db8:{n}::1/64 dev ct{n} nodad && ip addr add 192.0.2.1/24 dev ct{n} && ip link set ct{n} up && "
          f"ip -n {name} addr add 2001:db8:{n}::2/64 dev eth0 nodad && ip -n {name} addr add 192.0.2.2/24 dev eth0 && "
          f"ip -n {name} link set eth0 up && ip -n {name} link set lo up")


SEND = """
import socket, sys
for address in sys.argv[1:]:
    host, _, port = address.rpartition(":")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (host.strip("[]"), int(port)))
"""


def flows(sb) -> list[tuple[str, str]]:
    """(destination address, destination port) of the host's tracked UDP flows, both families."""
    found = set()
    for family in ("ipv4", "ipv6"):
        for line in sb.run(["conntrack", "-L", "-f", family, "-p", "udp"]).stdout.splitlines():
            words: dict[str, str] = {}
            for key, _, value in (w.partition("=") for w in line.split() if "=" in w):
                words.setdefault(key, value)  # the first of each: the original direction
            found.add((words["dst"], words["dport"]))
    return sorted(found)


@pytest.mark.parametrize("half", HALVES)
def test_conntrack_flush_forgets_the_udp_flows_of_both_families_to_the_ports(sandbox, half):
    sb = sandbox
    peer(sb)
    for tool in ("iptables", "ip6tables"):  # the host tracks connections once a rule asks for their state
        sb.run([tool, "-w", "-A", "INPUT", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"])
    sb.in_ns("peer", [sys.executable, "-c", SEND, "[2001:db8:7::1]:5353", "192.0.2.1:5353", "[2001:db8:7::1]:5354",
                      "[2001:db8:7::1]:6000", "192.0.2.1:6000"])
    deadline = time.monotonic() + 5
    while len(flows(sb)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flows(sb) == [("192.0.2.1", "5353"), ("192.0.2.1", "6000"), ("2001:db8:7::1", "5353"),
                         ("2001:db8:7::1", "5354"), ("2001:db8:7::1", "6000")]
    done = HALVES[half](sb, "conntrack_flush", "udp", "5353", "5354")
    assert (done.returncode, done.stderr) == (0, "")
    assert flows(sb) == [("192.0.2.1", "6000"), ("2001:db8:7::1", "6000")]
    # none left to forget: not an error
    assert both(sb, "conntrack_flush", "udp", "5353", "5354") == (0, "")
    assert flows(sb) == [("192.0.2.1", "6000"), ("2001:db8:7::1", "6000")]


# ----------------------------------------------------------------------------------------------
# subnets_free

GROUP = "4242"


def test_subnets_free_refuses_an_ipv6_subnet_a_host_route_overlaps(sandbox):
    sb = sandbox
    peer(sb)
    sb.sh("ip -6 route add 2001:db8:30::/48 via 2001:db8:7::2 dev ct7 && ip -6 route add 2001:db8:40::5 dev ct7 && "
          "ip route add 203.0.113.128/25 via 192.0.2.2 dev ct7 && "
          # a device of the topology's own (its group, its mark): its routes are its own, set up before
          f"ip link add own6 group {GROUP} type bridge && ip link set own6 alias nsgen:t6 up && "
          "ip -6 route add fd00:60::/64 dev own6 && ip route add 10.60.0.0/24 dev own6 && "
          # a device of the group that another topology marked
          f"ip link add their6 group {GROUP} type bridge && ip link set their6 alias nsgen:other up && ip -6 route add fd00:70::/64 dev their6")
    assert "fe80::/64 dev ct7" in sb.run(["ip", "-6", "route"]).stdout
    free = ("a=fd00:20::/64", "b=10.20.0.0/24", "c=2001:db8:31::/48", "d=2001:db8:40::6/127", "e=fd00:60::/64",
            "f=10.60.0.0/24", "ll=fe80::/64", "g=2001:db8:2f:ffff::/64")
    assert both(sb, "subnets_free", GROUP, "t6", *free) == (0, "")
    refused = {
        "h=2001:db8:30:1::/64": "network h: subnet 2001:db8:30:1::/64 overlaps the host's route to 2001:db8:30::/48 (dev ct7)",
        "i=2001:db8::/32": "network i: subnet 2001:db8::/32 overlaps the host's route to 2001:db8:7::/64 (dev ct7)",
        "j=2001:db8:40::/120": "network j: subnet 2001:db8:40::/120 overlaps the host's route to 2001:db8:40::5/128 (dev ct7)",
        "k=2001:db8:30:8000::/49": "network k: subnet 2001:db8:30:8000::/49 overlaps the host's route to 2001:db8:30::/48 (dev ct7)",
        "l=fd00:70::/80": "network l: subnet fd00:70::/80 overlaps the host's route to fd00:70::/64 (dev their6)",
        "m=203.0.113.192/26": "network m: subnet 203.0.113.192/26 overlaps the host's route to 203.0.113.128/25 (dev ct7)",
    }
    for item, message in refused.items():
        said = both(sb, "subnets_free", GROUP, "t6", *free, item)
        assert (item, *said) == (item, 1, f"{message}; choose a subnet the host does not use; nothing was changed")


# ----------------------------------------------------------------------------------------------
# ports_free

LISTEN = """
import socket, sys, time
protocol, address, port, v6only = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
family = socket.AF_INET6 if ":" in address else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM)
if family == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
s.bind((address, port))
if protocol == "tcp":
    s.listen()
time.sleep(600)
"""


def listen(sb, protocol: str, address: str, port: int, v6only: bool = False) -> str:
    """A host program holding a port (IPv6 when the address is); returns its pid."""
    pid = sb.sh(f"python3 -c '{LISTEN}' {protocol} {address} {port} {int(v6only)} >/dev/null 2>&1 & echo $!").stdout.strip()
    deadline = time.monotonic() + 10
    while f":{port} " not in sb.run(["ss", "-H", "-l", "-n", f"--{protocol}"]).stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def test_ports_free_knows_the_topologys_own_port_proxy_only_when_root_runs_it(sandbox):
    """A port on [::1] held by the topology's port proxy is its own (a second run finds it there);
    a user's program that merely names itself so is not."""
    sb = sandbox
    proxy_words = "port-proxy --tag nsgen:t6"
    sb.sh(f"python3 -c '{LISTEN}' tcp ::1 8095 0 {proxy_words} >/dev/null 2>&1 &")
    sb.sh(f"setpriv --reuid 65534 --regid 65534 --clear-groups python3 -c '{LISTEN}' tcp ::1 8096 0 {proxy_words} >/dev/null 2>&1 &")
    deadline = time.monotonic() + 10
    while not all(f":{p} " in sb.run(["ss", "-H", "-l", "-n", "--tcp"]).stdout for p in (8095, 8096)) and time.monotonic() < deadline:
        time.sleep(0.05)
    said = refusals(sb, "tcp:8095:[::1]", "tcp:8096:[::1]")
    assert said["tcp:8095:[::1]"] == ""
    assert said["tcp:8096:[::1]"].startswith("host port 8096/tcp is already in use: python3 (pid "), said
    assert refusals(sb, "tcp:8095:*")["tcp:8095:*"] == ""


def refusals(sb, *specs: str) -> dict[str, str]:
    """What ports_free says of each spec alone ("" where it lets it be published), both halves agreeing."""
    said = {}
    for spec in specs:
        code, message = both(sb, "ports_free", "nsgen:t6", spec)
        assert (spec, code) == (spec, 1 if message else 0)
        said[spec] = message
    return said


def test_ports_free_knows_which_ipv6_and_ipv4_listeners_hold_which_addresses(sandbox):
    sb = sandbox
    peer(sb)  # the host has 2001:db8:7::1 and 192.0.2.1 besides
    loop6 = listen(sb, "tcp", "::1", 8080)
    dual = listen(sb, "tcp", "::", 8081)
    only6 = listen(sb, "tcp", "::", 8082, v6only=True)
    any4 = listen(sb, "tcp", "0.0.0.0", 8083)
    udp6 = listen(sb, "udp", "::", 5300, v6only=True)

    def held(port: int, pid: str, shown: str, protocol: str = "tcp") -> str:
        return f"host port {port}/{protocol} is already in use: python3 (pid {pid}) listens on {shown}:{port}; nothing was changed"

    assert refusals(sb, "tcp:8080:*", "tcp:8080:[::1]", "tcp:8080:[::]", "tcp:8080:127.0.0.1", "tcp:8080:[2001:db8:7::1]",
                    "udp:8080:*", "tcp:8079:*") == {
        "tcp:8080:*": held(8080, loop6, "[::1]"), "tcp:8080:[::1]": held(8080, loop6, "[::1]"),
        "tcp:8080:[::]": held(8080, loop6, "[::1]"), "tcp:8080:127.0.0.1": "", "tcp:8080:[2001:db8:7::1]": "",
        "udp:8080:*": "", "tcp:8079:*": "",
    }
    # on [::] without IPV6_V6ONLY (Linux's default): every address of both families (ss shows it as *)
    assert refusals(sb, "tcp:8081:*", "tcp:8081:127.0.0.1", "tcp:8081:192.0.2.1", "tcp:8081:[2001:db8:7::1]", "tcp:8081:[::1]") == {
        spec: held(8081, dual, "*") for spec in ("tcp:8081:*", "tcp:8081:127.0.0.1", "tcp:8081:192.0.2.1",
                                                 "tcp:8081:[2001:db8:7::1]", "tcp:8081:[::1]")
    }
    # with IPV6_V6ONLY: every IPv6 address, and no IPv4 one
    assert refusals(sb, "tcp:8082:*", "tcp:8082:[::1]", "tcp:8082:[2001:db8:7::1]", "tcp:8082:127.0.0.1", "tcp:8082:192.0.2.1") == {
        "tcp:8082:*": held(8082, only6, "[::]"), "tcp:8082:[::1]": held(8082, only6, "[::]"),
        "tcp:8082:[2001:db8:7::1]": held(8082, only6, "[::]"), "tcp:8082:127.0.0.1": "", "tcp:8082:192.0.2.1": "",
    }
    # on 0.0.0.0: every IPv4 address, and no IPv6 one
    assert refusals(sb, "tcp:8083:*", "tcp:8083:192.0.2.1", "tcp:8083:[::1]", "tcp:8083:[2001:db8:7::1]") == {
        "tcp:8083:*": held(8083, any4, "0.0.0.0"), "tcp:8083:192.0.2.1": held(8083, any4, "0.0.0.0"),
        "tcp:8083:[::1]": "", "tcp:8083:[2001:db8:7::1]": "",
    }
    assert refusals(sb, "udp:5300:[::1]", "udp:5300:127.0.0.1", "tcp:5300:[::1]") == {
        "udp:5300:[::1]": held(5300, udp6, "[::]", "udp"), "udp:5300:127.0.0.1": "", "tcp:5300:[::1]": "",
    }
    # several specs at once: the first held one is said
    assert both(sb, "ports_free", "nsgen:t6", "tcp:8083:[::1]", "tcp:8080:127.0.0.1", "tcp:8082:[::1]") == (1, held(8082, only6, "[::]"))


def test_ports_free_refuses_a_port_an_ip6tables_dnat_publishes(sandbox):
    sb = sandbox
    peer(sb)
    sb.run(["ip6tables-restore", "-w", "--noflush"], input="""*nat
:NSGEN-other - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment nsgen:other -j NSGEN-other
-A NSGEN-other -d 2001:db8:7::1/128 -p tcp -m tcp --dport 8090 -m comment --comment nsgen:other -j DNAT --to-destination [fd00:70::2]:80
-A NSGEN-other -p udp -m udp --dport 5353 -m comment --comment nsgen:other -j DNAT --to-destination [fd00:70::2]:53
-A NSGEN-other -p tcp -m tcp --dport 8091 -m comment --comment nsgen:t6 -j DNAT --to-destination [fd00:20::2]:80
-A PREROUTING -d 2001:db8:7::1/128 -p tcp -m tcp --dport 8092 -j DNAT --to-destination [fd00:80::2]:80
COMMIT
""")
    other = "host port {}/{} is already published by nsgen topology other; nothing was changed"
    assert refusals(sb, "tcp:8090:*", "tcp:8090:[2001:db8:7::1]", "tcp:8090:[::]", "tcp:8090:[2001:db8:7::2]", "tcp:8090:192.0.2.1",
                    "udp:5353:*", "udp:5353:[::1]", "udp:5353:127.0.0.1", "tcp:8091:*", "tcp:8092:192.0.2.1") == {
        "tcp:8090:*": other.format(8090, "tcp"), "tcp:8090:[2001:db8:7::1]": other.format(8090, "tcp"),
        "tcp:8090:[::]": other.format(8090, "tcp"), "tcp:8090:[2001:db8:7::2]": "", "tcp:8090:192.0.2.1": "",
        "udp:5353:*": other.format(5353, "udp"), "udp:5353:[::1]": other.format(5353, "udp"), "udp:5353:127.0.0.1": "",
        "tcp:8091:*": "",  # the topology's own rule
        "tcp:8092:192.0.2.1": "",
    }
    assert both(sb, "ports_free", "nsgen:t6", "tcp:8092:[2001:db8:7::1]") == (
        1, "host port 8092/tcp is already published by another program's rule (-A PREROUTING -d 2001:db8:7::1/128 -p tcp -m tcp "
           "--dport 8092 -j DNAT --to-destination [fd00:80::2]:80); nothing was changed")


# ----------------------------------------------------------------------------------------------
# other_firewall


def warnings(sb, *families: str) -> list[str]:
    """What other_firewall warns of, both halves agreeing (the scripts' half says `nsgen: warning: ` first)."""
    said = {}
    for half, run in HALVES.items():
        done = run(sb, "other_firewall", *families)
        assert (half, done.returncode) == (half, 0)
        said[half] = [line.removeprefix("nsgen: warning: ") for line in done.stderr.splitlines()]
    assert said["shell"] == said["python"], said
    return said["python"]


def test_other_firewall_names_the_other_ip6tables_backend_too(sandbox):
    sb = sandbox
    assert warnings(sb, "6") == []
    sb.sh("ip6tables-legacy -w -P FORWARD DROP && ip6tables-legacy -w -A FORWARD -s 2001:db8:5::/48 -j ACCEPT")
    six = ("ip6tables-legacy also holds rules on this host (filter FORWARD policy DROP, 1 rule(s)), and nsgen writes through "
           "ip6tables-nft: a packet must pass both, so ip6tables-legacy's rules can cut the networks off; move them to "
           "ip6tables-nft, or make ip6tables-legacy the ip6tables nsgen runs")
    assert warnings(sb, "6") == [six]
    assert warnings(sb) == []  # an IPv4 topology: the IPv6 firewalls are none of its business
    sb.sh("iptables-legacy -w -P FORWARD DROP && nft add table ip6 guard && "
          "nft add chain ip6 guard screen '{ type filter hook forward priority 0; policy drop; }'")
    assert warnings(sb, "6") == [
        "iptables-legacy also holds rules on this host (filter FORWARD policy DROP), and nsgen writes through iptables-nft: a packet "
        "must pass both, so iptables-legacy's rules can cut the networks off; move them to iptables-nft, or make iptables-legacy "
        "the iptables nsgen runs",
        six,
        "nft table ip6 guard, chain screen: policy drop on the forward hook",
    ]
    # ip6tables-nft's own table is nsgen's: a drop there is not another firewall's
    sb.sh("ip6tables-legacy -w -F && ip6tables-legacy -w -P FORWARD ACCEPT && iptables-legacy -w -P FORWARD ACCEPT && "
          "nft delete table ip6 guard && ip6tables -w -P FORWARD DROP")
    assert warnings(sb, "6") == []


# ----------------------------------------------------------------------------------------------
# wait_ready


def test_wait_ready_counts_a_server_listening_only_on_ipv6_as_ready(sandbox, tmp_path):
    sb = sandbox
    peer(sb)
    for protocol, port in (("tcp", 8000), ("udp", 5353)):
        base = tmp_path / protocol
        sb.sh(f"ip netns exec peer python3 -c '{LISTEN}' {protocol} :: {port} 1 >{base}.log 2>&1 & echo $! >{base}.pid")
        assert both(sb, "wait_ready", "peer", str(base), "10", protocol, "1", str(port), "1", "server") == (0, "")
        assert f"[::]:{port} " in sb.in_ns("peer", ["ss", "-H", "-l", "-n", f"--{protocol}"]).stdout  # IPv6 only, indeed
        assert both(sb, "wait_ready", "peer", str(base), "0.3", protocol, "1", str(port + 1), "1", "server") == (
            1, f"the process `server` in peer was not ready ({protocol}:{port + 1}) after 0.3 s; the last lines of {base}.log:\n"
               "  (no output)")
