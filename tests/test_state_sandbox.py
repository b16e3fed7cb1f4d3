"""What nsgen trusts of the host's state, and whether every failure is repeatable until clean, on
real kernel objects in a sandbox: a state directory someone else made or filled with links, a
umask that would make nsgen's folders writable by all, a namespace made by another tool after a
crash, a teardown that cannot finish, a state directory deleted while the topology is up, two
names that share a device group, and a /run that is full."""

from __future__ import annotations

import pytest

from nsgen.names import device_group
from tests.drive import NSGEN, Driver, example_text, wait_for
from tests.faults import SYSTEM_PATH, Faults

BRIDGE = example_text("bridge.yaml")
MODES = ["script", "batch", "run"]


def lab(name: str = "lab", subnet: str = "172.30.0.0/24", port: int = 8080) -> str:
    return f"""
name: {name}
networks:
  n: {{subnet: {subnet}}}
containers:
  c1:
    networks: [n]
    ports: ["{port}:8000"]
    dns: [203.0.113.53]
    processes: [nsgen echo-server --port 8000]
"""


def setup_argv(driver: Driver) -> list[str]:
    if driver.mode in ("script", "batch"):
        return ["bash", str(driver.setup_sh)]
    return [*NSGEN, "run", "-f", str(driver.topology)]


def foreign_namespace(sb, name: str) -> None:
    """A namespace of another tool's, with a process in it."""
    sb.sh(f"ip netns add {name} && (ip netns exec {name} sleep 600 >/dev/null 2>&1 &)")
    wait_for(sb, ["sh", "-c", f"[ -n \"$(ip netns pids {name})\" ]"])


def assert_foreign_namespace_untouched(sb, name: str) -> None:
    assert sb.run(["test", "-e", f"/run/netns/{name}"], check=False).returncode == 0, f"{name} was deleted"
    assert sb.run(["ip", "netns", "pids", name]).stdout.strip(), f"the process in {name} was stopped"


def remove_foreign_namespace(sb, name: str) -> None:
    sb.sh(f"kill $(ip netns pids {name}); ip netns delete {name}")


# -- a state directory that is not nsgen's ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_state_directory_made_by_someone_else_is_refused_and_left_alone(sandbox, tmp_path, mode):
    sb = sandbox
    sb.sh("mkdir -p /run/nsgen/lab && chown 65534:65534 /run/nsgen/lab")  # an unprivileged user got there first
    foreign_namespace(sb, "c1")
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, lab())
    done = driver.up(check=False)
    assert done.returncode != 0
    assert ("the state directory /run/nsgen/lab: it belongs to uid 65534, not to root: it is not nsgen's; nothing was changed"
            in done.stderr), done.stderr
    assert sb.snapshot() == before
    driver.down()  # a teardown never adopts it either
    assert_foreign_namespace_untouched(sb, "c1")
    assert sb.snapshot() == before


@pytest.mark.parametrize("owner", ["nobody", "root"])
@pytest.mark.parametrize("mode", ["script", "run"])
def test_links_planted_in_the_state_directory_are_never_followed(sandbox, tmp_path, mode, owner):
    sb = sandbox
    victims = {name: tmp_path / f"victim-{name}" for name in ("pid", "log", "up", "namespaces")}
    for victim in victims.values():
        victim.write_text("precious\n")
    chown = "chown 65534 /run/nsgen/lab && " if owner == "nobody" else ""
    sb.sh(f"mkdir -p /run/nsgen/lab && {chown}"
          f"ln -s {victims['pid']} /run/nsgen/lab/c1.0.pid && ln -s {victims['log']} /run/nsgen/lab/c1.0.log && "
          f"ln -s {victims['up']} /run/nsgen/lab/up && ln -s {victims['namespaces']} /run/nsgen/lab/namespaces")
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, lab())
    done = driver.up(check=False)
    assert done.returncode != 0
    assert "the state directory /run/nsgen/lab" in done.stderr and "nothing was changed" in done.stderr
    if owner == "root":
        assert "/run/nsgen/lab/c1.0.log: it is a symbolic link" in done.stderr, done.stderr
    assert all(v.read_text() == "precious\n" for v in victims.values())
    assert sb.snapshot() == before
    driver.down()
    assert all(v.read_text() == "precious\n" for v in victims.values())


