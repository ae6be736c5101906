"""Releases on a serving host: install a version, switch ``current`` atomically, prune, log
(docs/contracts.md §4).

Layout under ``$STARGAZER_MODEL_DIR``::

    releases/<version>/model.joblib, model.json   one directory per installed version (files read-only)
    current -> releases/<version>                 relative symlink, the version being served
    shadow -> releases/<version>                  relative symlink, a candidate the workers also score (never
                                                  answered with; ``deploy --shadow``, see shadow.py)
    deploy-log.jsonl                              one JSON line per activation (who, when, what, previous)
    .releases.lock                                flock held while installing/switching/pruning

This is the ONE implementation used by the git post-receive hook and by ``make serve`` (which installs the
newest local ``models/<version>`` when there is no ``current`` yet), so a local stack and a production host
switch models the same way.

Why a symlink swapped with ``rename(2)``: readers (Celery workers stat ``current`` before each task) see
either the old or the new release, never a half-written one; ``os.replace`` of a new symlink over the old one
is atomic on POSIX, while "unlink then symlink" leaves a moment with no ``current`` at all.

Why fsync before the switch: ``current`` must never point at a release whose files a power cut could leave
empty. The release's files, the release directory and ``releases/`` are flushed before ``current`` is
replaced, and the model directory right after.

Why a lock: two pushes can land at nearly the same time; each post-receive installs and switches under the
same exclusive ``flock``, so the releases directory, ``current`` and the log stay consistent with each other.

This module never unpickles anything: it copies bytes and checks their sha256 against the manifest.
Signature and load checks happen earlier (pre-receive, ``model_serving.artifact``).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from model_serving import artifact

RELEASES_DIR: Final = "releases"
CURRENT_LINK: Final = "current"
SHADOW_LINK: Final = "shadow"
DEPLOY_LOG: Final = "deploy-log.jsonl"
LOCK_FILE: Final = ".releases.lock"
DEFAULT_KEEP: Final = 5
_INCOMING_PREFIX: Final = ".incoming-"


class ReleaseError(Exception):
    """A release could not be installed or switched; the message is one line a person can act on."""


@contextlib.contextmanager
def release_lock(model_dir: Path) -> Iterator[None]:
    """Exclusive lock on the model directory (blocks until the other installer is done).

    ``flock`` locks belong to an open file description, so nesting this in one process deadlocks: callers that
    already hold it pass ``locked=True`` to :func:`install_release`.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    with (model_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _linked_release(link: Path) -> Path | None:
    """The release directory a symlink points to, or None when the link or its target is missing."""
    if not link.is_symlink():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def current_release(model_dir: Path) -> Path | None:
    """The release directory ``current`` points to, or None when nothing is installed yet."""
    return _linked_release(model_dir / CURRENT_LINK)


def current_version(model_dir: Path) -> str | None:
    """The version being served (the release directory's name), or None."""
    release = current_release(model_dir)
    return release.name if release is not None else None


def shadow_release(model_dir: Path) -> Path | None:
    """The release directory ``shadow`` points to, or None when no shadow is set."""
    return _linked_release(model_dir / SHADOW_LINK)


def shadow_version(model_dir: Path) -> str | None:
    """The version being scored in the shadow of ``current``, or None."""
    release = shadow_release(model_dir)
    return release.name if release is not None else None


def shadow_since(model_dir: Path) -> float | None:
    """When the ``shadow`` link was last switched (its own mtime: the link is replaced, never edited)."""
    try:
        return (model_dir / SHADOW_LINK).lstat().st_mtime
    except FileNotFoundError:
        return None


def list_releases(model_dir: Path) -> list[Path]:
    """Installed releases, most recently activated first (activation touches the directory's mtime)."""
    root = model_dir / RELEASES_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and artifact.VERSION_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def read_deploy_log(model_dir: Path) -> list[dict[str, Any]]:
    """Every entry of the deploy log, oldest first (an absent log is an empty history)."""
    path = model_dir / DEPLOY_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def install_release(
    version_dir: Path,
    model_dir: Path,
    *,
    keep: int = DEFAULT_KEEP,
    actor: str | None = None,
    host: str | None = None,
    details: dict[str, Any] | None = None,
    move: bool = False,
    locked: bool = False,
) -> Path:
    """Install ``version_dir`` (model.joblib + model.json) as the served release and return its directory.

    Steps: copy (or, with ``move=True``, rename: the hook extracts into ``model_dir`` first) the two files
    into ``releases/<version>/`` (built under a temp name, renamed when complete, sha256 checked against the
    manifest), point ``current`` at it atomically, delete all but the ``keep`` most recently activated
    releases (never the current one), and append one line to ``deploy-log.jsonl``. Installing a version that
    is already present reuses it (a rollback costs no copy). ``actor`` is who asked (the pusher, "make
    serve"); the OS user running this is logged too. Raises ArtifactError/ReleaseError with a one-line
    message; on error ``current`` is left as it was.

    Example (``make serve``)::

        install_release(artifact.newest_version(Path("models")), Path("var/production"), actor="make serve")
    """
    if keep < 1:
        raise ReleaseError(f"keep must be >= 1, got {keep}")
    manifest = artifact.read_manifest(version_dir)
    with _placed(version_dir, model_dir, manifest, move=move, locked=locked) as target:
        releases = target.parent
        previous = current_version(model_dir)
        _switch_current(model_dir, target)
        if shadow_version(model_dir) == target.name:  # promoted: it is no candidate any more
            _clear_link(model_dir, SHADOW_LINK)
        _mark_activated(releases, target)
        pruned = _prune(model_dir, keep)
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event": _event(manifest.version, previous),
            "version": manifest.version,
            "previous": previous,
            "host": host or socket.gethostname(),
            "user": _os_user(),
            "actor": actor,
            "sha256": manifest.sha256,
            # Kept in the log because pruning deletes the release's model.json: history needs it after.
            "holdout": manifest.metrics.holdout.model_dump(),
            "release": str(target),
            "pruned": pruned,
            **(details or {}),
        }
        _append_log(model_dir, entry)
        return target


