"""The quality gate of pre-receive: a pushed model must not score worse than the serving one on the host's
frozen evaluation set (or, as the first model on a host, below fixed floors).

Why a frozen set on each host: held-out metrics in ``model.json`` are computed by whoever trained the model,
on whatever split they chose; two versions' numbers are not comparable, and a bad model signs as easily as a
good one. The evaluation set is genuine repositories with known stars that no training dataset contains
(``python -m model_serving.development_server evalset`` builds it), installed by the githooks role as
``evalset-<version>.csv.gz`` with its sha256 in ``stargazer.evalsetsha256``. Both models are scored on the
same rows by the same code, in the sandboxed check (``githooks/check_model.py``), so the comparison is fair
and the pushed pickle is unpickled nowhere else.

Three numbers per model:
- ``spearman``: rank correlation of predicted and actual stars (what a ranking user sees; the held-out
  metric's definition, ``protocol.regression_metrics``);
- ``mae_log``: mean absolute error on ``log1p(stars)`` (the scale the model is trained on; in stars, one
  huge repository would decide everything);
- ``coverage``: share of repositories whose actual stars lie in the model's own p10-p90 interval, computed
  by ``features.predict_with_interval`` exactly as the serving workers compute ``interval``.

Two halves: the hook process (hashlib and json only: the eval set's checksum, the verdict, the record that
post-receive writes into the deploy log) and the sandboxed child (:func:`read_evalset`, :func:`score`,
:func:`load_serving`), which imports pandas and scikit-learn anyway.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

METRICS: Final = ("spearman", "mae_log", "coverage")
HIGHER_IS_BETTER: Final = {"spearman": True, "mae_log": False, "coverage": True}
LABELS: Final = {"spearman": "Spearman", "mae_log": "MAE log1p(stars)", "coverage": "p10-p90 coverage"}
#: ``git push -o stargazer.override-gate=<reason>``: deploy a model the gate refuses; the reason is logged.
OVERRIDE_OPTION: Final = "stargazer.override-gate"
#: Under the bare repository: one JSON record per accepted commit, read by post-receive for the deploy log.
RECORD_DIR: Final = "stargazer-gate"
RECORD_MAX_AGE_SECONDS: Final = 7 * 24 * 3600  # a staged version never switched leaves its record this long
EVALSET_FILE: Final = "evalset.csv.gz"
MIN_ROWS: Final = 20  # fewer rows make every number noise
_MAX_REASON: Final = 200


class GateError(Exception):
    """The gate cannot judge (eval set missing, tampered, unreadable; bad override); one line."""


@dataclass(frozen=True)
class Scores:
    """One model's numbers on the evaluation set."""

    spearman: float
    mae_log: float
    coverage: float
    rows: int

    def to_json(self) -> dict[str, float]:
        """The three numbers as the deploy log keeps them (4 decimals; the child reports them unrounded)."""
        return {name: round(getattr(self, name), 4) for name in METRICS}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Scores:
        """Read what the child reported (``to_json`` plus ``rows``); GateError when it is not that."""
        try:
            return cls(**{name: float(raw[name]) for name in METRICS}, rows=int(raw["rows"]))
        except (KeyError, TypeError, ValueError):
            raise GateError(f"the model check reported no usable scores: {dict(raw)!r:.120}") from None

    def text(self) -> str:
        return f"Spearman {self.spearman:.3f}, MAE log {self.mae_log:.3f}, coverage {self.coverage:.2f}"


@dataclass(frozen=True)
class Verdict:
    """What the gate decided about one pushed model, and what goes into its deploy-log entry."""

    accepted: bool
    message: str  # one line: why it was accepted or refused
    record: dict[str, Any]  # the deploy log's ``gate`` (and ``override_reason``) for this version


# ---------------------------------------------------------------------------------------------------------
# the hook process
# ---------------------------------------------------------------------------------------------------------


