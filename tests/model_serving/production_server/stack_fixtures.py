"""Fixtures that start the whole serving stack for real: RabbitMQ -> Celery worker -> gunicorn -> nginx.

Import them into a test module (``from .stack_fixtures import signed_model, stack``). Each module gets its own
stack (own RabbitMQ node name and ports, own state directory), stopped by pid at the end of the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from data_collection.schema import DATASET_COLUMNS
from model_serving import artifact, releases
from model_serving.process_stack.stack import Stack, StackConfig
from synthetic.dataset import synthetic_dataset
from synthetic.versions import build_tiny_version
from tests.support import free_port, require_executable

DEPLOY_SECRET = b"stack-test-deploy-secret"
#: Limits low enough that a test can reach them, high enough that the other tests never do.
TEST_LIMIT = {"nginx_limit_req_rate": "20r/s", "nginx_limit_req_burst": 30}


def require_stack_tools() -> None:
    require_executable("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
    require_executable("nginx", "/usr/sbin/nginx")


def install_signed_tiny_model(root: Path) -> tuple[Path, str]:
    """A tiny forest, signed with DEPLOY_SECRET and installed as ``root/production/current``."""
    version_dir = build_tiny_version(root / "models")
    artifact.sign_version(version_dir, DEPLOY_SECRET)
    model_dir = root / "production"
    releases.install_release(version_dir, model_dir, actor="tests")
    return model_dir, version_dir.name


def start_stack(state_dir: Path, model_dir: Path, **overrides: Any) -> Stack:
    env = {
        "STARGAZER_DEPLOY_SECRET": DEPLOY_SECRET.decode(),
        # Name lookups must never reach the real GitHub from a test: an address where nothing listens.
        "GITHUB_API_URL": f"http://127.0.0.1:{free_port()}",
        **overrides.pop("env", {}),
    }
    config = StackConfig(
        state_dir=state_dir,
        model_dir=model_dir,
        celery_workers=1,
        celery_concurrency=1,
        gunicorn_workers=1,
        gunicorn_threads=4,
        nginx_variables=dict(TEST_LIMIT, **overrides.pop("nginx_variables", {})),
        env=env,
        die_with_parent=True,  # a killed test run leaves no broker, worker, gunicorn or nginx behind
        **overrides,
    )
    return Stack(config).start(timeout=60)


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return install_signed_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, signed_model: tuple[Path, str]) -> Iterator[Stack]:
    require_stack_tools()
    stack = start_stack(tmp_path_factory.mktemp("stack"), signed_model[0], gunicorn_instances=2)
    try:
        yield stack
    finally:
        stack.stop()


def five_rows(seed: int = 3) -> list[dict[str, Any]]:
    """Five repositories described by their dataset columns (JSON-ready), two with their actual stars."""
    frame = synthetic_dataset(rows=5, seed=seed).loc[:, list(DATASET_COLUMNS)]
    rows = []
    for index, row in enumerate(frame.to_dict(orient="records")):
        clean = {k: _json_value(v) for k, v in row.items()}
        clean["full_name"] = f"example/repo-{index}"
        if index >= 2:
            clean.pop("stargazers_count")
        rows.append(clean)
    return rows


def _json_value(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if value in ("true", "false"):
        return value == "true"
    return value.item() if hasattr(value, "item") else value
