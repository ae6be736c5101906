"""Prometheus metrics of the web processes and the Celery workers, added up across processes.

Why multiprocess mode: gunicorn runs several web processes and Celery several worker processes; a scrape hits
one of them. With ``PROMETHEUS_MULTIPROC_DIR`` set (before prometheus_client is imported, which is why the
process managers put it in the environment), every process writes its samples to files there and ``/metrics``
aggregates them all. Without it (a single process, the unit tests) the default registry is used.

The operator of the multiprocess directory must empty it before the stack starts and call
``mark_process_dead(pid)`` when a process exits (gunicorn's ``child_exit`` hook; Celery workers do it in
``worker_process_shutdown``), so live gauges do not count dead processes.

Nothing here is a feature of the model or carries request content: labels are route names, status codes,
outcomes and the model version, so the metrics cannot leak inputs.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "mark_process_dead", "render"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "stargazer_http_requests",
    "HTTP requests answered by the Flask app, by route and status.",
    ["method", "endpoint", "status"],
)
LATENCY = Histogram(
    "stargazer_http_request_duration_seconds",
    "Time the Flask app took to answer, by route.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
TASK_OUTCOMES = Counter(
    "stargazer_task_outcomes",
    "predict_batch tasks as seen by the web process: success, no_model, timeout, broker_error, task_error.",
    ["outcome"],
)
TASK_WAIT = Histogram(
    "stargazer_task_roundtrip_seconds",
    "From publishing predict_batch to its answer (broker + queue + worker), seen by the web process.",
    buckets=_LATENCY_BUCKETS,
)
PREDICTIONS = Counter(
    "stargazer_predictions",
    "Repositories predicted (one per item of a successful answer), by model version.",
    ["model_version"],
)
LOOKUPS = Counter(
    "stargazer_github_lookups",
    "owner/name lookups: cache_hit, found, not_found, error.",
    ["outcome"],
)
WORKER_TASKS = Counter(
    "stargazer_worker_tasks",
    "Tasks run by Celery worker processes, by task and outcome.",
    ["task", "outcome"],
)
WORKER_TASK_SECONDS = Histogram(
    "stargazer_worker_task_duration_seconds",
    "Time inside a worker process per predict_batch (model check + prediction).",
    buckets=_LATENCY_BUCKETS,
)
MODEL_INFO = Gauge(
    "stargazer_model_info",
    "1 for the model version a live worker process has loaded (0 once it switched away).",
    ["version"],
    multiprocess_mode="livemax",
)
MODEL_LOADS = Counter(
    "stargazer_model_loads",
    "Model loads by worker processes: ok or failed.",
    ["outcome"],
)


def render(multiprocess_dir: Path | None) -> bytes:
    """The exposition text: all processes' samples in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, from
    the settings), else this process's."""
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_process_dead(pid: int, multiprocess_dir: Path | None) -> None:
    """Drop a dead process's live gauges (call from gunicorn's child_exit and Celery's process shutdown)."""
    if multiprocess_dir is not None:
        multiprocess.mark_process_dead(pid)


def model_switched(old: str | None, new: str | None) -> None:
    """Record in this worker process which model version it now serves."""
    if old and old != new:
        MODEL_INFO.labels(version=old).set(0)
    if new:
        MODEL_INFO.labels(version=new).set(1)
