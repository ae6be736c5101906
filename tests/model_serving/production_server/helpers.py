"""Small helpers shared by the app-layer tests (form posting, JSON-ready rows)."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from flask.testing import FlaskClient

from tests.model_fixture import synthetic_dataset

CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient) -> str:
    page = client.get("/")
    assert page.status_code == 200
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, "the form page carries no CSRF token"
    return match.group(1)


def form_data(rows: list[dict[str, Any]], token: str | None) -> dict[str, str]:
    """The browser's POST body for up to five rows (``{"full_name": ..., "forks_count": ...}`` each)."""
    data: dict[str, str] = {}
    if token is not None:
        data["csrf_token"] = token
    for index, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, bool):
                if value:
                    data[f"rows-{index}-{name}"] = "y"
            elif value is not None:
                data[f"rows-{index}-{name}"] = str(value)
    return data


def json_rows(count: int = 5, seed: int = 9) -> list[dict[str, Any]]:
    """Dataset rows as a JSON client sends them: null (never NaN) for unknown values."""
    frame = synthetic_dataset(count, seed=seed).astype(object)
    frame = frame.where(pd.notna(frame), None)
    return frame.to_dict(orient="records")
