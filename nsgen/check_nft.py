"""Check for the nftables backend compares the topology's table as `nft -j list table` lists it with
the table the plan loads (nftables.expected); it reads, never changes, and knows no other firewall.

Chains are compared with their hook, type, priority and policy; rules by their comments (each rule
nsgen writes carries one), their number and their order; maps and sets element by element, key,
value and comment, with nft's JSON (concatenations, prefixes, ranges, numbers) read back as the
text the plan writes. Each finding is one line for a person: what is there, or what is missing or
extra, named as the plan names it. A rule's matches are not compared, only its comment and place.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from typing import Any, NamedTuple

Finding = tuple[bool, str]  # (as the plan has it, what: for a person)


class Live(NamedTuple):
    """The table as `nft -j list table` shows it."""

    table: dict[str, Any]
    chains: dict[str, dict[str, Any]]
    rules: dict[str, list[str]]  # a chain's rules, each by its comment (or how to find it without one), in order
    collections: dict[str, dict[str, Any]]


def parse(listing: str) -> Live:
    """nft's JSON listing of one table; ValueError when it is not one."""
    objects = json.loads(listing).get("nftables")
    if not isinstance(objects, list):
        raise ValueError("no nftables list in it")
    live = Live({}, {}, {}, {})
    for item in objects:
        kind, body = next(iter(item.items()))
        if kind == "table":
            live.table.update(body)
        elif kind == "chain":
            live.chains[body["name"]] = body
            live.rules.setdefault(body["name"], [])
        elif kind == "rule":
            shown = body.get("comment") or f"(a rule without a comment, handle {body.get('handle')})"
            live.rules.setdefault(body["chain"], []).append(shown)
        elif kind in ("map", "set"):
            live.collections[body["name"]] = {**body, "kind": kind}
    return live


def canonical(part: str) -> str:
    """One part of an element as the plan writes it: an address or prefix in canonical form (a
    prefix of one address is the address), anything else as it is."""
    try:
        return str(ipaddress.ip_address(part))
    except ValueError:
        pass
    try:
        net = ipaddress.ip_network(part, strict=False)
    except ValueError:
        return part
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _part(value: Any) -> str:
    if isinstance(value, dict) and "prefix" in value:
        return canonical(f"{value['prefix']['addr']}/{value['prefix']['len']}")
    if isinstance(value, dict) and "range" in value:
        low, high = (_part(v) for v in value["range"])
        return low if low == high else f"{low}-{high}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return canonical(str(value))


def _parts(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict) and "concat" in value:
        return tuple(_part(v) for v in value["concat"])
    return (_part(value),)


def element(entry: Any, is_map: bool) -> tuple[tuple[str, ...], tuple[str, ...] | None, str | None]:
    """(key parts, value parts or None, comment) of one element as nft's JSON lists it: a set's
    `{"elem": {"val": KEY, "comment": ...}}` or bare KEY, a map's `[that, VALUE]`."""
    key, value = entry if is_map else (entry, None)
    comment = None
    if isinstance(key, dict) and "elem" in key:
        comment, key = key["elem"].get("comment"), key["elem"]["val"]
    return _parts(key), None if value is None else _parts(value), comment


def _shown(key: tuple[str, ...], value: tuple[str, ...] | None) -> str:
    return " . ".join(key) + ("" if value is None else " : " + " . ".join(value))


def _base(chain: dict[str, Any]) -> str:
    if "hook" not in chain:
        return "a regular chain"
    return f"type {chain.get('type')}, hook {chain.get('hook')}, priority {chain.get('prio')}, policy {chain.get('policy')}"


def _rules(name: str, want: list[str], have: list[str]) -> list[Finding]:
    """A chain's rules by comment: each one the plan has, each extra one, and their order."""
    if want and not have:
        return [(False, f"nftables: chain {name} has 0 rules, the plan has {len(want)} (flushed?)")]
    found: list[Finding] = []
    left = Counter(have)
    for comment in want:
        ok = left[comment] > 0
        left[comment] -= ok
        found.append((True, f"nftables: chain {name}: {comment}") if ok else (False, f'nftables: chain {name} lacks its rule "{comment}"'))
    wanted = Counter(want)
    for comment in have:
        if wanted[comment] > 0:
            wanted[comment] -= 1
        else:
            found.append((False, f'nftables: chain {name} holds a rule the plan does not: "{comment}"'))
    both = Counter(want) & Counter(have)
    mine, theirs = _kept(want, both), _kept(have, both)
    wrong = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), None)
    if wrong is not None:
        found.append((False, f'nftables: chain {name} holds its rules in another order than the plan: "{theirs[wrong]}" '
                             f'where the plan has "{mine[wrong]}" (rule {wrong + 1})'))
    return found


def _kept(comments: list[str], keep: Counter) -> list[str]:
    left, out = Counter(keep), []
    for comment in comments:
        if left[comment] > 0:
            left[comment] -= 1
            out.append(comment)
    return out