def verify_evalset(path: Path, sha256: str) -> None:
    """The installed eval set is the one the host's settings name, byte for byte (else GateError)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise GateError(
            f"evaluation set {path} cannot be read ({exc.strerror}): reinstall it (githooks role)"
        ) from None
    if digest.hexdigest() != sha256:
        raise GateError(
            f"evaluation set {path} has sha256 {digest.hexdigest()[:12]}…, not the {sha256[:12]}… of "
            "stargazer.evalsetsha256 (modified or replaced): reinstall it (githooks role)"
        )


def override_reason(options: Mapping[str, str]) -> str | None:
    """The reason given with ``-o stargazer.override-gate=<reason>`` (one line, printable), or None."""
    if OVERRIDE_OPTION not in options:
        return None
    reason = " ".join("".join(c if c.isprintable() else " " for c in options[OVERRIDE_OPTION]).split())
    if not reason:
        raise GateError(f"{OVERRIDE_OPTION} needs a reason: git push -o {OVERRIDE_OPTION}='<why>'")
    return reason[:_MAX_REASON]


def decide(
    pushed: Scores,
    serving: Scores | None,
    *,
    pushed_version: str,
    serving_version: str | None,
    serving_error: str | None = None,
    evalset: str,
    margins: Mapping[str, float],
    floors: Mapping[str, float],
    served_before: bool,
    override: str | None,
) -> Verdict:
    """Compare (or apply the floors), then let an override turn a refusal into an acceptance."""
    record: dict[str, Any] = {"evalset": evalset, "rows": pushed.rows, "pushed": pushed.to_json()}
    where = f"on {evalset} ({pushed.rows} repositories)"
    if serving is not None:
        record["serving_version"] = serving_version
        record["serving"] = serving.to_json()
        worse = [m for m in METRICS if _worse_by(getattr(pushed, m), getattr(serving, m), m) > margins[m]]
        numbers = "; ".join(
            f"{LABELS[m]} {getattr(pushed, m):.3f} vs {getattr(serving, m):.3f}"
            f"{' (worse by more than ' + format(margins[m], 'g') + ')' if m in worse else ''}"
            for m in METRICS
        )
        comparison = f"pushed {pushed_version} vs serving {serving_version} {where}: {numbers}"
        if served_before and worse:
            decision, refusal = "served-before", None
            comparison += "; accepted: this host served this version before (a rollback)"
        elif worse:
            decision, refusal = "refused", f"quality gate: worse than the serving model: {comparison}"
        else:
            decision, refusal = "passed", None
    else:
        below = [m for m in METRICS if _worse_by(getattr(pushed, m), floors[m], m) > 0]
        numbers = "; ".join(
            f"{LABELS[m]} {getattr(pushed, m):.3f} ({'floor' if HIGHER_IS_BETTER[m] else 'ceiling'} "
            f"{floors[m]:g}{', missed' if m in below else ''})"
            for m in METRICS
        )
        first = (
            f"the serving model could not be scored ({serving_error}), so the floors apply"
            if serving_error
            else "first model on this host"
        )
        comparison = f"{first}: {pushed_version} {where}: {numbers}"
        if serving_error:
            record["serving_error"] = serving_error
        decision = "refused" if below else "first-model"
        refusal = f"quality gate: below the floors: {comparison}" if below else None
    if refusal is not None and override is not None:
        record.update(decision="overridden", override_reason=override)
        return Verdict(True, f"quality gate OVERRIDDEN ({override}): {refusal}", record)
    record["decision"] = decision
    if override is not None:
        record["override_reason"] = override
    if refusal is not None:
        hint = f"; to deploy it anyway: git push -o {OVERRIDE_OPTION}='<reason>' (deploy --override-gate)"
        return Verdict(False, refusal + hint, record)
    return Verdict(True, f"quality gate passed: {comparison}", record)


def _worse_by(value: float, reference: float, metric: str) -> float:
    """How much worse ``value`` is than ``reference`` (negative: better)."""
    return reference - value if HIGHER_IS_BETTER[metric] else value - reference


def records_dir(git_dir: Path) -> Path:
    return git_dir / RECORD_DIR


def write_record(git_dir: Path, commit: str, record: Mapping[str, Any]) -> None:
    """Keep the gate's result of ``commit`` for post-receive (which may run in a later push: phase 2)."""
    directory = records_dir(git_dir)
    directory.mkdir(mode=0o750, exist_ok=True)
    now = time.time()
    for old in directory.glob("*.json"):
        if now - old.stat().st_mtime > RECORD_MAX_AGE_SECONDS:
            old.unlink(missing_ok=True)
    target = directory / f"{commit}.json"
    scratch = directory / f".{commit}.{os.getpid()}.tmp"
    scratch.write_text(json.dumps(dict(record), sort_keys=True) + "\n", encoding="utf-8")
    os.replace(scratch, target)


