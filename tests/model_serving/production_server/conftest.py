"""Fixtures of the serving tests: a real RabbitMQ node, real Celery worker subprocesses, signed tiny models,
the Flask app, and whole stacks (RabbitMQ -> Celery worker -> gunicorn -> nginx).

Each RabbitMQ node has its own node name, ports and state directory (``services.RabbitMQ``), each worker is a
real ``celery worker`` process (``services.CeleryWorker``) stopped by pid at teardown. The Flask app runs in
the test process (Flask's test client), but it talks to the real broker and the real worker. The helpers
these fixtures are built from are in tests/support.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from model_serving import artifact
from model_serving.process_stack.services import RabbitMQ
from model_serving.process_stack.stack import Stack
from model_serving.production_server import create_app
from synthetic.versions import build_tiny_version
from tests.support import (
    DEPLOY_KEYS,
    AppFactory,
    Models,
    WorkerFactory,
    Workers,
    app_settings,
    free_port,
    install_signed_tiny_model,
    require_stack_tools,
    start_broker,
    start_stack,
)


@pytest.fixture(scope="session")
def signed_models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    v1 = build_tiny_version(root, seed=1)
    v2 = build_tiny_version(root, seed=2)
    for version in (v1, v2):
        artifact.sign_version(version, DEPLOY_KEYS.signing)
    return Models(v1, v2)


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    broker = start_broker(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start real workers for one test; every one started is stopped (by pid) at teardown."""
    workers = Workers(tmp_path)
    yield workers.start
    workers.stop_all()


@pytest.fixture(scope="module")
def module_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Workers shared by a module's tests (a worker takes seconds to start)."""
    workers = Workers(tmp_path_factory.mktemp("workers"))
    yield workers
    workers.stop_all()


@pytest.fixture
def make_app(tmp_path: Path) -> AppFactory:
    def make(broker_url: str, model_dir: Path | None = None, **overrides: Any) -> Flask:
        settings = app_settings(broker_url, model_dir or tmp_path / "no-models", tmp_path, **overrides)
        return create_app({"STARGAZER": settings, "TESTING": True})

    return make


@pytest.fixture
def offline_app(make_app: AppFactory) -> Flask:
    """An app whose broker does not exist: for everything refused before a task is sent."""
    return make_app(f"amqp://stargazer:nothing@127.0.0.1:{free_port()}/stargazer", task_timeout=2.0)


@pytest.fixture
def offline_client(offline_app: Flask) -> FlaskClient:
    return offline_app.test_client()


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A signed tiny model installed for a module: (model_dir, version name)."""
    return install_signed_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, signed_model: tuple[Path, str]) -> Iterator[Stack]:
    """One whole stack for a module (two gunicorn upstreams), stopped by pid after its last test."""
    require_stack_tools()
    started = start_stack(tmp_path_factory.mktemp("stack"), signed_model[0], gunicorn_instances=2)
    try:
        yield started
    finally:
        started.stop()
