"""The test suite's sandbox is nsgen's own (nsgen/sandbox/host.py): this module only re-exports it."""

from nsgen.sandbox import *  # noqa: F403  (everything in nsgen.sandbox.__all__)
