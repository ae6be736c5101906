"""Repositories the served model was trained on, answered from its dataset snapshot without GitHub.

Where the data comes from: a model version ships the training CSV, gzipped, as ``dataset.csv.gz``, listed with
its sha256 in ``model.json`` (``artifact.SnapshotRef``), so it reaches a production host by the same signed
``git push`` as the model, and pre-receive checks it with the model. Here the web process reads
``$STARGAZER_MODEL_DIR/current/dataset.csv.gz`` after checking the manifest's signature (when signatures are
required) and the file's sha256. A CSV is only parsed, never unpickled.

Why rows are kept as CSV text: a web process holds one copy per process; a parsed dict per row costs ~10x the
memory of its CSV line. A hit parses one line.

When ``current`` moves (a deploy), the next ``get`` reads the new release's snapshot. A release without one,
or one that fails a check, answers nothing here (every name goes to GitHub) and says why once in the log.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import threading
from pathlib import Path
from typing import Any

from data_collection.schema import DATASET_DTYPES
from model_serving import artifact

log = logging.getLogger(__name__)


def _typed(column: str, text: str) -> Any:
    if text == "":
        return None
    kind = DATASET_DTYPES[column]
    if kind == "int":
        try:
            return int(float(text)) if "." in text else int(text)
        except ValueError:
            return None
    if kind == "bool":
        return text.strip().lower() == "true"
    return text


class KnownRepositories:
    """``get(full_name)`` -> the snapshot's row (case-insensitive), or None. Thread-safe, one per process."""

    def __init__(self, model_dir: Path, public_key: bytes | None, *, require_signature: bool = True) -> None:
        self.model_dir = model_dir
        self.public_key = public_key
        self.require_signature = require_signature
        self._lock = threading.Lock()
        self._loaded_for: str | None = None
        self._header: list[str] = []
        self._lines: dict[str, str] = {}
        self.collected_at: str | None = None

    def _release(self) -> str | None:
        try:
            return os.readlink(self.model_dir / "current")
        except OSError:
            return None

    def _refresh(self) -> None:
        release = self._release()
        if release == self._loaded_for:
            return
        with self._lock:
            if release == self._loaded_for:
                return
            header: list[str] = []
            lines: dict[str, str] = {}
            if release is not None:
                try:
                    header, lines = self._read(self.model_dir / "current")
                except (artifact.ArtifactError, OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
                    log.warning("known repositories: not using the dataset of %s: %s", release, exc)
            self._header, self._lines, self._loaded_for = header, lines, release

    def _read(self, release_dir: Path) -> tuple[list[str], dict[str, str]]:
        manifest = artifact.read_manifest(release_dir)
        snapshot = artifact.snapshot_ref(manifest)
        if snapshot is None:
            return [], {}
        if self.require_signature:
            if self.public_key is None:
                raise artifact.ArtifactError("no deploy public key: cannot verify the snapshot's manifest")
            artifact.verify_signature(manifest, self.public_key)
        path = release_dir / snapshot.file
        if artifact.sha256_of(path) != snapshot.sha256:
            raise artifact.ArtifactError(f"{snapshot.file} sha256 does not match model.json")
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if "full_name" not in header or "collected_at" not in header:
                raise artifact.ArtifactError(f"{snapshot.file} has no full_name or collected_at column")
            name_at, stamp_at = header.index("full_name"), header.index("collected_at")
            lines: dict[str, str] = {}
            for record in reader:
                if len(record) != len(header) or not record[name_at] or not record[stamp_at]:
                    continue
                text = io.StringIO()
                csv.writer(text, lineterminator="").writerow(record)
                lines[record[name_at].lower()] = text.getvalue()
        log.info("known repositories: %d from the dataset of %s", len(lines), release_dir.resolve().name)
        return header, lines

    def get(self, full_name: str) -> dict[str, Any] | None:
        self._refresh()
        line = self._lines.get(full_name.lower())
        if line is None:
            return None
        record = next(csv.reader([line]))
        values = dict(zip(self._header, record, strict=True))
        return {column: _typed(column, values.get(column, "")) for column in DATASET_DTYPES}

    def __len__(self) -> int:
        self._refresh()
        return len(self._lines)
