"""The overlay benchmark (benchmarks/overlay.py) runs, tiny, on two simulated hosts, so that it
cannot rot: 2 containers on each host, one round of every way. It asserts that the benchmark ran
through, printed its table and left both hosts as they were, never on the times it measured."""

from __future__ import annotations

import importlib.util
import re

from tests.helpers import ROOT

WAYS = ("nsgen run --host hX", "bash hX.setup.sh", "by hand", "nsgen run --teardown", "bash hX.teardown.sh")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("overlay_benchmark", ROOT / "benchmarks" / "overlay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_overlay_benchmark_runs_and_prints_its_table(sandbox, hosts2, capsys):
    before = {h.name: h.snapshot() for h in hosts2}
    load_benchmark().main(["-n", "2", "-r", "1"], sandbox=sandbox, hosts=hosts2)
    out = capsys.readouterr().out
    assert out.startswith("machine: "), out
    assert "N containers on each of two hosts, one overlay network (10.80.0.0/16, VNI 4242), a published port each; seconds, best of 1" in out
    seconds, times = r"\d+\.\d{3}", r"\d+\.\d+x"
    for way in WAYS:  # h1, h2, both; hand/this for h1, h2, both
        assert re.search(rf"^    2  {re.escape(way)} +{seconds} +{seconds} +{seconds} +{times} +{times} +{times}$", out, re.M), out
    # both hosts at once, up and down: one wall time, and the hand-typed way (h1 then h2) over it
    assert len(re.findall(rf"^    2    \(both hosts at once\) +— +— +{seconds} +— +— +{times}$", out, re.M)) == 2, out
    assert len(re.findall(rf"^    2    \(--batch\) +{seconds} +{seconds} +{seconds} +{times} +{times} +{times}$", out, re.M)) == 2, out
    assert len(re.findall(r"^    2  by hand ", out, re.M)) == 2, out
    for host in hosts2:
        assert host.snapshot() == before[host.name]
