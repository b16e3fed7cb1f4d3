"""A session brings one topology up inside a throwaway sandbox host, uses it, and throws it all away.

`nsgen sandbox` is this module: start a `Sandbox` (private network and mount namespaces, a world
with a web server and DNS), run `nsgen run` inside it, then the connectivity probe (`nsgen check
--probe`), a given command or an interactive shell, then `nsgen run --teardown`, and close the
sandbox, which frees whatever is left. Nothing of it reaches the machine's own network.

A topology across hosts runs on simulated hosts (nsgen/sandbox/hosts.py), one for each of its
hosts, at the simulated hosts' addresses instead of its own: each host sets its part up, the
probe runs on each, a command or a shell runs on the first host.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nsgen.sandbox.host import DNS_ADDR, DNS_ADDR6, HOST_ADDR, WEB_ADDR, WEB_ADDR6, Sandbox

INSIDE_DIR = "/run/nsgen-sandbox"  # in the sandbox's own /run: the topology it runs
INSIDE_FILE = f"{INSIDE_DIR}/nsgen.yaml"
PROMPT = r"(nsgen sandbox) \w\$ "


def nsgen_argv() -> list[str]:
    """How to run this very nsgen inside the sandbox, installed or not."""
    return [sys.executable, "-m", "nsgen"]


def nsgen_env() -> dict[str, str]:
    """PYTHONPATH that finds this nsgen package first (a checkout works as well as an install)."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{root}{os.pathsep}{rest}" if rest else root}


def for_the_world(data: Any) -> tuple[Any, list[str]]:
    """The topology as the sandbox runs it: the world's DNS server instead of the nameservers it names.

    The sandbox has no Internet: a nameserver like 1.1.1.1 would answer nothing. Returns the new
    data and one note per container changed.
    """
    data = copy.deepcopy(data)
    notes = []
    containers = data.get("containers") if isinstance(data, dict) else None
    for name, spec in (containers or {}).items():
        if isinstance(spec, dict) and spec.get("dns"):
            # one of the world's servers for each family named, IPv4 first: DNS_ADDR, DNS_ADDR6
            given = list(map(str, spec["dns"]))
            world = [DNS_ADDR] * any(":" not in d for d in given) + [DNS_ADDR6] * any(":" in d for d in given)
            notes.append(f"{name} resolves through the world's DNS server {' and '.join(world)} instead of {', '.join(given)}")
            spec["dns"] = world
    return data, notes


