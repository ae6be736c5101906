"""What a predict_batch message carries: brief argument headers, transient delivery, the reliability settings,
and how the app's Celery is wired and configured from the environment.

No broker needed: the message Celery would publish is captured at ``Celery.send_task``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from model_serving.production_server import create_app
from model_serving.production_server.celery_app import brief_repr
from model_serving.production_server.settings import ServingSettings, celery_config


def test_brief_repr_describes_shapes_not_contents() -> None:
    rows = [{"full_name": f"o/r{i}", "description": "secret-ish text"} for i in range(5)]
    assert brief_repr([rows]) == "(<5 items>,)"
    assert brief_repr(None) == "()"
    assert brief_repr({}) == "{}"
    assert brief_repr({"rows": rows, "n": 3}) == "{'rows': <5 items>, 'n': 3}"
    assert len(brief_repr(("x" * 500,))) < 90
    assert "secret-ish" not in brief_repr([rows])


def test_predict_batch_messages_carry_brief_argsrepr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServingSettings(broker_url="memory://", model_dir=tmp_path / "production",
                               prediction_log=tmp_path / "predictions.jsonl", secret_key="test")
    app = create_app({"STARGAZER": settings, "TESTING": True})
    from model_serving.production_server.tasks import ping, predict_batch

    sent: list[dict[str, Any]] = []

    def capture(self: Celery, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append({"name": name, "args": args, **options})

    monkeypatch.setattr(Celery, "send_task", capture)
    with app.app_context():
        rows = [{"forks_count": i} for i in range(5)]
        predict_batch.apply_async(args=[rows], expires=10.0)
        ping.apply_async(expires=2.0)
    assert sent[0]["args"] == [rows]  # the rows themselves travel unchanged, as the body
    assert sent[0]["argsrepr"] == "(<5 items>,)"
    assert sent[0]["kwargsrepr"] == "{}"
    assert sent[1]["argsrepr"] == "()"


def test_celery_config_keeps_the_reliability_invariants_and_transient_requests() -> None:
    config = celery_config(ServingSettings())
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["accept_content"] == ["json"]
    assert config["broker_transport_options"]["confirm_publish"] is True
    assert config["task_default_delivery_mode"] == "transient"


def test_celery_is_wired_like_flasks_example_and_configured_from_the_environment(tmp_path: Path) -> None:
    env = {
        "STARGAZER_BROKER_URL": "amqp://someone:secret@broker.example:5673/elsewhere",
        "STARGAZER_RESULT_BACKEND": f"file://{tmp_path}",
        "STARGAZER_QUEUE": "predictions-b",
        "STARGAZER_TASK_SOFT_TIME_LIMIT": "3",
        "STARGAZER_TASK_HARD_TIME_LIMIT": "5",
        "STARGAZER_STATE_DIR": str(tmp_path),
    }
    app = create_app({"STARGAZER": ServingSettings.from_env(env)})
    celery = app.extensions["celery"]
    assert app.config["CELERY"]["broker_url"] == celery.conf.broker_url == env["STARGAZER_BROKER_URL"]
    assert celery.conf.result_backend == env["STARGAZER_RESULT_BACKEND"]
    assert celery.conf.task_default_queue == "predictions-b"
    assert (celery.conf.task_soft_time_limit, celery.conf.task_time_limit) == (3.0, 5.0)
    assert celery.conf.task_acks_late and celery.conf.task_reject_on_worker_lost
    assert celery.conf.worker_prefetch_multiplier == 1
    assert celery.conf.accept_content == ["json"]
    predict_task = celery.tasks["stargazer.predict_batch"]
    assert predict_task.acks_late and predict_task.reject_on_worker_lost

    # Flask's example: every task body runs inside the Flask app's context.
    @celery.task(name="tests.probe")
    def probe() -> str:
        from flask import current_app

        return str(current_app.config["STARGAZER"].queue)

    assert probe.apply().get() == "predictions-b"
