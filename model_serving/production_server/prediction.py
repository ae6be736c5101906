"""What a prediction request does, shared by the form and the JSON API: look up, dispatch, rank, log.

The web process never unpickles a model (docs/contracts.md §5): it sends one ``predict_batch`` task
through RabbitMQ and waits for the answer with a timeout. Every failure of the whole request becomes a
``PredictionError`` carrying the HTTP status and one line (503: no broker or no model; 504: no answer in
time); an item that cannot be predicted (unknown repository) is a per-item error and the others are still
answered.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import KombuError, OperationalError

from model_serving.production_server import metrics, prediction_log
from model_serving.production_server.inputs import RequestItem
from model_serving.production_server.lookup import (
    CallMeter,
    LookupFailed,
    RepositoryLookup,
    RepositoryNotFound,
)
from model_serving.production_server.settings import ServingSettings
from model_serving.production_server.tasks import predict_batch

log = logging.getLogger(__name__)

#: Errors that mean "the broker is not there" whichever layer raises them (kombu, py-amqp, sockets).
BROKER_ERRORS: tuple[type[BaseException], ...] = (OperationalError, KombuError, ConnectionError, OSError)


class PredictionError(Exception):
    """The whole request failed: ``status`` for HTTP, one-line message, optional details."""

    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}


@dataclass
class ItemResult:
    full_name: str | None
    predicted: float | None = None
    low: float | None = None
    high: float | None = None
    actual: int | None = None
    rank: int | None = None
    error: str | None = None
    #: HTTP-style status of a per-item error, so a program can tell "no such repository" (404) from
    #: "GitHub could not be asked right now" (503) without parsing the message.
    error_status: int | None = None
    #: "given" (the client's columns), or where a looked-up row came from: "dataset" (the served model's
    #: training data), "cache" or "github".
    source: str = "given"
    #: When a looked-up row's data was collected (the dataset's moment for "dataset").
    collected_at: str | None = None
    #: How the result page names an item sent without ``full_name`` (the form's "Repository 3 (by hand)").
    label: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """actual / predicted: above 1 means more stars than the repository's characteristics warrant."""
        if self.actual is None or not self.predicted:
            return None
        return self.actual / self.predicted

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"full_name": self.full_name, "error": self.error, "status": self.error_status}
        return {
            "full_name": self.full_name,
            "predicted_stars": self.predicted,
            "interval": [self.low, self.high],
            "actual_stars": self.actual,
            "rank": self.rank,
            "source": self.source,
            "collected_at": self.collected_at,
        }


@dataclass
class Outcome:
    model_version: str
    items: list[ItemResult]

    def ranked(self) -> list[ItemResult]:
        """Predicted items by rank, then the ones that could not be predicted."""
        good = sorted((i for i in self.items if i.rank is not None), key=lambda i: i.rank or 0)
        return good + [i for i in self.items if i.rank is None]

    def to_json(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "predictions": [i.to_json() for i in self.items]}


def _resolve(items: Sequence[RequestItem], lookup: RepositoryLookup, *, fresh: bool = False,
             meter: CallMeter | None = None) -> list[ItemResult]:
    """Turn every item into a row to predict (looked up when only named) or a per-item error."""
    results = [ItemResult(full_name=i.full_name, actual=i.actual_stars) for i in items]
    names = [i.full_name for i in items if i.lookup and i.full_name]
    found = iter(lookup.lookup_many(names, fresh=fresh, meter=meter)) if names else iter(())
    for item, result in zip(items, results, strict=True):
        if not item.lookup:
            result.inputs = dict(item.row or {})
            continue
        answer = next(found)
        if isinstance(answer, RepositoryNotFound | LookupFailed):
            result.error = str(answer)
            result.error_status = 404 if isinstance(answer, RepositoryNotFound) else 503
            continue
        result.source = answer.source
        result.inputs = answer.row
        result.collected_at = answer.row.get("collected_at")
        result.full_name = answer.row.get("full_name") or item.full_name
        if result.actual is None:
            result.actual = answer.row.get("stargazers_count")
    return results


