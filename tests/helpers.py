"""Shared helpers for tests that need no root: topologies from text, plans with a fixed environment."""

from __future__ import annotations

from pathlib import Path

from nsgen.hostinfo import Environment
from nsgen.load import parse_text
from nsgen.models import Topology
from nsgen.plan import Plan, compile_plan
from nsgen.resolve import resolve

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def fixed_env(tmp: Path | None = None) -> Environment:
    """An environment that does not depend on this machine: programs keep their names."""
    resolv = (tmp / "resolv.conf") if tmp else Path("/nonexistent/resolv.conf")
    env = Environment(resolv_conf=resolv, systemd_resolv_conf=Path("/nonexistent/x"), which=lambda name: None, nsgen_argv=("nsgen",), routes=list)
    return env._replace(addresses=lambda: None, hostname=str)  # the host's addresses are not known: an outbound address is not checked; no hostname: no 127.0.1.1 line in hosts files


def topology(text: str, env: Environment | None = None) -> Topology:
    return resolve(parse_text(text), env or fixed_env())


def plan_of(text: str, env: Environment | None = None) -> Plan:
    return compile_plan(topology(text, env))


def example_plan(name: str) -> Plan:
    """An example's plan; of an example across hosts, its first host's part."""
    from nsgen import spread

    whole = topology((EXAMPLES / name).read_text())
    return compile_plan(spread.part(whole, whole.hosts[0].name) if whole.hosts else whole)
