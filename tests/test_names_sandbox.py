"""Names and per-container options on real kernel objects in a sandbox: containers reach each other
by name (and by alias) on the networks they share and only there, through the hosts file `ip netns
exec` shows them; a container's own net.* sysctls hold in its namespace only; a process runs as its
user, in its working directory, with its environment; teardown leaves nothing behind, and an edit
while up reaches the names a running process sees."""

from __future__ import annotations

import pytest

from tests.drive import NSGEN, Driver, curl, echo_ok, ping, wait_for

OUT = "/run/names-out"  # where the processes run as nobody write (made world-writable by the test)

NAMES = f"""
name: names-lab
networks:
  front:
    subnet: [172.30.0.0/24, fd00:30::/64]
  back:
    subnet: 172.31.0.0/24
    internal: true
  side:
    subnet: 172.32.0.0/24
containers:
  web:
    networks:
      front:
        aliases: [www, www.internal]
    sysctls:
      net.ipv4.ip_unprivileged_port_start: 80
    processes:
      - command: [sh, -c, 'id -u >uid; id -g >gid; echo "$GREETING" >greeting; echo "$N" >n; pwd >cwd; exec sleep 600']
        user: nobody
        working_dir: {OUT}
        environment: {{GREETING: hello world, N: 3}}
        ready: file:{OUT}/cwd
      - command: [/usr/bin/python3, -m, http.server, --bind, "::", "80"]
        user: nobody
        working_dir: {OUT}
        ready: tcp:80
  app:
    networks:
      front: {{}}
      back:
        aliases: [api]
    processes:
      - [sleep, "600"]
  db:
    networks: [back]
    sysctls: {{net.ipv4.icmp_echo_ignore_all: 1, net.ipv4.ip_forward: "1", net.ipv4.ping_group_range: "0  2147483647"}}
  solo:
    networks: [side]
"""


def names(sb, ns: str, name: str) -> list[str]:
    """The addresses `name` has for a process in ns (its hosts file only: no DNS query), IPv4 first."""
    found = []
    for database in ("ahostsv4", "ahostsv6"):
        done = sb.in_ns(ns, ["getent", "-s", "files", database, name], check=False)
        found += [a for a in dict.fromkeys(line.split()[0] for line in done.stdout.splitlines()) if not a.startswith("::ffff:")]
    return found  # (ahostsv6 gives an IPv4-only name as IPv4-mapped addresses: left out)


def inside(sb, ns: str, key: str) -> str:
    return sb.in_ns(ns, ["cat", "/proc/sys/" + key.replace(".", "/")]).stdout.strip()


@pytest.mark.parametrize("mode", ["script", "batch", "run"])
def test_containers_reach_each_other_by_name_and_processes_run_as_told(sandbox, tmp_path, mode):
    sb = sandbox
    sb.run(["install", "-d", "-m", "1777", OUT])
    before = sb.snapshot()
    host_ping_ignore = sb.run(["cat", "/proc/sys/net/ipv4/icmp_echo_ignore_all"]).stdout.strip()
    driver = Driver(sb, tmp_path, mode, NAMES)
    driver.up()

    # names: each container sees itself, and the others on the networks it shares, at their address there
    assert names(sb, "web", "web") == ["172.30.0.2", "fd00:30::2"]
    assert names(sb, "web", "app") == ["172.30.0.3", "fd00:30::3"]  # app's address on front, not back
    assert names(sb, "db", "app") == ["172.31.0.2"]
    assert names(sb, "web", "db") == [] and names(sb, "solo", "web") == [] and names(sb, "web", "solo") == []
    assert names(sb, "app", "localhost") == ["127.0.0.1", "::1"]
    # aliases: on their network only (and for the container itself)
    assert names(sb, "app", "www.internal") == ["172.30.0.2", "fd00:30::2"]
    assert names(sb, "db", "api") == ["172.31.0.2"] and names(sb, "app", "api") == ["172.31.0.2"]
    assert names(sb, "web", "api") == [] and names(sb, "db", "www") == []
    assert sb.in_ns("app", ["getent", "hosts", "api"]).stdout.split() == ["172.31.0.2", "app", "api"]
    # real traffic by name: the web server runs as nobody on port 80 (web's own ip_unprivileged_port_start)
    assert curl(sb, "app", "http://www/uid") == "65534\n"
    assert curl(sb, "app", "http://[fd00:30::2]/greeting") == "hello world\n"
    assert sb.in_ns("app", ["curl", "-sf6", "--max-time", "2", "http://www.internal/cwd"]).stdout == f"{OUT}\n"
    assert sb.in_ns("db", ["curl", "-sf", "--max-time", "1", "http://www/uid"], check=False).returncode != 0  # no such name there
    # the process: its user, group, environment and working directory
    assert [sb.run(["cat", f"{OUT}/{f}"]).stdout for f in ("uid", "gid", "greeting", "n", "cwd")] == [
        "65534\n", "65534\n", "hello world\n", "3\n", f"{OUT}\n"]
    # sysctls: in the container's namespace only
    assert inside(sb, "web", "net.ipv4.ip_unprivileged_port_start") == "80"
    assert inside(sb, "db", "net.ipv4.ip_forward") == "1" and inside(sb, "db", "net.ipv4.icmp_echo_ignore_all") == "1"
    assert inside(sb, "app", "net.ipv4.icmp_echo_ignore_all") == "0"
    assert inside(sb, "db", "net.ipv4.ping_group_range").split() == ["0", "2147483647"]  # a value of two words, as Docker sets it
    assert sb.run(["cat", "/proc/sys/net/ipv4/icmp_echo_ignore_all"]).stdout.strip() == host_ping_ignore
    assert not ping(sb, "app", "db", tries=1, wait="1") and ping(sb, "db", "api")  # db answers no ping, but pings
    checked = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
    assert checked.returncode == 0, checked.stdout
    assert "PASS  sysctl     db: net.ipv4.icmp_echo_ignore_all = 1" in checked.stdout
    assert "PASS  sysctl     db: net.ipv4.ping_group_range = 0 2147483647" in checked.stdout
    assert "PASS  file       /etc/netns/app/hosts names what app may reach by name" in checked.stdout
    if mode == "run":  # drift: a sysctl changed inside, a hosts file edited
        sb.in_ns("web", ["sysctl", "-q", "-w", "net.ipv4.ip_unprivileged_port_start=1024"])
        sb.run(["sh", "-c", "echo '172.31.0.9 api' >>/etc/netns/db/hosts"])
        drift = sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False)
        assert drift.returncode == 1
        assert [line for line in drift.stdout.splitlines() if line.startswith("FAIL")] == [
            "FAIL  sysctl     web: net.ipv4.ip_unprivileged_port_start = 80: it is 1024",
            "FAIL  file       /etc/netns/db/hosts names what db may reach by name: its content differs"]
    sb.run(["sh", "-c", f"rm -f {OUT}/*"])

    driver.down()
    assert sb.snapshot() == before


