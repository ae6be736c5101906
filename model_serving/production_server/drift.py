"""Drift: do the repositories people ask about still look like the ones the serving model was trained on?

Two samples, one feature computation: the serving release's training data (``dataset.csv.gz``, listed and
hashed in its ``model.json``) and the newest live requests (the prediction log, rotated files included) both
go through ``features.RepositoryFeatures``, the model's own first step, so what is compared is what the
forest sees, not an ad-hoc reading of the raw columns.

The measure is the Population Stability Index per feature, with the usual reading (stated in every report):
PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted. Numeric features are cut at the training deciles, and a
missing value is a bin of its own (a form that leaves enrichment empty is a real difference: the model
imputes it). Categorical features compare the share of each category (the training's most frequent ones,
"(other)" and "(none)"). The two-sample Kolmogorov-Smirnov statistic of the known numeric values is given
beside it. A report's headline is one line that says whether it is time to collect fresh data and retrain.

Only CSV and JSON are parsed here; nothing is unpickled.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from model_serving import artifact, features, releases
from model_serving.production_server import prediction_log

STABLE_BELOW: Final = 0.1
SHIFTED_ABOVE: Final = 0.25
THRESHOLDS_TEXT: Final = (f"PSI < {STABLE_BELOW} stable, {STABLE_BELOW}-{SHIFTED_ABOVE} moderate, "
                          f"> {SHIFTED_ABOVE} shifted")
#: The newest requests compared (the log can hold ~600 MB; the newest are what matters for "now").
DEFAULT_MAX_REQUESTS: Final = 20_000
#: Fewer requests than this give no verdict: PSI over ten bins is noise on a handful of rows.
DEFAULT_MIN_REQUESTS: Final = 200
_BINS: Final = 10
_TOP_CATEGORIES: Final = 20
_FLOOR: Final = 1e-4  # share given to an empty bin, so ln(a/e) stays finite
_MISSING: Final = "(missing)"

Verdict = Literal["retrain", "watch", "stable", "too_few_requests", "unavailable"]
Level = Literal["stable", "moderate", "shifted"]


class DriftError(Exception):
    """No report can be made (no release, no snapshot, a snapshot that is not the signed one): one line."""


@dataclass(frozen=True)
class Bin:
    label: str
    training: float
    live: float


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: Literal["numeric", "categorical"]
    psi: float
    ks: float | None
    ks_pvalue: float | None
    training_missing: float
    live_missing: float
    bins: list[Bin]

    @property
    def level(self) -> Level:
        return level_of(self.psi)

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.name, "kind": self.kind, "psi": round(self.psi, 4), "level": self.level,
                "ks": None if self.ks is None else round(self.ks, 4),
                "ks_pvalue": None if self.ks_pvalue is None else float(f"{self.ks_pvalue:.3g}"),
                "training_missing": round(self.training_missing, 4),
                "live_missing": round(self.live_missing, 4),
                "bins": [{"bin": b.label, "training": round(b.training, 4), "live": round(b.live, 4)}
                         for b in self.bins]}


@dataclass(frozen=True)
class Window:
    """A slice of the live requests, in time order: when drift began, not only whether it is there now."""

    started: str
    ended: str
    requests: int
    max_psi: float
    worst: str
    shifted: int

    @property
    def level(self) -> Level:
        return level_of(self.max_psi)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.started, "until": self.ended, "requests": self.requests,
                "max_psi": round(self.max_psi, 4), "level": self.level, "most_drifted": self.worst,
                "shifted_features": self.shifted}


@dataclass
class Report:
    verdict: Verdict
    headline: str
    version: str | None = None
    training_rows: int = 0
    live_requests: int = 0
    live_from: str | None = None
    live_until: str | None = None
    live_versions: dict[str, int] = field(default_factory=dict)
    features: list[FeatureDrift] = field(default_factory=list)  # most drifted first
    trend: list[Window] = field(default_factory=list)  # oldest first

    def most_drifted(self, count: int = 4) -> list[FeatureDrift]:
        return [f for f in self.features if f.psi >= STABLE_BELOW][:count] or self.features[:count]

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "headline": self.headline, "thresholds": THRESHOLDS_TEXT,
                "model_version": self.version, "training_rows": self.training_rows,
                "live_requests": self.live_requests, "live_from": self.live_from,
                "live_until": self.live_until,
                "live_versions": self.live_versions, "features": [f.to_json() for f in self.features],
                "trend": [w.to_json() for w in self.trend]}

    def to_text(self) -> str:
        lines = [self.headline, f"thresholds: {THRESHOLDS_TEXT}"]
        if self.version:
            lines.append(f"serving model {self.version}: {self.training_rows} training rows; "
                         f"{self.live_requests} live requests from {self.live_from} to {self.live_until}")
        if self.features:
            lines.append(f"{'feature':<32} {'PSI':>7} {'level':<9} {'KS':>6} {'missing train/live':>19}")
            for f in self.features:
                ks = "" if f.ks is None else f"{f.ks:.3f}"
                missing = f"{f.training_missing:.0%} / {f.live_missing:.0%}"
                lines.append(f"{f.name:<32} {f.psi:>7.3f} {f.level:<9} {ks:>6} {missing:>19}")
        if self.trend:
            lines.append("over time (oldest first): from, until, requests, largest PSI (level, feature)")
            for w in self.trend:
                lines.append(f"  {w.started} {w.ended} {w.requests:>6} {w.max_psi:>7.3f} "
                             f"({w.level}, {w.worst})")
        return "\n".join(lines)


def level_of(psi: float) -> Level:
    if psi < STABLE_BELOW:
        return "stable"
    return "moderate" if psi <= SHIFTED_ABOVE else "shifted"


def psi(training: np.ndarray, live: np.ndarray) -> float:
    """Population Stability Index of two vectors of shares over the same bins."""
    expected = np.clip(np.asarray(training, dtype=float), _FLOOR, None)
    actual = np.clip(np.asarray(live, dtype=float), _FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def read_training(release_dir: Path, public_key: bytes | None, *, require_signature: bool = True
                  ) -> pd.DataFrame:
    """The release's training rows (model input columns, CSV text), once checked to be the signed ones."""
    try:
        manifest = artifact.read_manifest(release_dir)
        snapshot = artifact.snapshot_ref(manifest)
        if snapshot is None:
            raise DriftError(f"release {release_dir.name} ships no training data (dataset_snapshot): "
                             "no drift report for it")
        if require_signature:
            if public_key is None:
                raise DriftError("no deploy public key: cannot verify the release's signed manifest")
            artifact.verify_signature(manifest, public_key)
    except artifact.ArtifactError as exc:
        raise DriftError(f"release {release_dir.name}: {exc}") from None
    path = release_dir / snapshot.file
    where = f"{snapshot.file} of release {release_dir.name}"  # no host path: the page is public
    try:
        if artifact.sha256_of(path) != snapshot.sha256:
            raise DriftError(f"{where}: sha256 does not match model.json's dataset_snapshot")
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    except OSError as exc:
        raise DriftError(f"{where} cannot be read: {exc.strerror or type(exc).__name__}") from None
    except (EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DriftError(f"{where} cannot be read: {type(exc).__name__}") from None
    return features.select_input(frame)  # "" is unknown to the feature code, as in a CSV it trains on


def _lines_newest_first(path: Path, chunk: int = 1 << 16) -> Iterator[bytes]:
    """A file's lines from the last to the first, reading backwards: the newest requests cost the least."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        position = handle.seek(0, 2)
        rest = b""
        while position > 0:
            step = min(chunk, position)
            position -= step
            handle.seek(position)
            block = handle.read(step) + rest
            lines = block.split(b"\n")
            rest = lines.pop(0)
            yield from reversed([line for line in lines if line.strip()])
        if rest.strip():
            yield rest


def log_files(path: Path) -> list[Path]:
    """The live log, then its rotated files newest to oldest (``.1``, ``.2`` ...) as long as they exist."""
    found = [path]
    index = 1
    while prediction_log.rotated_name(path, index).exists():
        found.append(prediction_log.rotated_name(path, index))
        index += 1
    return found


def read_requests(path: Path, *, max_requests: int = DEFAULT_MAX_REQUESTS) -> tuple[pd.DataFrame, list[str],
                                                                                      list[str]]:
    """The newest ``max_requests`` logged inputs (oldest first), their times and their model versions.

    A line that is not a prediction entry (torn by a crash, written by something else) is skipped. Rows
    that carry no ``collected_at`` get the request's time: the model measured their ages from then.
    """
    rows: list[dict[str, Any]] = []
    times: list[str] = []
    versions: list[str] = []
    for file in log_files(path):
        for line in _lines_newest_first(file):
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("inputs"), dict):
                continue
            inputs = dict(entry["inputs"])
            if not inputs.get("collected_at") and isinstance(entry.get("time"), str):
                inputs["collected_at"] = entry["time"]
            rows.append(inputs)
            times.append(str(entry.get("time") or ""))
            versions.append(str(entry.get("model_version") or "unknown"))
            if len(rows) >= max_requests:
                break
        if len(rows) >= max_requests:
            break
    rows.reverse()
    times.reverse()
    versions.reverse()
    frame = pd.DataFrame(rows, columns=list(features.INPUT_COLUMN_NAMES))
    return frame, times, versions


def model_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The features the model computes from raw columns (its pipeline's first step, stateless)."""
    return features.RepositoryFeatures().transform(features.select_input(raw))


def compare_numeric(name: str, training: pd.Series, live: pd.Series) -> FeatureDrift:
    from scipy import stats

    train_values = pd.to_numeric(training, errors="coerce").to_numpy(dtype=float)
    live_values = pd.to_numeric(live, errors="coerce").to_numpy(dtype=float)
    train_known = train_values[~np.isnan(train_values)]
    live_known = live_values[~np.isnan(live_values)]
    edges = (np.unique(np.quantile(train_known, np.linspace(0, 1, _BINS + 1)[1:-1]))
             if train_known.size else np.array([]))
    labels = [*_bin_labels(edges), _MISSING]

    def shares(values: np.ndarray) -> np.ndarray:
        known = values[~np.isnan(values)]
        counts = np.bincount(np.searchsorted(edges, known, side="right"), minlength=len(edges) + 1)
        counts = np.append(counts, np.isnan(values).sum()).astype(float)
        return counts / max(1, values.size)

    expected, actual = shares(train_values), shares(live_values)
    ks = pvalue = None
    if train_known.size and live_known.size:
        result = stats.ks_2samp(train_known, live_known)
        ks, pvalue = float(result.statistic), float(result.pvalue)
    return FeatureDrift(name, "numeric", psi(expected, actual), ks, pvalue, float(expected[-1]),
                        float(actual[-1]), [Bin(lb, float(e), float(a)) for lb, e, a in
                                            zip(labels, expected, actual, strict=True)])


def compare_categorical(name: str, training: pd.Series, live: pd.Series) -> FeatureDrift:
    def named(values: pd.Series) -> pd.Series:
        return values.where(values.notna(), "(none)").astype(str)

    train_named, live_named = named(training), named(live)
    top = [c for c in train_named.value_counts().index if c != "(none)"][:_TOP_CATEGORIES]
    labels = [*top, "(other)", "(none)"]

    def shares(values: pd.Series) -> np.ndarray:
        folded = values.where(values.isin(top) | (values == "(none)"), "(other)")
        counts = folded.value_counts()
        return np.array([counts.get(label, 0) for label in labels], dtype=float) / max(1, len(values))

    expected, actual = shares(train_named), shares(live_named)
    return FeatureDrift(name, "categorical", psi(expected, actual), None, None, float(expected[-1]),
                        float(actual[-1]), [Bin(lb, float(e), float(a)) for lb, e, a in
                                            zip(labels, expected, actual, strict=True)])


def compare(training_raw: pd.DataFrame, live_raw: pd.DataFrame) -> list[FeatureDrift]:
    """PSI (and KS) of every model feature, the most drifted first."""
    return compare_features(model_features(training_raw), model_features(live_raw))


def compare_features(train: pd.DataFrame, live: pd.DataFrame) -> list[FeatureDrift]:
    """``compare`` on frames of model features (computed once, then sliced by ``trend``)."""
    found = [compare_numeric(n, train[n], live[n]) for n in features.numeric_feature_names()]
    found += [compare_categorical(n, train[n], live[n]) for n in features.CATEGORY_COLUMNS]
    return sorted(found, key=lambda f: (-f.psi, f.name))


def trend(train: pd.DataFrame, live: pd.DataFrame, times: list[str], *, min_requests: int,
          windows: int = 6) -> list[Window]:
    """The live requests cut into up to ``windows`` equal slices in time order (each >= ``min_requests``)."""
    count = min(windows, len(live) // min_requests)
    if count < 2:
        return []
    bounds = np.linspace(0, len(live), count + 1).astype(int)
    found: list[Window] = []
    for start, end in itertools.pairwise(bounds):
        drifts = compare_features(train, live.iloc[start:end].reset_index(drop=True))
        found.append(Window(times[start], times[end - 1], int(end - start), drifts[0].psi, drifts[0].name,
                            sum(1 for d in drifts if d.level == "shifted")))
    return found


def shifted_since(windows: list[Window]) -> str | None:
    """Start of the run of shifted windows that reaches now, when older windows were not shifted."""
    if not windows or windows[-1].level != "shifted":
        return None
    first = len(windows) - 1
    while first > 0 and windows[first - 1].level == "shifted":
        first -= 1
    return windows[first].started if first > 0 else None


def headline(verdict: Verdict, drifts: list[FeatureDrift], requests: int, needed: int,
             windows: list[Window] | None = None) -> str:
    shifted = [f for f in drifts if f.level == "shifted"]
    moderate = [f for f in drifts if f.level == "moderate"]

    def named(items: list[FeatureDrift]) -> str:
        shown = ", ".join(f"{f.name} {f.psi:.2f}" for f in items[:3])
        return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    if verdict == "retrain":
        since = shifted_since(windows or [])
        return (f"RETRAIN: time to collect fresh data and retrain: {len(shifted)} of {len(drifts)} features "
                f"shifted (PSI > {SHIFTED_ABOVE}): {named(shifted)}; over the last {requests} requests."
                + (f" Shifted since about {since}." if since else ""))
    if verdict == "watch":
        return (f"WATCH: no need to retrain yet, collect fresh data soon: {len(moderate)} of {len(drifts)} "
                f"features moderately shifted (PSI {STABLE_BELOW}-{SHIFTED_ABOVE}): {named(moderate)}; "
                f"none above {SHIFTED_ABOVE}; over the last {requests} requests.")
    if verdict == "stable":
        largest = f"largest {drifts[0].name} {drifts[0].psi:.2f}" if drifts else "no features"
        return (f"STABLE: no need to retrain: every feature has PSI < {STABLE_BELOW} ({largest}) over the "
                f"last {requests} requests.")
    return (f"TOO FEW REQUESTS: {requests} live requests logged, {needed} needed for a verdict; "
            "no drift judged yet.")


def report(model_dir: Path, log_path: Path, public_key: bytes | None, *, require_signature: bool = True,
           max_requests: int = DEFAULT_MAX_REQUESTS, min_requests: int = DEFAULT_MIN_REQUESTS) -> Report:
    """The drift report of the release ``model_dir/current`` serves against the newest logged requests."""
    release = releases.current_release(model_dir)
    if release is None:
        raise DriftError("no model is served on this host (no current release): nothing to compare with")
    training = read_training(release, public_key, require_signature=require_signature)
    if training.empty:
        raise DriftError(f"release {release.name}: its training data has no rows")
    live, times, versions = read_requests(log_path, max_requests=max_requests)
    result = Report("too_few_requests", "", version=release.name, training_rows=len(training),
                    live_requests=len(live), live_from=times[0] if times else None,
                    live_until=times[-1] if times else None,
                    live_versions={str(k): int(v) for k, v in pd.Series(versions, dtype=object)
                                   .value_counts().items()})
    if len(live) >= min_requests:
        train_features, live_features = model_features(training), model_features(live)
        result.features = compare_features(train_features, live_features)
        result.trend = trend(train_features, live_features, times, min_requests=min_requests)
        levels = {f.level for f in result.features}
        result.verdict = "retrain" if "shifted" in levels else "watch" if "moderate" in levels else "stable"
    result.headline = headline(result.verdict, result.features, len(live), min_requests, result.trend)
    return result


def unavailable(reason: str) -> Report:
    return Report("unavailable", f"NO DRIFT REPORT: {reason}")


def _bin_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["(all)"]
    cuts = [f"{e:.3g}" for e in edges]
    return [f"< {cuts[0]}", *(f"{a} - {b}" for a, b in itertools.pairwise(cuts)), f">= {cuts[-1]}"]