def install_shadow(version_dir: Path, model_dir: Path, *, move: bool = False, locked: bool = False) -> Path:
    """Install ``version_dir`` next to the served release and point ``shadow`` at it; ``current`` untouched.

    The same placement as :func:`install_release` (temp name, sha256 checked, read-only files, fsynced) and
    the same atomic link switch, so a worker reads either the old shadow, the new one or none. Nothing is
    appended to the deploy log: a shadow serves nobody (the deploy log is the history of what was served).
    Pruning never removes the shadow's release.
    """
    manifest = artifact.read_manifest(version_dir)
    with _placed(version_dir, model_dir, manifest, move=move, locked=locked) as target:
        _switch_link(model_dir, SHADOW_LINK, target)
        return target


@contextlib.contextmanager
def _placed(version_dir: Path, model_dir: Path, manifest: artifact.Manifest, *, move: bool,
            locked: bool) -> Iterator[Path]:
    """Under the release lock (unless the caller holds it): ``version_dir`` placed among the releases.

    Yields the placed release; the lock is held until the caller has switched its links.
    """
    with contextlib.ExitStack() as stack:
        if not locked:
            stack.enter_context(release_lock(model_dir))
        releases = model_dir / RELEASES_DIR
        releases.mkdir(parents=True, exist_ok=True)
        _remove_stale_incoming(releases)
        yield _place_release(version_dir, releases, manifest, move=move)


def clear_shadow(model_dir: Path, *, locked: bool = False) -> str | None:
    """Remove the ``shadow`` link (the release stays until pruned); returns the version it pointed to."""
    with contextlib.ExitStack() as stack:
        if not locked:
            stack.enter_context(release_lock(model_dir))
        previous = shadow_version(model_dir)
        _clear_link(model_dir, SHADOW_LINK)
        return previous


