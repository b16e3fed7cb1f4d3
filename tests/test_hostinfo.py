"""Hostinfo: what a namespace sees of the host's resolv.conf (systemd-resolved's upstream servers
behind a loopback one, never a server only the host can reach), as resolve reads it through an
Environment that points at files written by the test."""

from __future__ import annotations

from nsgen.hostinfo import Environment
from nsgen.load import parse_text
from nsgen.resolve import resolve
from tests.helpers import EXAMPLES, fixed_env

TUTORIAL = (EXAMPLES / "tutorial.yaml").read_text()


def test_loopback_only_host_dns_uses_systemd_upstream(tmp_path):
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\noptions edns0\n")
    (tmp_path / "upstream.conf").write_text("nameserver 192.0.2.53\nnameserver 127.0.0.1\n")
    env = Environment(resolv_conf=tmp_path / "resolv.conf", systemd_resolv_conf=tmp_path / "upstream.conf", which=lambda n: None, routes=list)
    t = resolve(parse_text(TUTORIAL.replace("    dns: [1.1.1.1]", "")), env)
    assert t.containers["container-1"].dns == ("192.0.2.53",)
    assert t.warnings == ()


def test_loopback_only_host_dns_without_upstream_warns(tmp_path):
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    env = Environment(resolv_conf=tmp_path / "resolv.conf", systemd_resolv_conf=tmp_path / "missing", which=lambda n: None, routes=list)
    t = resolve(parse_text(TUTORIAL.replace("    dns: [1.1.1.1]", "")), env)
    assert t.containers["container-1"].dns == ()
    assert len(t.warnings) == 1 and "127.0.0.53" in t.warnings[0] and "set 'dns'" in t.warnings[0]


def test_host_with_real_nameserver_needs_no_resolv_conf(tmp_path):
    (tmp_path / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    t = resolve(parse_text(TUTORIAL.replace("    dns: [1.1.1.1]", "")), fixed_env(tmp_path))
    assert t.containers["container-1"].dns == () and t.warnings == ()


def test_host_nameservers_with_odd_scopes_or_only_on_the_host_never_pass(tmp_path):
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\nnameserver fe80::1%$(reboot)\n")
    (tmp_path / "upstream.conf").write_text(
        "nameserver fe80::1%wlan0\nnameserver fe80::2%a;b\nnameserver 2001:DB8::53%eth0\nnameserver 169.254.169.253\n"
    )
    env = Environment(resolv_conf=tmp_path / "resolv.conf", systemd_resolv_conf=tmp_path / "upstream.conf", which=lambda n: None, routes=list)
    t = resolve(parse_text(TUTORIAL.replace("    dns: [1.1.1.1]", "")), env)
    # fe80::1%wlan0 names an interface of the host, which the namespace does not have
    assert t.containers["container-1"].dns == ("2001:db8::53%eth0", "169.254.169.253")


def test_an_unreadable_host_resolv_conf_is_no_nameserver(tmp_path):
    (tmp_path / "resolv.conf").write_bytes(b"nameserver 127.0.0.53\n\xff\n")
    t = resolve(parse_text(TUTORIAL.replace("    dns: [1.1.1.1]", "")), fixed_env(tmp_path))
    assert t.containers["container-1"].dns == () and t.warnings == ()


def test_closed_to_names_what_keeps_a_user_from_running_a_program(tmp_path):
    import os
    import shutil
    import tempfile

    from nsgen.hostinfo import closed_to

    assert closed_to("/bin/sh", 0, 0) is None  # root passes everything
    assert closed_to(shutil.which("sleep"), 65534, 65534) is None
    open_dir = tempfile.mkdtemp(dir="/tmp")
    try:
        os.chmod(open_dir, 0o755)
        closed = os.path.join(open_dir, "closed")
        os.mkdir(closed, 0o700)
        tool = os.path.join(closed, "tool")
        shutil.copy(shutil.which("true"), tool)
        assert closed_to(tool, 65534, 65534) == f"the directory {closed} is closed to it"
        script = os.path.join(open_dir, "script")
        with open(script, "w") as f:
            f.write(f"#!{tool} -x\n")
        os.chmod(script, 0o755)
        assert closed_to(script, 65534, 65534) == f"its interpreter {tool}: the directory {closed} is closed to it"
        os.chmod(closed, 0o755)
        assert closed_to(script, 65534, 65534) is None
        os.chmod(script, 0o711)  # runnable, but the interpreter could not read it
        assert closed_to(script, 65534, 65534) == f"{script} is not readable and executable by it"
    finally:
        shutil.rmtree(open_dir)


def test_a_program_its_user_cannot_reach_is_one_line_of_validate(cli, tmp_path):
    import shutil

    tool = tmp_path / "private" / "tool"  # under pytest's own folder, which is root's alone
    tool.parent.mkdir()
    shutil.copy(shutil.which("true"), tool)
    tool.parent.chmod(0o700)
    (tmp_path / "t.yaml").write_text(f"""name: t
networks:
  n: {{subnet: 10.77.0.0/24}}
containers:
  c:
    networks: [n]
    processes:
      - {{command: [{tool}], user: nobody}}
      - {{command: [sleep, "1"], user: nobody}}
""")
    result = cli("validate", "-f", "t.yaml")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()  # the first closed folder on the way: pytest's own may be one already
    assert line.startswith(f"error: t.yaml: containers.c.processes[0].user: user 'nobody' cannot run {tool}: the directory /")
    assert line.endswith(" is closed to it")
