"""owner/name lookups against the project's GitHub simulator (real HTTP), with the TTL cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data_collection.settings import Settings as GitHubSettings
from data_collection.simulator import SimulatorServer
from model_serving.production_server.lookup import (
    LookupFailed,
    RepositoryLookup,
    RepositoryNotFound,
    TTLCache,
)

TOKENS = ("lookup-token-a", "lookup-token-b")


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(repos=60, seed=5, tokens=TOKENS) as sim:
        yield sim


def make_lookup(sim: SimulatorServer, **overrides: float) -> RepositoryLookup:
    options = {"ttl": 60.0, "negative_ttl": 60.0, "cache_size": 100, "threads": 4, "timeout": 2.0,
               **overrides}
    return RepositoryLookup(GitHubSettings(api_url=sim.url, tokens=TOKENS), **options)  # type: ignore[arg-type]


def test_lookup_builds_the_dataset_row_as_the_collector_would(simulator: SimulatorServer) -> None:
    repo = simulator.store.repos[3]
    row = make_lookup(simulator).lookup(repo.full_name)
    truth = simulator.truth(repo.full_name)
    for column, value in truth.items():
        assert row[column] == value, column
    assert row["collected_at"].endswith("Z") and row["created_at"].endswith("Z")
    assert "watchers_count" not in row


def test_lookups_are_cached_and_unknown_names_cached_briefly(simulator: SimulatorServer) -> None:
    lookup = make_lookup(simulator)
    name = simulator.store.repos[7].full_name
    lookup.lookup(name)
    simulator.reset_stats()
    assert lookup.lookup(name.upper())["full_name"] == name  # GitHub names are case-insensitive
    with pytest.raises(RepositoryNotFound, match="repository nobody/nothing-here not found on GitHub"):
        lookup.lookup("nobody/nothing-here")
    after_first_miss = simulator.stats.requests
    with pytest.raises(RepositoryNotFound):
        lookup.lookup("nobody/nothing-here")
    assert simulator.stats.requests == after_first_miss == 1  # only the first miss asked GitHub


def test_lookup_many_keeps_order_and_reports_each_failure(simulator: SimulatorServer) -> None:
    names = [simulator.store.repos[i].full_name for i in (1, 2)]
    results = make_lookup(simulator).lookup_many([names[0], "ghost/repo", names[1], names[0]])
    found = [results[0], results[2], results[3]]
    assert [r.row["full_name"] for r in found] == [names[0], names[1], names[0]]
    assert isinstance(results[1], RepositoryNotFound)


def test_github_failing_is_a_lookup_error_and_never_cached(simulator: SimulatorServer) -> None:
    lookup = make_lookup(simulator)
    name = simulator.store.repos[11].full_name
    simulator.force_errors(4, status=502)  # both tries of the GraphQL batch, then both of the REST fallback
    with pytest.raises(LookupFailed, match=f"GitHub lookup of {name} failed"):
        lookup.lookup(name)
    assert lookup.lookup(name)["full_name"] == name  # GitHub is back: asked again, not a cached failure


def test_ttl_cache_expires_and_evicts() -> None:
    now = [0.0]
    cache = TTLCache(2, clock=lambda: now[0])
    cache.put("a", 1, ttl=10)
    cache.put("b", 2, ttl=1)
    now[0] = 5.0
    assert cache.get("a") == 1 and cache.get("b") is None
    cache.put("c", 3, ttl=10)
    cache.put("d", 4, ttl=10)
    assert cache.get("a") is None and len(cache) == 2  # least recently used went first


def test_secrets_never_in_messages(simulator: SimulatorServer, tmp_path: Path) -> None:
    lookup = make_lookup(simulator)
    simulator.force_errors(4, status=502)
    with pytest.raises(LookupFailed) as failure:
        lookup.lookup(simulator.store.repos[12].full_name)
    assert all(token not in str(failure.value) for token in TOKENS)
    assert all(token not in repr(lookup.github) for token in TOKENS)


def test_a_spent_rate_limit_is_explained_in_words_a_person_understands() -> None:
    with SimulatorServer(repos=5, seed=1, tokens=("only-token",)) as sim:
        lookup = RepositoryLookup(GitHubSettings(api_url=sim.url, tokens=("only-token",)), ttl=60,
                                  negative_ttl=60, cache_size=10, threads=2, timeout=2)
        sim.exhaust("only-token")
        name = sim.store.repos[0].full_name
        with pytest.raises(LookupFailed) as failure:
            lookup.lookup(name)
    message = str(failure.value)
    assert message.startswith(f"GitHub lookup of {name} failed: GitHub's API rate limit is used up")
    assert "describe the repository by hand" in message and "tokens spent" not in message
