"""The browser pages: ``GET /`` (the form) and ``POST /predict`` (the ranked result page).

``POST /lookup`` is the same page behind nginx's lookup zone: a form naming repositories GitHub must be asked
about is sent there (307, ``lookup_gate.py``). A client whose GitHub budget is spent gets the form back with
the reason and when to retry (429, ``Retry-After``).

No JavaScript: the form posts, the server validates and either re-renders the form with each message next to
its input, or renders the result table and a bar chart drawn as inline SVG on the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, redirect, render_template

from model_serving.production_server.forms import PredictForm
from model_serving.production_server.lookup_gate import BudgetSpent, UseLookupDoor, predict_guarded
from model_serving.production_server.prediction import ItemResult, PredictionError

bp = Blueprint("views", __name__)


@dataclass(frozen=True)
class Bar:
    """One row of the chart, in SVG units: the predicted bar, its interval whisker, the actual marker."""

    label: str
    y: float
    width: float
    low: float
    high: float
    actual: float | None


CHART_WIDTH = 420.0
ROW_HEIGHT = 26.0


def chart(results: list[ItemResult]) -> tuple[list[Bar], list[tuple[float, str]]]:
    """Bars on a log10 scale (stars span five orders of magnitude), and the axis ticks."""
    # In rank order, as the table above it: the chart must not tell a different story.
    ranked = sorted((r for r in results if r.rank is not None), key=lambda r: r.rank or 0)
    values = [v for r in ranked for v in (r.high, r.predicted, r.actual) if v]
    top = max(10.0, *values) if values else 10.0
    decades = max(1, math.ceil(math.log10(top + 1)))

    def x(value: float | None) -> float:
        return CHART_WIDTH * math.log10(1 + max(0.0, value or 0.0)) / decades

    bars = [
        Bar(label=r.full_name or r.label or f"rank {r.rank} (by hand)", y=i * ROW_HEIGHT,
            width=x(r.predicted), low=x(r.low), high=x(r.high),
            actual=x(r.actual) if r.actual is not None else None)
        for i, r in enumerate(ranked)
    ]
    ticks = [(CHART_WIDTH * d / decades, f"{10 ** d:,}") for d in range(decades + 1)]
    return bars, ticks


@bp.get("/")
def index() -> str:
    return render_template("index.html", form=PredictForm())


@bp.post("/lookup")
@bp.post("/predict")  # registered first: url_for builds this one
def predict_page() -> tuple[str, int] | Response:
    form = PredictForm()
    items = form.items() if form.validate_on_submit() else None
    if items is None:
        return render_template("index.html", form=form, invalid=True), 400
    try:
        outcome = predict_guarded(current_app, items, fresh=bool(form.fresh.data))
    except UseLookupDoor as exc:
        return redirect(exc.location, code=307)
    except BudgetSpent as exc:
        page = render_template("index.html", form=form, service_error=str(exc))
        return Response(page, status=429, headers={"Retry-After": str(exc.retry_after)})
    except PredictionError as exc:
        return render_template("index.html", form=form, service_error=str(exc)), exc.status
    # Rows described by hand have no name: call them as the form did, so five of them stay distinguishable.
    numbers = [n for n, row in enumerate(form.rows.entries, start=1) if not row.form.is_empty()]
    for number, item in zip(numbers, outcome.items, strict=True):
        item.label = f"Repository {number} (by hand)"
    bars, ticks = chart(outcome.items)
    return render_template("result.html", outcome=outcome, ranked=outcome.ranked(), bars=bars, ticks=ticks,
                           chart_width=CHART_WIDTH, row_height=ROW_HEIGHT), 200
