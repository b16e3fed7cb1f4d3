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
