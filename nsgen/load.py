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


_LOADERS: dict[bool, Any] = {}


def _yaml_loader(fast: bool = True):
    """PyYAML and the project's loader class, made once: on libyaml's parser when PyYAML has it
    (fast), else on PyYAML's own."""
    if fast not in _LOADERS:
        _LOADERS[fast] = _make_yaml_loader(fast)
    return _LOADERS[fast]


def _make_yaml_loader(fast: bool):
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader

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
            event = self.peek_event()  # type: ignore[attr-defined]  # the Parser half of the loader
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


def parse_text(text: str, source: str = "<topology>", fast: bool = True) -> Any:
    """Parse YAML (or JSON, which is YAML) text; errors name the source, line and column."""
    yaml, loader = _yaml_loader(fast)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except LoadError as exc:
        raise LoadError(f"{source}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        if fast and "nesting depth" in str(exc.problem):
            # Recent libyaml refuses deep nesting itself while it reads ahead, far beyond nsgen's
            # limit; PyYAML's own parser finds where the document crosses it.
            return parse_text(text, source, fast=False)
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is not None:
            problem = _explained(problem, text, mark.line, mark.column)
        raise LoadError(f"{source}: {_where(mark)}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"{source}: YAML error: {exc}") from None
    except RecursionError:  # not expected within the depth limit; never a traceback all the same
        raise LoadError(f"{source}: {TOO_DEEP}") from None


# ----------------------------------------------------------------------------------------------
# Hints for YAML syntax errors caused by indentation: the parsers name the token they did not
# expect, not the line that is out of place. Only run to report an error.

# What libyaml, then PyYAML, say when a line stands where no block structure allows it.
_STRUCTURE_ERRORS = (
    "mapping values are not allowed",
    "did not find expected key",
    "did not find expected '-' indicator",
    "did not find expected <document start>",
    "expected <block end>, but found",
    "expected '<document start>', but found",
)


def _explained(problem: str, text: str, line_no: int, column: int) -> str:
    """The parser's problem, with the character it could not read (libyaml leaves it out), and a
    hint when the cause is a tab or the indentation of the line."""
    import re  # compiled only to report an error

    lines = re.split("\r\n|[\r\n\x85\u2028\u2029]", text)  # YAML's line breaks
    if line_no >= len(lines):
        return problem
    line = lines[line_no]
    char = line[column] if column < len(line) else ""
    if problem == "found character that cannot start any token" and char:
        problem = f"found character {char!r} that cannot start any token"  # as PyYAML says it
    indentation = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indentation or char == "\t" or "tab character" in problem:
        return f"{problem} (YAML indents with spaces, never tabs)"
    if any(words in problem for words in _STRUCTURE_ERRORS):
        hint = _indentation_hint(lines, line_no)
        if hint:
            return f"{problem} (check the indentation: this line {hint})"
    return problem


class _Opening:
    """A column where a block line opens something: a key, or a list item. (A plain class: a
    NamedTuple would cost more to define, at every start, than this code costs to run.)"""

    __slots__ = ("column", "has_value", "is_key", "label")

    def __init__(self, column: int, label: str, is_key: bool, has_value: bool):
        self.column = column
        self.label = label  # "'driver' on line 4", "the list item on line 7"
        self.is_key = is_key
        self.has_value = has_value  # its value is on the line itself: nothing deeper may follow


def _indentation_hint(lines: list[str], line_no: int) -> str:
    """What is wrong with the indentation of the line at line_no, judged from the block lines that
    enclose it ("is deeper than 'driver' on line 4, which already has a value"); "" when it is
    aligned with a key, or when a line above is not a plain block line (a flow or a scalar over
    several lines), whose indentation tells nothing for sure."""
    line = lines[line_no]
    indent = len(line) - len(line.lstrip(" "))
    if not line.strip() or line.lstrip().startswith("#"):
        return ""
    openings: list[_Opening] = []
    for number in range(line_no - 1, -1, -1):
        text = lines[number]
        column = len(text) - len(text.lstrip(" "))
        if not text.strip() or text.lstrip().startswith("#") or (openings and column >= openings[0].column):
            continue  # blank, a comment, or inside an entry above: it encloses nothing of this line
        found = _openings(text, number + 1, column)
        if not found:
            return ""
        if not openings and indent > found[-1].column:  # deeper than the line just above
            last = found[-1]
            return f"is deeper than {last.label}, which already has a value" if last.has_value else ""
        openings = found + openings
        if column == 0:
            break
    if not openings or any(o.is_key and o.column == indent for o in openings):
        return ""
    item = next((o for o in openings if o.column == indent), None)
    if item is not None:
        return "" if line.lstrip(" ").startswith("- ") else f"lines up with {item.label}, where only another '- ' item may stand"
    # The nearest openings on either side (the openings run outermost first, nearest last).
    deeper = [o for o in openings if o.column > indent]
    above = [o for o in deeper if o.column == min(d.column for d in deeper)][-1]
    shallower = [o for o in openings if o.column < indent]
    if not shallower:  # every line above is indented more: the document's top level is
        return f"is shallower than the document's top level ({above.label})"
    below = [o for o in shallower if o.column == max(s.column for s in shallower)][-1]
    return f"is shallower than {above.label} but deeper than {below.label}"


def _openings(text: str, line: int, column: int) -> list[_Opening]:
    """The openings of a block line (`key: value`, `key:`, `- item`, `- key: value`), outermost
    first; [] when it is not one (a flow or scalar continued, a document marker, a complex key)."""
    found = []
    position = column
    while text.startswith("-", position) and text[position + 1 : position + 2] in ("", " "):
        found.append(_Opening(position, f"the list item on line {line}", False, False))
        position += 1 + len(text[position + 1 :]) - len(text[position + 1 :].lstrip(" "))
    rest = text[position:].rstrip()
    key, value = _key_value(rest)
    if key is not None:
        found.append(_Opening(position, f"{key!r} on line {line}", True, _complete(value)))
    elif found:
        found[-1].has_value = _complete(rest)
    return found


def _key_value(rest: str) -> tuple[str | None, str]:
    """(key, value) of `key: value` or `key:` (a plain or quoted key), else (None, "")."""
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        after = rest[end + 1 :].lstrip(" ") if end > 0 else ""
        if after[:1] != ":" or after[1:2] not in ("", " "):
            return None, ""
        return rest[1:end], after[1:].strip()
    if not rest or rest[0] in "[]{}#&*!|>%@`?:,-":
        return None, ""
    colon = rest.find(": ")
    colon = colon if colon >= 0 else (len(rest) - 1 if rest.endswith(":") else -1)
    if colon < 0 or " #" in rest[:colon]:
        return None, ""
    return rest[:colon].rstrip(), rest[colon + 1 :].strip()


def _complete(value: str) -> bool:
    """Whether a value written on a key's (or a list item's) line is all of it: not empty, not a
    comment, a block scalar's `|` or `>`, an anchor or tag alone, or a flow or quote left open."""
    if value.startswith(("&", "!")):
        value = value.split(" ", 1)[1].strip() if " " in value else ""
    if not value or value[0] in "#|>":
        return False
    if value[0] in "[{":
        return value.count("[") + value.count("{") == value.count("]") + value.count("}")
    if value[0] in "'\"":
        return len(value) > 1 and value.split(" #", 1)[0].rstrip().endswith(value[0])
    return True


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
