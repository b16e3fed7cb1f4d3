"""Files nsgen keeps for itself (parsed topologies, recorded plans): written whole or not at all,
and read back only when they are still its own."""

from __future__ import annotations

import os


def write_private(path: str, body: str) -> None:
    """Replace `path` with `body` atomically (a new file, mode 0600, renamed into place); a
    failure leaves the old file, or none, and is not an error: these files only save work."""
    temp = f"{path}.{os.getpid()}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass


def read_own(path: str) -> bytes | None:
    """The content of `path` when it is a regular file (not a link) owned by the user nsgen runs
    as and writable by nobody else; None otherwise, or when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or st.st_mode & 0o170000 != 0o100000:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(fd)
