"""Execute, with a recording runner: the plan's argv in order, skips, refusals, rollback newest first."""

from __future__ import annotations

import pytest

from nsgen import execute
from nsgen.errors import ExecutionError, PreflightError
from nsgen.execute import RecordingRunner, Result
from nsgen.plan import Command
from tests.helpers import example_plan


@pytest.fixture
def plan():
    return example_plan("tutorial.yaml")


def recorder(plan, present=(), **kw) -> RecordingRunner:
    """A recording runner on a host that meets the plan's requirements (ip_forward writable)."""
    return RecordingRunner(present={*present, *(r.any_of[-1] for r in plan.requirements)}, **kw)


def passes(runner, cmd) -> bool:
    return all(execute.check(runner, g) for g in cmd.only_if)


def test_setup_runs_every_command_in_plan_order(plan):
    runner = recorder(plan)
    execute.setup(plan, runner, batched=False)
    assert runner.log == [c.argv for s in plan.steps for c in s.commands if passes(runner, c)]


def test_done_steps_are_skipped(plan):
    present = {p for s in plan.steps for p in (*s.probe, *s.ours)}
    runner = recorder(plan, present=present)
    execute.setup(plan, runner, batched=False)
    ran = set(runner.log)
    for step in plan.steps:
        if step.probe:
            assert not any(c.argv in ran for c in step.commands), step.id


def test_foreign_namespace_is_refused_before_any_change(plan):
    ns_step = next(s for s in plan.steps if s.id == "netns:container-1")
    runner = recorder(plan, present=set(ns_step.probe))
    with pytest.raises(PreflightError, match="network namespace container-1 already exists and was not made by nsgen topology tutorial"):
        execute.setup(plan, runner, batched=False)
    assert runner.log == []


def test_existing_namespace_that_carries_the_topologys_mark_is_ours(plan):
    ns_step = next(s for s in plan.steps if s.id == "netns:container-1")
    assert ns_step.ours == (("netns_ours", "tutorial", "container-1", "/run/nsgen/tutorial/namespaces"),)
    runner = recorder(plan, present={*ns_step.probe, *ns_step.ours, ("test", "-d", plan.state_dir)})
    execute.setup(plan, runner, batched=False)
    assert ("ip", "netns", "add", "container-1") not in runner.log


@pytest.mark.parametrize("k", range(1, 20))
def test_failure_at_command_k_undoes_begun_steps_newest_first(plan, k):
    calls = {"n": 0}
    failed = []

    def fail(cmd):
        calls["n"] += 1
        if calls["n"] == k:
            failed.append(cmd)
            return Result(2, "", "RTNETLINK answers: boom")
        return None

    # The state directory "exists" for the undo guards, so the state step itself counts as done.
    runner = recorder(plan, fail=fail, present={("test", "-d", plan.state_dir)})
    try:
        execute.setup(plan, runner, batched=False)
    except ExecutionError as exc:
        message = str(exc)
    else:
        assert k > len(runner.log)  # fewer commands than k: nothing failed
        return
    before, undo = runner.log[:k], runner.log[k:]
    assert f"`{' '.join(before[-1])}`".replace("!", "'!'") in message or before[-1][0] in message
    assert "RTNETLINK answers: boom" in message
    begun = []
    for s in plan.steps:
        if s.begun_with and s.begun_with not in {b.id for b in begun}:
            continue
        if s.probe and all(execute.check(runner, p) for p in s.probe):
            continue
        begun.append(s)
        if failed[0] in s.commands:
            break
    expected = [c.argv for s in reversed(begun) for c in s.undo if passes(runner, c)]
    assert undo == expected


def test_undo_errors_are_reported_not_swallowed(plan):
    def fail(cmd):
        if cmd.argv[:2] == ("sysctl", "-q"):
            return Result(1, "", "permission denied on key")
        if cmd.argv[:2] == ("rm", "-f"):
            return Result(1, "", "rm: cannot remove")
        return None

    runner = recorder(plan, fail=fail, present={("test", "-d", plan.state_dir)})
    with pytest.raises(ExecutionError) as info:
        execute.setup(plan, runner, batched=False)
    assert "permission denied on key" in str(info.value)
    assert "undoing it left errors" in str(info.value) and "rm: cannot remove" in str(info.value)