def remove_record(git_dir: Path, commit: str) -> None:
    """A commit accepted without scores must not inherit those of an earlier push of it."""
    (records_dir(git_dir) / f"{commit}.json").unlink(missing_ok=True)


def read_record(git_dir: Path, commit: str) -> dict[str, Any] | None:
    """The gate's record of ``commit``, or None (no gate on this host, or a record that is not JSON)."""
    try:
        value = json.loads((records_dir(git_dir) / f"{commit}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def log_fields(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The deploy log's fields from a record: ``gate`` (scores, evalset, decision) and ``override_reason``."""
    if not record:
        return {}
    gate = {key: value for key, value in record.items() if key != "override_reason"}
    fields: dict[str, Any] = {"gate": gate}
    if record.get("override_reason"):
        fields["override_reason"] = record["override_reason"]
    return fields


# ---------------------------------------------------------------------------------------------------------
# the sandboxed child
# ---------------------------------------------------------------------------------------------------------


def read_evalset(path: Path) -> Any:
    """The eval set, typed by the dataset contract's reader (``data_collection.dataset.read_dataset``)."""
    from data_collection.dataset import DatasetError, read_dataset

    with tempfile.TemporaryDirectory(prefix="evalset-") as scratch:
        plain = Path(scratch) / "evalset.csv"
        try:
            with gzip.open(path, "rb") as packed, plain.open("wb") as out:
                shutil.copyfileobj(packed, out, 1 << 20)
            frame = read_dataset(plain, verify_sha256=False)
        except (OSError, EOFError, DatasetError) as exc:
            raise GateError(f"evaluation set is unreadable: {exc}") from None
    if len(frame) < MIN_ROWS:
        raise GateError(f"evaluation set has {len(frame)} repositories, fewer than {MIN_ROWS}")
    return frame


def score(pipeline: Any, frame: Any) -> Scores:
    """Spearman, MAE on log1p(stars) and p10-p90 coverage of ``pipeline`` on the eval set ``frame``."""
    import numpy as np

    from model_serving import features
    from model_serving.development_server.protocol import regression_metrics

    actual = features.target_of(frame).to_numpy(dtype=float)
    point, low, high = features.predict_with_interval(pipeline, frame)
    point, low, high = (np.asarray(a, dtype=float) for a in (point, low, high))
    if not (np.isfinite(point).all() and np.isfinite(low).all() and np.isfinite(high).all()):
        raise GateError("model predicts non-finite stars on the evaluation set")
    return Scores(
        spearman=regression_metrics(actual, point)["spearman"],
        mae_log=float(np.mean(np.abs(np.log1p(np.clip(point, 0, None)) - np.log1p(actual)))),
        coverage=float(np.mean((low <= actual) & (actual <= high))),
        rows=len(actual),
    )


def load_serving(directory: Path) -> tuple[Any, str]:
    """The serving model (its model.json and model.joblib, sent by the hook): (pipeline, version).

    Not ``artifact.load_version``: that also wants the release's dataset snapshot, which the gate does not
    need and the hook does not send. The same checks otherwise: manifest, sha256, compatibility, then load.
    """
    import joblib

    from model_serving import artifact

    manifest = artifact.read_manifest(directory)
    if artifact.sha256_of(directory / artifact.MODEL_FILE) != manifest.sha256:
        raise artifact.ArtifactError(f"serving {artifact.MODEL_FILE} does not match its model.json")
    artifact.check_compatible(manifest)
    pipeline = joblib.load(directory / artifact.MODEL_FILE)
    return pipeline, manifest.version
