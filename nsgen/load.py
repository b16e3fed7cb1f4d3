"""Load reads a topology file into plain data (dicts, lists, strings); it knows nothing of networks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nsgen.errors import LoadError


def _yaml_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        """Safe loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(loader, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise LoadError(
                    f"line {mark.line + 1}, column {mark.column + 1}: key {key!r} is given twice in one mapping"
                )
            seen[key] = True
        return base.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml, Loader


def parse_text(text: str, source: str = "<topology>") -> Any:
    """Parse YAML (or JSON, which is YAML) text; errors name the source, line and column."""
    yaml, loader = _yaml_loader()
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except LoadError as exc:
        raise LoadError(f"{source}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise LoadError(f"{source}: {where}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"{source}: YAML error: {exc}") from None


def load_file(path: str | Path) -> Any:
    """Read a .yaml, .yml or .json file into plain data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory, not a topology file") from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(f"{path}: line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}") from None
    from nsgen import cache

    hit, data = cache.parsed(str(path), text, _parser_version())
    if hit:
        return data
    data = parse_text(text, str(path))
    cache.keep_parsed(str(path), text, _parser_version(), data)
    return data


def _parser_version() -> str:
    """What a cached parse must have been made by: this nsgen, this very loader."""
    from nsgen import __version__

    try:
        st = os.stat(__file__)
    except OSError:
        return __version__
    return f"{__version__}:{st.st_size}:{st.st_mtime_ns}"
