"""The firewall benchmark (benchmarks/firewall.py) runs, tiny, in a sandbox, so that it cannot rot:
3 published ports and 3 containers, one round of 0.5 s, both backends. It asserts that the
benchmark ran through and printed its tables, never on the times it measured."""

from __future__ import annotations

import importlib.util
import re

from tests.helpers import ROOT


def load_benchmark():
    spec = importlib.util.spec_from_file_location("firewall_benchmark", ROOT / "benchmarks" / "firewall.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_firewall_benchmark_runs_and_prints_its_tables(sandbox, capsys):
    before = sandbox.snapshot()
    load_benchmark().main(["--quick"], sandbox=sandbox)
    out = capsys.readouterr().out
    assert out.startswith("machine: "), out
    assert "new TCP connections a second to the last published port, median of 1 round(s) of 0.5 s" in out, out
    assert "setup and teardown of N containers (a published port each), seconds, median of 1 round(s)" in out, out
    for backend in ("iptables", "nftables"):
        # ports, backend, connections a second through the published port (range), direct (range), their ratio,
        # the client's CPU microseconds a connection through the port and direct, errors: none
        assert re.search(rf"^    3  {backend} +[\d,]+ +[\d,]+-[\d,]+ +[\d,]+ +[\d,]+-[\d,]+ +[\d.]+ +\d+ +\d+ +0$", out, re.M), out
        # containers, backend, run, teardown, setup-batch.sh, cleanup-batch.sh
        assert re.search(rf"^    3  {backend}(  +\d+\.\d{{3}}){{4}}$", out, re.M), out
    assert sandbox.snapshot() == before
