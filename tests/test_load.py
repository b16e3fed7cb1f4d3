"""Load: YAML anchors, aliases and merge keys work as YAML says; documents that would expand far
beyond their text (alias bombs, cycles, deep nesting) are refused with their line and column; JSON
refuses a key given twice, as YAML does."""

from __future__ import annotations

import pytest

from nsgen import load
from nsgen.errors import LoadError
from nsgen.load import load_file, parse_json, parse_text
from nsgen.resolve import resolve
from tests.helpers import fixed_env


def test_anchors_aliases_and_merge_keys_work():
    text = """
name: lab
networks: {front: {subnet: 10.1.0.0/24}}
containers:
  web: &web
    networks: [front]
    dns: &dns [192.0.2.53]
    processes: [nsgen echo-server --port 8000]
  app:
    <<: *web
    dns: [192.0.2.54]
  db: {networks: [front], dns: *dns}
"""
    data = parse_text(text)
    assert data["containers"]["app"] == {"networks": ["front"], "dns": ["192.0.2.54"], "processes": ["nsgen echo-server --port 8000"]}
    assert data["containers"]["db"]["dns"] == ["192.0.2.53"]
    t = resolve(data, fixed_env())
    assert [str(a.address) for c in t.containers.values() for a in c.attachments] == ["10.1.0.2", "10.1.0.3", "10.1.0.4"]


def test_a_key_merged_in_may_be_given_again_but_not_twice():
    assert parse_text("d: &d {a: 1, b: 2}\nx:\n  <<: *d\n  b: 3\n")["x"] == {"a": 1, "b": 3}
    with pytest.raises(LoadError) as info:
        parse_text("d: &d {a: 1}\nx:\n  <<: *d\n  b: 3\n  b: 4\n", "t.yaml")
    assert str(info.value) == "t.yaml: line 5, column 3: key 'b' is given twice in one mapping"


