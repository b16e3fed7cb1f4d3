"""Load reads a topology file into plain data (dicts, lists, strings); it knows nothing of networks.

It also refuses documents whose data would be far larger than their text: YAML aliases that
expand to billions of values ("billion laughs"), aliases that make a cycle, and nesting deeper
than any topology needs. Such data would exhaust time and memory in every later stage that
walks, prints or stores it, so it never leaves this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nsgen.errors import LoadError

MAX_DEPTH = 100  # levels of nesting; a topology needs six
# What a document may expand to through YAML aliases, counted as its data would be walked: every
# scalar, list and mapping (keys included), and the characters of every scalar. A topology of
# 2000 containers with every field set holds about 58 000 values and 360 000 characters.
MAX_VALUES = 1_000_000
MAX_CHARS = 20_000_000
MERGE_TAG = "tag:yaml.org,2002:merge"
TOO_DEEP = f"the document nests deeper than {MAX_DEPTH} levels; nsgen refuses it"


_LOADER = None


def _yaml_loader():
    """PyYAML and the project's loader class, made once."""
    global _LOADER
    if _LOADER is None:
        _LOADER = _make_yaml_loader()
    return _LOADER


def _make_yaml_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(_guard(base), base):  # type: ignore[misc, valid-type]
        """Safe loader that refuses a key given twice in one mapping (PyYAML keeps the last), takes
        `<<` merge keys, and refuses what would expand far beyond the text (see `_guard`)."""

    def construct_mapping(loader, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *defaults`: its keys may be given again, and win
                continue
            key = loader.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # a list or a mapping as a key (`? [a, b]`)
                kind = "mapping" if isinstance(key, dict) else type(key).__name__
                raise LoadError(f"{_where(key_node.start_mark)}a key must be a single value, not a {kind}") from None
            if key in seen:
                raise LoadError(f"{_where(key_node.start_mark)}key {key!r} is given twice in one mapping")
            seen[key] = True
        return base.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    for tag in ("int", "timestamp"):  # scalars whose conversion can fail
        name = f"tag:yaml.org,2002:{tag}"
        Loader.add_constructor(name, _reported(base.yaml_constructors[name]))
    return yaml, Loader


def _guard(base):
    """The loader's composing half, for the base loader class (libyaml's or PyYAML's own)."""
    from yaml.composer import Composer
    from yaml.events import AliasEvent, ScalarEvent

    compose = Composer.compose_node

    class Guard(Composer):
        """Composes the node graph in Python, over the base's events, so that nesting is counted
        as it grows (libyaml's own composer recurses in C), and measures what each alias expands
        to, memoised over the graph, so that the whole document is measured in linear time."""

        def __init__(self, stream):
            base.__init__(self, stream)
            self.anchors = {}
            self.depth = 0  # lists and mappings open around the next node
            self.expanded = [0, 0]  # values and characters that aliases add to the document
            self.sizes: dict[int, tuple[int, int, int]] = {}

        def compose_node(self, parent, index):
            event = self.peek_event()
            if event.__class__ is ScalarEvent:
                return compose(self, parent, index)
            if event.__class__ is AliasEvent:
                node = compose(self, parent, index)
                self._expand(node, event)
                return node
            if self.depth >= MAX_DEPTH:
                raise LoadError(f"{_where(event.start_mark)}{TOO_DEEP}")
            self.depth += 1
            node = compose(self, parent, index)
            self.depth -= 1
            return node

        def _expand(self, node, event) -> None:
            where = _where(event.start_mark)
            if node.end_mark is None:  # still being composed: the alias is inside the value it names
                raise LoadError(f"{where}the alias *{event.anchor} stands for a value that holds it; nsgen refuses it")
            values, chars, levels = _measure(node, self.sizes)
            self.expanded[0] += values
            self.expanded[1] += chars
            if self.depth + levels > MAX_DEPTH:
                raise LoadError(f"{where}{TOO_DEEP}")
            if self.expanded[0] > MAX_VALUES:
                raise LoadError(f"{where}the document expands to more than {MAX_VALUES} values through YAML aliases; nsgen refuses it")
            if self.expanded[1] > MAX_CHARS:
                raise LoadError(f"{where}the document expands to more than {MAX_CHARS} characters through YAML aliases; nsgen refuses it")

    return Guard


def _reported(constructor):
    """A scalar constructor whose failure (a date that does not exist, an integer of more digits
    than Python converts) is reported at the scalar's line and column."""

    def construct(loader, node):
        try:
            value = constructor(loader, node)
            str(value)  # an integer given in hexadecimal can be too long to print in decimal
            return value
        except (ValueError, OverflowError) as exc:
            shown = repr(node.value) if len(node.value) <= 40 else repr(node.value[:37]) + "..."
            raise LoadError(f"{_where(node.start_mark)}cannot read {shown}: {str(exc).split(';')[0]}") from None

    return construct


def _measure(node, sizes: dict[int, tuple[int, int, int]]) -> tuple[int, int, int]:
    """What a composed node expands to: (values, characters of its scalars, levels of nesting),
    each alias counted as a copy of what it names; memoised in `sizes` by node identity, and
    walked without recursion. The node and all it holds are complete, so there is no cycle."""
    stack = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        if id(current) in sizes and not children_done:
            continue
        if current.id == "scalar":
            sizes[id(current)] = (1, len(current.value), 0)
            continue
        children = [n for pair in current.value for n in pair] if current.id == "mapping" else current.value
        if not children_done:
            stack.append((current, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        measured = [sizes[id(child)] for child in children]
        sizes[id(current)] = (
            1 + sum(m[0] for m in measured),
            sum(m[1] for m in measured),
            1 + max((m[2] for m in measured), default=0),
        )
    return sizes[id(node)]


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def parse_text(text: str, source: str = "<topology>") -> Any:
    """Parse YAML (or JSON, which is YAML) text; errors name the source, line and column."""
    yaml, loader = _yaml_loader()
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except LoadError as exc:
        raise LoadError(f"{source}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise LoadError(f"{source}: {_where(mark)}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"{source}: YAML error: {exc}") from None
    except RecursionError:  # not expected within the depth limit; never a traceback all the same
        raise LoadError(f"{source}: {TOO_DEEP}") from None


# ----------------------------------------------------------------------------------------------
# JSON: the standard library's parser, with the same refusals as YAML (a key given twice, nesting).


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: the object, or _DuplicateKey for a key given twice (json keeps the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


_DEEP = object()  # what json.loads gave up on: deeper than Python's recursion limit


def parse_json(text: str, source: str = "<topology>") -> Any:
    """Parse JSON text; a key given twice in one object and deep nesting are refused."""
    try:
        data = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as exc:
        raise LoadError(f"{source}: line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}") from None
    except _DuplicateKey as exc:
        key, where = _json_scan(text, duplicate=True) or (exc.key, "")
        raise LoadError(f"{source}: {where}key {key!r} is given twice in one object") from None
    except RecursionError:
        data = _DEEP
    except ValueError as exc:  # an integer of more digits than Python converts
        raise LoadError(f"{source}: cannot read a number: {str(exc).split(';')[0]}") from None
    if data is _DEEP or _too_deep(data):
        where = (_json_scan(text, duplicate=False) or ("", ""))[1]
        raise LoadError(f"{source}: {where}{TOO_DEEP}")
    return data


def _too_deep(data: Any) -> bool:
    """Whether lists and mappings nest more than MAX_DEPTH levels (walked without recursion)."""
    stack = [(data, 1)] if isinstance(data, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


# A JSON string (followed by ':' when it is a key), or a bracket.
_JSON_TOKEN = r'"(?:[^"\\]|\\.)*"\s*(:?)|[{}\[\]]'


def _json_scan(text: str, *, duplicate: bool) -> tuple[str, str] | None:
    """(key, "line L, column C: ") of the first key given twice in one object (duplicate=True),
    or ("", where) of the first bracket that nests past MAX_DEPTH. Only run to report an error."""
    import re  # compiled only to report an error

    stack: list[set[str] | None] = []
    for match in re.finditer(_JSON_TOKEN, text):
        token = match.group()
        if token in ("{", "["):
            stack.append(set() if token == "{" else None)
            if not duplicate and len(stack) > MAX_DEPTH:
                return "", _position(text, match.start())
        elif token in ("}", "]"):
            if stack:
                stack.pop()
        elif duplicate and match.group(1) and stack and stack[-1] is not None:
            key = json.loads(token[: token.rindex('"') + 1])
            if key in stack[-1]:
                return key, _position(text, match.start())
            stack[-1].add(key)
    return None


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}: "


# ----------------------------------------------------------------------------------------------


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
        return parse_json(text, str(path))
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
