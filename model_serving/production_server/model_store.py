"""The model of one Celery worker process: loaded once, reloaded between tasks when ``current`` moves.

Why this shape (docs/contracts.md §4-5):
- A 45-140 MB pipeline loaded per task (or per thread) multiplies memory and latency, so each worker process
  holds exactly one, loaded at ``worker_process_init`` (or lazily by the first task, for the solo pool).
- The deploy hook only switches the ``current`` symlink; it has no broker credentials and restarts nothing.
  Before every task the store does a cheap check (``readlink`` plus one ``stat`` of ``model.json``) and, when
  the release changed, loads the new one BETWEEN tasks: no restart, no lost or half-served task.
- Loading goes through ``artifact.load_version``, which checks the HMAC signature and the sha256 before
  anything is unpickled. The web process never imports this module's loading path.
- The compiled inference path (``compiled_pipeline``) is built here, once per loaded model, next to the
  pipeline: a 5-repository prediction then costs well under a millisecond of CPU instead of ~85 ms. A pipeline
  that cannot be compiled (another regressor, or a compiled answer that differs on the probe rows) is served
  by scikit-learn; the store logs why.
- A release that fails to load never replaces a working model: the worker keeps answering with the version it
  has (every answer names it) and reports the failure in ``last_error``; with no usable model at all every
  task answers a one-line error, which the web turns into a 503.
- Only a verdict on the release itself (bad signature or sha256, incompatible manifest, bytes that do not
  unpickle into a model) marks it failed until ``current`` moves again. A load that was interrupted (Celery's
  soft time limit fires inside the task that happened to load it, an I/O error, memory running out) says
  nothing about the model: it is retried with exponential backoff, in a thread of the worker process (outside
  any task's time limit, while the current model keeps answering), and logged each time.
- ``last_error`` holds the whole story (paths, exception text) for the worker's log and the allowlisted
  ``/readyz`` detail; ``public_reason`` is the short line anyone may read (the API's 503, public ``/readyz``).
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

from celery.exceptions import SoftTimeLimitExceeded

from model_serving import artifact

log = logging.getLogger(__name__)

#: Errors that interrupt a load without saying anything about the release: it is loaded again later.
TRANSIENT_LOAD_ERRORS: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded, OSError, MemoryError)
#: Backoff between attempts at a release whose load was interrupted (seconds: first wait, then doubling).
RETRY_FIRST_DELAY = 1.0
RETRY_MAX_DELAY = 60.0

#: The short lines anyone may read (no paths, no exception text).
NO_RELEASE = "no model installed yet"
REFUSED = "the installed model release was refused (see the worker's log)"
RETRYING = "loading the installed model release was interrupted; it is retried"

#: (target of ``current``, inode, mtime_ns, size of its model.json): changes whenever a release is switched.
ReleaseKey = tuple[str, int, int, int]


class ModelUnavailable(Exception):
    """No usable model in this worker process; the message is one public line for the API's 503."""


