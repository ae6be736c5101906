"""Load a training dataset and refuse bad data with ONE clear line each, before any model sees it.

The strict reader of the dataset contract is ``data_collection.dataset.read_dataset`` (used when present and
when the file follows the contract exactly). The checks here are the training side's own: they must also hold
for hand-made CSVs with extra columns (e.g. GitHub's ``watchers_count``, which is the target under another
name: it is dropped here, never used) and for conditions only training cares about (enough rows for K folds).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_collection.schema import (
    DATASET_COLUMNS,
    DATASET_DTYPES,
    KEY_COLUMN,
    TARGET_ALIASES,
    TARGET_COLUMN,
)


class TrainingDataError(ValueError):
    """The dataset cannot be trained on; the message is one line naming the file and the reason."""


@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame  # index = 0..n-1, the row's position in the file
    path: Path
    sha256: str
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame)


def _strict_reader():  # -> Callable | None
    """data_collection's contract reader, if that part is installed (imported lazily: optional dependency)."""
    try:
        from data_collection.dataset import DatasetError, read_dataset
    except ImportError:
        return None
    return read_dataset, DatasetError


def minimum_rows(folds: int, test_size: float) -> int:
    """Rows needed so that the training part has >= 2 rows per fold (R² needs two) and the held-out part 2."""
    n = 2 * folds
    while n - math.ceil(n * test_size) < 2 * folds or math.ceil(n * test_size) < 2:
        n += 1
    return n


def load_training_data(path: str | Path, *, folds: int = 5, test_size: float = 0.2) -> TrainingData:
    """Read ``path`` and run every training-side check; raise TrainingDataError on the first problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TrainingDataError(f"{path}: dataset file not found") from None
    except OSError as exc:
        raise TrainingDataError(f"{path}: cannot read dataset ({exc.strerror})") from None
    if not raw.strip():
        raise TrainingDataError(f"{path}: empty file (no header, no rows)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: not UTF-8 at byte {exc.start}") from None
    header = next(csv.reader(io.StringIO(text)), [])
    if TARGET_COLUMN not in header:
        raise TrainingDataError(f"{path}: target column {TARGET_COLUMN!r} missing from the header")
    if KEY_COLUMN not in header:
        raise TrainingDataError(f"{path}: key column {KEY_COLUMN!r} missing from the header")
    ignored = [c for c in header if c in TARGET_ALIASES]

    strict = _strict_reader()
    if strict is not None and tuple(header) == DATASET_COLUMNS:
        read_dataset, dataset_error = strict
        try:
            frame = read_dataset(path)
        except dataset_error as exc:
            raise TrainingDataError(str(exc)) from None
    else:
        frame = _read_loose(path, text)
    frame = frame.drop(columns=ignored).reset_index(drop=True)

    if frame.empty:
        raise TrainingDataError(f"{path}: header only, no rows")
    duplicated = frame[KEY_COLUMN][frame[KEY_COLUMN].duplicated()]
    if not duplicated.empty:
        raise TrainingDataError(
            f"{path}: duplicate repository {duplicated.iloc[0]!r} ({duplicated.size} duplicate rows): "
            f"one row per {KEY_COLUMN}"
        )
    target = pd.to_numeric(frame[TARGET_COLUMN], errors="coerce")
    if target.isna().any():
        line = int(target.isna().to_numpy().nonzero()[0][0]) + 2
        raise TrainingDataError(f"{path}: line {line}: {TARGET_COLUMN} is empty or not a number")
    if (target < 0).any():
        raise TrainingDataError(f"{path}: {TARGET_COLUMN} has negative values")
    needed = minimum_rows(folds, test_size)
    if len(frame) < needed:
        raise TrainingDataError(
            f"{path}: {len(frame)} rows are too few for {folds} folds and a {test_size:.0%} held-out split "
            f"(need at least {needed})"
        )
    return TrainingData(
        frame=frame, path=path, sha256=hashlib.sha256(raw).hexdigest(), ignored_columns=ignored
    )


def _read_loose(path: Path, text: str) -> pd.DataFrame:
    """Read a CSV that is not exactly the contract (extra/missing optional columns): check numbers here."""
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, csv.Error) as exc:
        raise TrainingDataError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from None
    frame = frame.replace("", None)
    numeric = [c for c in frame.columns if DATASET_DTYPES.get(c) in ("int", "float")]
    for column in numeric:
        values = frame[column]
        parsed = pd.to_numeric(values, errors="coerce")
        bad = parsed.isna() & values.notna()
        if bad.any():
            position = int(bad.to_numpy().nonzero()[0][0])
            raise TrainingDataError(
                f"{path}: line {position + 2}, column {column}: {str(values.iloc[position])[:40]!r} "
                "is not a number"
            )
        frame[column] = parsed.astype(float)
    return frame
