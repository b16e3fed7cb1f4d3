"""The project's own error types: each carries a message written for the person who ran nsgen."""

from __future__ import annotations


class NsgenError(Exception):
    """Base of every error nsgen reports to a user (the CLI prints it without a traceback)."""


class LoadError(NsgenError):
    """The topology file could not be read or parsed."""


class ValidationError(NsgenError):
    """The topology is well-formed data but breaks one or more rules.

    `problems` holds one (path, message) pair per broken rule, all reported together.
    """

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{path}: {message}" if path else message for path, message in problems))


class PreflightError(NsgenError):
    """The host is not ready: not root, a tool missing, a resource of the same name not ours."""


class ExecutionError(NsgenError):
    """A command of the plan failed; what was done has been undone (or the undo errors are listed).
    `status` is the exit status to leave with: 1, or 130/143 when interrupted (as a shell would)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status
