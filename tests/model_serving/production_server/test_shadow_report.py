"""The shadow log and the report computed from it: known pairs in, known numbers out."""

from __future__ import annotations

import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from model_serving.production_server import prediction_log, shadow_log, shadow_report


def _line(serving: list[float], shadow: list[float] | None, *, version: str = "v2", error: str | None = None,
          now: datetime | None = None, serving_ms: float = 1.0, shadow_ms: float | None = 2.0,
          dropped: int = 0) -> dict:
    return shadow_log.record(serving_version="v1", shadow_version=version, serving=serving, shadow=shadow,
                             serving_seconds=serving_ms / 1000,
                             shadow_seconds=shadow_ms / 1000 if shadow_ms is not None else None,
                             error=error, dropped_before=dropped, pid=os.getpid(), now=now)


def test_differences_rank_agreement_and_latency() -> None:
    entries = [
        _line([9.0, 99.0, 999.0], [19.0, 99.0, 999.0], serving_ms=1.0, shadow_ms=3.0),  # same order
        _line([9.0, 99.0], [99.0, 9.0], serving_ms=2.0, shadow_ms=4.0),  # reversed order
        _line([5.0], [5.0], serving_ms=3.0, shadow_ms=5.0),  # one repository: no ranking to compare
        _line([1.0, 2.0], None, error="shadow v2 failed to predict: ValueError: boom", dropped=3),
    ]
    report = shadow_report.build(entries, shadow_version="v2", serving_version="v1", since=0.0, host="h")
    assert report["requests"] == 3 and report["errors"] == 1 and report["dropped"] == 3
    assert report["error_rate"] == pytest.approx(0.25)
    assert report["first_error"] == "shadow v2 failed to predict: ValueError: boom"
    assert report["predictions"] == 6
    diffs = [math.log(2.0), 0, 0, math.log(10.0), -math.log(10.0), 0]  # ln(1+shadow) - ln(1+serving)
    for q in (10, 50, 90, 99):
        assert report["log_diff"][f"p{q}"] == pytest.approx(float(np.percentile(diffs, q)), abs=1e-6)
        assert report["abs_log_diff"][f"p{q}"] == pytest.approx(float(np.percentile(np.abs(diffs), q)),
                                                                abs=1e-6)
    assert report["rank"] == {"requests": 2, "spearman_mean": 0.0, "spearman_min": -1.0,
                              "kendall_mean": 0.0, "kendall_min": -1.0}
    assert report["latency_ms"]["serving"]["p50"] == pytest.approx(2.0)
    assert report["latency_ms"]["shadow"]["p50"] == pytest.approx(4.0)
    assert report["latency_ms"]["shadow"]["p99"] == pytest.approx(4.98)


def test_constant_rankings() -> None:
    both = shadow_report.build([_line([3.0, 3.0], [7.0, 7.0])], shadow_version="v2", serving_version="v1",
                               since=None, host="h")
    assert both["rank"]["spearman_mean"] == 1.0
    one = shadow_report.build([_line([3.0, 4.0], [7.0, 7.0])], shadow_version="v2", serving_version="v1",
                              since=None, host="h")
    assert one["rank"]["spearman_mean"] == 0.0 and one["rank"]["kendall_mean"] == 0.0


def test_thresholds_pass_fail_and_missing_data() -> None:
    report = shadow_report.build([_line([10.0, 100.0], [21.0, 201.0])] * 5, shadow_version="v2",
                                 serving_version="v1", since=None, host="h")
    assert shadow_report.check(report, {"min_rank_agreement": 0.8, "min_requests": 5}) == []
    assert shadow_report.check(report, {"max_abs_log_diff_p90": 0.3}) == [
        "max_abs_log_diff_p90=0.3: 90th percentile of |log ratio| is 0.6931"]
    empty = shadow_report.build([], shadow_version="v2", serving_version="v1", since=None, host="h")
    assert shadow_report.check(empty, {"min_rank_agreement": 0.8}) == [
        "min_rank_agreement=0.8: no data (mean Spearman rho per request unknown)"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no threshold given"),
        ("max_abs_log_diff_p90", "'max_abs_log_diff_p90' is not name=value"),
        ("p90=0.3", "unknown threshold 'p90'"),
        ("min_requests=many", "min_requests must be a number, got 'many'"),
        ("max_abs_log_diff_p90=nan", "must be a finite number"),
    ],
)
def test_bad_threshold_specs(spec: str, message: str) -> None:
    with pytest.raises(shadow_report.ThresholdError, match=message):
        shadow_report.parse_thresholds(spec)


def test_parse_thresholds() -> None:
    assert shadow_report.parse_thresholds(" max_abs_log_diff_p90=0.3, min_rank_agreement=0.8 ") == {
        "max_abs_log_diff_p90": 0.3, "min_rank_agreement": 0.8}


def test_log_reads_only_this_shadow_since_it_was_set_across_rotation(tmp_path: Path) -> None:
    path = shadow_log.path_for(tmp_path)
    since = time.time()
    old = datetime.fromtimestamp(since, UTC) - timedelta(seconds=5)
    shadow_log.append(path, _line([1.0], [1.0], now=old), max_bytes=0, backups=0)  # an earlier run
    shadow_log.append(path, _line([1.0], [1.0], version="v3"), max_bytes=0, backups=0)  # another shadow
    entry = _line([2.0], [3.0])
    size = len(prediction_log.json.dumps(entry, separators=(",", ":"), sort_keys=True)) + 1
    for _ in range(5):  # rotates: at most two lines per file
        assert shadow_log.append(path, entry, max_bytes=2 * size + 1, backups=10)
    with path.open("a") as handle:
        handle.write('{"torn": \n')
    assert [p.name for p in shadow_log.files(path)][-1] == path.name and len(shadow_log.files(path)) >= 3
    found = list(shadow_log.read(path, shadow_version="v2", since=since))
    assert len(found) == 5 and all(e["shadow"] == [3.0] for e in found)
