"""Celery tasks run by the workers: ``predict_batch`` and the readiness ``ping``.

Both answer plain JSON (no pickle crosses the broker). An unusable model is an ANSWER (``{"error", "code"}``),
not an exception, so the web process can say exactly why (a 503 with the model's one-line reason) instead of a
generic task failure.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pandas as pd
from celery import current_app as current_celery_app
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_process_shutdown
from flask import current_app

from model_serving import features
from model_serving.production_server import metrics, shadow
from model_serving.production_server.model_store import ModelStore, ModelUnavailable, store_for
from model_serving.production_server.settings import ServingSettings

log = logging.getLogger(__name__)

PREDICT_TASK = "stargazer.predict_batch"
PING_TASK = "stargazer.ping"


def _on_load(old: str | None, new: str | None, ok: bool) -> None:
    metrics.MODEL_LOADS.labels(outcome="ok" if ok else "failed").inc()
    if ok:
        metrics.model_switched(old, new)


def model_store(settings: ServingSettings | None = None) -> ModelStore:
    settings = settings or current_app.config["STARGAZER"]
    return store_for(settings.current_link, settings.deploy_public_key,
                     require_signature=settings.require_signature, on_load=_on_load)


@shared_task(name=PREDICT_TASK, acks_late=True, reject_on_worker_lost=True)
def predict_batch(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Predict stars for dataset rows (docs/contracts.md §1 columns; absent = unknown), in the order given.

    Answer: ``{"model_version", "predictions": [[point, p10, p90], ...]}``, or ``{"error", "code",
    "model_version"}`` when no model is usable or the prediction ran out of time.
    """
    started = time.perf_counter()
    store = model_store()
    try:
        model = store.get()
    except ModelUnavailable as exc:
        metrics.WORKER_TASKS.labels(task="predict_batch", outcome="no_model").inc()
        return {"error": str(exc), "code": "no_model", "model_version": None}
    if not rows:  # every item failed its lookup: the answer still names the model version
        return {"model_version": model.version, "predictions": [], "pid": os.getpid()}
    try:
        scoring_started = time.perf_counter()
        if model.compiled is not None:  # built once per loaded model by the store: no DataFrame, no sklearn
            point, low, high = model.compiled.predict_rows(rows)
        else:
            point, low, high = features.predict_with_interval(model.pipeline, pd.DataFrame.from_records(rows))
        scoring_seconds = time.perf_counter() - scoring_started
    except SoftTimeLimitExceeded:
        metrics.WORKER_TASKS.labels(task="predict_batch", outcome="timeout").inc()
        return {"error": "prediction exceeded the worker's time limit", "code": "timeout",
                "model_version": model.version}
    # When a shadow is set, a thread of this process scores the same rows with it; the answer never waits.
    shadow.submit_quietly(current_app.config["STARGAZER"], rows, model.version, point, scoring_seconds)
    metrics.WORKER_TASKS.labels(task="predict_batch", outcome="success").inc()
    metrics.WORKER_TASK_SECONDS.observe(time.perf_counter() - started)
    return {
        "model_version": model.version,
        "predictions": [[float(p), float(lo), float(hi)] for p, lo, hi in zip(point, low, high, strict=True)],
        "pid": os.getpid(),
    }


@shared_task(name=PING_TASK, acks_late=False)
def ping() -> dict[str, Any]:
    """For /readyz: this worker process's model version (after the same cheap check a prediction does)."""
    metrics.WORKER_TASKS.labels(task="ping", outcome="success").inc()
    return model_store().status()


@worker_process_init.connect
def _load_model_at_process_start(**_: Any) -> None:
    """Load the model once per worker process, before its first task (docs/contracts.md §5)."""
    flask_app = getattr(current_celery_app, "flask_app", None)
    if flask_app is None:
        return
    with flask_app.app_context():
        model_store().refresh()


@worker_process_shutdown.connect
def _forget_process_metrics(**_: Any) -> None:
    flask_app = getattr(current_celery_app, "flask_app", None)
    if flask_app is not None:
        metrics.mark_process_dead(os.getpid(), flask_app.config["STARGAZER"].metrics_dir)
