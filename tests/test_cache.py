"""The cache of parsed topology files: used only when it is exactly right and safely ours."""

from __future__ import annotations

import os

import pytest

from nsgen import cache, load

TEXT = "name: t\nnetworks: {n: {subnet: 10.1.0.0/24}}\ncontainers: {c: {networks: [n]}}\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir(mode=0o700)
    return tmp_path


def _no_parser(monkeypatch):
    def refuse(*_args, **_kw):
        raise AssertionError("parsed again")

    monkeypatch.setattr(load, "parse_text", refuse)


def test_a_file_read_before_is_not_parsed_again(home, monkeypatch):
    topo = home / "t.yaml"
    topo.write_text(TEXT)
    first = load.load_file(topo)
    _no_parser(monkeypatch)
    assert load.load_file(topo) == first


def test_a_changed_file_is_parsed_again(home, monkeypatch):
    topo = home / "t.yaml"
    topo.write_text(TEXT)
    load.load_file(topo)
    topo.write_text(TEXT.replace("10.1.0.0", "10.2.0.0"))
    assert load.load_file(topo)["networks"]["n"]["subnet"] == "10.2.0.0/24"


def test_errors_are_never_kept(home):
    topo = home / "t.yaml"
    topo.write_text("name: t\nname: u\n")
    for _ in range(2):
        with pytest.raises(load.LoadError, match="given twice"):
            load.load_file(topo)


def test_data_json_would_change_is_not_kept(home, monkeypatch):
    topo = home / "t.yaml"
    topo.write_text("name: t\n1: one\nwhen: 2001-12-14\n")
    data = load.load_file(topo)
    _no_parser(monkeypatch)
    with pytest.raises(AssertionError, match="parsed again"):
        load.load_file(topo)
    assert 1 in data


@pytest.mark.parametrize("spoil", ["folder writable by others", "entry owned by someone else", "entry is a symlink"])
def test_a_cache_that_is_not_safely_ours_is_not_used(home, monkeypatch, spoil):
    topo = home / "t.yaml"
    topo.write_text(TEXT)
    load.load_file(topo)
    folder = home / "cache" / "nsgen" / "topologies"
    (entry,) = folder.iterdir()
    if spoil == "folder writable by others":
        folder.chmod(0o777)
        assert cache.folder("topologies") is None
    elif spoil == "entry owned by someone else":
        os.chown(entry, 65534, 65534)
    else:
        moved = home / "elsewhere.json"
        entry.rename(moved)
        entry.symlink_to(moved)
    _no_parser(monkeypatch)
    with pytest.raises(AssertionError, match="parsed again"):
        load.load_file(topo)


def test_no_cache_under_another_users_home(home, monkeypatch):
    os.chown(home / "cache", 65534, 65534)
    assert cache.folder("topologies") is None
