"""Fixtures of the app-layer tests: a real RabbitMQ node, real Celery worker subprocesses, signed tiny models.

Each RabbitMQ node has its own node name, ports and state directory (C2's ``services.RabbitMQ``), each worker
is a real ``celery worker`` process (``services.CeleryWorker``) stopped by pid at teardown. The Flask app runs
in the test process (Flask's test client), but it talks to the real broker and the real worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from data_collection.settings import Settings as GitHubSettings
from model_serving import artifact, releases
from model_serving.process_stack.services import CeleryWorker, RabbitMQ, rabbitmq_available
from model_serving.production_server import create_app
from model_serving.production_server.settings import ServingSettings
from synthetic.versions import build_tiny_version
from tests.support import free_port, require

DEPLOY_SECRET = b"app-layer-test-deploy-secret"


@dataclasses.dataclass(frozen=True)
class Models:
    """Two signed versions (v1, v2) ready to be installed as releases."""

    v1: Path
    v2: Path


@pytest.fixture(scope="session")
def signed_models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    v1 = build_tiny_version(root, seed=1)
    v2 = build_tiny_version(root, seed=2)
    for version in (v1, v2):
        artifact.sign_version(version, DEPLOY_SECRET)
    return Models(v1, v2)


def install(model_dir: Path, version_dir: Path) -> str:
    """Install a version as the served release (the post-receive code path) and return its name."""
    staged = model_dir.parent / f"staged-{version_dir.name}-{time.monotonic_ns()}"
    shutil.copytree(version_dir, staged)
    releases.install_release(staged, model_dir, actor="tests", move=True)
    return version_dir.name


def start_broker(state_dir: Path) -> RabbitMQ:
    require(rabbitmq_available(), "rabbitmq-server (scripts/install_system_deps.sh)")
    broker = RabbitMQ(state_dir)
    broker.start()
    try:
        broker.wait_ready(60)
    except Exception:
        broker.stop()
        raise
    return broker


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    broker = start_broker(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield broker
    finally:
        broker.stop()


def worker_env(broker_url: str, model_dir: Path, state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "STARGAZER_BROKER_URL": broker_url,
        "STARGAZER_MODEL_DIR": str(model_dir),
        "STARGAZER_DEPLOY_SECRET": DEPLOY_SECRET.decode(),
        "STARGAZER_STATE_DIR": str(state_dir),
        "STARGAZER_PREDICTION_LOG": str(state_dir / "worker-predictions.jsonl"),
        # Lookups never reach the real GitHub from a test: an address where nothing listens.
        "GITHUB_API_URL": f"http://127.0.0.1:{free_port()}",
        **extra,
    }


WorkerFactory = Callable[..., CeleryWorker]


class Workers:
    """Starts real ``celery worker`` processes under ``root``; ``stop_all`` stops each by its pid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[CeleryWorker] = []

    def start(self, broker_url: str, model_dir: Path, *, concurrency: int = 1, wait: bool = True,
              **env: str) -> CeleryWorker:
        index = len(self.started)
        state = self.root / f"worker-{index}"
        worker = CeleryWorker(state, concurrency=concurrency, index=index,
                              env=worker_env(broker_url, model_dir, state, **env))
        self.started.append(worker)
        worker.start()
        if wait:
            worker.wait_ready(60)
        return worker

    def stop_all(self) -> None:
        for worker in reversed(self.started):
            with contextlib.suppress(Exception):
                # Cold shutdown first (SIGQUIT to the worker's own pid): a test has nothing in flight worth
                # the seconds of a warm one. stop() then makes sure the whole process group is gone.
                record = worker.record()
                if record is not None and record.alive():
                    os.kill(record.pid, signal.SIGQUIT)
                worker.stop(timeout=10)


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


def app_settings(broker_url: str, model_dir: Path, tmp_path: Path, **overrides: Any) -> ServingSettings:
    github = GitHubSettings(api_url=overrides.pop("github_url", f"http://127.0.0.1:{free_port()}"))
    # Tests change the broker, worker or model between two /readyz calls: each call probes afresh unless a
    # test is about the cache.
    overrides.setdefault("ready_cache_seconds", 0.0)
    return ServingSettings(
        broker_url=broker_url,
        model_dir=model_dir,
        deploy_secret=DEPLOY_SECRET,
        prediction_log=tmp_path / "predictions.jsonl",
        secret_key="test-secret-key",
        github=github,
        **overrides,
    )


AppFactory = Callable[..., Flask]


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


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
