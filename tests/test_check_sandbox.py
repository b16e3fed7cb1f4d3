"""check, check --probe, exec, status and `nsgen sandbox`, on real kernel objects inside a sandbox.

`check` is green right after setup and names each deliberate break; `nsgen sandbox` (a sandbox
inside the test's sandbox) runs the probe, a command or a shell and leaves its host identical.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable

import pytest

from tests import fw
from tests.drive import NSGEN, Driver, example_text, wait_for
from tests.helpers import EXAMPLES
from tests.sandbox import DNS_ADDR, HOST_ADDR, WEB_ADDR, WORLD_ADDR

pytestmark = pytest.mark.usefixtures("firewall_backend")  # every test once a firewall backend

TUTORIAL = example_text("tutorial.yaml")
BRIDGE = example_text("bridge.yaml")
MASQUERADE = ["-s", "172.18.0.0/24", "!", "-o", "vethc1", "-m", "comment", "--comment", "nsgen:tutorial", "-j", "MASQUERADE"]


def wait_gone(sb, pid: int) -> None:
    """Until a killed process has exited (a zombie counts: it holds no socket and no namespace)."""
    done = wait_for(sb, ["sh", "-c", f"! kill -0 {pid} 2>/dev/null || grep -q '^State:.Z' /proc/{pid}/status"])
    assert done.returncode == 0, f"pid {pid} would not die"


def check(sb, topology, *args):
    return sb.run([*NSGEN, "check", "-f", str(topology), *args], check=False)


def failures(done) -> list[str]:
    return [line for line in done.stdout.splitlines() if not line.startswith("PASS  ")]


def assert_green(done) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert failures(done) == []
    assert re.fullmatch(r"topology \S+ matches this host: \d+ checks passed\n", done.stderr), done.stderr


IPTABLES_CHECKS = ("PASS  firewall   nat POSTROUTING: -s 172.18.0.0/24 ! -o vethc1 -j MASQUERADE", "PASS  firewall   filter FORWARD: -j NSGEN-tutorial")


def firewall_lines(done, status: str) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith(f"{status}  firewall   ")]


def test_check_is_green_after_setup_and_names_each_break(sandbox, tmp_path, firewall_backend):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", TUTORIAL)
    driver.up()
    wait_for(sb, ["ip", "netns", "exec", "container-1", "curl", "-sf", "localhost:8000/echo"])
    green = check(sb, driver.topology)
    assert_green(green)
    lines = green.stdout.splitlines()
    for expected in (
        "PASS  state      topology tutorial is up (/run/nsgen/tutorial exists)",
        "PASS  namespace  container-1",
        "PASS  address    vethc1 (host end of container-1's veth1) holds 172.18.0.1/24",
        "PASS  address    container-1: veth1 holds 172.18.0.2/24",
        "PASS  route      container-1: default via 172.18.0.1 dev veth1",
        "PASS  sysctl     net.ipv4.ip_forward = 1",
        *(IPTABLES_CHECKS if firewall_backend == "iptables" else ()),
        "PASS  file       /etc/netns/container-1/resolv.conf holds what setup wrote",
    ):
        assert expected in lines, expected
    if firewall_backend == "nftables":
        assert any("nsgen-tutorial" in line for line in firewall_lines(green, "PASS")), green.stdout
        assert not any("iptables" in line or "POSTROUTING" in line for line in lines), green.stdout
    assert any(line.startswith("PASS  process    container-1: nsgen echo-server --port 8000 (pid ") for line in lines)

    # a deleted route
    sb.run(["ip", "-n", "container-1", "route", "del", "default"])
    broken = check(sb, driver.topology)
    assert broken.returncode == 1 and broken.stderr == f"topology tutorial: 1 of {len(lines)} checks failed\n"
    assert failures(broken) == ["FAIL  route      container-1: default via 172.18.0.1 dev veth1: no default route"]
    sb.run(["ip", "-n", "container-1", "route", "add", "default", "via", "172.18.0.1", "dev", "veth1", "src", "172.18.0.2"])
    assert_green(check(sb, driver.topology))

    # a deleted firewall rule
    if firewall_backend == "iptables":
        sb.run(["iptables", "-t", "nat", "-D", "POSTROUTING", *MASQUERADE])
        broken = check(sb, driver.topology)
        assert broken.returncode == 1
        assert failures(broken) == ["FAIL  firewall   nat POSTROUTING: -s 172.18.0.0/24 ! -o vethc1 -j MASQUERADE: missing"]
        sb.run(["iptables", "-t", "nat", "-A", "POSTROUTING", *MASQUERADE])
    else:
        taken = fw.nft_take_rule(sb, "tutorial", "nat_postrouting", "masquerade")
        broken = check(sb, driver.topology)
        fw.nft_put_back(sb, "tutorial", "nat_postrouting", taken)
        assert broken.returncode == 1
        assert failures(broken) == firewall_lines(broken, "FAIL") and len(failures(broken)) == 1, broken.stdout
    assert_green(check(sb, driver.topology))

    # an interface down, an address gone, a changed resolv.conf, forwarding off
    sb.sh("ip -n container-1 addr del 172.18.0.2/24 dev veth1; ip link set vethc1 down; "
          "echo 'nameserver 192.0.2.1' >> /etc/netns/container-1/resolv.conf; sysctl -q -w net.ipv4.ip_forward=0")
    assert failures(check(sb, driver.topology)) == [
        "FAIL  link       vethc1 (host end of container-1's veth1) is up: it is down",
        "FAIL  address    container-1: veth1 holds 172.18.0.2/24: it holds none",
        "FAIL  route      container-1: default via 172.18.0.1 dev veth1: no default route",  # it went with the address
        "FAIL  sysctl     net.ipv4.ip_forward = 1: it is 0",
        "FAIL  file       /etc/netns/container-1/resolv.conf holds what setup wrote: its content differs",
    ]
    driver.down()
    driver.up()
    wait_for(sb, ["ip", "netns", "exec", "container-1", "curl", "-sf", "localhost:8000/echo"])
    assert_green(check(sb, driver.topology))

    # a killed process
    pid = int(sb.run(["cat", "/run/nsgen/tutorial/container-1.0.pid"]).stdout)
    sb.run(["kill", "-KILL", str(pid)])
    wait_gone(sb, pid)
    broken = check(sb, driver.topology)
    (line,) = failures(broken)
    assert re.fullmatch(rf"FAIL  process    container-1: nsgen echo-server --port 8000 \(pid {pid}\): pid {pid} (is not running|has exited)", line), line

    driver.down()
    down = check(sb, driver.topology)
    assert down.returncode == 1 and "PASS" not in down.stdout
    assert down.stdout.splitlines()[0] == "FAIL  state      topology tutorial is up (/run/nsgen/tutorial exists): no state directory: the topology is not up"
    assert sb.snapshot() == before  # check changed nothing


def test_check_probe_on_bridges_behind_a_drop_policy(sandbox, tmp_path, firewall_backend):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "script", BRIDGE)
    driver.up()
    wait_for(sb, ["ip", "netns", "exec", "web", "curl", "-sf", "http://172.20.0.2:8000/echo"])
    probed = check(sb, driver.topology, "--probe")
    assert_green(probed)
    probes = [line for line in probed.stdout.splitlines() if "  probe  " in line]
    for expected in (
        "PASS  probe      web → gateway 172.20.0.1 (front, ping)",
        "PASS  probe      web → neighbour app 172.20.0.3 (front, ping)",
        "PASS  probe      app → neighbour db 172.21.0.10 (back, ping)",
        "PASS  probe      db → gateway 172.21.0.1 (back, ping)",
        f"PASS  probe      web → outside {WORLD_ADDR} (masqueraded through front, ping)",  # the host's default gateway
        "PASS  probe      host → published 127.0.0.1:8080 → web 172.20.0.2:8000",
        "PASS  probe      app → published 172.20.0.1:8080 → web 172.20.0.2:8000",
        "PASS  probe      web → published 172.20.0.1:8080 → web 172.20.0.2:8000",
    ):
        assert expected in probes, expected
    assert not any(line.startswith("PASS  probe      db → outside") for line in probes)  # db is internal
    for target in (WEB_ADDR, "web.world.test"):  # a name is resolved inside the container
        targeted = check(sb, driver.topology, "--probe-target", target)
        assert_green(targeted)
        assert f"PASS  probe      app → outside {target} (masqueraded through front, ping)" in targeted.stdout

    # without masquerading, the world cannot answer: the probe says which containers lost the outside
    rule = ["-s", "172.20.0.0/24", "!", "-o", "br-front", "-m", "comment", "--comment", "nsgen:bridge-lab", "-j", "MASQUERADE"]
    if firewall_backend == "iptables":
        sb.run(["iptables", "-t", "nat", "-D", "POSTROUTING", *rule])
    else:
        taken = fw.nft_take_rule(sb, "bridge-lab", "nat_postrouting", 'oifname != "br-front" masquerade')
    broken = check(sb, driver.topology, "--probe-target", WEB_ADDR)
    assert broken.returncode == 1
    assert [line.split(": ")[0] for line in failures(broken) if not line.startswith("FAIL  firewall ")] == [
        f"FAIL  probe      web → outside {WEB_ADDR} (masqueraded through front, ping)",
        f"FAIL  probe      app → outside {WEB_ADDR} (masqueraded through front, ping)",
    ]
    if firewall_backend == "iptables":
        assert [line.split(": ")[0] for line in firewall_lines(broken, "FAIL")] == ["FAIL  firewall   nat POSTROUTING"]
        sb.run(["iptables", "-t", "nat", "-A", "POSTROUTING", *rule])
    else:
        fw.nft_put_back(sb, "bridge-lab", "nat_postrouting", taken)
        assert len(firewall_lines(broken, "FAIL")) == 1, broken.stdout

    # a published port with nothing behind it
    pid = int(sb.run(["cat", "/run/nsgen/bridge-lab/web.0.pid"]).stdout)
    sb.run(["kill", "-KILL", str(pid)])
    wait_gone(sb, pid)
    refused = failures(check(sb, driver.topology, "--probe"))
    assert "FAIL  probe      host → published 127.0.0.1:8080 → web 172.20.0.2:8000: connection refused" in refused
    driver.down()
    assert sb.snapshot() == before


def test_exec_and_status(sandbox, tmp_path):
    sb = sandbox
    driver = Driver(sb, tmp_path, "run", TUTORIAL)
    topology = str(driver.topology)
    nothing = sb.run([*NSGEN, "status"])
    assert nothing.stdout == "" and nothing.stderr == "no nsgen topology is up on this host\n"
    not_up = sb.run([*NSGEN, "exec", "-f", topology, "container-1", "--", "true"], check=False)
    assert not_up.returncode == 1 and not_up.stderr == "error: topology tutorial is not up on this host (set it up first: sudo nsgen run)\n"

    driver.up()
    # the command runs inside, sees the container's resolv.conf, and its exit status comes back
    done = sb.run([*NSGEN, "exec", "-f", topology, "container-1", "--", "sh", "-c", "cat /etc/resolv.conf; ip -br addr show veth1; exit 7"], check=False)
    assert done.returncode == 7
    assert f"nameserver {DNS_ADDR}" in done.stdout and "172.18.0.2/24" in done.stdout
    assert sb.run([*NSGEN, "exec", "-f", topology, "container-1", "curl", "-s", "--max-time", "3", f"http://{WEB_ADDR}/"]).stdout == f"{HOST_ADDR}\n"
    missing = sb.run([*NSGEN, "exec", "-f", topology, "container-1", "no-such-command", "x"], check=False)
    assert missing.returncode == 127 and missing.stderr == "error: no command 'no-such-command' found (on PATH or at that path)\n"
    unknown = sb.run([*NSGEN, "exec", "-f", topology, "container-9", "--", "true"], check=False)
    assert unknown.returncode == 1 and unknown.stderr == "error: topology tutorial has no container 'container-9'; its containers: container-1\n"

    shown = sb.run([*NSGEN, "status"]).stdout.splitlines()
    assert shown[0].split() == ["TOPOLOGY", "CONTAINER", "ADDRESSES", "PORTS", "PROCESSES"]
    assert re.fullmatch(r"tutorial\s+container-1\s+link0 172\.18\.0\.2/24\s+-\s+1 of 1 running", shown[1]), shown
    pid = sb.run(["cat", "/run/nsgen/tutorial/container-1.0.pid"]).stdout.strip()
    ps = sb.run([*NSGEN, "ps"]).stdout.splitlines()
    assert ps[0].split() == ["TOPOLOGY", "CONTAINER", "PID", "STATE", "EXIT", "COMMAND", "LOG"]
    assert re.fullmatch(rf"tutorial\s+container-1\s+{pid}\s+running\s+-\s+nsgen echo-server --port 8000\s+"
                        r"/run/nsgen/tutorial/container-1\.0\.log", ps[1]), ps
    assert "echo server listening on port 8000" in sb.run([*NSGEN, "logs", "container-1"]).stdout
    sb.run(["kill", "-KILL", pid])
    wait_gone(sb, int(pid))
    wait_for(sb, ["test", "-e", "/run/nsgen/tutorial/container-1.0.exit"])
    assert re.fullmatch(r"tutorial\s+container-1\s+link0 172\.18\.0\.2/24\s+-\s+0 of 1 running \(ended 0: exit 137\)",
                        sb.run([*NSGEN, "status"]).stdout.splitlines()[1])
    row = json.loads(sb.run([*NSGEN, "ps", "--json"]).stdout)["processes"][0]
    assert (row["pid"], row["state"], row["exit"]) == (int(pid), "exited", 137)
    driver.down()
    assert sb.run([*NSGEN, "status"]).stdout == ""


def marked() -> tuple[dict[str, str], Callable[[], list[int]]]:
    """An environment variable to give a command, and a finder of the processes that still carry it.

    Every process of a sandbox that `nsgen sandbox` makes inherits its environment (the helper,
    the world's servers, the topology's processes), so whatever is left of it can be found.
    """
    mark = f"nsgen-test-{uuid.uuid4().hex}".encode()

    def alive() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/environ", "rb") as f:
                        if b"NSGEN_TEST_MARK=" + mark in f.read().split(b"\0"):
                            found.append(int(entry))
                except OSError:
                    continue
        return found

    return {"NSGEN_TEST_MARK": mark.decode()}, alive


@pytest.mark.parametrize("example", ["tutorial.yaml", "bridge.yaml", "pod.yaml"])
def test_nsgen_sandbox_probes_and_leaves_its_host_identical(sandbox, tmp_path, example):
    """`nsgen sandbox`, run inside the test's sandbox: the outer sandbox is the machine it must not change."""
    sb = sandbox
    before, (env, leftovers) = sb.snapshot(), marked()
    done = sb.run([*NSGEN, "sandbox", "-f", str(EXAMPLES / example)], check=False, env=env)  # as shipped: dns 1.1.1.1
    assert done.returncode == 0, done.stdout + done.stderr
    assert failures(done) == [] and len(done.stdout.splitlines()) > 10
    assert any(line.startswith("PASS  probe      ") for line in done.stdout.splitlines())
    err = done.stderr.splitlines()
    assert err[0].startswith("sandbox: a throwaway host with a simulated world")
    assert f"resolves through the world's DNS server {DNS_ADDR} instead of 1.1.1.1" in done.stderr
    assert err[-1].endswith("is down and the sandbox is gone")
    assert sb.snapshot() == before
    assert leftovers() == []  # nothing of the inner sandbox outlives it


