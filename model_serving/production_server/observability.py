"""``/healthz``, ``/readyz``, ``/metrics`` and the per-request metrics of every route."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from model_serving.production_server import metrics
from model_serving.production_server.service import readiness

bp = Blueprint("observability", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and answers; says nothing about the broker or workers (that is /readyz)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready = the broker is reachable AND a worker answers ping with a loaded model version within 2 s."""
    ready, report = readiness(current_app.extensions["celery"], current_app.config["STARGAZER"])
    return jsonify({"ready": ready, **report}), 200 if ready else 503


@bp.get("/metrics")
def metrics_view() -> Response:
    return Response(metrics.render(), mimetype=metrics.CONTENT_TYPE_LATEST)


def _start_timer() -> None:
    g.started = time.perf_counter()


def _record(response: Response) -> Response:
    # The route pattern, never the raw path: unknown URLs must not create unbounded label values.
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.REQUESTS.labels(method=request.method, endpoint=endpoint, status=str(response.status_code)).inc()
    started = g.get("started")
    if started is not None:
        metrics.LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_start_timer)
    app.after_request(_record)
