"""The model of one Celery worker process: loaded once, reloaded between tasks when ``current`` moves.

Why this shape (DESIGN.md §4-5):
- A 45-140 MB pipeline loaded per task (or per thread) multiplies memory and latency, so each worker process
  holds exactly one, loaded at ``worker_process_init`` (or lazily by the first task, for the solo pool).
- The deploy hook only switches the ``current`` symlink; it has no broker credentials and restarts nothing.
  Before every task the store does a cheap check (``readlink`` plus one ``stat`` of ``model.json``) and, when
  the release changed, loads the new one BETWEEN tasks: no restart, no lost or half-served task.
- Loading goes through ``artifact.load_version``, which checks the HMAC signature and the sha256 before
  anything is unpickled. The web process never imports this module's loading path.
- The compiled inference path (``compiled_forest``) is built here, once per loaded model, next to the
  pipeline: a 5-repository prediction then costs well under a millisecond of CPU instead of ~85 ms. A pipeline
  that cannot be compiled (another regressor, or a compiled answer that differs on the probe rows) is served
  by scikit-learn as before; the store logs why.
- A release that fails to load never replaces a working model: the worker keeps answering with the version it
  has (every answer names it) and reports the failure in ``last_error``; with no usable model at all every
  task answers a one-line error, which the web turns into a 503.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_serving import artifact

log = logging.getLogger(__name__)

#: (target of ``current``, inode, mtime_ns, size of its model.json): changes whenever a release is switched.
ReleaseKey = tuple[str, int, int, int]


class ModelUnavailable(Exception):
    """No usable model in this worker process; the message is one line for the API's 503."""


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Any
    manifest: artifact.Manifest
    source: Path
    key: ReleaseKey
    load_seconds: float
    #: ``compiled_forest.CompiledModel`` of ``pipeline``, or None when it is served by scikit-learn.
    compiled: Any = None

    @property
    def version(self) -> str:
        return self.manifest.version


def release_key(current: Path) -> ReleaseKey | None:
    """The cheap fingerprint of what ``current`` points to, or None when there is no release."""
    try:
        target = os.readlink(current)
    except FileNotFoundError:
        return None
    except OSError:  # not a symlink (a plain directory installed by hand): its own path is the target
        target = str(current)
    try:
        st = os.stat(current / artifact.MANIFEST_FILE)
    except OSError:
        return (target, -1, -1, -1)
    return (target, st.st_ino, st.st_mtime_ns, st.st_size)


class ModelStore:
    """One per worker process (see ``store_for``). Thread-safe, so the threads pool works too."""

    def __init__(
        self,
        current: Path,
        secret: bytes | None,
        *,
        require_signature: bool = True,
        on_load: Callable[[str | None, str | None, bool], None] | None = None,
    ) -> None:
        """``on_load(old_version, new_version, ok)`` is called after every load attempt (metrics hook)."""
        self.current = current
        self.secret = secret
        self.require_signature = require_signature
        self.model: LoadedModel | None = None
        self.last_error: str | None = None
        self.loads = 0
        self._failed_key: ReleaseKey | None = None
        self._lock = threading.Lock()
        self._on_load = on_load

    def refresh(self) -> LoadedModel | None:
        """Load the release ``current`` points to if it is not the loaded one; return the model in use."""
        key = release_key(self.current)
        with self._lock:
            if self.model is not None and key == self.model.key:
                return self.model
            if key is not None and key == self._failed_key:
                return self.model  # this release already failed: do not re-hash a 100 MB file per task
            if key is None:
                self.last_error = f"no model installed: {self.current} does not exist"
                self._failed_key = None
                return self.model
            self._load(key)
            return self.model

    def _load(self, key: ReleaseKey) -> None:
        started = time.perf_counter()
        source = Path(os.path.realpath(self.current))
        try:
            pipeline, manifest = artifact.load_version(
                source, self.secret, require_signature=self.require_signature
            )
        except artifact.ArtifactError as exc:
            self._failed_key = key
            self.last_error = f"model at {self.current} unusable: {exc}"
            if self.model is not None:
                log.error("%s; still serving %s", self.last_error, self.model.version)
            else:
                log.error("%s", self.last_error)
            self._notify(self.model.version if self.model else None, None, ok=False)
            return
        # The release may have been switched again while we hashed it: the key we record is re-read after
        # loading, and if it moved, the next task loads again. Never record a key newer than what was loaded.
        if release_key(self.current) != key:
            log.info("current moved while loading %s; will reload before the next task", source)
        old = self.model.version if self.model else None
        compiled = compile_for_serving(pipeline, manifest.version)
        self.model = LoadedModel(pipeline, manifest, source, key, time.perf_counter() - started, compiled)
        self.loads += 1
        self._failed_key = None
        self.last_error = None
        log.info("loaded model %s from %s in %.2f s (pid %d)", manifest.version, source,
                 self.model.load_seconds, os.getpid())
        self._notify(old, manifest.version, ok=True)

    def _notify(self, old: str | None, new: str | None, *, ok: bool) -> None:
        if self._on_load is not None:
            try:
                self._on_load(old, new, ok)
            except Exception:  # a metrics hook must never break serving
                log.exception("model load hook failed")

    def get(self) -> LoadedModel:
        """The model for the next task (after the cheap check), or ModelUnavailable with a one-line reason."""
        model = self.refresh()
        if model is None:
            raise ModelUnavailable(self.last_error or f"no model loaded from {self.current}")
        return model

    def status(self) -> dict[str, Any]:
        """What the ping task answers for /readyz."""
        model = self.refresh()
        return {
            "model_version": model.version if model else None,
            "error": self.last_error,
            "pid": os.getpid(),
            "loads": self.loads,
        }


def compile_for_serving(pipeline: Any, version: str) -> Any:
    """The compiled form of a freshly loaded pipeline, or None (logged) when scikit-learn must serve it.

    Never raises: a model that loads but cannot be compiled is still a working model.
    """
    from model_serving import compiled_forest

    started = time.perf_counter()
    try:
        compiled = compiled_forest.compile_pipeline(pipeline)
    except compiled_forest.NotCompilable as exc:
        log.info("model %s served by scikit-learn (not compiled: %s)", version, exc)
        return None
    except Exception:  # an unexpected shape must not make a loadable model unusable
        log.exception("compiling model %s failed; served by scikit-learn", version)
        return None
    log.info("model %s compiled (%d trees, %d nodes) and verified in %.2f s (pid %d)", version,
             compiled.forest.n_trees, len(compiled.forest.value), time.perf_counter() - started, os.getpid())
    return compiled


_stores: dict[tuple[str, bytes | None, bool], ModelStore] = {}
_stores_lock = threading.Lock()


def store_for(
    current: Path,
    secret: bytes | None,
    *,
    require_signature: bool = True,
    on_load: Callable[[str | None, str | None, bool], None] | None = None,
) -> ModelStore:
    """The process-wide store for this configuration (created on first use, after any fork)."""
    key = (str(current), secret, require_signature)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ModelStore(
                current, secret, require_signature=require_signature, on_load=on_load
            )
        return store