def _chains(plan: dict[str, Any], live: Live) -> list[Finding]:
    found: list[Finding] = []
    for chain in plan["chains"]:
        name, want = chain["name"], chain["rules"]
        there = live.chains.get(name)
        if there is None:
            found.append((False, f"nftables: chain {name} is missing (the plan has {len(want)} rule(s) in it)"))
            continue
        what = f"nftables: {'base ' if 'hook' in chain else ''}chain {name} ({_base(chain)})"
        same = all(there.get(k) == chain.get(k) for k in ("type", "hook", "prio", "policy"))
        found.append((same, what if same else f"nftables: chain {name} is {_base(there)}; the plan's is {_base(chain)}"))
        found += _rules(name, want, live.rules.get(name, []))
    names = {chain["name"] for chain in plan["chains"]}
    for name in live.chains:
        if name not in names:
            found.append((False, f"nftables: table inet {plan['table']} holds a chain the plan does not: {name} "
                                 f"({len(live.rules.get(name, []))} rule(s))"))
    return found


def _elements(c: dict[str, Any], there: dict[str, Any]) -> list[Finding]:
    """One map's or set's elements: each one the plan has, each extra one."""
    kind, name, is_map = c["kind"], c["name"], c["kind"] == "map"
    have: dict[tuple[str, ...], tuple[tuple[str, ...] | None, str | None]] = {}
    for entry in there.get("elem", []):
        key, value, comment = element(entry, is_map)
        have[key] = (value, comment)
    if c["elements"] and not have:
        return [(False, f"nftables: {kind} {name} has 0 elements, the plan has {len(c['elements'])} (flushed?)")]
    found: list[Finding] = []
    for e in c["elements"]:
        key = tuple(canonical(p) for p in e["key"])
        value = None if e["value"] is None else tuple(canonical(p) for p in e["value"])
        shown = f"{_shown(key, value)} ({e['comment']})"
        if key not in have:
            found.append((False, f"nftables: {kind} {name} lacks {shown}"))
            continue
        live_value, comment = have.pop(key)
        if live_value != value:
            found.append((False, f"nftables: {kind} {name} maps {_shown(key, None)} to {_shown(live_value or (), None)}, "
                                 f"the plan to {_shown(value or (), None)} ({e['comment']})"))
        elif comment != e["comment"]:
            found.append((False, f'nftables: {kind} {name} holds {_shown(key, value)} with the comment "{comment or ""}", '
                                 f'the plan with "{e["comment"]}"'))
        else:
            found.append((True, f"nftables: {kind} {name} holds {shown}"))
    for key, (value, comment) in have.items():
        found.append((False, f"nftables: {kind} {name} holds {_shown(key, value)}, which the plan does not"
                             + (f" ({comment})" if comment else "")))
    return found


def _collections(plan: dict[str, Any], live: Live) -> list[Finding]:
    found: list[Finding] = []
    for c in plan["collections"]:
        kind, name = c["kind"], c["name"]
        there = live.collections.get(name)
        if there is None or there["kind"] != kind:
            found.append((False, f"nftables: {kind} {name} is missing (the plan has {len(c['elements'])} element(s) in it)"))
            continue
        have, want = _type(there.get("type"), there.get("map"), there.get("flags")), _type(c["type"], c.get("map"), c["flags"])
        if have != want:
            found.append((False, f"nftables: {kind} {name} is of type {have}; the plan's is {want}"))
            continue
        found += _elements(c, there)
    names = {c["name"] for c in plan["collections"]}
    for name, there in live.collections.items():
        if name not in names:
            found.append((False, f"nftables: table inet {plan['table']} holds a {there['kind']} the plan does not: {name} "
                                 f"({len(there.get('elem', []))} element(s))"))
    return found


def _type(key: Any, value: Any, flags: Any) -> str:
    """A map's or set's type as nft writes it (its JSON gives a list of types, or one, or their text)."""
    def joined(t: Any) -> str:
        return " . ".join(map(str, t)) if isinstance(t, list) else str(t)

    flags = [flags] if isinstance(flags, str) else sorted(flags or [])
    return joined(key) + (f" : {joined(value)}" if value else "") + (f", flags {', '.join(flags)}" if flags else "")


def compare(plan_json: str, returncode: int, listing: str, error: str) -> list[Finding]:
    """The table the plan loads (`plan_json`, nftables.expected) against what `nft -j list table`
    answered (its exit status, output and error)."""
    plan = json.loads(plan_json)
    table = f"table inet {plan['table']}"
    if returncode != 0:
        if "No such file or directory" in error:
            return [(False, f"nftables: {table} is missing")]
        return [(False, f"nftables: {table} cannot be listed: {error.strip() or f'nft exited with status {returncode}'}")]
    try:
        live = parse(listing)
    except (ValueError, KeyError, StopIteration, AttributeError) as exc:
        return [(False, f"nftables: nft's listing of {table} cannot be read ({exc})")]
    comment = live.table.get("comment")  # nft 1.0.6 leaves a table's comment out of its JSON
    if comment is not None and comment != plan["comment"]:
        return [(False, f'nftables: {table} carries the comment "{comment}", not {plan["comment"]}: it is not this topology\'s')]
    return [(True, f"nftables: {table} is there"), *_chains(plan, live), *_collections(plan, live)]
