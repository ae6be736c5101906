"""The shadow report of one host: how far the shadow's predictions are from the served ones, and at what cost.

Computed from the shadow log (``shadow_log.read``) on the host, by post-receive when ``deploy`` asks for it
(see ``githooks/postreceive.py``), and printed there as one JSON line; ``deploy`` checks it against thresholds
(``check``) and prints it (``describe``). Both sides use this module, so a threshold's name means the same
number everywhere.

- **Differences**: per predicted repository, ``ln(1 + shadow) - ln(1 + serving)`` (stars are >= 0; the log
  ratio makes a 10 % difference count the same for 20 and for 20,000 stars). Quantiles of it and of its
  absolute value.
- **Rank agreement**: for each request of two or more repositories, Spearman's rho and Kendall's tau between
  the two models' orderings (scipy). Two constant rankings agree (1.0); a constant one against a varying
  one does not (0.0): a model that says the same for everything cannot order anything.
- **Latency**: p50/p99 of each model's scoring time per request, as the workers measured it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

QUANTILES: Final = (10, 50, 90, 99)


@dataclass(frozen=True)
class Threshold:
    """A bound on one number of the report: ``path`` into it, and whether the number must stay below."""

    path: tuple[str, ...]
    upper: bool
    meaning: str


#: The names ``deploy --if-shadow-within`` accepts.
THRESHOLDS: Final[dict[str, Threshold]] = {
    "max_abs_log_diff_p50": Threshold(("abs_log_diff", "p50"), True, "median |log ratio|"),
    "max_abs_log_diff_p90": Threshold(("abs_log_diff", "p90"), True, "90th percentile of |log ratio|"),
    "max_abs_log_diff_p99": Threshold(("abs_log_diff", "p99"), True, "99th percentile of |log ratio|"),
    "min_rank_agreement": Threshold(("rank", "spearman_mean"), False, "mean Spearman rho per request"),
    "min_kendall": Threshold(("rank", "kendall_mean"), False, "mean Kendall tau per request"),
    "max_shadow_p99_ms": Threshold(("latency_ms", "shadow", "p99"), True, "shadow scoring p99, ms"),
    "max_error_rate": Threshold(("error_rate",), True, "share of requests the shadow failed"),
    "min_requests": Threshold(("requests",), False, "requests scored by both models"),
}


class ThresholdError(ValueError):
    """A threshold specification that cannot be used; one line."""


def parse_thresholds(spec: str) -> dict[str, float]:
    """``"max_abs_log_diff_p90=0.3,min_rank_agreement=0.8"`` -> {name: value}."""
    parsed: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep:
            raise ThresholdError(f"{part!r} is not name=value")
        if name not in THRESHOLDS:
            raise ThresholdError(f"unknown threshold {name!r} (known: {', '.join(THRESHOLDS)})")
        try:
            value = float(raw)
        except ValueError:
            raise ThresholdError(f"{name} must be a number, got {raw.strip()!r}") from None
        if not math.isfinite(value):
            raise ThresholdError(f"{name} must be a finite number, got {raw.strip()!r}")
        parsed[name] = value
    if not parsed:
        raise ThresholdError("no threshold given")
    return parsed


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    return {f"p{q}": round(float(np.percentile(values, q)), 6) for q in QUANTILES}


def _agreement(a: list[float], b: list[float]) -> tuple[float, float]:
    from scipy import stats

    constant_a, constant_b = len(set(a)) == 1, len(set(b)) == 1
    if constant_a or constant_b:
        return (1.0, 1.0) if constant_a and constant_b else (0.0, 0.0)
    rho = stats.spearmanr(a, b).statistic
    tau = stats.kendalltau(a, b).statistic
    return float(rho), float(tau)


def build(entries: Iterable[Mapping[str, Any]], *, shadow_version: str | None, serving_version: str | None,
          since: float | None, host: str) -> dict[str, Any]:
    """The report (JSON-ready) over ``entries`` (lines of the shadow log about ``shadow_version``)."""
    diffs: list[float] = []
    rhos: list[float] = []
    taus: list[float] = []
    serving_ms: list[float] = []
    shadow_ms: list[float] = []
    requests = errors = dropped = 0
    first_error: str | None = None
    serving_seen: set[str] = set()
    for entry in entries:
        dropped += int(entry.get("dropped_before") or 0)
        serving, shadow = entry.get("serving") or [], entry.get("shadow")
        if entry.get("error") or shadow is None or len(shadow) != len(serving):
            errors += 1
            first_error = first_error or str(entry.get("error") or "shadow answered the wrong number of rows")
            continue
        requests += 1
        serving_seen.add(str(entry.get("serving_version")))
        diffs += [math.log1p(max(s, 0.0)) - math.log1p(max(v, 0.0))
                  for v, s in zip(serving, shadow, strict=True)]
        if len(serving) >= 2:
            rho, tau = _agreement(serving, shadow)
            rhos.append(rho)
            taus.append(tau)
        serving_ms.append(float(entry.get("serving_ms") or 0.0))
        shadow_ms.append(float(entry.get("shadow_ms") or 0.0))
    diff = np.asarray(diffs, dtype=float)
    attempted = requests + errors
    return {
        "host": host,
        "shadow_version": shadow_version,
        "serving_version": serving_version,
        "serving_versions_seen": sorted(serving_seen),
        "since": datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if since else None,
        "requests": requests,
        "predictions": int(diff.size),
        "errors": errors,
        "error_rate": round(errors / attempted, 6) if attempted else None,
        "first_error": first_error,
        "dropped": dropped,
        "log_diff": _quantiles(diff),
        "abs_log_diff": _quantiles(np.abs(diff)),
        "rank": {
            "requests": len(rhos),
            "spearman_mean": round(float(np.mean(rhos)), 6) if rhos else None,
            "spearman_min": round(float(np.min(rhos)), 6) if rhos else None,
            "kendall_mean": round(float(np.mean(taus)), 6) if taus else None,
            "kendall_min": round(float(np.min(taus)), 6) if taus else None,
        },
        "latency_ms": {
            "serving": _latency(serving_ms),
            "shadow": _latency(shadow_ms),
        },
    }


def _latency(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values, dtype=float)
    return {f"p{q}": round(float(np.percentile(array, q)), 4) for q in (50, 99)}


def value_at(report: Mapping[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    return float(node)


def check(report: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[str]:
    """One line per threshold the report is not within (empty: within all); no data is not within."""
    failures = []
    for name, limit in thresholds.items():
        threshold = THRESHOLDS[name]
        value = value_at(report, threshold.path)
        if value is None:
            failures.append(f"{name}={limit:g}: no data ({threshold.meaning} unknown)")
        elif (value > limit) if threshold.upper else (value < limit):
            failures.append(f"{name}={limit:g}: {threshold.meaning} is {value:.4g}")
    return failures


def describe(report: Mapping[str, Any]) -> list[str]:
    """The report as a few lines a person reads (``deploy`` prints them per host)."""
    if not report.get("shadow_version"):
        return ["no shadow set"]
    lines = [
        f"shadow {report['shadow_version']} beside {report.get('serving_version')} "
        f"since {report.get('since')}: "
        f"{report['requests']} request(s), {report['predictions']} prediction pair(s), "
        f"{report['errors']} shadow error(s), {report['dropped']} not shadowed (busy)"
    ]
    if report.get("first_error"):
        lines.append(f"first shadow error: {report['first_error']}")
    diff, absolute = report.get("log_diff"), report.get("abs_log_diff")
    if diff and absolute:
        signed = ", ".join(f"{k} {v:+.3f}" for k, v in diff.items())
        magnitude = ", ".join(f"{k} {v:.3f}" for k, v in absolute.items())
        lines.append(f"log ratio ln(1+shadow)-ln(1+serving): {signed}; |log ratio|: {magnitude}")
    rank = report.get("rank") or {}
    if rank.get("requests"):
        lines.append(f"rank agreement over {rank['requests']} multi-repository request(s): Spearman mean "
                     f"{rank['spearman_mean']:.3f} (min {rank['spearman_min']:.3f}), Kendall mean "
                     f"{rank['kendall_mean']:.3f} (min {rank['kendall_min']:.3f})")
    latency = report.get("latency_ms") or {}
    parts = [f"{model} p50 {v['p50']:.2f} / p99 {v['p99']:.2f}" for model, v in latency.items() if v]
    if parts:
        lines.append("scoring ms per request: " + "; ".join(parts))
    return lines