def run_session(
    data: Any,
    name: str,
    *,
    command: list[str] | None = None,
    shell: bool = False,
    probe_target: str | None = None,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> int:
    """Bring the topology (validated data) up in a new sandbox, use it, tear it down; the exit status.

    Without command or shell, the use is `nsgen check --probe`. Raises SandboxUnavailable when no
    sandbox can be made here.
    """
    data, notes = for_the_world(data)
    if isinstance(data, dict) and data.get("hosts"):
        return _across_hosts(data, name, notes, command=command, shell=shell, probe_target=probe_target, say=say)
    nsgen, env = nsgen_argv(), nsgen_env()
    with Sandbox() as box:
        box.run(["mkdir", "-p", INSIDE_DIR])
        box.run(["cp", "/dev/stdin", INSIDE_FILE], input=json.dumps(data, indent=2) + "\n")
        say(f"sandbox: a throwaway host with a simulated world (web server {WEB_ADDR} = web.world.test, DNS {DNS_ADDR}); "
            "this machine's network is not touched")
        for note in notes:
            say(f"sandbox: {note}")
        if box.call([*nsgen, "run", "-q", "-f", INSIDE_FILE], env=env) != 0:
            say(f"sandbox: topology {name} could not be set up (see above)")
            return 1
        say(f"sandbox: topology {name} is up")
        try:
            if shell:
                say(f"sandbox: a shell on the sandbox host (it is {HOST_ADDR} to the world); the topology is {INSIDE_FILE}")
                say(f"sandbox: try `ip netns exec <container> curl -s http://web.world.test/` or `nsgen check --probe -f {INSIDE_FILE}`")
                say("sandbox: leave the shell (exit or ^D) to tear everything down")
                status = box.call(["bash", "--norc", "-i"], env={**env, "PS1": PROMPT, "NSGEN_SANDBOX": name, "NSGEN_FILE": INSIDE_FILE})
            elif command:
                status = box.call(command, env={**env, "NSGEN_SANDBOX": name, "NSGEN_FILE": INSIDE_FILE})
            else:
                aims = [probe_target] if probe_target else [WEB_ADDR, WEB_ADDR6]  # the world's web server, in each family
                targets = [word for target in aims for word in ("--probe-target", target)]
                status = box.call([*nsgen, "check", "--probe", *targets, "-f", INSIDE_FILE], env=env)
        finally:
            if box.call([*nsgen, "run", "--teardown", "-q", "-f", INSIDE_FILE], env=env) != 0:
                say(f"sandbox: the teardown of {name} reported errors (the sandbox is discarded anyway)")
        say(f"sandbox: topology {name} is down and the sandbox is gone")
    return status


def on_simulated_hosts(data: dict) -> tuple[dict, list[str]]:
    """The topology with each of its hosts at a simulated host's address (h1's 192.0.2.11, ...; of
    the family its addresses are), and one note per host moved."""
    from nsgen.sandbox.hosts import host_address, host_address6

    data = copy.deepcopy(data)
    notes = []
    for i, (host, spec) in enumerate(data["hosts"].items(), start=1):
        given = str(spec["address"])
        spec["address"] = host_address6(i) if ":" in given else host_address(i)
        if spec["address"] != given:
            notes.append(f"host {host} is simulated host h{i} at {spec['address']} instead of {given}")
    return data, notes


def _across_hosts(data: dict, name: str, notes: list[str], *, command: list[str] | None, shell: bool,
                  probe_target: str | None, say: Callable[[str], None]) -> int:
    from nsgen.sandbox.hosts import MAX_HOSTS, simulated_hosts

    if len(data["hosts"]) > MAX_HOSTS:
        say(f"sandbox: topology {name} spans {len(data['hosts'])} hosts; the sandbox simulates at most {MAX_HOSTS}")
        return 1
    data, moved = on_simulated_hosts(data)
    nsgen, env = nsgen_argv(), nsgen_env()
    names = list(data["hosts"])
    with Sandbox() as box:
        hosts = simulated_hosts(box, len(names))
        for host in hosts:
            host.run(["mkdir", "-p", INSIDE_DIR])
            host.run(["cp", "/dev/stdin", INSIDE_FILE], input=json.dumps(data, indent=2) + "\n")
        say(f"sandbox: {len(hosts)} throwaway hosts on one network (192.0.2.0/24) with a simulated world (web server {WEB_ADDR} "
            f"= web.world.test, DNS {DNS_ADDR}); this machine's network is not touched")
        for note in [*moved, *notes]:
            say(f"sandbox: {note}")
        up = []
        status = 1
        try:
            for host, part in zip(hosts, names):
                if host.call([*nsgen, "run", "-q", "-f", INSIDE_FILE, "--host", part], env=env) != 0:
                    say(f"sandbox: host {part}'s part of topology {name} could not be set up (see above)")
                    return 1
                up.append((host, part))
            say(f"sandbox: topology {name} is up on hosts {', '.join(names)}")
            first = f"host {names[0]} (simulated host h1)"
            if shell:
                say(f"sandbox: a shell on {first}; the topology is {INSIDE_FILE}; leave it (exit or ^D) to tear everything down")
                status = hosts[0].call(["bash", "--norc", "-i"], env={**env, "PS1": PROMPT, "NSGEN_SANDBOX": name, "NSGEN_FILE": INSIDE_FILE})
            elif command:
                say(f"sandbox: running the command on {first}")
                status = hosts[0].call(command, env={**env, "NSGEN_SANDBOX": name, "NSGEN_FILE": INSIDE_FILE})
            else:
                aims = [probe_target] if probe_target else [WEB_ADDR, WEB_ADDR6]
                targets = [word for target in aims for word in ("--probe-target", target)]
                status = 0
                for host, part in up:
                    say(f"sandbox: on host {part}:")
                    status |= host.call([*nsgen, "check", "--probe", *targets, "-f", INSIDE_FILE, "--host", part], env=env)
        finally:
            for host, part in reversed(up):
                if host.call([*nsgen, "run", "--teardown", "-q", "-f", INSIDE_FILE, "--host", part], env=env) != 0:
                    say(f"sandbox: the teardown of host {part}'s part reported errors (the sandbox is discarded anyway)")
        say(f"sandbox: topology {name} is down and the sandbox is gone")
    return status

