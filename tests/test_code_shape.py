"""The code's shape: no function or method in nsgen/ is longer than MAX_LINES lines (from its
`def` line to its last line), so that each one can be read, and tested, as one piece."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

MAX_LINES = 60

# Functions still longer than MAX_LINES, as "path:qualified.name", in files whose restructuring is
# under way elsewhere. This set must shrink to empty: split a function when you next touch its
# file and remove it here (the test fails on an entry that is no longer long, or no longer there).
ALLOWED_LONG: set[str] = {
}


def function_lengths(root: Path) -> dict[str, int]:
    """The length in lines of every function in root's nsgen/, keyed "path:Class.function" (a nested
    function as "outer.inner")."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, path: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                assert child.end_lineno is not None
                lengths[f"{path}:{prefix}{child.name}"] = child.end_lineno - child.lineno + 1
                visit(child, path, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, path, f"{prefix}{child.name}.")
            else:
                visit(child, path, prefix)

    for file in sorted((root / "nsgen").rglob("*.py")):
        path = file.relative_to(root).as_posix()
        visit(ast.parse(file.read_text(), filename=path), path, "")
    return lengths


def test_the_length_counts_from_the_def_line_to_the_last_line(tmp_path):
    (tmp_path / "nsgen").mkdir()
    (tmp_path / "nsgen" / "m.py").write_text(
        "@decorated\n"
        "def f(\n"
        "    x,\n"
        "):\n"
        "    def inner():\n"
        "        return 1\n"
        "    return x\n"
        "\n"
        "class C:\n"
        "    async def m(self):\n"
        "        pass\n"
    )
    assert function_lengths(tmp_path) == {"nsgen/m.py:f": 6, "nsgen/m.py:f.inner": 2, "nsgen/m.py:C.m": 2}


def test_no_function_is_longer_than_the_limit():
    lengths = function_lengths(ROOT)
    too_long = sorted(f"{name} ({n} lines)" for name, n in lengths.items() if n > MAX_LINES and name not in ALLOWED_LONG)
    assert too_long == [], f"functions over {MAX_LINES} lines: split them"


def test_the_allowed_long_functions_are_all_still_long():
    lengths = function_lengths(ROOT)
    stale = sorted(name for name in ALLOWED_LONG if lengths.get(name, 0) <= MAX_LINES)
    assert stale == [], "no longer over the limit (or gone): remove them from ALLOWED_LONG"
