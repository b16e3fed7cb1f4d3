"""`nsgen render --systemd`: only with host.persist; a unit systemd-analyze accepts, whose Exec lines
read back to exactly nsgen's argv, and whose start and stop bring the topology up and down."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from nsgen.systemd import exec_line, render_unit
from tests.drive import NSGEN, example_text
from tests.helpers import EXAMPLES, ROOT, plan_of

PERSIST = (EXAMPLES / "tutorial.yaml").read_text().replace("persist: false", "persist: true")


def unit_words(line: str) -> list[str]:
    """An Exec= value split as systemd does (systemd.syntax(7)): double quotes with C escapes,
    then $$ -> $ and %% -> % (the only specifier and variable forms nsgen writes)."""
    words, word, quoted, i, started = [], "", False, 0, False
    while i < len(line):
        ch = line[i]
        if quoted:
            if ch == "\\":
                word += line[i + 1]
                i += 1
            elif ch == '"':
                quoted = False
            else:
                word += ch
        elif ch == '"':
            quoted, started = True, True
        elif ch.isspace():
            if started:
                words.append(word)
            word, started = "", False
        else:
            word += ch
            started = True
        i += 1
    assert not quoted, f"unbalanced quotes in {line!r}"
    if started:
        words.append(word)
    return [w.replace("$$", "$").replace("%%", "%") for w in words]


def parse(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # keys keep their case
    unit.read_string(text)
    return unit


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.fail("systemd-analyze is not installed (Debian: apt install systemd; .ci/run installs it)")
    return found


def test_without_persist_the_error_names_host_persist(cli):
    result = cli("render", "--systemd")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "error: topology tutorial does not set host.persist: true; a unit that brings it up at every boot "
        "is what host.persist asks for: set it in the topology file\n"
    )


def test_systemd_takes_no_teardown(cli):
    result = cli("render", "--systemd", "--teardown")
    assert result.exit_code == 1
    assert result.stderr == "error: --systemd writes a unit that both sets up and tears down; it takes no --teardown or --batch\n"


def test_the_unit(cli, tmp_path):
    (tmp_path / "lab.yaml").write_text(PERSIST)
    result = cli("render", "--systemd", "-f", "lab.yaml", "-o", "nsgen-tutorial.service")
    assert result.exit_code == 0 and result.stdout == ""
    path = tmp_path / "nsgen-tutorial.service"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    text = path.read_text()
    assert text.startswith("# nsgen ")
    unit = parse(text)
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert unit["Unit"]["Wants"] == "network-online.target"
    # after the network, and after the host's firewalls that start at boot (a flush, a FORWARD DROP)
    assert unit["Unit"]["After"] == ("network-online.target nftables.service netfilter-persistent.service ufw.service "
                                     "firewalld.service docker.service")
    assert unit["Service"]["Type"] == "oneshot" and unit["Service"]["RemainAfterExit"] == "yes"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    start, stop = unit_words(unit["Service"]["ExecStart"]), unit_words(unit["Service"]["ExecStop"])
    assert start[0].startswith("/") and start[-4:] == ["run", "-q", "-f", str(tmp_path / "lab.yaml")]
    assert stop[-5:] == ["run", "--teardown", "-q", "-f", str(tmp_path / "lab.yaml")]
    assert (ROOT / "templates" / "nsgen.service.j2").is_file()  # rendered from a template, like the scripts


HOSTILE_PATHS = ['/srv/my lab/t.yaml', '/srv/$HOME/${X}/t.yaml', '/srv/100%d/%n.yaml', '/srv/"q"/\\x/t;.yaml', "/srv/it's/t.yaml"]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_exec_lines_read_back_exactly_and_systemd_accepts_them(tmp_path, path):
    argv = ["/usr/bin/nsgen", "run", "-q", "-f", path]
    assert unit_words(exec_line(argv)) == argv
    text = render_unit(plan_of(PERSIST), Path(path), ("/bin/true",))
    unit = tmp_path / "nsgen-tutorial.service"
    unit.write_text(text)
    done = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "nsgen-tutorial" not in done.stderr, done.stderr
    assert unit_words(parse(text)["Service"]["ExecStart"]) == ["/bin/true", "run", "-q", "-f", path]


def test_systemd_analyze_accepts_the_unit_nsgen_renders(tmp_path):
    (tmp_path / "lab.yaml").write_text(PERSIST)
    unit = tmp_path / "nsgen-tutorial.service"
    subprocess.run([*NSGEN, "render", "--systemd", "-f", str(tmp_path / "lab.yaml"), "-o", str(unit)], check=True, cwd=tmp_path)
    done = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_units_start_and_stop_bring_the_topology_up_and_down(sandbox, tmp_path):
    """What systemd would run, run in a sandbox: ExecStart, then ExecStop."""
    sb = sandbox
    topology = tmp_path / "lab.yaml"
    topology.write_text(example_text("tutorial.yaml").replace("persist: false", "persist: true"))
    unit = parse(sb.run([*NSGEN, "render", "--systemd", "-f", str(topology)]).stdout)
    before = sb.snapshot()
    sb.run(unit_words(unit["Service"]["ExecStart"]), cwd="/")
    checked = sb.run([*NSGEN, "check", "-f", str(topology)], check=False)
    assert checked.returncode == 0, checked.stdout
    assert "PASS  file       /etc/sysctl.d/60-nsgen-tutorial.conf holds what setup wrote" in checked.stdout
    sb.run(unit_words(unit["Service"]["ExecStop"]), cwd="/")
    assert sb.snapshot() == before


def test_unit_values_cannot_break_a_line():
    from nsgen.errors import NsgenError

    with pytest.raises(NsgenError, match="line break"):
        exec_line(["/usr/bin/nsgen", "run", "-f", "/srv/a\nExecStartPre=/bin/evil"])
    with pytest.raises(NsgenError, match="absolute path"):
        exec_line(["nsgen", "run"])
    assert exec_line(["/usr/bin/nsgen", "run"]) == "/usr/bin/nsgen run"
