"""Writing and reading the dataset file (docs/contracts.md §1): atomic CSV + `<name>.meta.json`, strict
validation.

WHY atomic: training and `make demo` read `data/repos.csv` while a collection may be rewriting it; a reader
must see the old file or the new one, never half of one. We write a temp file in the same directory, fsync
it and `os.replace` it over the target (atomic on POSIX within one filesystem), then the same for the meta.

WHY a strict reader: every consumer (training, screening, the demo) goes through `read_dataset`, so a
truncated or hand-edited file fails in one place with a one-line reason, not as a NaN deep inside a model.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from data_collection.schema import DATASET_COLUMNS, DATASET_DTYPES, KEY_COLUMN, SCHEMA_VERSION

#: Columns that may never be empty (the key, the target and what every age is computed from).
REQUIRED_COLUMNS = ("full_name", "id", "owner_login", "stargazers_count", "created_at", "collected_at")

_INT = re.compile(r"-?\d+")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


class DatasetError(ValueError):
    """The file is not a valid dataset; the message says where and why in one line."""


def meta_path(path: str | Path) -> Path:
    """`data/repos.csv` -> `data/repos.csv.meta.json` (the name scripts/demo.sh reads)."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DATASET_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in DATASET_COLUMNS])
    return buffer.getvalue().encode("utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """temp file in the same directory + fsync + rename: readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_dataset(rows: list[Mapping[str, Any]], path: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Write rows (unique by full_name, checked) and the sidecar meta; returns the meta written."""
    path = Path(path)
    seen: set[str] = set()
    for row in rows:
        if row[KEY_COLUMN] in seen:
            raise DatasetError(f"duplicate {KEY_COLUMN} {row[KEY_COLUMN]!r}: refusing to write")
        seen.add(row[KEY_COLUMN])
    data = render_csv(rows)
    full_meta = {"schema_version": SCHEMA_VERSION, **meta, "rows": len(rows),
                 "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_bytes(path, data)
    atomic_write_bytes(meta_path(path), (json.dumps(full_meta, indent=2, sort_keys=False) + "\n").encode())
    return full_meta


def read_meta(path: str | Path) -> dict[str, Any] | None:
    mpath = meta_path(path)
    if not mpath.exists():
        return None
    try:
        meta = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{mpath}: unreadable meta file ({exc})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{mpath}: meta file is not a JSON object")
    return meta


def _check_value(path: Path, line: int, column: str, value: str) -> None:
    kind = DATASET_DTYPES[column]
    ok = (kind == "str"
          or (kind == "int" and _INT.fullmatch(value) is not None)
          or (kind == "bool" and value in ("true", "false"))
          or (kind == "datetime" and _DATETIME.fullmatch(value) is not None))
    if not ok:
        raise DatasetError(f"{path}: line {line}, column {column}: {value[:40]!r} is not a valid {kind}")


def _read_pair(path: Path, verify_sha256: bool) -> tuple[bytes, dict[str, Any] | None]:
    """The CSV bytes and its meta, consistent with each other.

    A writer renames the CSV and then its meta: a reader that falls between the two renames sees a new CSV
    with the old meta. That window lasts microseconds, so a mismatch is re-read a few times before it is
    called what it otherwise is: a truncated or modified file.
    """
    for attempt in range(4):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read dataset ({exc.strerror})") from None
        meta = read_meta(path)
        if not verify_sha256 or meta is None or meta.get("sha256") in (None, hashlib.sha256(raw).hexdigest()):
            return raw, meta
        time.sleep(0.05 * (attempt + 1))
    raise DatasetError(f"{path}: sha256 differs from {meta_path(path).name} (truncated or modified file)")


def read_dataset(path: str | Path, *, verify_sha256: bool = True) -> pd.DataFrame:
    """Read and validate a dataset; raises DatasetError (one line) on any deviation from the contract.

    Types: int columns -> pandas `Int64` (nullable: enrichment may be unknown), bool -> `boolean`,
    datetime -> `datetime64[ns, UTC]`, str -> object with None for empty.
    `verify_sha256=False` skips the checks against the meta file (sha256, row count).
    """
    path = Path(path)
    raw, meta = _read_pair(path, verify_sha256)
    if not verify_sha256:
        meta = None
    if meta is not None and meta.get("schema_version") not in (None, SCHEMA_VERSION):
        raise DatasetError(f"{path}: schema_version {meta.get('schema_version')} != {SCHEMA_VERSION}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 at byte {exc.start}") from None
    if text and not text.endswith("\n"):
        raise DatasetError(f"{path}: does not end with a newline (truncated file)")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}: empty file (no header)")
        if tuple(header) != DATASET_COLUMNS:
            missing = [c for c in DATASET_COLUMNS if c not in header]
            extra = [c for c in header if c not in DATASET_COLUMNS]
            detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "wrong order"
            raise DatasetError(f"{path}: header does not match the dataset schema ({detail})")
        records: list[list[str]] = []
        for record in reader:
            line = reader.line_num
            if len(record) != len(DATASET_COLUMNS):
                raise DatasetError(f"{path}: line {line} has {len(record)} fields, expected "
                                   f"{len(DATASET_COLUMNS)} (truncated or corrupt)")
            for column, value in zip(DATASET_COLUMNS, record, strict=True):
                if value == "":
                    if column in REQUIRED_COLUMNS:
                        raise DatasetError(f"{path}: line {line}, column {column} is empty")
                    continue
                _check_value(path, line, column, value)
            records.append(record)
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    frame = pd.DataFrame(records, columns=list(DATASET_COLUMNS), dtype=object)
    duplicated = frame[KEY_COLUMN][frame[KEY_COLUMN].duplicated()]
    if not duplicated.empty:
        raise DatasetError(f"{path}: duplicate {KEY_COLUMN} {duplicated.iloc[0]!r}")
    if meta is not None and isinstance(meta.get("rows"), int) and meta["rows"] != len(frame):
        raise DatasetError(f"{path}: {len(frame)} rows but the meta file says {meta['rows']}")
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for column, kind in DATASET_DTYPES.items():
        col = frame[column].replace("", None)
        if kind == "int":
            out[column] = pd.array([None if v is None else int(v) for v in col], dtype="Int64")
        elif kind == "bool":
            out[column] = pd.array([None if v is None else v == "true" for v in col], dtype="boolean")
        elif kind == "datetime":
            out[column] = pd.to_datetime(col, utc=True, format="%Y-%m-%dT%H:%M:%SZ")
        else:
            out[column] = col.astype(object)
    return pd.DataFrame(out, columns=list(DATASET_COLUMNS))
