"""Cache keeps what depends only on its input in the user's cache folder (`$XDG_CACHE_HOME/nsgen`,
else `~/.cache/nsgen`): compiled templates, and topology files already parsed, so that a start of
nsgen need not import and run the YAML parser again for a file it has read before.

A folder is used only when it is a real directory owned by the user nsgen runs as and writable
by nobody else, and so is every folder from the cache base down: under `sudo` with another
user's HOME there is no cache, never files another user could have written. Entries are never
deleted, only overwritten: parsed topologies live in a fixed number of slots.
"""

from __future__ import annotations

import json
import os
import stat
import zlib
from typing import Any

from nsgen.files import read_own, write_private

SLOTS = 64  # parsed topology files kept: one slot per file path, modulo


def folder(name: str) -> str | None:
    """`<cache base>/nsgen/<name>`, made if missing, or None when it is not safely ours."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    path = os.path.join(base, "nsgen", name)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        for part in (base, os.path.dirname(path), path):
            st = os.lstat(part)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
    except OSError:
        return None
    return path


def _slot(path: str) -> str | None:
    where = folder("topologies")
    if where is None:
        return None
    return os.path.join(where, f"{zlib.crc32(os.fsencode(os.path.abspath(path))) % SLOTS:02d}.json")


def parsed(path: str, text: str, version: str) -> tuple[bool, Any]:
    """(True, data) when `text` was parsed before by this version of nsgen, else (False, None)."""
    slot = _slot(path)
    body = read_own(slot) if slot else None
    if body is None:
        return False, None
    try:
        entry = json.loads(body)
    except ValueError:
        return False, None
    if isinstance(entry, dict) and entry.get("version") == version and entry.get("text") == text and "data" in entry:
        return True, entry["data"]
    return False, None


def keep_parsed(path: str, text: str, version: str, data: Any) -> None:
    """Remember what `text` parses to, when JSON holds it exactly (same types, same keys)."""
    try:
        body = json.dumps({"version": version, "text": text, "data": data})
        if repr(json.loads(body)["data"]) != repr(data):
            return  # e.g. a key that is not a string, a date: JSON would change it
    except (TypeError, ValueError, RecursionError):
        return
    slot = _slot(path)
    if slot is not None:
        write_private(slot, body)
