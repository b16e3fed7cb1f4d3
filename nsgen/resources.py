"""Resources finds the files nsgen ships (templates, examples), in an installed wheel or a checkout."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def shipped(folder: str) -> Path:
    """`templates` or `examples`: inside the package when installed, beside it in a checkout."""
    for candidate in (HERE / folder, HERE.parent / folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"nsgen's {folder} folder is missing from this installation")


def default_topology_path() -> Path:
    """The embedded default: the tutorial's network."""
    return shipped("examples") / "tutorial.yaml"