def big_topology(n: int) -> str:
    """n containers on bridges of 1000, each with an address, a host interface, a published port, and
    nameservers and processes shared through aliases."""
    lines = ["name: big", "networks:"]
    lines += [f"  net{b}: {{subnet: 10.{100 + b}.0.0/16, bridge: br-big{b}}}" for b in range((n + 999) // 1000)]
    lines.append("containers:")
    for i in range(n):
        b, offset = i // 1000, i % 1000 + 2
        lines += [f"  c{i}:", f"    networks: {{net{b}: {{address: 10.{100 + b}.{offset // 256}.{offset % 256}, host_interface: h{i}}}}}",
                  f'    ports: ["{10000 + i}:8000"]']
        if i == 0:
            lines += ["    dns: &dns [192.0.2.53, 192.0.2.54]", "    processes: &run",
                      "      - nsgen echo-server --port 8000", "      - [python3, -m, http.server, '9000']"]
        else:
            lines += ["    dns: *dns", "    processes: *run"]
    return "\n".join(lines) + "\n"


def test_a_topology_of_2000_containers_stays_far_below_the_limits():
    _yaml, loader_class = load._yaml_loader()
    loader = loader_class(big_topology(2000))
    try:
        node = loader.get_single_node()
        values, chars, levels = load._measure(node, {})
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    assert (values, levels) == (50019, 5)  # 25 values a container (aliases counted as copies), 19 around them
    assert values * 10 < load.MAX_VALUES and chars * 10 < load.MAX_CHARS and levels * 10 < load.MAX_DEPTH
    t = resolve(data, fixed_env())
    assert len(t.containers) == 2000 and t.containers["c1999"].dns == ("192.0.2.53", "192.0.2.54")


def refusal(text: str, parse=parse_text) -> str:
    with pytest.raises(LoadError) as info:
        parse(text, "t")
    return str(info.value)


def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit():
    lines = ["a: &a [" + ", ".join(["x"] * 99) + "]"]  # 100 values
    lines += [f"b{i}: *a" for i in range(10001)]  # the 10001st alias of 100 values crosses 1000000
    assert refusal("\n".join(lines)) == "t: line 10002, column 9: the document expands to more than 1000000 values through YAML aliases; nsgen refuses it"


def test_a_long_string_repeated_through_aliases_is_refused():
    text = "a: &a " + "x" * 100000 + "\nb: [" + ", ".join(["*a"] * 201) + "]\n"
    assert refusal(text) == "t: line 2, column 805: the document expands to more than 20000000 characters through YAML aliases; nsgen refuses it"


def test_nesting_is_counted_through_aliases():
    deep = "[" * 60 + "]" * 60
    # b: the root mapping, 39 lists, then a's 60: 100 levels, the most allowed; c: 1 + 2 + 99 levels of b
    text = f"a: &a {deep}\nb: &b [{'[' * 38}*a{']' * 38}]\nc: [[*b]]\n"
    assert refusal(text) == f"t: line 3, column 6: {load.TOO_DEEP}"


def test_a_cycle_is_refused():
    assert refusal("a: &a {b: *a}\n") == "t: line 1, column 11: the alias *a stands for a value that holds it; nsgen refuses it"


def test_a_number_python_cannot_convert_is_reported_where_it_is():
    assert refusal("name: " + "1" * 5000 + "\n") == (
        "t: line 1, column 7: cannot read '1111111111111111111111111111111111111'...: "
        "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"
    )
    assert refusal('{"name": ' + "1" * 5000 + "}", parse_json) == (
        "t: cannot read a number: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"
    )


def test_json_reads_as_yaml_reads_it():
    text = '{"name": "j", "networks": {"n": {"subnet": "10.1.0.0/24"}}, "containers": {"c": {"networks": ["n"], "dns": null}}}'
    assert parse_json(text) == parse_text(text)
    assert parse_json("null") is None
    assert parse_json("[" * 100 + "]" * 100) == parse_text("[" * 100 + "]" * 100)


def test_json_key_given_twice_is_found_past_brackets_and_quotes_in_strings():
    text = '{"a": "{\\"a\\": [", "b": {"a": 1, "c": "]}"},\n  "a": 2}'
    assert refusal(text, parse_json) == "t: line 2, column 3: key 'a' is given twice in one object"


def test_json_file_with_a_key_given_twice(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"name": "j",\n "containers": {},\n "name": "k"}\n')
    with pytest.raises(LoadError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: line 3, column 2: key 'name' is given twice in one object"


# -- YAML syntax errors caused by a tab or the indentation say so, whichever parser PyYAML uses ---


@pytest.fixture(params=["libyaml", "pyyaml"])
def parser(request, monkeypatch):
    """parse_text with libyaml's parser (PyYAML's CSafeLoader, when it has one) or PyYAML's own."""
    import yaml

    if request.param == "pyyaml":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML is built without libyaml")
    monkeypatch.setattr(load, "_LOADERS", {})  # made again with that parser; restored after the test
    return request.param


DEEPER = "this line is deeper than 'driver' on line 4, which already has a value"
HINTED = [
    # (text, where the error is, how the message ends)
    ("name: lab\nnetworks:\n  front:\n\tsubnet: 10.1.0.0/24\n", "line 4, column 1", " (YAML indents with spaces, never tabs)"),
    ("name: lab\nnetworks:\n  front:\n  \tsubnet: 10.1.0.0/24\n", "line 4, column 3", " (YAML indents with spaces, never tabs)"),
    ("name: lab\nnetworks:\n  front:\n    driver: veth\n\tsubnet: 10.1.0.0/24\n", "line 5, column 1", " (YAML indents with spaces, never tabs)"),
    ("name: lab\nnetworks:\n  front:\n    driver: veth\n      subnet: 10.1.0.0/24\n", "line 5, column 13", f" (check the indentation: {DEEPER})"),
    ("name: lab\nnetworks:\n  front:\n    driver: veth   # a comment\n\n      # another\n      subnet: 10.1.0.0/24\n",
     "line 7, column 7", f" (check the indentation: {DEEPER})"),
    ("name: lab\nnetworks:\n  front:\n    driver: veth\n   subnet: 10.1.0.0/24\n",
     "line 5, column 4", " (check the indentation: this line is shallower than 'driver' on line 4 but deeper than 'front' on line 3)"),
    ("name: lab\nnetworks:\n  front:\n    driver: veth\n subnet: 10.1.0.0/24\n",
     "line 5, column 2", " (check the indentation: this line is shallower than 'front' on line 3 but deeper than 'networks' on line 2)"),
    ("containers:\n  web:\n    dns: [1.1.1.1]\n      processes: []\n",
     "line 4, column 7", " (check the indentation: this line is deeper than 'dns' on line 3, which already has a value)"),
    ("containers:\n  web:\n    processes:\n      - sleep 1\n        dns: []\n",
     "line 5, column 12", " (check the indentation: this line is deeper than the list item on line 4, which already has a value)"),
    ("containers:\n  web:\n    processes:\n      - sleep 1\n     - sleep 2\n",
     "line 5, column 6", " (check the indentation: this line is shallower than the list item on line 4 but deeper than 'processes' on line 3)"),
    ("a:\n  - name: x\n    value: 1\n   other: 2\n",
     "line 4, column 4", " (check the indentation: this line is shallower than 'value' on line 3 but deeper than the list item on line 2)"),
    ("containers:\n  web:\n    processes:\n      - sleep 1\n      dns: [1.1.1.1]\n",
     "line 5, column 7", " (check the indentation: this line lines up with the list item on line 4, where only another '- ' item may stand)"),
    ("  name: lab\nnetworks: {}\n",
     "line 2, column 1", " (check the indentation: this line is shallower than the document's top level ('name' on line 1))"),
    ('"c:1":\n  networks: [a]   # x\n    dns: []\n',
     "line 3, column 5", " (check the indentation: this line is deeper than 'networks' on line 2, which already has a value)"),
]


@pytest.mark.parametrize("text,where,hint", HINTED, ids=[f"{c[1]}{c[2][:40]}" for c in HINTED])
def test_a_tab_or_a_misplaced_line_gets_a_hint(parser, text, where, hint):
    message = refusal(text)
    assert message.startswith(f"t: {where}: YAML syntax error: ") and message.endswith(hint), message
    assert "\n" not in message


UNHINTED = [
    # (text, where the error is): nothing for sure can be said of the indentation
    ("a:\n  b\n  c: 1\n", "line 3, column 4"),  # a key without its colon: the line is in its place
    ("a: |\n  text\n b: 1\n", "line 3, column 2"),  # the line above is a block scalar's text
    ("a: b: c\n", "line 1, column 5"),  # a colon in a plain value
    ("a: [1,\n  2\n    b: 1\n", None),  # inside a flow, where indentation means nothing
]


@pytest.mark.parametrize("text,where", UNHINTED, ids=[c[0][:20] for c in UNHINTED])
def test_no_hint_where_the_indentation_is_not_known_to_be_the_cause(parser, text, where):
    message = refusal(text)
    assert "indentation" not in message and "tabs" not in message, message
    if where:
        assert message.startswith(f"t: {where}: YAML syntax error: "), message


def test_a_character_that_cannot_start_a_token_is_named(parser):
    assert refusal("name: lab\nnetworks:\n  front: {bridge: @br}\n") == (
        "t: line 3, column 19: YAML syntax error: found character '@' that cannot start any token"
    )


def test_deep_nesting_is_refused_where_it_crosses_the_limit(parser):
    """Recent libyaml refuses deep nesting itself, a thousand levels in; nsgen names the level it
    refuses (the 101st), whichever parser PyYAML uses."""
    for text in ("[" * 100000, "[" * 2000 + "]" * 2000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 1200))):
        with pytest.raises(LoadError) as refused:
            load.parse_text(text, "t")
        assert str(refused.value).endswith(load.TOO_DEEP)
    with pytest.raises(LoadError) as refused:
        load.parse_text("[" * 100000, "t")
    assert str(refused.value) == f"t: line 1, column 101: {load.TOO_DEEP}"
