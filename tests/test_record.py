"""The record a setup writes holds everything its topology was resolved to: a teardown, a teardown
script rendered later and a converging run compile their plan from it, so a field left out would
be a part of the network that teardown forgets."""

from __future__ import annotations

import json

import pytest

from nsgen import record
from tests.helpers import EXAMPLES, topology

EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_comes_back_from_its_record_whole(name):
    t = topology((EXAMPLES / name).read_text())
    back = record.from_text(record.text(t))
    assert back == t._replace(warnings=())
    assert record.digest(back) == record.digest(t)


def test_a_field_of_a_model_that_has_changed_changes_the_digest():
    t = topology((EXAMPLES / "bridge.yaml").read_text())
    net = next(iter(t.networks.values()))
    changed = t._replace(networks={**t.networks, net.name: net._replace(masquerade=not net.masquerade)})
    assert record.digest(changed) != record.digest(t)


@pytest.mark.parametrize("spoil", [
    lambda d: d["networks"][0].update(subnet="not a prefix"),
    lambda d: d["networks"][0].update(masquerade="yes"),
    lambda d: d["networks"][0].update(unheard_of=1),
    lambda d: d["containers"][0].pop("attachments"),
    lambda d: d["containers"][0]["attachments"][0].update(address="fd00::2"),  # an IPv6 address where IPv4 stands
])
def test_a_record_that_does_not_fit_the_models_is_refused(spoil):
    data = json.loads(record.text(topology((EXAMPLES / "bridge.yaml").read_text())))
    spoil(data)
    with pytest.raises(ValueError):
        record.from_text(json.dumps(data))