def ensure_current(
    models_dir: Path, model_dir: Path, *, keep: int = DEFAULT_KEEP, actor: str = "make serve"
) -> Path | None:
    """``make serve``'s rule (docs/contracts.md §6): keep an existing ``current``, else install the newest
    version.

    Returns the current release directory, or None when there is neither a ``current`` nor any local version.
    """
    existing = current_release(model_dir)
    if existing is not None:
        return existing
    newest = artifact.newest_version(models_dir)
    if newest is None:
        return None
    return install_release(newest, model_dir, keep=keep, actor=actor)


def _event(version: str, previous: str | None) -> str:
    """Versions start with their UTC creation time, so name order is age order."""
    if previous is None or version > previous:
        return "deploy"
    if version < previous:
        return "rollback"
    return "redeploy"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _place_release(version_dir: Path, releases: Path, manifest: artifact.Manifest, *, move: bool) -> Path:
    target = releases / manifest.version
    if target.is_dir():
        try:
            present = artifact.read_manifest(target)
            artifact.verify_checksum(target, present)
            if present.sha256 == manifest.sha256:
                return target
        except artifact.ArtifactError:
            pass  # a damaged or different release of that name: replace it below
        _remove_tree(target)
    staging = Path(tempfile.mkdtemp(prefix=_INCOMING_PREFIX, dir=releases))
    try:
        for name in artifact.release_files(manifest):
            source = version_dir / name
            if not source.is_file():
                raise ReleaseError(f"{name} missing in {version_dir}")
            if move:
                os.replace(source, staging / name)
            else:
                shutil.copyfile(source, staging / name)
        artifact.verify_checksum(staging, manifest)  # the bytes we will serve are the bytes that were signed
        for name in artifact.release_files(manifest):
            (staging / name).chmod(0o444)
            _fsync_path(staging / name)
        staging.chmod(0o755)
        _fsync_path(staging)
        staging.rename(target)
        _fsync_path(releases)
    except BaseException:
        _remove_tree(staging)
        raise
    return target


def _switch_current(model_dir: Path, target: Path) -> None:
    _switch_link(model_dir, CURRENT_LINK, target)


def _switch_link(model_dir: Path, name: str, target: Path) -> None:
    link = model_dir / name
    if link.exists() and not link.is_symlink():
        raise ReleaseError(f"{link} exists and is not a symlink: move it away first")
    tmp = model_dir / f".{name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(Path(RELEASES_DIR) / target.name, tmp)  # relative: the model dir can be moved or mounted
    os.replace(tmp, link)
    _fsync_path(model_dir)


def _clear_link(model_dir: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (model_dir / name).unlink()
        _fsync_path(model_dir)


def _mark_activated(releases: Path, target: Path) -> None:
    """Make ``target`` strictly the newest by mtime (file times are coarse: two installs may share a tick)."""
    newest = max((p.stat().st_mtime_ns for p in releases.iterdir() if p.is_dir() and p != target), default=0)
    stamp = max(time.time_ns(), newest + 1)
    os.utime(target, ns=(stamp, stamp))


def _prune(model_dir: Path, keep: int) -> list[str]:
    kept = {current_version(model_dir), shadow_version(model_dir)}
    pruned: list[str] = []
    for release in list_releases(model_dir)[keep:]:
        if release.name in kept:
            continue
        _remove_tree(release)
        pruned.append(release.name)
    return sorted(pruned)


def _remove_stale_incoming(releases: Path) -> None:
    """Leftovers of an install that crashed (we hold the lock, so none is in progress)."""
    for stale in releases.glob(f"{_INCOMING_PREFIX}*"):
        _remove_tree(stale)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _append_log(model_dir: Path, entry: dict[str, Any]) -> None:
    line = json.dumps(entry, sort_keys=True) + "\n"
    fd = os.open(model_dir / DEPLOY_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to disk (a rename is durable only once both are)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