def test_not_root_and_missing_tools_are_preflight_errors(plan):
    with pytest.raises(PreflightError, match="needs root"):
        execute.setup(plan, recorder(plan, root=False))
    runner = recorder(plan, tools_missing=["iptables"])
    with pytest.raises(PreflightError, match="required tool not found: iptables"):
        execute.setup(plan, runner, batched=False)
    assert runner.log == []


def test_teardown_runs_undo_in_reverse_and_collects_errors(plan):
    runner = recorder(plan, present={("test", "-d", plan.state_dir)}, fail=lambda c: Result(1, "", "nope") if c.argv[0] == "rm" else None)
    with pytest.raises(ExecutionError, match="teardown of tutorial could not undo everything") as info:
        execute.teardown(plan, runner, batched=False)
    # the state directory (the final step) is kept when anything else failed: a second teardown needs it
    expected = [c.argv for s in reversed(plan.steps) if not s.final for c in s.undo if passes(runner, c)]
    assert runner.log == expected
    assert "its state directory /run/nsgen/tutorial is kept: run the teardown again to finish the job" in str(info.value)


def test_teardown_without_errors_removes_the_state_directory_last(plan):
    runner = recorder(plan, present={("test", "-d", plan.state_dir), ("state_ours", "tutorial"), ("test", "-d", "/run/nsgen")})
    execute.teardown(plan, runner, batched=False)
    assert runner.log[-2:] == [("rm", "-rf", "/run/nsgen/tutorial"), ("rmdir", "--ignore-fail-on-non-empty", "/run/nsgen")]


def test_teardown_of_a_topology_that_is_not_up_touches_no_named_resource(plan):
    runner = recorder(plan)
    execute.teardown(plan, runner, batched=False)
    assert not any(argv[:3] in {("ip", "netns", "delete"), ("ip", "link", "delete")} for argv in runner.log)


def test_read_only_ip_forward_is_a_preflight_error(plan):
    runner = RecordingRunner()
    with pytest.raises(PreflightError, match=r"net\.ipv4\.ip_forward is off and cannot be turned on"):
        execute.setup(plan, runner, batched=False)
    assert runner.log == []


def test_nsenter_net_is_recognised_only_in_its_plain_form():
    from nsgen.execute import _nsenter_net

    assert _nsenter_net(("nsenter", "--net=/run/netns/web", "ip", "-batch", "-")) == ("/run/netns/web", ("ip", "-batch", "-"))
    assert _nsenter_net(("nsenter", "--net=/run/netns/web", "--mount", "ip")) is None
    assert _nsenter_net(("nsenter", "--net=", "ip")) is None
    assert _nsenter_net(("nsenter", "-t", "1", "--net", "ip")) is None
    assert _nsenter_net(("ip", "link")) is None


def test_nsenter_into_a_missing_namespace_fails_as_nsenter_does():
    from nsgen.execute import SubprocessRunner

    result = SubprocessRunner().run(Command(("nsenter", "--net=/nonexistent/netns/web", "true")))
    assert result.returncode == 1
    assert result.stderr == "nsenter: cannot open /nonexistent/netns/web: No such file or directory"


def test_group_lookup_from_the_listing_of_links():
    from nsgen.builtins import Link, in_group

    br = Link("1853644004", "nsgen:lab")
    assert in_group({"lo": Link("default", ""), "br0": br}, "0x6e7c5ce4") == {"br0": br}
    assert in_group({"lo": Link("default", "")}, "0x6e7c5ce4") == {}
    assert in_group({"lo": Link("default", ""), "x": Link("lab", "")}, "0x6e7c5ce4") is None  # a named group could be it
