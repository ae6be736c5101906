"""``/readyz``'s probe: is the broker reachable, and does a worker answer with a loaded model?

Why a cache: the probe opens a broker connection and sends a ``ping`` task. ``/readyz`` is reachable by
anyone through nginx, so a probe per request would let any client make the web process open broker
connections and queue tasks as fast as it can send requests. One probe runs at a time per web process, and
its answer is reused for ``ready_cache_seconds``; callers arriving while it runs wait and share its answer.

Why two views of one answer: the full report (the worker's error text, with paths, its pid, the broker's error
class) helps an operator and tells an attacker how the host is laid out. ``Readiness.public`` is the status
and one short reason from a fixed set of phrases; ``Readiness.detailed`` adds the report, and observability
shows it only to requests nginx marked as coming from an allowlisted address (``nginx_readyz_detail_allow``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from flask import Flask

from model_serving.production_server.prediction import BROKER_ERRORS, reset_result_consumer
from model_serving.production_server.settings import ServingSettings
from model_serving.production_server.tasks import ping

#: The public reasons (no paths, pids or exception text).
READY = "a worker answered with a loaded model"
BROKER_DOWN = "the message broker is unreachable"
NO_WORKER = "no worker answered in time"
WORKER_FAILED = "the worker could not answer"
NO_MODEL = "no model loaded"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    #: Broker, worker (pid, loads, retry), model version and error text: for allowlisted addresses only.
    report: dict[str, Any] = field(default_factory=dict)
    checked_at: float = field(default_factory=time.monotonic)

    def public(self) -> dict[str, Any]:
        return {"ready": self.ready, "reason": self.reason}

    def detailed(self) -> dict[str, Any]:
        age = round(time.monotonic() - self.checked_at, 2)
        return {"ready": self.ready, "reason": self.reason, **self.report, "age_seconds": age}


def probe(celery_app: Celery, settings: ServingSettings) -> Readiness:
    """Broker reachable AND a worker answers ping with its model version, within ``ready_timeout``."""
    report: dict[str, Any] = {"broker": False, "worker": None, "model_version": None}

    def not_ready(reason: str, error: str) -> Readiness:
        report["error"] = error
        return Readiness(False, reason, report)

    try:
        with celery_app.connection_for_write(connect_timeout=settings.broker_probe_timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.broker_probe_timeout)
        report["broker"] = True
    except BROKER_ERRORS as exc:
        return not_ready(BROKER_DOWN, f"message broker unreachable ({type(exc).__name__})")
    try:
        pending = ping.apply_async(expires=settings.ready_timeout)
    except BROKER_ERRORS as exc:
        reset_result_consumer(celery_app)
        return not_ready(BROKER_DOWN, f"message broker unreachable ({type(exc).__name__})")
    try:
        answer = pending.get(timeout=settings.ready_timeout)
    except CeleryTimeout:
        return not_ready(NO_WORKER, f"no worker answered a ping within {settings.ready_timeout:g} s")
    except BROKER_ERRORS as exc:
        reset_result_consumer(celery_app)
        return not_ready(BROKER_DOWN,
                         f"message broker connection lost during the ping ({type(exc).__name__})")
    except Exception as exc:
        return not_ready(WORKER_FAILED, f"the ping task failed in the worker: {type(exc).__name__}")
    report["worker"] = {"pid": answer.get("pid"), "loads": answer.get("loads"),
                        "retry_in": answer.get("retry_in")}
    report["model_version"] = answer.get("model_version")
    if answer.get("error"):
        report["error"] = str(answer["error"])
    worker_reason = answer.get("reason")  # the store's public phrase: no release, refused, retrying
    if report["model_version"] is None:
        return Readiness(False, f"{NO_MODEL}: {worker_reason}" if worker_reason else NO_MODEL, report)
    if worker_reason:  # serving, but the newest release did not load (yet)
        return Readiness(True, f"{READY}; the newest release is not served: {worker_reason}", report)
    return Readiness(True, READY, report)


class CachedProbe:
    """One probe at a time, its answer reused for ``ttl`` seconds (see the module docstring)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.probes = 0
        self._last: Readiness | None = None
        self._lock = threading.Lock()

    def get(self, celery_app: Celery, settings: ServingSettings) -> Readiness:
        with self._lock:
            last = self._last
            if last is None or time.monotonic() - last.checked_at >= self.ttl:
                last = self._last = probe(celery_app, settings)
                self.probes += 1
            return last


def probe_for(app: Flask) -> CachedProbe:
    """This app's cached probe in this process (a forked process starts with its own)."""
    slot = app.extensions.get("stargazer_readiness")
    if slot is None or slot[0] != os.getpid():
        fresh = (os.getpid(), CachedProbe(app.config["STARGAZER"].ready_cache_seconds))
        # setdefault: two threads racing on the first request end up sharing one probe.
        slot = app.extensions.setdefault("stargazer_readiness", fresh)
        if slot[0] != os.getpid():
            slot = app.extensions["stargazer_readiness"] = fresh
    return slot[1]
