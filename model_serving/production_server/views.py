"""The browser pages: ``GET /`` (the form) and ``POST /predict`` (the ranked result page).

No JavaScript: the form posts, the server validates and either re-renders the form with each message next to
its input, or renders the result table and a bar chart drawn as inline SVG on the server.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, render_template

from model_serving.production_server import lookup as lookup_module
from model_serving.production_server.forms import PredictForm
from model_serving.production_server.service import ItemResult, ServiceError, predict

bp = Blueprint("views", __name__)


def lookup_for(app: Flask) -> lookup_module.RepositoryLookup:
    """This app's GitHub lookup in this process (clients hold sockets: never shared across a fork)."""
    slot = app.extensions.get("stargazer_lookup")
    if slot is None or slot[0] != os.getpid():
        settings = app.config["STARGAZER"]
        lookup = lookup_module.RepositoryLookup(
            settings.github,
            ttl=settings.lookup_ttl,
            negative_ttl=settings.lookup_negative_ttl,
            cache_size=settings.lookup_cache_size,
            threads=settings.lookup_threads,
            timeout=settings.lookup_timeout,
        )
        # setdefault: two threads racing on the first request end up sharing one lookup (and one cache).
        slot = app.extensions.setdefault("stargazer_lookup", (os.getpid(), lookup))
        if slot[0] != os.getpid():
            slot = app.extensions["stargazer_lookup"] = (os.getpid(), lookup)
    return slot[1]


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


@bp.post("/predict")
def predict_page() -> tuple[str, int]:
    form = PredictForm()
    items = form.items() if form.validate_on_submit() else None
    if items is None:
        return render_template("index.html", form=form, invalid=True), 400
    try:
        outcome = predict(items, current_app.config["STARGAZER"], lookup_for(current_app))
    except ServiceError as exc:
        return render_template("index.html", form=form, service_error=str(exc)), exc.status
    # Rows described by hand have no name: call them as the form did, so five of them stay distinguishable.
    numbers = [n for n, row in enumerate(form.rows.entries, start=1) if not row.form.is_empty()]
    for number, item in zip(numbers, outcome.items, strict=True):
        item.label = f"Repository {number} (by hand)"
    bars, ticks = chart(outcome.items)
    return render_template("result.html", outcome=outcome, ranked=outcome.ranked(), bars=bars, ticks=ticks,
                           chart_width=CHART_WIDTH, row_height=ROW_HEIGHT), 200
