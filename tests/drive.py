"""Bringing topologies up and down inside a sandbox, through the scripts or through `nsgen run`."""

from __future__ import annotations

import json
import sys
import time

from tests.helpers import EXAMPLES
from tests.sandbox import DNS_ADDR, DNS_ADDR6, Sandbox

# The examples' public resolvers, and the sandbox world's of the same family (no traffic leaves the machine)
RESOLVERS = {"1.1.1.1": DNS_ADDR, '"2606:4700:4700::1111"': f'"{DNS_ADDR6}"'}


def example_text(name: str) -> str:
    """An example with the sandbox world's DNS servers instead of the public ones it names."""
    text = (EXAMPLES / name).read_text()
    for public, world in RESOLVERS.items():
        text = text.replace(public, world)
    return text


def ping(sb: Sandbox, ns: str | None, address: str, tries: int = 3, wait: str = "2") -> bool:
    """Whether one ping (from the host, or from inside ns) is answered, in up to `tries` tries of `wait` seconds."""
    argv = ["ping", "-c", "1", "-W", wait, address]
    return any(sb.run(argv if ns is None else ["ip", "netns", "exec", ns, *argv], check=False).returncode == 0 for _ in range(tries))


def curl(sb: Sandbox, ns: str | None, url: str, timeout: float = 2) -> str | None:
    """The body at url (from the host, or from inside ns; an IPv6 address in brackets), or None."""
    argv = ["curl", "-sfg", "--max-time", str(timeout), url]
    done = sb.run(argv if ns is None else ["ip", "netns", "exec", ns, *argv], check=False)
    return done.stdout if done.returncode == 0 else None


def echo_ok(body: str | None) -> bool:
    return body is not None and json.loads(body)["body"] == "Echo response"


NSGEN = [sys.executable, "-m", "nsgen"]


class Driver:
    """Brings a topology up and down either through the rendered scripts or through `nsgen run`."""

    def __init__(self, sandbox: Sandbox, tmp_path, mode: str, text: str):
        self.sb, self.mode = sandbox, mode
        self.topology = tmp_path / "topology.yaml"
        self.topology.write_text(text)
        self.setup_sh, self.cleanup_sh = tmp_path / "setup.sh", tmp_path / "cleanup.sh"
        if mode in ("script", "batch"):
            batch = ["--batch"] if mode == "batch" else []
            sandbox.run([*NSGEN, "render", *batch, "-f", str(self.topology), "-o", str(self.setup_sh)])
            sandbox.run([*NSGEN, "render", "--teardown", *batch, "-f", str(self.topology), "-o", str(self.cleanup_sh)])

    def up(self, check: bool = True):
        if self.mode in ("script", "batch"):
            return self.sb.run(["bash", str(self.setup_sh)], check=check)
        return self.sb.run([*NSGEN, "run", "-f", str(self.topology)], check=check)

    def down(self, check: bool = True):
        if self.mode in ("script", "batch"):
            return self.sb.run(["bash", str(self.cleanup_sh)], check=check)
        return self.sb.run([*NSGEN, "run", "--teardown", "-f", str(self.topology)], check=check)


def wait_for(sb: Sandbox, argv: list[str], timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        done = sb.run(argv, check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


