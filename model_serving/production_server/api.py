"""``POST /api/v1/predict``: JSON in, ranked predictions out (DESIGN §5, shapes documented there)."""

from __future__ import annotations

import json
import sys

from flask import Blueprint, Response, current_app, jsonify, request

from model_serving.production_server.errors import error_response
from model_serving.production_server.inputs import InputError, parse_request
from model_serving.production_server.service import ServiceError, predict
from model_serving.production_server.views import lookup_for

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class _NotJSON(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    """Python's json module accepts NaN and Infinity; JSON does not, and they are no star count."""
    raise _NotJSON(name)


@bp.post("/predict")
def predict_json() -> Response:
    settings = current_app.config["STARGAZER"]
    if not request.is_json:
        return error_response(415, "unsupported content type: send application/json",
                              {"content_type": request.mimetype or None})
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH this raises 413 before reading it all
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except _NotJSON as exc:
        return error_response(400, f"malformed JSON: {exc} is not JSON (use null for unknown values)")
    except UnicodeDecodeError:
        return error_response(400, "the body is not UTF-8 text")
    except json.JSONDecodeError as exc:
        return error_response(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                              {"line": exc.lineno, "column": exc.colno})
    except ValueError:  # Python refuses to turn a longer run of digits into an int (CVE-2020-10735)
        return error_response(400, "malformed JSON: a number has more than "
                              f"{sys.get_int_max_str_digits()} digits")
    except RecursionError:  # arrays or objects nested deeper than the decoder's recursion limit
        return error_response(400, "malformed JSON: arrays or objects nested too deeply")
    try:
        items = parse_request(body)
    except InputError as exc:
        return error_response(400, str(exc), exc.details)
    try:
        outcome = predict(items, settings, lookup_for(current_app))
    except ServiceError as exc:
        return error_response(exc.status, str(exc), exc.details)
    return jsonify(outcome.to_json())
