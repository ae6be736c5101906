"""``POST /api/v1/predict`` and ``/api/v1/lookup``: JSON in, ranked predictions out.

Shapes: docs/production_server_app.md.

The two routes answer alike; behind nginx, a request that must ask GitHub is sent from the first to the
second (307), where nginx's lookup zone applies (``lookup_gate.py``).
"""

from __future__ import annotations

import json
import sys

from flask import Blueprint, Response, current_app, jsonify, request

from model_serving.production_server.errors import error_response
from model_serving.production_server.inputs import InputError, parse_request
from model_serving.production_server.lookup_gate import BudgetSpent, UseLookupDoor, predict_guarded
from model_serving.production_server.prediction import PredictionError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class _NotJSON(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    """Python's json module accepts NaN and Infinity; JSON does not, and they are no star count."""
    raise _NotJSON(name)


@bp.post("/lookup")
@bp.post("/predict")
def predict_json() -> Response:
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
    fresh = body.get("fresh", False)
    if not isinstance(fresh, bool):
        return error_response(400, "invalid input: fresh must be true or false", {"fresh": "not a boolean"})
    try:
        outcome = predict_guarded(current_app, items, fresh=fresh)
    except UseLookupDoor as exc:
        # A client that does not follow redirects reads why in the API's usual shape.
        response = error_response(307, str(exc), {"location": exc.location})
        response.headers["Location"] = exc.location
        return response
    except BudgetSpent as exc:
        response = error_response(429, str(exc), {"retry_after": exc.retry_after, "needed_calls": exc.needed})
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except PredictionError as exc:
        return error_response(exc.status, str(exc), exc.details)
    return jsonify(outcome.to_json())