def _dispatch(rows: list[dict[str, Any]], settings: ServingSettings) -> dict[str, Any]:
    """Send predict_batch and wait; every way it can fail becomes a PredictionError with a fitting status."""
    started = time.perf_counter()
    try:
        async_result = predict_batch.apply_async(args=[rows], expires=settings.task_timeout)
    except BROKER_ERRORS as exc:
        metrics.TASK_OUTCOMES.labels(outcome="broker_error").inc()
        reset_result_consumer(predict_batch.app)
        raise PredictionError(503, "message broker unreachable: the prediction could not be queued",
                           {"reason": type(exc).__name__}) from None
    try:
        answer = async_result.get(timeout=settings.task_timeout, propagate=True)
    except CeleryTimeout:
        metrics.TASK_OUTCOMES.labels(outcome="timeout").inc()
        raise PredictionError(504, f"no prediction worker answered within {settings.task_timeout:g} s",
                           {"timeout_seconds": settings.task_timeout}) from None
    except (TimeLimitExceeded, SoftTimeLimitExceeded):
        # Soft: raised where the task was (e.g. a model load) and not turned into an answer by the task.
        metrics.TASK_OUTCOMES.labels(outcome="timeout").inc()
        raise PredictionError(504, "the prediction exceeded the worker's time limit") from None
    except BROKER_ERRORS as exc:
        metrics.TASK_OUTCOMES.labels(outcome="broker_error").inc()
        reset_result_consumer(predict_batch.app)
        raise PredictionError(503, "message broker connection lost while waiting for the prediction",
                           {"reason": type(exc).__name__}) from None
    except Exception as exc:  # the task raised in the worker: a defect, reported without its traceback
        metrics.TASK_OUTCOMES.labels(outcome="task_error").inc()
        log.error("predict_batch failed in the worker: %s: %s", type(exc).__name__, exc)
        raise PredictionError(500, f"the prediction failed in the worker: {type(exc).__name__}") from None
    finally:
        metrics.TASK_WAIT.observe(time.perf_counter() - started)
    if not isinstance(answer, dict):
        metrics.TASK_OUTCOMES.labels(outcome="task_error").inc()
        raise PredictionError(500, "the prediction worker answered something unexpected")
    if "error" in answer:
        code = answer.get("code")
        metrics.TASK_OUTCOMES.labels(outcome="no_model" if code == "no_model" else "timeout").inc()
        status = 503 if code == "no_model" else 504
        raise PredictionError(status, str(answer["error"]), {"code": code})
    metrics.TASK_OUTCOMES.labels(outcome="success").inc()
    return answer


def reset_result_consumer(celery_app: Celery) -> None:
    """Drop this thread's result backend so the next request opens a fresh reply consumer.

    Why: the rpc:// backend keeps one consumer on a reply queue per thread; after the broker restarted, that
    consumer's channel is dead and would fail every later request of this process. Celery keeps the backend in
    a thread-local (``app._local``), so forgetting it here recreates it, connected anew, on next use.
    """
    local = getattr(celery_app, "_local", None)
    backend = getattr(local, "backend", None)
    if backend is None:
        return
    try:
        consumer = getattr(backend, "result_consumer", None)
        if consumer is not None:
            consumer.stop()
    except Exception:  # the old connection is already broken; closing it may fail in many ways
        log.debug("closing the old result consumer failed", exc_info=True)
    with contextlib.suppress(AttributeError):
        del local.backend


def predict(items: Sequence[RequestItem], settings: ServingSettings, lookup: RepositoryLookup, *,
            fresh: bool = False, meter: CallMeter | None = None) -> Outcome:
    """Resolve, predict in one task, rank (1 = most stars) and log; per-item errors stay in place.

    ``fresh``: named repositories are not answered from the served dataset; ``meter`` counts the GitHub calls.
    """
    results = _resolve(items, lookup, fresh=fresh, meter=meter)
    to_predict = [r for r in results if r.error is None]
    answer = _dispatch([r.inputs for r in to_predict], settings)
    version = str(answer.get("model_version"))
    values = answer.get("predictions") or []
    if len(values) != len(to_predict):
        raise PredictionError(500, "the prediction worker answered the wrong number of predictions")
    for result, (point, low, high) in zip(to_predict, values, strict=True):
        result.predicted, result.low, result.high = float(point), float(low), float(high)
    order = sorted(range(len(to_predict)), key=lambda k: -(to_predict[k].predicted or 0.0))
    for rank, k in enumerate(order, start=1):
        to_predict[k].rank = rank
    metrics.PREDICTIONS.labels(model_version=version).inc(len(to_predict))
    now = datetime.now(UTC)
    prediction_log.append(settings.prediction_log, (
        prediction_log.record(model_version=version, inputs=r.inputs, predicted=r.predicted or 0.0,
                              interval=(r.low or 0.0, r.high or 0.0), actual=r.actual, source=r.source,
                              now=now)
        for r in to_predict
    ), max_bytes=settings.prediction_log_max_bytes, backups=settings.prediction_log_backups)
    return Outcome(version, results)
