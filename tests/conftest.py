"""Shared test setup: the `sandbox` fixture (a throwaway root host, see sandbox.py) and its marker,
`hosts2` and `hosts3` (simulated hosts inside it), and `firewall_backend`, which runs a test once
with each firewall backend.

Tests that use `sandbox` or `sandbox_factory` are marked `sandbox` automatically
(`pytest -m sandbox` / `-m "not sandbox"`). Where no sandbox can be made (not root, a tool
missing, unshare refused) they skip with the reason, unless NSGEN_REQUIRE_SANDBOX=1 (set by CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest

from tests.sandbox import (
    Sandbox,
    SandboxUnavailable,
    SimulatedHosts,
    Snapshot,
    diff_snapshots,
    simulated_hosts,
    unavailable_reason,
)

REQUIRE_SANDBOX_ENV = "NSGEN_REQUIRE_SANDBOX"
SANDBOX_FIXTURES = frozenset({"sandbox", "sandbox_factory"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sandbox: runs in a root network sandbox (tests/sandbox.py); skipped where none can be "
        f"made, unless {REQUIRE_SANDBOX_ENV}=1",
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SANDBOX_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sandbox)
    # A batched script differs from the plain one in how it groups commands, and the nftables
    # backend's rules are one command either way (its batched goldens are checked): with nftables,
    # a sandbox test's batch mode adds time and nothing else, and is left out.
    left_out = [item for item in items if _params(item).get("firewall_backend") == "nftables" and _params(item).get("mode") == "batch"]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


def _params(item: pytest.Item) -> dict:
    callspec = getattr(item, "callspec", None)
    return callspec.params if callspec is not None else {}


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """`assert sandbox.snapshot() == before` fails with what changed, key by key."""
    if op == "==" and isinstance(left, Snapshot) and isinstance(right, dict):
        return ["sandbox snapshots differ (+ only on the left, - only on the right):", *diff_snapshots(left, right)]
    return None


def sandbox_required() -> bool:
    return os.environ.get(REQUIRE_SANDBOX_ENV, "").strip().lower() not in ("", "0", "false", "no")


def no_sandbox(reason: str) -> NoReturn:
    """Skip the test for want of a sandbox, or fail it where a sandbox is required."""
    if sandbox_required():
        pytest.fail(f"no sandbox: {reason} ({REQUIRE_SANDBOX_ENV} is set)", pytrace=False)
    pytest.skip(f"no sandbox: {reason}")


@pytest.fixture(scope="session")
def _sandbox_preflight() -> None:
    """The cheap checks (root, tools), once, before a test that needs a sandbox even starts."""
    reason = unavailable_reason()
    if reason:
        no_sandbox(reason)


@pytest.fixture
def sandbox_factory(_sandbox_preflight: None) -> Iterator[Callable[..., Sandbox]]:
    """Makes started sandboxes (keywords as Sandbox()); closes them all after the test."""
    made: list[Sandbox] = []

    def make(**kwargs: object) -> Sandbox:
        try:
            box = Sandbox(**kwargs)
        except SandboxUnavailable as exc:
            no_sandbox(str(exc))
        made.append(box)
        return box

    yield make
    errors = []
    for box in reversed(made):
        try:
            box.close()
        except Exception as exc:  # close the others anyway
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    """A started sandbox host with its world (see sandbox.py), closed after the test."""
    return sandbox_factory()


@pytest.fixture
def hosts2(sandbox: Sandbox) -> SimulatedHosts:
    """Two simulated hosts h1, h2 on the sandbox's underlay (nsgen/sandbox/hosts.py); they die with it."""
    return simulated_hosts(sandbox, 2)


@pytest.fixture
def hosts3(sandbox: Sandbox) -> SimulatedHosts:
    """Three simulated hosts h1, h2, h3 on the sandbox's underlay; they die with it."""
    return simulated_hosts(sandbox, 3)


# How many input cases and fault-sweep points ran: printed at the end of the run.
COUNTS: dict[str, int] = {}


def count(what: str, n: int = 1) -> None:
    COUNTS[what] = COUNTS.get(what, 0) + n


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if COUNTS:
        terminalreporter.write_sep("-", "nsgen reliability counts")
        for what, n in sorted(COUNTS.items()):
            terminalreporter.write_line(f"{n} {what}")


FIREWALL_BACKENDS = ("iptables", "nftables")


@pytest.fixture(params=FIREWALL_BACKENDS)
def firewall_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The firewall backend a topology that names none is written through (NSGEN_FIREWALL, which
    the sandbox passes on to what it runs): a module's sandbox tests run once a backend with
    `pytestmark = pytest.mark.usefixtures("firewall_backend")`. A test about one backend's own
    tool takes the fixture and skips the other with its reason (`only_backend`)."""
    monkeypatch.setenv("NSGEN_FIREWALL", request.param)
    return str(request.param)


def only_backend(backend: str, wanted: str, reason: str) -> None:
    """Skip this run of a backend-parametrized test unless it is `wanted`'s, saying why."""
    if backend != wanted:
        pytest.skip(f"{wanted} only: {reason}")


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Invoke nsgen's CLI in-process, from an empty working folder; stdout and stderr apart."""
    from click.testing import CliRunner

    from nsgen.cli import main

    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke
