"""The release history of a host: three deploys and one rollback by real ``git push`` through the installed
hooks (as tests/githooks does), then ``/models`` and ``GET /api/v1/models`` rendered by the Flask app pointed
at that host's model directory, and once through nginx in Chromium.

The history comes from the deploy log post-receive writes; a version pruned from the host keeps its periods,
its pusher and its held-out metrics there. Gate scores and an override reason, recorded by the quality gate
in the same entry, are shown when present and "—" when not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from model_serving import artifact, releases
from model_serving.development_server import deploy as deploy_module
from model_serving.production_server import create_app, history
from model_serving.production_server.settings import ServingSettings
from synthetic.versions import START, fitted_pipeline
from tests.support import (
    DEPLOY_KEYS,
    TEST_ARTIFACTS,
    Host,
    chromium_page,
    install_host,
    json_rows,
    require_executable,
    require_stack_tools,
    shifted_requests,
    start_stack,
    write_requests,
)

#: Held-out metrics per version, distinct so the page cannot show one release's numbers for another's.
HOLDOUT = [
    {"r2_log": 0.512, "r2": 0.41, "mae": 120.5, "rmse": 400.0, "spearman": 0.701},
    {"r2_log": 0.634, "r2": 0.52, "mae": 98.25, "rmse": 350.0, "spearman": 0.755},
    {"r2_log": 0.587, "r2": 0.47, "mae": 110.0, "rmse": 380.0, "spearman": 0.733},
]


@dataclass(frozen=True)
class PushedHost:
    host: Host
    versions: list[str]  # oldest first
    log: list[dict]
    actor: str


def _write_version(models: Path, index: int) -> Path:
    from datetime import timedelta

    from data_collection.dataset import render_csv
    from synthetic.dataset import synthetic_dataset

    dataset = models.parent / f"repos-{index}.csv"
    dataset.write_bytes(render_csv(json_rows(synthetic_dataset(200, index))))
    return artifact.write_version(
        fitted_pipeline(index), models,
        dataset={"path": str(dataset), "sha256": "0" * 64, "rows": 200},
        metrics={"protocol": "test fixture", "cv": HOLDOUT[index], "holdout": HOLDOUT[index]},
        params={"n_estimators": 8},
        tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={"median": HOLDOUT[0]}, now=START + timedelta(minutes=index), dataset_file=dataset,
    )


def _deploy(*args: str, models: Path, repo: Path, host: Host) -> None:
    env = {artifact.SIGNING_KEY_ENV: DEPLOY_KEYS.signing_text, artifact.SIGNING_KEY_FILE_ENV: None,
           "STARGAZER_DEPLOY_REMOTES": None,
           "STARGAZER_DEPLOY_REPO": None, "STARGAZER_MODEL_DIR": None, "STARGAZER_APP_DIR": None}
    result = CliRunner().invoke(deploy_module.deploy_command,
                                [*args, "--models", str(models), "--repo", str(repo), "--remote", host.url],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> PushedHost:
    """Three deploys (v0, v1, v2) and a rollback (to v1) on a host keeping two releases: v0 is pruned."""
    require_executable("git", "/usr/bin/git")
    root = tmp_path_factory.mktemp("history")
    models = root / "models"
    versions = [_write_version(models, index) for index in range(3)]
    host = install_host(root, "h-history", DEPLOY_KEYS.write_public(root / "deploy_public_key"), keep=2)
    repo = root / "deploy.git"
    for version in versions:
        _deploy("--version", version.name, models=models, repo=repo, host=host)
    _deploy("--rollback", models=models, repo=repo, host=host)
    return PushedHost(host, [v.name for v in versions], host.log(), deploy_module._actor())


def _app(model_dir: Path, tmp_path: Path, prediction_log: Path | None = None) -> Flask:
    settings = ServingSettings(broker_url="amqp://nobody:nothing@127.0.0.1:1/none", model_dir=model_dir,
                               deploy_public_key=DEPLOY_KEYS.public,
                               prediction_log=prediction_log or tmp_path / "predictions.jsonl",
                               secret_key="test-secret-key", github_budget_db=tmp_path / "budget.sqlite3")
    return create_app({"STARGAZER": settings, "TESTING": True})


@pytest.mark.integration
def test_three_deploys_and_a_rollback_in_the_api(pushed: PushedHost, tmp_path: Path) -> None:
    v0, v1, v2 = pushed.versions
    log = pushed.log
    assert [(e["event"], e["version"]) for e in log] == [("deploy", v0), ("deploy", v1), ("deploy", v2),
                                                         ("rollback", v1)]
    assert not (pushed.host.model_dir / releases.RELEASES_DIR / v0).exists()  # pruned (keep=2)

    answer = _app(pushed.host.model_dir, tmp_path).test_client().get("/api/v1/models")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    data = answer.get_json()
    assert data["host"] == "h-history" and data["serving"] == v1 and data["skipped_lines"] == 0
    assert [r["version"] for r in data["releases"]] == [v1, v2, v0]  # most recently activated first
    by_version = {r["version"]: r for r in data["releases"]}

    assert [(p["event"], p["from"], p["until"]) for p in by_version[v1]["served"]] == [
        ("rollback", log[3]["time"], None),
        ("deploy", log[1]["time"], log[2]["time"]),
    ]
    assert [(p["event"], p["from"], p["until"]) for p in by_version[v2]["served"]] == [
        ("deploy", log[2]["time"], log[3]["time"])]
    assert [(p["event"], p["from"], p["until"]) for p in by_version[v0]["served"]] == [
        ("deploy", log[0]["time"], log[1]["time"])]
    assert [(r["serving"], r["installed"]) for r in data["releases"]] == [(True, True), (False, True),
                                                                           (False, False)]
    for index, version in enumerate(pushed.versions):
        release = by_version[version]
        assert release["pushed_by"] == pushed.actor  # sent by the deploy command as -o actor=user@host
        assert all(p["commit"] and p["hook_user"] for p in release["served"])
        assert release["holdout"] == HOLDOUT[index]  # the pruned v0's from the deploy log
        assert release["gate"] is None and release["override_reason"] is None
        assert release["created_at"] == f"2026-11-01T12:0{index}:00Z"


@pytest.mark.integration
def test_three_deploys_and_a_rollback_on_the_page(pushed: PushedHost, tmp_path: Path) -> None:
    v0, v1, v2 = pushed.versions
    client = _app(pushed.host.model_dir, tmp_path).test_client()
    assert 'href="/models"' in client.get("/").get_data(as_text=True)  # every page links the history
    page = client.get("/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Models served on h-history" in html
    rows = {v: _row(html, v) for v in pushed.versions}
    where = [html.index(f'id="release-{v}"') for v in (v1, v2, v0)]
    assert where == sorted(where)
    assert "serving now" in rows[v1] and "serving now" not in rows[v2] + rows[v0]
    assert "pruned from this host" in rows[v0] and "pruned from this host" not in rows[v1] + rows[v2]
    assert rows[v1].count('class="period"') == 2 and "rollback: " in rows[v1] and "&rarr; now" in rows[v1]
    started = pushed.log[3]["time"][:19].replace("T", " ")
    assert f"rollback: {started} &rarr; now" in rows[v1]
    for index, version in enumerate(pushed.versions):
        assert pushed.actor in rows[version]
        assert f'metric-r2_log">{HOLDOUT[index]["r2_log"]:.3f}<' in rows[version]
        assert f'metric-mae">{HOLDOUT[index]["mae"]:.3f}<' in rows[version]
        assert '<td class="gate">&mdash;</td>' in rows[version]
        assert '<td class="override">—</td>' in rows[version]
    # No request was logged yet: the drift section says so instead of guessing.
    assert "TOO FEW REQUESTS: 0 live requests logged" in html


def _row(html: str, version: str) -> str:
    start = html.index(f'id="release-{version}"')
    return html[start:html.index("</tr>", start)]


def test_gate_scores_and_an_override_reason_are_shown_when_recorded(tmp_path: Path) -> None:
    """The quality gate records ``gate`` and ``override_reason`` in the deploy-log entry it installs."""
    model_dir = tmp_path / "production"
    model_dir.mkdir()
    entries = [
        {"time": "2026-11-02T10:00:00.000000Z", "event": "deploy", "version": "20261101T120000Z-0000000a",
         "previous": None, "actor": "ann@dev", "user": "stargazer-deploy", "commit": "a" * 40,
         "holdout": HOLDOUT[0], "gate": {"evalset": "evalset-v1.csv", "rows": 200, "decision": "first-model",
                                         "pushed": {"spearman": 0.7, "mae_log": 0.9, "coverage": 0.8}}},
        {"time": "2026-11-03T10:00:00.000000Z", "event": "deploy", "version": "20261102T120000Z-0000000b",
         "previous": "20261101T120000Z-0000000a", "actor": "bob@dev", "user": "stargazer-deploy",
         "commit": "b" * 40, "holdout": HOLDOUT[1],
         "gate": {"evalset": "evalset-v1.csv", "rows": 200, "decision": "overridden",
                  "pushed": {"spearman": 0.61}, "serving_version": "20261101T120000Z-0000000a",
                  "serving": {"spearman": 0.7}},
         "override_reason": "hotfix: the old model cannot read the new license field"},
    ]
    lines = [json.dumps(e) for e in entries]
    lines.insert(1, '{"time": "2026-11-02T11:00:00Z", "version": "torn')  # a crash mid-write
    (model_dir / releases.DEPLOY_LOG).write_text("\n".join(lines) + "\n")

    past = history.build(model_dir)
    assert past.skipped_lines == 1 and past.serving is None
    newest, oldest = past.releases
    assert newest.override_reason == "hotfix: the old model cannot read the new license field"
    assert newest.gate_scores() == [("pushed.spearman", 0.61), ("serving.spearman", 0.7)]
    assert oldest.gate_scores() == [("pushed.spearman", 0.7), ("pushed.mae_log", 0.9),
                                    ("pushed.coverage", 0.8)]
    assert oldest.override_reason is None
    # current points nowhere: no period claims to serve until now.
    assert newest.periods[0].ended == "unknown" and oldest.periods[0].ended == "2026-11-03T10:00:00.000000Z"

    client = _app(model_dir, tmp_path).test_client()
    data = client.get("/api/v1/models").get_json()
    assert data["releases"][0]["gate"] == entries[1]["gate"]
    assert data["releases"][0]["override_reason"] == entries[1]["override_reason"]
    html = client.get("/models").get_data(as_text=True)
    assert "hotfix: the old model cannot read the new license field" in _row(html, newest.version)
    assert "pushed.spearman 0.610" in _row(html, newest.version)
    assert '<span class="verdict">overridden</span>' in _row(html, newest.version)
    assert "rows 200" not in html  # the eval set's size is no score
    assert "pushed.coverage 0.800" in _row(html, oldest.version)
    assert '<td class="override">—</td>' in _row(html, oldest.version)
    assert "1 line(s) of the deploy log could not be read" in html


def test_a_host_with_no_deploy_yet_has_an_empty_history(tmp_path: Path) -> None:
    client = _app(tmp_path / "nothing-yet", tmp_path).test_client()
    data = client.get("/api/v1/models").get_json()
    assert data == {"host": None, "serving": None, "skipped_lines": 0, "releases": []}
    assert "No release has been deployed to this host yet." in client.get("/models").get_data(as_text=True)
    assert client.post("/api/v1/models").status_code == 405


@pytest.mark.integration
def test_the_models_page_in_chromium_through_nginx(
    pushed: PushedHost, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A person opens /models through nginx: the table, the RETRAIN line, the drift plot (under the CSP)."""
    require_stack_tools()
    v0, v1, v2 = pushed.versions
    state = tmp_path_factory.mktemp("models-stack")
    stack = start_stack(state, pushed.host.model_dir, env={artifact.PUBLIC_KEY_ENV: DEPLOY_KEYS.public_text})
    try:
        write_requests(state / "predictions.jsonl", shifted_requests(300), v1)
        with chromium_page() as (page, console_errors):
            response = page.goto(f"{stack.url}/models")
            assert response is not None and response.status == 200
            rows = page.locator("table.releases tbody tr")
            assert rows.count() == 3
            assert [rows.nth(k).locator("code").inner_text() for k in range(3)] == [v1, v2, v0]
            assert "serving now" in rows.nth(0).inner_text()
            assert page.locator("#drift-headline").inner_text().startswith("RETRAIN: time to collect")
            plot = page.locator("figure.drift-plot img")
            plot.scroll_into_view_if_needed()
            page.wait_for_function("document.querySelector('figure.drift-plot img').complete")
            assert plot.evaluate("img => img.naturalWidth") > 500  # the PNG loaded under nginx's CSP
            assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
            page.screenshot(path=str(TEST_ARTIFACTS / "models-page.png"), full_page=True)
    finally:
        stack.stop()


@pytest.mark.integration
def test_the_gates_scores_and_an_override_reason_from_real_pushes(tmp_path: Path) -> None:
    """A host with a frozen evaluation set: a good first model, then a worse one pushed with an override."""
    import re

    from data_collection.dataset import write_dataset
    from model_serving.development_server.evalset import evalset_command
    from synthetic.dataset import synthetic_dataset
    from synthetic.versions import shuffled_pipeline, write_at

    require_executable("git", "/usr/bin/git")

    def rows(frame: object) -> list[dict]:
        return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in frame.to_dict("records")]

    write_dataset(rows(synthetic_dataset(200, 0)), tmp_path / "train.csv", {"source": "test"})
    write_dataset(rows(synthetic_dataset(400, 11)), tmp_path / "collected.csv", {"source": "test"})
    made = CliRunner().invoke(evalset_command, ["--from", str(tmp_path / "collected.csv"), "--exclude",
                                                str(tmp_path / "train.csv"), "--out", str(tmp_path)],
                              catch_exceptions=False)
    assert made.exit_code == 0, made.output
    sha256 = re.search(r"^sha256 ([0-9a-f]{64})$", made.output, re.MULTILINE).group(1)
    [evalset] = tmp_path.glob("evalset-*.csv.gz")
    host = install_host(tmp_path, "h-gated", DEPLOY_KEYS.write_public(tmp_path / "deploy_public_key"),
                        extra=["--evalset", str(evalset), "--evalset-sha256", sha256])
    models = tmp_path / "models"
    good, worse = write_at(fitted_pipeline(0), models, 0), write_at(shuffled_pipeline(1), models, 1)
    reason = "on-call accepts the regression until the 12:00 retrain"
    _deploy("--version", good.name, models=models, repo=tmp_path / "deploy.git", host=host)
    _deploy("--version", worse.name, "--override-gate", reason, models=models, repo=tmp_path / "deploy.git",
            host=host)
    log = host.log()

    client = _app(host.model_dir, tmp_path).test_client()
    newest, first = client.get("/api/v1/models").get_json()["releases"]
    assert (newest["version"], first["version"]) == (worse.name, good.name)
    assert newest["override_reason"] == reason and first["override_reason"] is None
    assert newest["gate"] == log[1]["gate"] and first["gate"] == log[0]["gate"]
    assert first["gate"]["decision"] == "first-model" and newest["gate"]["decision"] == "overridden"

    html = client.get("/models").get_data(as_text=True)
    worse_row, good_row = _row(html, worse.name), _row(html, good.name)
    assert reason in worse_row and '<td class="override">—</td>' in good_row
    assert '<span class="verdict">overridden</span>' in worse_row
    for name in ("spearman", "mae_log", "coverage"):  # the pushed and the serving model's, as recorded
        assert f"pushed.{name} {log[1]['gate']['pushed'][name]:.3f}" in worse_row
        assert f"serving.{name} {log[1]['gate']['serving'][name]:.3f}" in worse_row
        assert f"pushed.{name} {log[0]['gate']['pushed'][name]:.3f}" in good_row
