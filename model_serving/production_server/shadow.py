"""Shadow scoring in a Celery worker process: every request is also scored by the ``shadow`` release, never
answered with it.

``deploy --shadow`` makes post-receive point ``$STARGAZER_MODEL_DIR/shadow`` at a validated candidate (see
docs/deploy.md). Each ``predict_batch`` then hands its rows and the serving model's answer to this process's
``ShadowScorer`` and returns at once; a thread of the process scores the same rows with the shadow and appends
one line to the shadow log (``shadow_log``).

Why a thread and a bounded queue, not scoring inline: the answer must not wait for the shadow, and a shadow
that is slow, hangs or fails must not touch it. ``submit`` costs one ``readlink`` and a ``put_nowait``: when
the thread is still busy with an earlier request (or loading the shadow), the request is not shadowed and
counted (``dropped_before`` of the next line). Its only cost to serving is CPU the thread takes between tasks
(measured in bench/shadow.py). A scoring stuck for longer than ``STUCK_SECONDS`` is logged once.

Why the serving model's ``ModelStore`` loads the shadow: the same rules apply to it, in the same code: HMAC
signature and sha256 checked before anything is unpickled, the compiled path built once per load, a release
that fails marked failed until the link moves, reloaded when ``shadow`` is switched (the same cheap stat).
The load runs in the scorer's thread, so no task waits for it either.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from model_serving import releases
from model_serving.production_server import shadow_log
from model_serving.production_server.model_store import LoadedModel, ModelStore, release_key

log = logging.getLogger(__name__)

#: Requests waiting for the shadow thread per worker process (beyond it they are not shadowed, and counted).
QUEUE_SIZE: Final = 4
#: A shadow scoring running longer than this is logged (once per request) as stuck.
STUCK_SECONDS: Final = 10.0


@dataclass(frozen=True)
class Job:
    rows: list[dict[str, Any]]
    serving_version: str
    serving: list[float]
    serving_seconds: float


class ShadowScorer:
    """One per worker process (``scorer_for``): the shadow's store, its thread and its queue."""

    def __init__(self, model_dir: Path, public_key: bytes | None, *, require_signature: bool, log_path: Path,
                 max_bytes: int, backups: int) -> None:
        self.link = model_dir / releases.SHADOW_LINK
        self.public_key = public_key
        self.require_signature = require_signature
        self.log_path = log_path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.Queue[Job] = queue.Queue(QUEUE_SIZE)
        self._store: ModelStore | None = None
        self._dropped = 0
        self._busy_since: float | None = None
        self._stuck_logged = False

    def submit(self, rows: Sequence[dict[str, Any]], serving_version: str, serving: Sequence[float],
               serving_seconds: float) -> bool:
        """Queue a request for the shadow; False when there is no shadow or it is busy (never blocks)."""
        try:
            target = os.readlink(self.link)
        except OSError:  # no shadow (the usual case): forget a shadow model this process may still hold
            if self._store is not None:
                with self._lock:
                    self._store = None
            return False
        if Path(target).name == serving_version or not rows:
            return False  # promoted already, or nothing to compare
        self._ensure_thread()
        try:
            job = Job(list(rows), serving_version, [float(x) for x in serving], serving_seconds)
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            self._warn_if_stuck()
            return False
        return True

    def _ensure_thread(self) -> None:
        """Start the thread in THIS process (threads do not survive the prefork pool's fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(QUEUE_SIZE)
            self._busy_since = None
            threading.Thread(target=self._run, name="stargazer-shadow", daemon=True).start()
            self._pid = os.getpid()

    def _warn_if_stuck(self) -> None:
        started = self._busy_since
        if started is not None and not self._stuck_logged and time.monotonic() - started > STUCK_SECONDS:
            self._stuck_logged = True
            log.error("shadow scoring has been running for %.0f s (pid %d); requests are answered without it",
                      time.monotonic() - started, os.getpid())

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            self._busy_since, self._stuck_logged = time.monotonic(), False
            try:
                self._score(job)
            except Exception:  # the thread must outlive any failure: the next request is shadowed again
                log.exception("shadow scoring failed")
            finally:
                self._busy_since = None

    def _shadow_store(self) -> ModelStore:
        with self._lock:
            if self._store is None:
                self._store = ModelStore(self.link, self.public_key, require_signature=self.require_signature)
            return self._store

    def _score(self, job: Job) -> None:
        key = release_key(self.link)
        if key is None:
            return  # the shadow was cleared after the request was queued
        store = self._shadow_store()
        model = store.refresh()  # loads (signature, sha256, compile) in this thread when the link moved
        shadow_version = Path(key[0]).name
        points: list[float] | None = None
        seconds: float | None = None
        error: str | None = None
        if model is None or model.key != key:
            error = f"shadow {shadow_version} not loaded: {store.last_error or 'loading'}"
        else:
            started = time.perf_counter()
            try:
                points = predict_points(model, job.rows)
                seconds = time.perf_counter() - started
            except Exception as exc:
                error = f"shadow {shadow_version} failed to predict: {type(exc).__name__}: {exc}"[:300]
                log.warning("%s (pid %d); the answer was not affected", error, os.getpid())
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        entry = shadow_log.record(
            serving_version=job.serving_version, shadow_version=shadow_version, serving=job.serving,
            shadow=points, serving_seconds=job.serving_seconds, shadow_seconds=seconds, error=error,
            dropped_before=dropped, pid=os.getpid(),
        )
        shadow_log.append(self.log_path, entry, max_bytes=self.max_bytes, backups=self.backups)


def predict_points(model: LoadedModel, rows: list[dict[str, Any]]) -> list[float]:
    """The point predictions of ``model`` for the task's rows, by the same path the serving model uses."""
    if model.compiled is not None:
        point, _, _ = model.compiled.predict_rows(rows)
    else:
        import pandas as pd

        from model_serving import features

        point, _, _ = features.predict_with_interval(model.pipeline, pd.DataFrame.from_records(rows))
    if len(point) != len(rows):
        raise ValueError(f"{len(point)} predictions for {len(rows)} rows")
    return [float(x) for x in point]


_scorers: dict[tuple[str, bytes | None, bool], ShadowScorer] = {}
_scorers_lock = threading.Lock()


def scorer_for(settings: Any) -> ShadowScorer:
    """The process-wide scorer for these ``ServingSettings`` (its thread starts with the first shadow)."""
    key = (str(settings.model_dir), settings.deploy_public_key, settings.require_signature)
    with _scorers_lock:
        scorer = _scorers.get(key)
        if scorer is None:
            scorer = _scorers[key] = ShadowScorer(
                settings.model_dir, settings.deploy_public_key, require_signature=settings.require_signature,
                log_path=shadow_log.path_for(settings.model_dir),
                max_bytes=settings.prediction_log_max_bytes, backups=settings.prediction_log_backups,
            )
        return scorer


def submit_quietly(settings: Any, rows: Sequence[dict[str, Any]], serving_version: str,
                   serving: Sequence[float], serving_seconds: float) -> None:
    """``predict_batch``'s one call: whatever goes wrong here is logged, and the answer goes out unchanged."""
    try:
        scorer_for(settings).submit(rows, serving_version, serving, serving_seconds)
    except Exception:
        log.exception("the request could not be handed to the shadow; answered without it")
