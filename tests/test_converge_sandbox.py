"""A topology edited while it is up, on real kernel objects in a sandbox: `nsgen run` brings it to
the new definition (saying what it removes, changes and adds, and leaving what did not change
running), a setup script refuses instead of merging, and every teardown removes what is up."""

from __future__ import annotations

import pytest

from tests.drive import NSGEN, Driver, example_text, wait_for

BRIDGE = example_text("bridge.yaml")
# db renamed, the internal network moved: app (on it) changes with it; web does not change
EDITED = BRIDGE.replace("  db:", "  database:").replace("172.21.0.0/24", "172.22.0.0/24").replace("172.21.0.10", "172.22.0.10")


def inode(sb, path: str) -> str:
    return sb.run(["stat", "-L", "-c", "%i", path]).stdout.strip()


def addresses(sb, dev: str) -> list[str]:
    return [line.split()[3] for line in sb.run(["ip", "-4", "-o", "addr", "show", "dev", dev]).stdout.splitlines()]


@pytest.mark.parametrize("teardown", ["run", "script rendered from the old file"])
def test_an_edited_topology_converges_and_is_removed_whole(sandbox, tmp_path, teardown):
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    old_file = tmp_path / "old.yaml"
    old_file.write_text(BRIDGE)
    driver.up()
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/echo"]).returncode == 0
    web_pid = sb.run(["cat", "/run/nsgen/bridge-lab/web.0.pid"]).stdout.strip()
    web_ns, web_link = inode(sb, "/run/netns/web"), sb.run(["ip", "-o", "link", "show", "ve-web-794cd"]).stdout.split(":")[0]

    driver.topology.write_text(EDITED)
    done = driver.up()
    for line in ("topology bridge-lab is up with another definition; changing it:", "change network back",
                 "change container app", "remove container db", "add container database"):
        assert line in done.stderr, (line, done.stderr)
    assert "change container web" not in done.stderr
    # exactly the new definition is up
    assert addresses(sb, "br-back") == ["172.22.0.1/24"]
    names = [line.split()[0] for line in sb.run(["ip", "netns", "list"]).stdout.splitlines()]
    assert sorted(names) == ["app", "database", "web", "world"]
    assert sb.in_ns("app", ["ping", "-c1", "-W2", "172.22.0.10"], check=False).returncode == 0
    assert sb.in_ns("web", ["ping", "-c1", "-W1", "172.22.0.10"], check=False).returncode != 0  # still isolated
    # what did not change kept running: web's namespace, veth pair and process
    assert inode(sb, "/run/netns/web") == web_ns
    assert sb.run(["ip", "-o", "link", "show", "ve-web-794cd"]).stdout.split(":")[0] == web_link
    assert sb.run(["cat", "/run/nsgen/bridge-lab/web.0.pid"]).stdout.strip() == web_pid
    assert sb.run(["kill", "-0", web_pid], check=False).returncode == 0
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/echo"]).returncode == 0
    assert sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False).returncode == 0
    # a second run of the same definition changes nothing
    again = driver.up()
    assert "changing it" not in again.stderr
    assert sb.run(["cat", "/run/nsgen/bridge-lab/web.0.pid"]).stdout.strip() == web_pid

    if teardown == "run":
        driver.down()
    else:  # a teardown script rendered while the topology is up covers what is up, whatever the file says
        script = tmp_path / "cleanup-from-old.sh"
        rendered = sb.run([*NSGEN, "render", "--teardown", "-f", str(old_file), "-o", str(script)])
        assert "the file no longer describes what is up" in rendered.stderr
        sb.run(["bash", str(script)])
    assert sb.snapshot() == before


def test_a_setup_script_refuses_a_topology_that_is_up_with_another_definition(sandbox, tmp_path):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    driver.up()
    assert wait_for(sb, ["grep", "-q", "listening", "/run/nsgen/bridge-lab/web.0.log"]).returncode == 0
    up = sb.snapshot()
    (tmp_path / "edited").mkdir()
    for mode in ("script", "batch"):
        edited = Driver(sb, tmp_path / "edited", mode, EDITED)
        done = edited.up(check=False)
        assert done.returncode != 0
        assert "topology bridge-lab is up with another definition" in done.stderr
        assert "nothing was changed" in done.stderr
        assert sb.snapshot() == up
    driver.down()
    assert sb.snapshot() == before


def test_converging_back_and_forth_leaves_nothing_behind(sandbox, tmp_path):
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    driver.up()
    for text in (EDITED, BRIDGE, EDITED.replace('ports: ["8080:8000"]', 'ports: ["8081:8000", "5353:53/udp"]'), BRIDGE):
        driver.topology.write_text(text)
        driver.up()
        assert sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False).returncode == 0
    driver.down()
    assert sb.snapshot() == before


NFT = BRIDGE.replace("name: bridge-lab", "name: bridge-lab\nhost: {firewall: nftables}")


def test_an_edited_nftables_table_is_replaced_in_one_transaction(sandbox, tmp_path):
    """A published port added and one removed: the table is made anew in the transaction that
    deletes the old one (never undone first), and the host answers on the new port only."""
    sb = sandbox
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", NFT)
    driver.up()
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/echo"]).returncode == 0
    driver.topology.write_text(NFT.replace('ports: ["8080:8000"]', 'ports: ["8081:8000", "5353:53/udp"]'))
    done = driver.up()
    assert "change firewall rules (the nftables table)" in done.stderr, done.stderr
    assert "nft_undo" not in done.stderr
    assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8081/echo"]).returncode == 0
    assert sb.run(["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/echo"], check=False).returncode != 0
    tcp = sb.run(["nft", "list", "map", "inet", "nsgen-bridge-lab", "dnat_ip_tcp"]).stdout
    assert "8081" in tcp and "8080" not in tcp
    assert sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False).returncode == 0
    driver.down()
    assert sb.snapshot() == before


def test_switching_the_firewall_backend_of_a_topology_that_is_up(sandbox, tmp_path):
    """iptables to nftables and back while up: each time the other backend's rules are gone, the
    published port answers, and teardown leaves the host as it was."""
    sb = sandbox
    sb.run(["iptables", "-P", "FORWARD", "DROP"])
    before = sb.snapshot()
    driver = Driver(sb, tmp_path, "run", BRIDGE)
    driver.up()
    for text, backend in ((NFT, "nftables"), (BRIDGE, "iptables"), (NFT, "nftables")):
        driver.topology.write_text(text)
        driver.up()
        tables = sb.run(["nft", "list", "tables"]).stdout
        tagged = [line for line in sb.run(["iptables-save"]).stdout.splitlines() if "nsgen:bridge-lab" in line]
        if backend == "nftables":
            assert "table inet nsgen-bridge-lab" in tables
            assert tagged and all("--mark" in line for line in tagged), tagged  # only the FORWARD pass rule (policy DROP)
        else:
            assert "nsgen-bridge-lab" not in tables
            assert any("NSGEN-bridge-lab" in line for line in tagged)
        assert wait_for(sb, ["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/echo"]).returncode == 0
        assert sb.in_ns("web", ["ping", "-c1", "-W2", "203.0.113.10"], check=False).returncode == 0
        assert sb.run([*NSGEN, "check", "-f", str(driver.topology)], check=False).returncode == 0
    driver.down()
    assert sb.snapshot() == before
