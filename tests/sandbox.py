"""The test suite's sandbox is nsgen's own (nsgen/sandbox/host.py): this module only re-exports it."""

from nsgen.sandbox.host import *  # noqa: F401,F403
from nsgen.sandbox.host import (  # noqa: F401
    DNS_ADDR,
    HOST_ADDR,
    WEB_ADDR,
    WORLD_ADDR,
    WORLD_DIR,
    WORLD_NS,
    Sandbox,
    SandboxCommandError,
    SandboxError,
    SandboxUnavailable,
    Snapshot,
    diff_snapshots,
    unavailable_reason,
)