@pytest.mark.parametrize("mode", MODES)
def test_nsgens_folders_and_files_get_fixed_modes_whatever_the_umask(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, lab())
    sb.run(["sh", "-c", 'umask 000 && exec "$@"', "_", *setup_argv(driver)])
    modes = sb.sh("stat -c '%a %n' /run/nsgen /run/nsgen/lab /run/nsgen/.ip_forward /run/nsgen/.ip_forward/users "
                  "/run/nsgen/.ip_forward/users/lab /run/nsgen/lab/topology.json /run/nsgen/lab/namespaces /run/nsgen/lab/c1.0.pid "
                  "/run/nsgen/lab/c1.0.log /run/nsgen/lab/up /etc/netns/c1 /etc/netns/c1/resolv.conf /etc/netns/c1/hosts /run/nsgen.lock").stdout.split("\n")
    wrong = [line for line in modes if line and line.split()[0] not in ("755", "644")]
    assert not wrong, wrong
    driver.down()
    assert sb.snapshot() == before


def kill_after_the_record(sb, driver: Driver, faults: Faults) -> None:
    """Kill a setup at the first call after it recorded the topology and before any namespace."""
    for k in range(1, 40):
        sb.run(setup_argv(driver), env=faults.env(at=k, mode="KILL"), check=False)
        recorded = sb.run(["test", "-e", "/run/nsgen/lab/topology.json"], check=False).returncode == 0
        if recorded and sb.run(["test", "-e", "/run/netns/c1"], check=False).returncode != 0:
            return
        driver.down()
    pytest.fail("no call came after the record and before the namespaces")


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_namespace_another_tool_made_after_a_crash_is_refused_and_survives(sandbox, tmp_path, mode):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, lab())
    kill_after_the_record(sb, driver, Faults(sb, tmp_path / "faults"))
    foreign_namespace(sb, "c1")
    done = driver.up(check=False)
    assert done.returncode != 0
    assert "network namespace c1 already exists and was not made by nsgen topology lab; nothing was changed" in done.stderr
    driver.down()
    assert_foreign_namespace_untouched(sb, "c1")
    remove_foreign_namespace(sb, "c1")
    assert sb.snapshot() == before


# -- a teardown that cannot finish, then can ---------------------------------------------------------

# Changes fail; looking (iptables -C, -S) still works, so that the teardown can say what is left.
FAILING = '#!/bin/sh\ncase " $* " in *" -C "*|*" -S "*) exec {real} "$@" ;; esac\necho "{name}: injected failure" >&2\nexit 4\n'


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_teardown_that_fails_keeps_what_it_needs_and_the_next_one_finishes(sandbox, tmp_path, mode):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, lab())
    driver.up()
    shims = tmp_path / "failing"
    shims.mkdir()
    for name in ("iptables", "iptables-restore"):
        real = sb.run(["sh", "-c", f"PATH={SYSTEM_PATH} command -v {name}"]).stdout.strip()
        (shims / name).write_text(FAILING.format(name=name, real=real))
        (shims / name).chmod(0o755)
    teardown = ["bash", str(driver.cleanup_sh)] if mode == "script" else [*NSGEN, "run", "--teardown", "-f", str(driver.topology)]
    done = sb.run(teardown, env={"PATH": f"{shims}:{SYSTEM_PATH}"}, check=False)
    assert done.returncode != 0
    assert "could not undo everything" in done.stderr
    assert "iptables chain NSGEN-lab (table nat)" in done.stderr  # what is still there
    assert "its state directory /run/nsgen/lab is kept: run the teardown again to finish the job" in done.stderr
    assert "--dport 8080" in sb.run(["iptables-save", "-t", "nat"]).stdout
    again = driver.down()  # the next teardown finishes the job
    assert "is down" in again.stderr
    assert sb.snapshot() == before
    driver.up()  # and setup works after that
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/echo"]).returncode == 0
    driver.down()
    assert sb.snapshot() == before


