"""Small helpers shared by the app-layer tests (form posting, JSON-ready rows)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
from flask.testing import FlaskClient

from model_serving import artifact
from model_serving.production_server.observability import DETAIL_HEADER
from synthetic.dataset import synthetic_dataset
from synthetic.versions import build_tiny_version

#: What nginx sends for a client in nginx_readyz_detail_allow: /readyz answers with the worker's detail.
READYZ_DETAIL = {DETAIL_HEADER: "1"}

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


def block_while_gate(gate: str, seconds: float) -> None:
    """Called by the unpickler of a ``gated_load_version`` model: blocks while the file ``gate`` exists.

    The wait is interruptible: Celery's soft time limit (a signal whose handler raises) ends it, as it would
    end a genuinely slow ``joblib.load`` of a big model on a busy disk. Removing the gate ends it too.
    """
    deadline = time.monotonic() + seconds
    while Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class BlockWhileGate:
    """Pickled as a call of ``block_while_gate``: unpickling the model it is attached to runs that call."""

    def __init__(self, gate: Path, seconds: float) -> None:
        self.gate = str(gate)
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, tuple[str, float]]:
        return block_while_gate, (self.gate, self.seconds)


def gated_load_version(models_dir: Path, secret: bytes, gate: Path, seconds: float, seed: int = 7) -> Path:
    """A signed tiny model whose loading blocks ``seconds`` while the file ``gate`` exists, else is quick.

    The model itself is sound (signature, sha256, predictions): a store that gives up on it after an
    interrupted load has judged the release on something that was not the release's fault.
    """
    import joblib

    version_dir = build_tiny_version(models_dir, seed=seed)
    model_file = version_dir / artifact.MODEL_FILE
    pipeline = joblib.load(model_file)
    pipeline.load_gate = BlockWhileGate(gate, seconds)
    joblib.dump(pipeline, model_file, compress=3)
    manifest = artifact.read_manifest(version_dir)
    digest = artifact.sha256_of(model_file)
    artifact.write_manifest(version_dir, manifest.model_copy(update={"sha256": digest}))
    artifact.sign_version(version_dir, secret)
    return version_dir
