"""The few git plumbing calls the hooks make (run in the bare repository, the hooks' working directory).

Inside pre-receive, git exports its quarantine (``GIT_OBJECT_DIRECTORY`` and friends): these subprocesses
inherit it, so they see the objects being pushed before git has accepted them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


class GitError(Exception):
    """A git plumbing call failed; the message is git's own first line."""


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    kind: str
    oid: str
    name: str


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[0]
        raise GitError(f"git {args[0]}: {first}")
    return result.stdout


def is_zero(oid: str) -> bool:
    """git's "no object" id (deletion or creation of a ref), sha1 or sha256 length."""
    return set(oid) == {"0"}


def object_type(oid: str) -> str:
    return git("cat-file", "-t", oid).strip()


def tree_entries(commit: str) -> dict[str, TreeEntry]:
    """Top-level entries of a commit's tree, by name."""
    entries: dict[str, TreeEntry] = {}
    for line in git("ls-tree", "-z", commit).split("\0"):
        if not line:
            continue
        meta, _, name = line.partition("\t")
        mode, kind, oid = meta.split()
        entries[name] = TreeEntry(mode, kind, oid, name)
    return entries


def blob_to_file(oid: str, path: Path) -> None:
    """Stream a blob (tens of MB for a model) to a file without holding it in memory."""
    with path.open("wb") as out:
        result = subprocess.run(
            ["git", "cat-file", "blob", oid], stdout=out, stderr=subprocess.PIPE, check=False
        )
    if result.returncode != 0:
        raise GitError(f"git cat-file: {result.stderr.decode('utf-8', 'replace').strip()}")


def rev_parse(ref: str) -> str | None:
    """The object a ref points to now, or None if it does not exist."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None
