"""``/healthz``, ``/readyz``, ``/metrics`` and the per-request metrics of every route."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from model_serving.production_server import metrics
from model_serving.production_server.readiness import probe_for

bp = Blueprint("observability", __name__)

#: Set by nginx on every proxied request: "1" when the client's address is in ``nginx_readyz_detail_allow``
#: (nginx overwrites whatever a client sent). gunicorn is reachable only through nginx, as for /metrics.
DETAIL_HEADER = "X-Stargazer-Readyz-Detail"


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and answers; says nothing about the broker or workers (that is /readyz)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready = the broker is reachable AND a worker answers ping with a loaded model version within 2 s.

    Everyone gets ``{"ready", "reason"}``; the worker's error text, pid and the broker's state only go to an
    address nginx allowlisted (readiness.py says why). The answer is the cached probe's.
    """
    readiness = probe_for(current_app).get(current_app.extensions["celery"], current_app.config["STARGAZER"])
    body = readiness.detailed() if request.headers.get(DETAIL_HEADER) == "1" else readiness.public()
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if readiness.ready else 503


@bp.get("/metrics")
def metrics_view() -> Response:
    return Response(metrics.render(current_app.config["STARGAZER"].metrics_dir),
                    mimetype=metrics.CONTENT_TYPE_LATEST)


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