@dataclass(frozen=True)
class RetryState:
    """A release whose load was interrupted: how many attempts failed so far, and when to try it again."""

    key: ReleaseKey
    failures: int
    delay: float
    due: float  # time.monotonic() of the next attempt

    @classmethod
    def after(cls, previous: RetryState | None, key: ReleaseKey) -> RetryState:
        """The state after one more interrupted attempt at ``key`` (the wait doubles, up to a minute)."""
        failures = previous.failures + 1 if previous is not None and previous.key == key else 1
        delay = min(RETRY_MAX_DELAY, RETRY_FIRST_DELAY * 2 ** (failures - 1))
        return cls(key, failures, delay, time.monotonic() + delay)


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Any
    manifest: artifact.Manifest
    source: Path
    key: ReleaseKey
    load_seconds: float
    #: ``compiled_pipeline.CompiledModel`` of ``pipeline``, or None when it is served by scikit-learn.
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
        public_key: bytes | None,
        *,
        require_signature: bool = True,
        on_load: Callable[[str | None, str | None, bool], None] | None = None,
    ) -> None:
        """``on_load(old_version, new_version, ok)`` is called after every load attempt (metrics hook)."""
        self.current = current
        self.public_key = public_key
        self.require_signature = require_signature
        self.model: LoadedModel | None = None
        self.last_error: str | None = None
        self.public_reason: str | None = None
        self.loads = 0
        self._failed_key: ReleaseKey | None = None
        self._retry: RetryState | None = None
        #: The release a background retry is loading (None: no load running outside tasks).
        self._loading: ReleaseKey | None = None
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
                self.public_reason = NO_RELEASE
                self._failed_key = self._retry = None
                return self.model
            retry = self._retry
            if retry is not None and retry.key == key:
                if time.monotonic() >= retry.due and self._loading is None:
                    self._load_in_background(key)
                return self.model  # meanwhile, the model this process has (if any) keeps answering
            # A new release: loaded in this task, so a request sent after the switch is answered by it.
            self._record(key, self._attempt(key))
            return self.model

    def _load_in_background(self, key: ReleaseKey) -> None:
        """Retry an interrupted load in a thread of this process, outside any task and its time limit.

        Why: a load that ran into the soft time limit once would run into it again in the next task (a big
        model on a busy host takes as long each time), pinning the process to the old model for good. Celery
        delivers the soft limit to the main thread only; tasks keep being answered by the current model.
        """
        self._loading = key

        def run() -> None:
            outcome = self._attempt(key)
            with self._lock:
                self._loading = None
                self._record(key, outcome)

        threading.Thread(target=run, name="stargazer-model-load", daemon=True).start()

    def _attempt(self, key: ReleaseKey) -> LoadedModel | BaseException:
        """Load and compile the release ``current`` points to; the outcome, never raised (state untouched)."""
        started = time.perf_counter()
        source = Path(os.path.realpath(self.current))
        try:
            pipeline, manifest = load_release(source, self.public_key,
                                              require_signature=self.require_signature)
            compiled = compile_for_serving(pipeline, manifest.version)
        except (artifact.ArtifactError, *TRANSIENT_LOAD_ERRORS) as exc:
            return exc
        return LoadedModel(pipeline, manifest, source, key, time.perf_counter() - started, compiled)

    def _record(self, key: ReleaseKey, outcome: LoadedModel | BaseException) -> None:
        """Make a load attempt's outcome the store's state (called with the lock held)."""
        serving = f"; still serving {self.model.version}" if self.model is not None else ""
        old = self.model.version if self.model else None
        if isinstance(outcome, artifact.ArtifactError):
            self._failed_key, self._retry = key, None
            self.last_error = f"model at {self.current} unusable: {outcome}"
            self.public_reason = REFUSED
            log.error("%s%s", self.last_error, serving)
            self._notify(old, None, ok=False)
            return
        if isinstance(outcome, BaseException):
            retry = self._retry = RetryState.after(self._retry, key)
            reason = "the task's soft time limit" if isinstance(outcome, SoftTimeLimitExceeded) else (
                f"{type(outcome).__name__}: {outcome}")
            self.last_error = (f"loading the model at {self.current} was interrupted by {reason} "
                               f"(attempt {retry.failures}); retrying in {retry.delay:g} s, outside tasks")
            self.public_reason = RETRYING
            log.warning("%s%s (pid %d)", self.last_error, serving, os.getpid())
            self._notify(old, None, ok=False)
            return
        # The release may have been switched again while we hashed it: the key we record is re-read after
        # loading, and if it moved, the next task loads again. Never record a key newer than what was loaded.
        if release_key(self.current) != key:
            log.info("current moved while loading %s; will reload before the next task", outcome.source)
        self.model = outcome
        self.loads += 1
        self._failed_key = self._retry = None
        self.last_error = self.public_reason = None
        log.info("loaded model %s from %s in %.2f s (pid %d)", outcome.version, outcome.source,
                 outcome.load_seconds, os.getpid())
        self._notify(old, outcome.version, ok=True)

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
            raise ModelUnavailable(self.public_reason or "no model loaded yet")
        return model

    def status(self) -> dict[str, Any]:
        """What the ping task answers for /readyz (``error`` is detail; ``reason`` may be shown to anyone)."""
        model = self.refresh()
        retry = self._retry
        return {
            "model_version": model.version if model else None,
            "error": self.last_error,
            "reason": self.public_reason,
            "retry_in": round(max(0.0, retry.due - time.monotonic()), 1) if retry is not None else None,
            "loading": self._loading is not None,
            "pid": os.getpid(),
            "loads": self.loads,
        }


def load_release(
    source: Path, public_key: bytes | None, *, require_signature: bool
) -> tuple[Any, artifact.Manifest]:
    """``artifact.load_version``, but an interrupted unpickling stays an interruption, not a verdict.

    Every check before unpickling (signature, sha256, compatibility) is ``artifact.validate_version``'s, so
    only signed bytes reach joblib. ``artifact.load_version`` turns ANY exception of ``joblib.load`` into an
    ArtifactError (a corrupt pickle can raise nearly anything); the store must tell the time limit firing or
    a read error (retry) from bytes that are no model (verdict).
    """
    import joblib

    manifest = artifact.validate_version(source, public_key, require_signature=require_signature)
    try:
        pipeline = joblib.load(source / artifact.MODEL_FILE)
    except TRANSIENT_LOAD_ERRORS:
        raise
    except Exception as exc:  # a corrupt pickle can raise nearly anything
        raise artifact.ArtifactError(
            f"{artifact.MODEL_FILE} cannot be loaded: {type(exc).__name__}: {exc}") from None
    if not hasattr(pipeline, "predict"):
        raise artifact.ArtifactError(f"{artifact.MODEL_FILE} holds {type(pipeline).__name__}, not a model")
    return pipeline, manifest


def compile_for_serving(pipeline: Any, version: str) -> Any:
    """The compiled form of a freshly loaded pipeline, or None (logged) when scikit-learn must serve it.

    Raises only what interrupts a load (TRANSIENT_LOAD_ERRORS): a model that loads but cannot be compiled is
    still a working model.
    """
    from model_serving.production_server import compiled_pipeline

    started = time.perf_counter()
    try:
        compiled = compiled_pipeline.compile_pipeline(pipeline)
    except compiled_pipeline.NotCompilable as exc:
        log.info("model %s served by scikit-learn (not compiled: %s)", version, exc)
        return None
    except TRANSIENT_LOAD_ERRORS:  # interrupted (the time limit fired): the whole load is tried again later
        raise
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
    public_key: bytes | None,
    *,
    require_signature: bool = True,
    on_load: Callable[[str | None, str | None, bool], None] | None = None,
) -> ModelStore:
    """The process-wide store for this configuration (created on first use, after any fork)."""
    key = (str(current), public_key, require_signature)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ModelStore(
                current, public_key, require_signature=require_signature, on_load=on_load
            )
        return store
