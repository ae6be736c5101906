"""``GET /models`` (page), ``/models/drift.png``, ``GET /api/v1/models`` and ``/api/v1/models/drift``.

The release history (``history.py``) is read afresh on every request: it is one small file. The drift report
(``drift.py``) parses up to the newest 20,000 logged requests and the training snapshot, so each web process
keeps its last report and its PNG for ``DRIFT_CACHE_SECONDS`` (and makes a new one at once when ``current``
moved). The page and the PNG of one visit therefore show the same report.

Shapes: docs/production_server.md ("Release history and drift").
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template

from model_serving.production_server import drift, history
from model_serving.production_server.settings import ServingSettings

bp = Blueprint("models", __name__)

#: How long one web process reuses its drift report (the log grows with every request, so no file stamp
#: can tell "nothing changed").
DRIFT_CACHE_SECONDS = 60.0


@dataclass
class _Cached:
    release: str | None
    made: float
    report: drift.Report
    png: bytes | None = None  # drawn on the first request for the figure (matplotlib: ~1 s or more)


class DriftCache:
    """One per app (``app.extensions``), shared by the threads of a web process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: _Cached | None = None

    def _current(self, settings: ServingSettings) -> _Cached:
        """Call with the lock held."""
        release = _release_target(settings)
        cached = self._cached
        if not (cached is not None and cached.release == release
                and time.monotonic() - cached.made <= DRIFT_CACHE_SECONDS):
            cached = self._cached = _Cached(release, time.monotonic(), _make_report(settings))
        return cached

    def get(self, settings: ServingSettings) -> drift.Report:
        with self._lock:
            return self._current(settings).report

    def png(self, settings: ServingSettings) -> bytes:
        from model_serving.production_server.drift_plot import drift_png  # matplotlib: only when asked

        with self._lock:
            cached = self._current(settings)
            if cached.png is None:
                cached.png = drift_png(cached.report)
            return cached.png


def _release_target(settings: ServingSettings) -> str | None:
    try:
        return os.readlink(settings.current_link)
    except OSError:
        return None


def _make_report(settings: ServingSettings) -> drift.Report:
    try:
        return drift.report(settings.model_dir, settings.prediction_log, settings.deploy_public_key,
                            require_signature=settings.require_signature)
    except drift.DriftError as exc:
        return drift.unavailable(str(exc))


def _settings() -> ServingSettings:
    return current_app.config["STARGAZER"]


def _drift_cache() -> DriftCache:
    return current_app.extensions["stargazer_drift"]


@bp.get("/models")
def models_page() -> str:
    past = history.build(_settings().model_dir)
    return render_template("models.html", history=past, drift=_drift_cache().get(_settings()),
                           metrics=history.SHOWN_METRICS,
                           thresholds=drift.THRESHOLDS_TEXT)


@bp.get("/models/drift.png")
def drift_png() -> Response:
    response = Response(_drift_cache().png(_settings()), mimetype="image/png")
    response.headers["Cache-Control"] = f"private, max-age={int(DRIFT_CACHE_SECONDS)}"
    return response


@bp.get("/api/v1/models")
def models_json() -> Response:
    return jsonify(history.build(_settings().model_dir).to_json())


@bp.get("/api/v1/models/drift")
def drift_json() -> Response:
    return jsonify(_drift_cache().get(_settings()).to_json())


def init_app(app: Flask) -> None:
    app.extensions["stargazer_drift"] = DriftCache()
    app.register_blueprint(bp)
