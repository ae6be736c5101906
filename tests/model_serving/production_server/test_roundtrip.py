"""Form and API round trips through a real RabbitMQ and a real Celery worker process (docs/contracts.md §5).

The Flask app runs in the test process; the broker and the worker are real, so every answer here was
predicted by a worker that loaded the signed model from ``STARGAZER_MODEL_DIR/current``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from data_collection.simulator import SimulatorServer
from model_serving.process_stack.services import RabbitMQ
from model_serving.production_server import model_store
from tests.support import (
    READYZ_DETAIL,
    AppFactory,
    Models,
    Workers,
    csrf_token,
    form_data,
    install,
    request_rows,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory, signed_models: Models, rabbitmq: RabbitMQ,
                 module_workers: Workers) -> tuple[Path, str]:
    """One worker for the module, serving v1."""
    model_dir = tmp_path_factory.mktemp("served") / "production"
    version = install(model_dir, signed_models.v1)
    module_workers.start(rabbitmq.url, model_dir)
    return model_dir, version


@pytest.fixture
def served(served_model: tuple[Path, str], rabbitmq: RabbitMQ, make_app: AppFactory) -> tuple[Flask, str]:
    model_dir, version = served_model
    return make_app(rabbitmq.url, model_dir), version


def test_api_round_trip_ranks_in_order_sent_and_logs(served: tuple[Flask, str], tmp_path: Path) -> None:
    app, version = served
    rows = request_rows(5)
    rows[2]["stargazers_count"] = None  # actual unknown for one of them
    rows[3]["watchers_count"] = 10**6  # the target's alias: ignored, never used
    answer = app.test_client().post("/api/v1/predict", json={"repositories": rows})
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert list(body) == ["model_version", "predictions"]
    assert body["model_version"] == version
    predictions = body["predictions"]
    assert [p["full_name"] for p in predictions] == [r["full_name"] for r in rows]  # order preserved
    assert sorted(p["rank"] for p in predictions) == [1, 2, 3, 4, 5]
    by_rank = sorted(predictions, key=lambda p: p["rank"])
    assert [p["predicted_stars"] for p in by_rank] == sorted((p["predicted_stars"] for p in predictions),
                                                             reverse=True)
    for sent, got in zip(rows, predictions, strict=True):
        # What the interval guarantees is tested once, in tests/model_serving/test_features.py.
        assert got["predicted_stars"] > 0 and len(got["interval"]) == 2
        assert got["actual_stars"] == sent["stargazers_count"]
        assert list(got) == [
            "full_name", "predicted_stars", "interval", "actual_stars", "rank", "source", "collected_at"
        ]
        assert got["source"] == "given" and got["collected_at"] is None
    # The prediction log: one JSON line per prediction, naming the version, inputs and output.
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 5
    logged = [json.loads(line) for line in lines]
    assert {e["model_version"] for e in logged} == {version}
    assert [e["inputs"]["full_name"] for e in logged] == [r["full_name"] for r in rows]
    assert logged[0]["output"]["predicted_stars"] == predictions[0]["predicted_stars"]
    assert all(set(e) == {"time", "model_version", "source", "inputs", "output"} for e in logged)
    # The web process (this one) sent a task and never loaded a model itself.
    assert model_store._stores == {}


def test_api_same_repository_gives_same_prediction_whatever_the_company(served: tuple[Flask, str]) -> None:
    app, _ = served
    client = app.test_client()
    rows = request_rows(5)
    alone = client.post("/api/v1/predict", json={"repositories": rows[:1]}).json["predictions"][0]
    together = client.post("/api/v1/predict", json={"repositories": rows}).json["predictions"][0]
    assert alone["predicted_stars"] == together["predicted_stars"]
    assert alone["rank"] == 1


def test_unreachable_github_is_a_per_item_error_and_the_rest_is_answered(served: tuple[Flask, str]) -> None:
    app, version = served
    rows = request_rows(2)
    body = {"repositories": [rows[0], {"full_name": "someone/somewhere"}, rows[1]]}
    answer = app.test_client().post("/api/v1/predict", json=body)
    assert answer.status_code == 200
    predictions = answer.json["predictions"]
    assert answer.json["model_version"] == version
    assert predictions[1]["full_name"] == "someone/somewhere"
    assert predictions[1]["error"].startswith("GitHub lookup of someone/somewhere failed")
    assert "rank" not in predictions[1]
    assert {predictions[0]["rank"], predictions[2]["rank"]} == {1, 2}


def test_form_round_trip_shows_ranked_table_version_and_chart(served: tuple[Flask, str]) -> None:
    app, version = served
    client: FlaskClient = app.test_client()
    rows = [
        {"full_name": "big/project", "language": "Python", "license_spdx": "mit",
         "owner_type": "Organization", "forks_count": 4000, "open_issues_count": 150, "size": 50000,
         "topics_count": 5,
         "created_at": "2015-03-01", "pushed_at": "2026-10-30", "has_issues": True, "has_wiki": True},
        {"full_name": "tiny/thing", "language": "Go", "forks_count": 0, "open_issues_count": 0, "size": 12,
         "created_at": "2026-09-01", "pushed_at": "2026-09-02"},
        {"language": "Rust", "forks_count": 300, "created_at": "2020-06-01", "pushed_at": "2026-01-01",
         "has_discussions": True},
    ]
    answer = client.post("/predict", data=form_data(rows, csrf_token(client)))
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200, page[:2000]
    assert f'<code id="model-version">{version}</code>' in page
    table = page[page.index("<tbody>"):page.index("</tbody>")]
    ranked_names = re.findall(r"<td>(big/project|tiny/thing|\(described by hand\))</td>", table)
    assert ranked_names[0] == "big/project" and ranked_names[-1] == "tiny/thing"
    assert [int(r) for r in re.findall(r"<tr>\s*<td>(\d+)</td>", table)] == [1, 2, 3]
    assert page.count('class="bar"') == 3
    assert "<svg" in page and "<script" not in page


def test_readyz_names_the_loaded_version_and_metrics_count(served: tuple[Flask, str]) -> None:
    app, version = served
    client = app.test_client()
    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 200
    assert ready.json["ready"] is True and ready.json["broker"] is True
    assert ready.json["model_version"] == version
    assert client.post("/api/v1/predict", json={"repositories": request_rows(3)}).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'stargazer_http_requests_total\{endpoint="/api/v1/predict",method="POST",'
                     r'status="200"\} [1-9]', text)
    assert re.search(r'stargazer_task_outcomes_total\{outcome="success"\} [1-9]', text)
    assert 'stargazer_http_request_duration_seconds_bucket{endpoint="/readyz"' in text
    predicted = re.search(rf'stargazer_predictions_total\{{model_version="{version}"\}} ([0-9.e+]+)', text)
    assert predicted and float(predicted.group(1)) >= 3


def test_no_worker_is_a_504_and_readyz_false(
    tmp_path: Path, rabbitmq: RabbitMQ, make_app: AppFactory
) -> None:
    # A queue no worker consumes (the module's worker listens on the default one).
    app = make_app(rabbitmq.url, tmp_path / "production", task_timeout=1.0, ready_timeout=0.5,
                   queue="nobody-listens-here")
    client = app.test_client()
    answer = client.post("/api/v1/predict", json={"repositories": request_rows(1)})
    assert answer.status_code == 504
    assert answer.json == {"error": "no prediction worker answered within 1 s",
                           "details": {"timeout_seconds": 1.0}}
    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 503
    assert ready.json["broker"] is True
    assert ready.json["error"] == "no worker answered a ping within 0.5 s"


def test_no_broker_is_a_clear_503(offline_app: Flask) -> None:
    client = offline_app.test_client()
    answer = client.post("/api/v1/predict", json={"repositories": request_rows(1)})
    assert answer.status_code == 503
    assert answer.json["error"] == "message broker unreachable: the prediction could not be queued"
    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 503 and ready.json["broker"] is False
    assert ready.json["error"].startswith("message broker unreachable")
    page = client.post("/predict", data=form_data([{"language": "C", "created_at": "2020-01-01"}],
                                                  csrf_token(client)))
    assert page.status_code == 503
    assert "message broker unreachable" in page.get_data(as_text=True)


def test_named_repositories_are_looked_up_on_the_simulator_with_actual_stars(
    served_model: tuple[Path, str], rabbitmq: RabbitMQ, make_app: AppFactory,
) -> None:
    model_dir, version = served_model
    with SimulatorServer(repos=40, seed=11, tokens=("serve-token",)) as sim:
        app = make_app(rabbitmq.url, model_dir, github_url=sim.url)
        known = [sim.store.repos[i] for i in (0, 5, 9)]
        names = [known[0].full_name, "ghost/never-existed", known[1].full_name, known[2].full_name]
        client = app.test_client()
        answer = client.post("/api/v1/predict", json={"repositories": [{"full_name": n} for n in names]})
        assert answer.status_code == 200
        predictions = answer.json["predictions"]
        assert answer.json["model_version"] == version
        assert predictions[1] == {"full_name": "ghost/never-existed",
                                  "error": "repository ghost/never-existed not found on GitHub",
                                  "status": 404}
        for repo, got in zip(known, (predictions[0], predictions[2], predictions[3]), strict=True):
            assert got["full_name"] == repo.full_name
            assert got["actual_stars"] == repo.stargazers_count
        assert sorted(p["rank"] for p in predictions if "rank" in p) == [1, 2, 3]

        # The same through the form: a link to each looked-up repository, its actual stars and the ratio.
        rows = [{"full_name": known[0].full_name}, {"full_name": "ghost/never-existed"}]
        page = client.post("/predict", data=form_data(rows, csrf_token(client))).get_data(as_text=True)
        assert f'<a href="https://github.com/{known[0].full_name}"' in page
        assert f"{known[0].stargazers_count:,}" in page
        assert "repository ghost/never-existed not found on GitHub" in page
        assert re.search(r'<td class="num">\d+\.\d\d\s*<span class="verdict">', page)