# -- the state directory deleted while the topology is up -------------------------------------------


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_topology_whose_state_directory_was_deleted_is_still_removed_whole(sandbox, tmp_path, mode):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, mode, BRIDGE)
    driver.up()
    sb.run(["rm", "-rf", "/run/nsgen/bridge-lab"])  # an admin's rm, a cleaner of /run
    done = driver.down()
    if mode == "run":
        assert "no record of topology bridge-lab on this host; removing what carries its marks:" in done.stderr
        assert "namespace web" in done.stderr and "link br-front" in done.stderr
    assert sb.snapshot() == before  # namespaces, links, rules, the process, and ip_forward put back


def test_ip_forward_stays_on_while_another_nsgen_network_needs_it(sandbox, tmp_path):
    sb = sandbox
    before = sb.snapshot()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Driver(sb, tmp_path / "a", "run", lab("first", "172.30.0.0/24", 8081).replace("c1", "first-c"))
    b = Driver(sb, tmp_path / "b", "run", lab("second", "172.31.0.0/24", 8082).replace("c1", "second-c"))
    a.up()
    b.up()
    sb.run(["rm", "-rf", "/run/nsgen/first"])
    a.down()  # by its marks
    assert sb.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert sb.in_ns("second-c", ["curl", "-sf", "-m", "3", "http://203.0.113.10/"]).stdout.strip() == "198.51.100.1"
    assert sb.in_ns("world", ["curl", "-sf", "-m", "3", "http://198.51.100.1:8082/echo"], check=False).returncode == 0
    b.down()
    assert sb.snapshot() == before


# -- two names, one device group ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["script", "run"])
def test_two_names_with_one_device_group_never_share_it(sandbox, tmp_path, mode):
    assert device_group("t188781") == device_group("t326020")
    sb = sandbox
    before = sb.snapshot()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Driver(sb, tmp_path / "a", "run", lab("t188781", "172.30.0.0/24", 8081).replace("c1", "a1"))
    b = Driver(sb, tmp_path / "b", mode, lab("t326020", "172.31.0.0/24", 8082).replace("c1", "b1"))
    faults = Faults(sb, tmp_path / "faults")
    for k in range(1, 40):  # B interrupted after it recorded itself, before it made any device
        sb.run(setup_argv(b), env=faults.env(at=k, mode="KILL"), check=False)
        recorded = sb.run(["test", "-e", "/run/nsgen/t326020/topology.json"], check=False).returncode == 0
        if recorded and not sb.run(["ip", "-o", "link", "show", "group", device_group("t326020")]).stdout.strip():
            break
        b.down()
    assert not sb.run(["ip", "-o", "link", "show", "group", device_group("t326020")]).stdout.strip()
    a.up()
    def names(group: str) -> list[str]:
        return sorted(line.split(": ")[1].split("@")[0] for line in sb.run(["ip", "-o", "link", "show", "group", group]).stdout.splitlines())

    links = names(device_group("t188781"))
    assert len(links) == 2
    done = b.up(check=False)
    assert done.returncode != 0
    assert "a link in device group 0x" in done.stderr and "already exists and was not made by nsgen topology t326020" in done.stderr
    b.down()
    assert names(device_group("t188781")) == links, "B's teardown touched A's links"
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8081/echo"]).returncode == 0
    a.down()
    assert sb.snapshot() == before


# -- faults that are not a tool's exit status ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["script", "run"])
def test_a_full_run_folder_is_an_error_that_undoes_itself(sandbox, tmp_path, mode):
    """/run (a tmpfs) runs out of inodes at each file the setup creates in turn."""
    sb = sandbox
    driver = Driver(sb, tmp_path, mode, lab())
    driver.down()  # the lock file exists from now on
    before = sb.snapshot()
    total = sb.run(["stat", "-f", "-c", "%c", "/run"]).stdout.strip()
    failed = 0
    for extra in range(16):
        used = int(total) - int(sb.run(["stat", "-f", "-c", "%d", "/run"]).stdout.strip())
        sb.run(["mount", "-o", f"remount,nr_inodes={used + extra}", "/run"])
        try:
            done = sb.run(setup_argv(driver), check=False)
        finally:
            sb.run(["mount", "-o", f"remount,nr_inodes={total}", "/run"])
        if done.returncode == 0:
            driver.down()
        else:
            failed += 1
            assert "Traceback" not in done.stderr, done.stderr
            assert "No space left on device" in done.stderr, done.stderr
        assert sb.snapshot() == before, f"a full /run with {extra} free inodes left the sandbox changed"
    assert failed >= 5
