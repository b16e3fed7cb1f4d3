"""Fault injection for sandbox tests: shims in front of PATH for the tools nsgen runs.

Every call of `ip`, `bridge`, `iptables`, `iptables-restore`, their IPv6 twins, `nft` or `sysctl` is counted; at call number
NSGEN_FAULT_AT the shim fails with its own message, or signals the process that called it.
"""

from __future__ import annotations

from pathlib import Path

from tests.sandbox import Sandbox

TOOLS = ("ip", "bridge", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore", "nft", "sysctl")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

SHIM = """#!/bin/sh
# Counts this call; at call $NSGEN_FAULT_AT does $NSGEN_FAULT_MODE (fail, TERM, INT, KILL).
# `ip netns exec` starts a container's process in the background: not a call of the setup's own
# (its parent may be gone by the time it runs), so it is neither counted nor faulted.
if [ "{name}" = ip ] && [ "$1" = netns ] && [ "$2" = exec ]; then exec {real} "$@"; fi
dir={dir}
n=$(flock "$dir/lock" sh -c 'n=$(cat "$1" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$1"; echo "$n"' _ "$dir/count")
if [ "$n" = "${{NSGEN_FAULT_AT:-0}}" ]; then
  case "${{NSGEN_FAULT_MODE:-fail}}" in
    fail) echo "{name}: injected failure at call $n" >&2; exit 2 ;;
    KILL) kill -KILL "$PPID"; exit 1 ;;
    *) kill "-$NSGEN_FAULT_MODE" "$PPID" ;;
  esac
fi
exec {real} "$@"
"""


class Faults:
    def __init__(self, sandbox: Sandbox, folder: Path):
        self.sb = sandbox
        self.dir = folder
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name in TOOLS:
            real = sandbox.run(["sh", "-c", f"PATH={SYSTEM_PATH} command -v {name}"]).stdout.strip()
            shim = self.bin / name
            shim.write_text(SHIM.format(dir=folder, name=name, real=real))
            shim.chmod(0o755)

    def env(self, at: int = 0, mode: str = "fail") -> dict[str, str]:
        (self.dir / "count").write_text("0\n")
        return {"PATH": f"{self.bin}:{SYSTEM_PATH}", "NSGEN_FAULT_AT": str(at), "NSGEN_FAULT_MODE": mode}

    def calls(self) -> int:
        return int((self.dir / "count").read_text().strip() or 0)
