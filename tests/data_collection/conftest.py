"""Fixtures of the data_collection tests: a journal in tmp, settings pointing at the fake API."""

from __future__ import annotations

import pytest

from data_collection.checkpoint import Checkpoint
from data_collection.settings import Settings
from tests.data_collection.fake_github import API


@pytest.fixture
def settings() -> Settings:
    return Settings(api_url=API, tokens=("tok-aaaa-1111", "tok-bbbb-2222"), max_tries=3, backoff_base=0.0,
                    backoff_max=0.0, secondary_wait=0.0)


@pytest.fixture
def journal(tmp_path):
    j = Checkpoint(tmp_path / "j.sqlite", {"test": 1}, resume=False)
    yield j
    j.close()
