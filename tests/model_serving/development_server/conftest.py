"""One private local Ray (num_cpus=2, own --temp-dir, own auth token) for the whole test session."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_serving.development_server.cluster import ClusterInfo, ray_session, use_token_file
from model_serving.development_server.settings import Settings
from synthetic.dataset import synthetic_dataset


@pytest.fixture(scope="session")
def ray_local() -> Iterator[ClusterInfo]:
    root = Path(tempfile.mkdtemp(prefix="sgt-", dir="/tmp"))  # short: Ray's socket paths are length-limited
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    saved = {
        k: os.environ.get(k)
        for k in (
            "RAY_AUTH_MODE",
            "RAY_AUTH_TOKEN_PATH",
            "RAY_AUTH_TOKEN",
            "RAY_ADDRESS",
            "STARGAZER_RAY_RESULTS",
        )
    }
    use_token_file(token)
    for key in ("RAY_ADDRESS", "STARGAZER_RAY_RESULTS"):
        os.environ.pop(key, None)
    try:
        with ray_session(num_cpus=2, settings=Settings(ray_temp_root=root)) as info:
            yield info
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dataset_csv(tmp_path: Path) -> Path:
    path = tmp_path / "repos.csv"
    synthetic_dataset(160, seed=11).to_csv(path, index=False)
    return path
