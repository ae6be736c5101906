"""Fixtures of the simulator tests: one shared 5,000-repository simulator (read-only tests), and small
private simulators for tests that change quotas, faults or tokens (so no test sees another's state)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from data_collection.simulator import SimulatorServer
from tests.support import SIMULATOR_TOKENS, MakeSim


@pytest.fixture(scope="session")
def big_sim() -> Iterator[SimulatorServer]:
    """5,000 repositories, generous quotas: for read-only tests (do not change its config)."""
    with SimulatorServer(repos=5000, seed=11, tokens=SIMULATOR_TOKENS, quota_search=100_000,
                         quota_core=1_000_000) as sim:
        yield sim


@pytest.fixture
def make_sim() -> Iterator[MakeSim]:
    started: list[SimulatorServer] = []

    def make(**overrides: object) -> SimulatorServer:
        settings: dict[str, object] = {"repos": 300, "seed": 3, "tokens": SIMULATOR_TOKENS}
        settings.update(overrides)
        sim = SimulatorServer(**settings).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
