"""The drift report: live requests from the prediction log (rotated files included) against the serving
release's training data, feature by feature as the model computes them.

A stream drawn from the training distribution is not flagged; a shifted one is, and the report names the
features that moved and only those. The command, the API and the page say the same thing.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from model_serving import artifact
from model_serving.production_server import create_app, drift
from model_serving.production_server.cli import RETRAIN_EXIT_CODE, main
from model_serving.production_server.settings import ServingSettings
from tests.support import (
    DEPLOY_KEYS,
    OTHER_DEPLOY_KEYS,
    install,
    shifted_requests,
    unshifted_requests,
    version_with_training_data,
    write_requests,
)

#: The features the shifted stream moves (forks x25, created within 60 days, pushed at collection).
MOVED = {"log_forks_count", "log_forks_count_per_year", "age_days", "days_since_push", "active_span_days"}
UNTOUCHED = {"log_open_issues_count", "log_size", "log_owner_followers", "language", "license_spdx",
             "topics_count", "has_wiki"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("drift")
    version = version_with_training_data(root, DEPLOY_KEYS.signing)
    model_dir = root / "production"
    return model_dir, install(model_dir, version)


def _report(model_dir: Path, log: Path, **options: int) -> drift.Report:
    return drift.report(model_dir, log, DEPLOY_KEYS.public, **options)


def test_an_unshifted_stream_is_not_flagged(served: tuple[Path, str], tmp_path: Path) -> None:
    model_dir, version = served
    log = tmp_path / "predictions.jsonl"
    write_requests(log, unshifted_requests(600), version)
    assert len(drift.log_files(log)) > 2  # the stream spans rotated files: every one is read

    report = _report(model_dir, log)
    assert report.live_requests == 600 and report.training_rows == 1500
    assert report.verdict == "stable", report.to_text()
    assert report.headline.startswith("STABLE: no need to retrain")
    assert all(f.psi < drift.STABLE_BELOW for f in report.features), report.to_text()
    assert report.live_versions == {version: 600}


def test_a_shifted_stream_is_flagged_and_names_what_moved(served: tuple[Path, str], tmp_path: Path) -> None:
    model_dir, version = served
    log = tmp_path / "predictions.jsonl"
    write_requests(log, shifted_requests(600), version)

    report = _report(model_dir, log)
    assert report.verdict == "retrain", report.to_text()
    assert report.headline.startswith("RETRAIN: time to collect fresh data and retrain")
    shifted = {f.name for f in report.features if f.level == "shifted"}
    assert shifted >= MOVED, report.to_text()
    assert not shifted & UNTOUCHED, report.to_text()
    by_name = {f.name: f for f in report.features}
    assert by_name["log_forks_count"].ks is not None and by_name["log_forks_count"].ks > 0.5
    assert report.features[0].psi == max(f.psi for f in report.features)  # most drifted first


def test_the_newest_requests_decide(served: tuple[Path, str], tmp_path: Path) -> None:
    """Shifted requests first, then unshifted ones: the newest 300 are read (backwards, across rotations)."""
    model_dir, version = served
    log = tmp_path / "predictions.jsonl"
    write_requests(log, shifted_requests(400), version)
    write_requests(log, unshifted_requests(300), version, start=datetime(2026, 11, 3, tzinfo=UTC))
    assert _report(model_dir, log, max_requests=300).verdict == "stable"
    both = _report(model_dir, log, max_requests=700)
    assert both.verdict == "retrain"
    # Over time: three windows of ~233 requests, oldest first; the last one is no longer shifted (a window
    # is smaller than the whole, so its noise may reach "moderate").
    assert [w.level == "shifted" for w in both.trend] == [True, True, False]
    assert sum(w.requests for w in both.trend) == 700
    assert "Shifted since" not in both.headline  # it is not shifted now, at the end of the stream


def test_the_report_says_since_when_requests_are_shifted(served: tuple[Path, str], tmp_path: Path) -> None:
    model_dir, version = served
    log = tmp_path / "predictions.jsonl"
    write_requests(log, unshifted_requests(400), version)
    write_requests(log, shifted_requests(400), version, start=datetime(2026, 11, 5, tzinfo=UTC))
    report = _report(model_dir, log)
    assert [w.level == "shifted" for w in report.trend] == [False, False, True, True]
    assert report.trend[2].started.startswith("2026-11-05T00:00:00")
    assert report.headline.endswith(f"Shifted since about {report.trend[2].started}.")
    assert "over time (oldest first)" in report.to_text()
    assert report.to_json()["trend"][2]["level"] == "shifted"


def test_few_requests_give_no_verdict_and_torn_lines_are_skipped(served: tuple[Path, str],
                                                                  tmp_path: Path) -> None:
    model_dir, version = served
    log = tmp_path / "predictions.jsonl"
    write_requests(log, shifted_requests(50), version)
    with log.open("a", encoding="utf-8") as handle:
        handle.write('{"time": "2026-11-03T00:00:00Z", "inputs": {"forks_co\n')  # a crash mid-line
        handle.write("not json at all\n")
    report = _report(model_dir, log)
    assert report.live_requests == 50
    assert report.verdict == "too_few_requests" and report.features == []
    assert report.headline.startswith("TOO FEW REQUESTS: 50 live requests logged, 200 needed")


def test_the_command_prints_the_verdict_first_writes_the_plot_and_checks(
    served: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, version = served
    monkeypatch.setenv(artifact.PUBLIC_KEY_ENV, DEPLOY_KEYS.public_text)
    monkeypatch.setenv("STARGAZER_MODEL_DIR", str(model_dir))
    shifted, unshifted = tmp_path / "shifted.jsonl", tmp_path / "unshifted.jsonl"
    write_requests(shifted, shifted_requests(400), version)
    write_requests(unshifted, unshifted_requests(400), version)
    runner = CliRunner()

    plot = tmp_path / "drift.png"
    flagged = runner.invoke(main, ["drift", "--prediction-log", str(shifted), "--plot", str(plot), "--check"])
    assert flagged.exit_code == RETRAIN_EXIT_CODE, flagged.output
    assert flagged.output.splitlines()[0].startswith("RETRAIN: time to collect fresh data and retrain")
    assert "thresholds: PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted" in flagged.output
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and plot.stat().st_size > 10_000

    calm = runner.invoke(main, ["drift", "--prediction-log", str(unshifted), "--check", "--json"])
    assert calm.exit_code == 0, calm.output
    answer = json.loads(calm.output)
    assert answer["verdict"] == "stable" and answer["live_requests"] == 400
    assert answer["thresholds"] == drift.THRESHOLDS_TEXT
    assert {f["feature"] for f in answer["features"]} >= MOVED | UNTOUCHED


def test_the_command_refuses_in_one_line_what_it_cannot_judge(
    served: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, _ = served
    monkeypatch.setenv(artifact.PUBLIC_KEY_ENV, DEPLOY_KEYS.public_text)
    runner = CliRunner()
    log = tmp_path / "predictions.jsonl"

    empty = ["--model-dir", str(tmp_path / "empty"), "--prediction-log", str(log)]
    nothing = runner.invoke(main, ["drift", *empty])
    assert nothing.exit_code == 1
    assert nothing.output.strip() == ("Error: no model is served on this host (no current release): "
                                      "nothing to compare with")

    monkeypatch.setenv(artifact.PUBLIC_KEY_ENV, OTHER_DEPLOY_KEYS.public_text)
    wrong = runner.invoke(main, ["drift", "--model-dir", str(model_dir), "--prediction-log", str(log)])
    assert wrong.exit_code == 1 and "signature does not match" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1

    bad = runner.invoke(main, ["drift", "--max-requests", "0"])
    assert bad.exit_code == 2 and "--max-requests" in bad.output


def test_a_snapshot_that_is_not_the_signed_one_gives_no_report(tmp_path: Path) -> None:
    version = version_with_training_data(tmp_path, DEPLOY_KEYS.signing, rows=300)
    model_dir = tmp_path / "production"
    install(model_dir, version)
    snapshot = model_dir / "current" / artifact.SNAPSHOT_FILE
    snapshot.chmod(0o644)
    with gzip.open(snapshot, "wt", encoding="utf-8") as handle:
        handle.write("full_name,forks_count\nx/y,1\n")
    with pytest.raises(drift.DriftError, match="sha256 does not match"):
        drift.report(model_dir, tmp_path / "predictions.jsonl", DEPLOY_KEYS.public)


def test_a_release_without_training_data_says_so(tmp_path: Path) -> None:
    from synthetic.versions import build_tiny_version

    version = build_tiny_version(tmp_path / "models", rows=60, n_estimators=2)
    artifact.sign_version(version, DEPLOY_KEYS.signing)
    model_dir = tmp_path / "production"
    install(model_dir, version)
    with pytest.raises(drift.DriftError, match="ships no training data"):
        drift.report(model_dir, tmp_path / "predictions.jsonl", DEPLOY_KEYS.public)


def _app(model_dir: Path, log: Path, tmp_path: Path) -> Flask:
    settings = ServingSettings(broker_url="amqp://nobody:nothing@127.0.0.1:1/none", model_dir=model_dir,
                               deploy_public_key=DEPLOY_KEYS.public, prediction_log=log,
                               secret_key="test-secret-key",
                               github_budget_db=tmp_path / "budget.sqlite3")
    return create_app({"STARGAZER": settings, "TESTING": True})


def test_the_page_and_the_api_show_the_same_report_with_its_plot(served: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    model_dir, version = served
    log = tmp_path / "predictions.jsonl"
    write_requests(log, shifted_requests(400), version)
    client = _app(model_dir, log, tmp_path).test_client()

    answer = client.get("/api/v1/models/drift")
    assert answer.status_code == 200
    data = answer.get_json()
    assert data["verdict"] == "retrain" and data["model_version"] == version
    assert data["live_requests"] == 400 and data["training_rows"] == 1500
    first = data["features"][0]
    assert set(first) == {"feature", "kind", "psi", "level", "ks", "ks_pvalue", "training_missing",
                          "live_missing", "bins"}
    assert abs(sum(b["training"] for b in first["bins"]) - 1) < 1e-3
    assert abs(sum(b["live"] for b in first["bins"]) - 1) < 1e-3

    page = client.get("/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert data["headline"] in html.replace("&gt;", ">")
    assert 'src="/models/drift.png"' in html
    assert "PSI &lt; 0.1 stable, 0.1-0.25 moderate, &gt; 0.25 shifted" in html
    png = client.get("/models/drift.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(b"\x89PNG")

    # The report is the process's cached one: more requests do not change it at once ...
    write_requests(log, unshifted_requests(300), version, start=datetime(2026, 11, 3, tzinfo=UTC))
    assert client.get("/api/v1/models/drift").get_json()["live_requests"] == 400


def test_a_new_release_gets_its_own_report_at_once(tmp_path: Path) -> None:
    model_dir, log = tmp_path / "production", tmp_path / "predictions.jsonl"
    first = install(model_dir, version_with_training_data(tmp_path, DEPLOY_KEYS.signing, rows=400, seed=1,
                                                          now=datetime(2026, 11, 1, tzinfo=UTC)))
    write_requests(log, shifted_requests(300), first)
    client = _app(model_dir, log, tmp_path).test_client()
    assert client.get("/api/v1/models/drift").get_json()["verdict"] == "retrain"

    # ... but a deploy (current moves) does: the retrained model's data is what requests are compared with.
    retrained = tmp_path / "retrained"
    second = install(model_dir, version_with_training_data(retrained, DEPLOY_KEYS.signing, rows=400, seed=9,
                                                           now=datetime(2026, 11, 4, tzinfo=UTC)))
    answer = client.get("/api/v1/models/drift").get_json()
    assert answer["model_version"] == second != first
    assert answer["training_rows"] == 400


def test_without_a_model_the_page_says_why_there_is_no_report(tmp_path: Path) -> None:
    client = _app(tmp_path / "no-models", tmp_path / "predictions.jsonl", tmp_path).test_client()
    data = client.get("/api/v1/models/drift").get_json()
    assert data["verdict"] == "unavailable"
    assert data["headline"] == ("NO DRIFT REPORT: no model is served on this host (no current release): "
                                "nothing to compare with")
    html = client.get("/models").get_data(as_text=True)
    assert "NO DRIFT REPORT" in html and "drift.png" not in html
    assert str(tmp_path) not in html  # the public page names no path of the host
