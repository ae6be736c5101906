"""Secrets and private files: read a secret from its variable or its file, create a private file once.

Why one module: a secret must never reach a log or a world-readable file, and the two ways to get that wrong
(a file created with the default umask and chmod-ed afterwards; an error message that quotes the file's
contents) are easiest to rule out in one place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path


def read_secret(value: str | None, file: Path | None, *, name: str) -> str | None:
    """``value`` if set, else the stripped contents of ``file`` (how Ansible hands secrets over), else None.

    ``name`` is the variable of the value (the file's is ``{name}_FILE``): errors name it and the path, never
    the contents.
    """
    if value:
        return value
    if file is None:
        return None
    try:
        return file.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ValueError(f"{name}_FILE {str(file)!r} cannot be read: {exc.strerror}") from None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file that is mode 0600 from its first byte (never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def create_once(path: Path, *, nbytes: int = 48) -> str:
    """A random secret kept in ``path`` (mode 0600): made by the first caller, read by every later one.

    Several processes may start at once (every gunicorn worker needs the same key), so the secret is written
    and fsynced under a private temporary name, then hard-linked into place: ``link`` fails if the name
    exists, so exactly one process's secret wins, and the name never points to a file still being written.
    An empty file (someone truncated it) is refused, never used.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(nbytes) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process linked its secret first: use that
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{path} is empty: delete it (a new secret is made)")
    return value
