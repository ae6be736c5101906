"""Errors of the whole request, in the shape the caller reads: JSON for the API, a page for the browser.

docs/contracts.md §5: ``{"error": "<one line>", "details": {...}}`` with 400, 413, 415, 429, 503 or 504 for
the API (and
for health routes); a short HTML page for the form. Tracebacks never reach a client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

_MESSAGES = {
    400: "bad request",
    404: "no such page",
    405: "method not allowed",
    413: "request body too large: the limit is 1 MB",
    415: "unsupported content type: send application/json",
    429: "too many requests",
}


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/healthz", "/readyz", "/metrics"))


def error_response(status: int, message: str, details: dict[str, Any] | None = None) -> Response:
    if wants_json():
        response = jsonify({"error": message, "details": details or {}})
    else:
        page = render_template("error.html", status=status, message=message)
        response = Response(page, mimetype="text/html")
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = _MESSAGES.get(status) or (exc.description or exc.name or "error").splitlines()[0]
    if isinstance(exc, CSRFError):
        message = f"form refused: {exc.description} (reload the page and submit again)"
    return error_response(status, message)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal error: the failure is in the server's log")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _http_error)
    app.register_error_handler(Exception, _unexpected)
