"""Bringing topologies up and down inside a sandbox, through the scripts or through `nsgen run`."""

from __future__ import annotations

import sys
import time

from tests.helpers import EXAMPLES
from tests.sandbox import DNS_ADDR, Sandbox


def example_text(name: str) -> str:
    """An example with the sandbox world's DNS server instead of 1.1.1.1 (no traffic leaves the machine)."""
    return (EXAMPLES / name).read_text().replace("dns: [1.1.1.1]", f"dns: [{DNS_ADDR}]")


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