def test_an_edit_reaches_the_names_running_processes_see(sandbox, tmp_path):
    sb = sandbox
    sb.run(["install", "-d", "-m", "1777", OUT])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", NAMES)
    driver.up()
    app = sb.run(["cat", "/run/nsgen/names-lab/app.0.pid"]).stdout.strip()

    def seen_by_app() -> str:  # /etc/hosts as the process that runs in app sees it
        return sb.run(["nsenter", "-t", app, "-m", "cat", "/etc/hosts"]).stdout

    assert "\tdb\n" in seen_by_app() and "cache" not in seen_by_app()
    edited = NAMES.replace("  solo:\n    networks: [side]", "  cache:\n    networks:\n      back:\n        aliases: [redis]")
    driver.topology.write_text(edited)
    done = driver.up()
    assert "change the names seen in app, db" in done.stderr, done.stderr
    assert "change container app" not in done.stderr
    assert sb.run(["cat", "/run/nsgen/names-lab/app.0.pid"]).stdout.strip() == app  # still the same process
    assert "172.31.0.4\tcache redis\n" in seen_by_app()
    assert names(sb, "db", "redis") == ["172.31.0.4"] and names(sb, "cache", "api") == ["172.31.0.2"]
    assert names(sb, "web", "solo") == [] and sb.run(["test", "-e", "/etc/netns/solo"], check=False).returncode != 0
    assert sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False).returncode == 0
    driver.down()
    sb.run(["sh", "-c", f"rm -f {OUT}/*"])
    assert sb.snapshot() == before


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_sysctl_the_kernel_does_not_have_fails_the_setup_clearly(sandbox, tmp_path, mode):
    sb = sandbox
    sb.run(["install", "-d", "-m", "1777", OUT])
    before = sb.snapshot()
    text = NAMES.replace("net.ipv4.icmp_echo_ignore_all: 1", "net.ipv4.no_such_setting: 1")
    driver = Driver(sb, tmp_path, mode, text)
    done = driver.up(check=False)
    assert done.returncode != 0
    assert "sysctls:db" in done.stderr and "/proc/sys/net/ipv4/no_such_setting: No such file" in done.stderr, done.stderr
    assert sb.snapshot() == before


def test_names_hold_on_a_macvlan_network(sandbox, tmp_path):
    """Names are the containers' addresses whatever the driver: on the LAN of a macvlan network too."""
    from tests.test_macvlan_sandbox import A, B, kernel_has, lan

    sb = sandbox
    if not kernel_has(sb, "macvlan"):
        pytest.skip("this kernel has no macvlan")
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", lan().replace("  a:\n    networks: [lan]", "  a:\n    networks:\n      lan:\n        aliases: [svc]"))
    driver.up()
    assert names(sb, "b", "svc") == [A] and names(sb, "a", "b") == [B]
    assert echo_ok(wait_for(sb, ["ip", "netns", "exec", "b", "curl", "-sf", "--max-time", "2", "http://svc:8000/echo"]).stdout)
    driver.down()
    assert sb.snapshot() == before
