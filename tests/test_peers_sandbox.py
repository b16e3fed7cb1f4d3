"""The peers benchmark (benchmarks/peers.py) runs, tiny, in a sandbox, so that it cannot rot: 3
containers, one round, with every way that is installed. nsgen's three ways and the commands by
hand are always there; a peer that is not installed (netavark, the CNI plugins, Mininet) must say
so and is left out, and a peer that is installed must pass the benchmark's checks (pings, published
ports, masquerade) and be in the table. It asserts on what was printed, never on the times."""

from __future__ import annotations

import importlib.util
import re
import sys

from tests.helpers import ROOT

ALWAYS = ("nsgen run", "nsgen render | bash", "nsgen render --batch | bash", "by hand")
PEERS = ("CNI plugins", "netavark", "Mininet")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("peers_benchmark", ROOT / "benchmarks" / "peers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_peers_benchmark_runs_and_prints_its_table(sandbox, capsys, tmp_path):
    before = sandbox.snapshot()
    plot = tmp_path / "peers.svg"
    rows = load_benchmark().main(["-n", "3", "-r", "1", "--markdown", "--plot", str(plot)], sandbox=sandbox)
    out = capsys.readouterr().out
    assert out.startswith("machine: "), out
    assert "setup and teardown of N containers" in out, out
    assert "failed at" not in out, out
    number = r" +\d+\.\d{3}"
    for way in ALWAYS:
        # N, way, setup min, median, CPU, /run, teardown min, median, CPU, /run, left behind: nothing
        assert re.search(rf"^    3 {re.escape(way)} +({number}){{3}} +\d+\.\d\d({number}){{3}} +\d+\.\d\d  nothing$", out, re.M), out
    for peer in PEERS:
        if re.search(rf"^{peer}: not installed \(.*\); left out$", out, re.M):
            assert not any(row["label"] == peer for row in rows), out
        else:  # installed: it passed its checks and has its row
            assert re.search(rf"^    3 {re.escape(peer)} +({number}){{3}} +\d+\.\d\d({number}){{3}} +\d+\.\d\d  \S", out, re.M), out
    assert "| N | way | setup min |" in out, out
    assert f"plot written to {plot}" in out or "plot skipped: matplotlib is not installed" in out, out
    if f"plot written to {plot}" in out:
        assert plot.read_text().lstrip().startswith("<?xml"), plot.read_text()[:200]
    assert sandbox.snapshot() == before