def test_nsgen_sandbox_runs_a_command_or_a_shell(sandbox, tmp_path):
    sb = sandbox
    before, (env, leftovers) = sb.snapshot(), marked()
    fetch = sb.run([*NSGEN, "sandbox", "--", "nsgen", "exec", "container-1", "curl", "-s", "--max-time", "3", "http://web.world.test/"], check=False, env=env)
    assert fetch.returncode == 0, fetch.stderr
    assert fetch.stdout == f"{HOST_ADDR}\n"  # the container reached the world by name, masqueraded
    status = sb.run([*NSGEN, "sandbox", "-f", str(EXAMPLES / "bridge.yaml"), "sh", "-c", "ls /run/netns; exit 7"], check=False, env=env)
    assert status.returncode == 7
    assert status.stdout.split() == ["app", "db", "web", "world"]
    shell = sb.run([*NSGEN, "sandbox", "--shell"], input="ip -n container-1 -br addr show veth1\nexit 4\n", check=False, env=env)
    assert shell.returncode == 4
    assert "172.18.0.2/24" in shell.stdout
    assert "leave the shell (exit or ^D) to tear everything down" in shell.stderr
    both = sb.run([*NSGEN, "sandbox", "--shell", "--", "true"], check=False)
    assert both.returncode == 1 and both.stderr == "error: give either --shell or a command, not both\n"
    assert sb.snapshot() == before
    assert leftovers() == []


def test_status_lists_every_container(sandbox, tmp_path):
    """Containers without processes or a resolv.conf of their own (the bridge example's db) too."""
    sb = sandbox
    driver = Driver(sb, tmp_path, "run", example_text("bridge.yaml"))
    driver.up()
    rows = [line.split()[:2] for line in sb.run([*NSGEN, "status"]).stdout.splitlines()[1:]]
    assert sorted(c for t, c in rows if t == "bridge-lab") == ["app", "db", "web"]
    driver.down()
