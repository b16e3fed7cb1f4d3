"""Native does the plan's file commands as the programs do: each case runs once through the real
program and once natively, in two copies of the same folder, and both must end alike (exit
status and every file's type, mode and content)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from nsgen import native

# (files before: path -> content, or None for a directory), argv with {d} for the folder, stdin
CASES = [
    ({}, "mkdir -p {d}/a/b", None),
    ({"a": None}, "mkdir -p {d}/a", None),
    ({"a": "x"}, "mkdir -p {d}/a", None),
    ({}, "touch {d}/f", None),
    ({"f": "old"}, "touch {d}/f", None),
    ({}, "touch {d}/missing/f", None),
    ({"f": "x"}, "rm -f {d}/f", None),
    ({}, "rm -f {d}/f", None),
    ({"a": None}, "rm -f {d}/a", None),
    ({"a": None, "a/b": None, "a/b/f": "x"}, "rm -rf {d}/a", None),
    ({}, "rm -rf {d}/a", None),
    ({"f": "x"}, "rm -rf {d}/f", None),
    ({"a": None}, "rmdir {d}/a", None),
    ({"a": None, "a/f": "x"}, "rmdir {d}/a", None),
    ({}, "rmdir {d}/a", None),
    ({"a": None, "a/f": "x"}, "rmdir --ignore-fail-on-non-empty {d}/a", None),
    ({"a": None}, "rmdir --ignore-fail-on-non-empty {d}/a", None),
    ({}, "rmdir --ignore-fail-on-non-empty {d}/a", None),
    ({}, "install -m 0644 /dev/stdin {d}/f", "line one\nline two\n"),
    ({"f": "older and longer content"}, "install -m 0644 /dev/stdin {d}/f", "new\n"),
    ({}, "install -m 0600 /dev/stdin {d}/f", ""),
    ({}, "install -m 0644 /dev/stdin {d}/missing/f", "x\n"),
    ({}, "install -D -m 0644 /dev/null {d}/new/f", None),
    ({"f": "kept? no: replaced"}, "install -D -m 0644 /dev/null {d}/f", None),
    ({}, "dd of={d}/f status=none", "line one\n"),
    ({"f": "older and longer content\n"}, "dd of={d}/f status=none", "new\n"),
    ({}, "dd of={d}/missing/f status=none", "x\n"),
    ({"s": "1\n"}, "cp {d}/s {d}/t", None),
    ({"s": "0\n", "t": "1 and more\n"}, "cp {d}/s {d}/t", None),
    ({}, "cp {d}/s {d}/t", None),
    ({"a": "1\n", "b": "1\n"}, "cmp -s {d}/a {d}/b", None),
    ({"a": "1\n", "b": "0\n"}, "cmp -s {d}/a {d}/b", None),
    ({"a": "1\n"}, "cmp -s {d}/a {d}/b", None),
    ({"f": "1\n"}, "grep -qx 1 {d}/f", None),
    ({"f": "10\n"}, "grep -qx 1 {d}/f", None),
    ({"f": "0\n1"}, "grep -qx 1 {d}/f", None),
    ({}, "grep -qx 1 {d}/f", None),
    ({"f": "# Written by nsgen for topology t; x\nnameserver 1.1.1.1\n"}, "grep -qF #_Written_by_nsgen_for_topology_t {d}/f", None),
    ({"f": "nameserver 1.1.1.1\n"}, "grep -qF #_Written_by_nsgen_for_topology_t {d}/f", None),
]


def _make(folder: Path, files: dict) -> None:
    folder.mkdir()
    for name, content in files.items():
        if content is None:
            (folder / name).mkdir()
        else:
            (folder / name).write_text(content)


def _state(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        out[str(path.relative_to(folder))] = (kind, oct(st.st_mode & 0o777), path.read_bytes() if kind == "file" else None)
    return out


@pytest.mark.parametrize("files,line,stdin", CASES, ids=[c[1].replace("{d}/", "") for c in CASES])
def test_native_ends_as_the_program_does(tmp_path, files, line, stdin):
    real, here = tmp_path / "real", tmp_path / "here"
    _make(real, files)
    _make(here, files)
    words = [w.replace("_", " ") if w.startswith("#") else w for w in line.split()]
    done = subprocess.run([w.format(d=real) for w in words], input=stdin, capture_output=True, text=True)
    outcome = native.run(tuple(w.format(d=here) for w in words), stdin)
    assert outcome is not None
    assert outcome.returncode == done.returncode, (outcome, done.stderr)
    assert bool(outcome.stderr) == bool(done.stderr.strip()), (outcome, done.stderr)
    assert _state(here) == _state(real)


@pytest.mark.parametrize("argv", [
    ("mkdir", "-m", "700"), ("mkdir", "/a", "/b"), ("rm", "-r", "/x"), ("cp", "-a", "/x"),
    ("grep", "-qx", "a.*b", "/f"), ("grep", "-qE", "a", "/f"), ("install", "-d", "-m", "0755", "/x"),
    ("touch", "-t", "/x"), ("cmp", "-l", "/a", "/b"), ("ip", "link"), ("dd", "if=/x", "status=none"),
])
def test_other_forms_are_left_to_the_program(argv):
    assert native.run(argv, None) is None


def test_install_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "f"
    link.symlink_to(target)
    assert native.run(("install", "-m", "0644", "/dev/stdin", str(link)), "new\n").returncode == 0
    assert target.read_text() == "keep\n" and not link.is_symlink() and link.read_text() == "new\n"
    assert os.stat(link).st_mode & 0o777 == 0o644


def test_dd_writes_in_place(tmp_path):
    """A hosts file rewritten while the topology is up: the same inode, so a bind mount of it sees the change."""
    path = tmp_path / "hosts"
    path.write_text("a much longer first version\n")
    inode = path.stat().st_ino
    assert native.run(("dd", f"of={path}", "status=none"), "short\n") == native.Outcome(0)
    assert path.read_text() == "short\n" and path.stat().st_ino == inode
