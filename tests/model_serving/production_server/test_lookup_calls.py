"""What a lookup costs in GitHub calls, counted by the simulator, and that its rows are the collector's rows.

Before the GraphQL batching a looked-up repository cost 5 calls (repository, contributors, commits,
releases, owner); these tests hold it to the repository and the contributors count plus a share of one
GraphQL query, plus one call per organization owner.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from data_collection.settings import Settings as GitHubSettings
from data_collection.simulator import SimulatorServer
from model_serving.production_server.lookup import (
    CallMeter,
    Found,
    RepositoryLookup,
    RepositoryNotFound,
)

TOKENS = ("calls-token-a", "calls-token-b")


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(repos=200, seed=11, tokens=TOKENS) as sim:
        yield sim


def make_lookup(url: str, tokens: tuple[str, ...] = TOKENS) -> RepositoryLookup:
    return RepositoryLookup(GitHubSettings(api_url=url, tokens=tokens), ttl=60.0, negative_ttl=60.0,
                            cache_size=1000, threads=4, timeout=5.0)


def assert_collector_row(sim: SimulatorServer, row: dict[str, object]) -> None:
    truth = sim.truth(str(row["full_name"]))
    for column, value in truth.items():
        assert row[column] == value, column


def test_a_looked_up_repository_costs_two_calls_and_a_graphql_share(simulator: SimulatorServer) -> None:
    repos = [r for r in simulator.store.repos if not r.empty][:40]
    names = [r.full_name for r in repos]
    org_owners = {r.owner.login for r in repos if r.owner.type == "Organization"}
    lookup = make_lookup(simulator.url)
    simulator.reset_stats()
    meter = CallMeter()
    answers = lookup.lookup_many(names, meter=meter)
    stats = simulator.stats
    for answer in answers:
        assert isinstance(answer, Found) and answer.source == "github"
        assert_collector_row(simulator, answer.row)
    batches = math.ceil(len(names) / lookup.github.graphql_batch)
    assert stats.calls("graphql") == batches
    assert stats.requests == 2 * len(names) + batches + len(org_owners)
    assert meter.calls == stats.requests  # the budget is charged with what GitHub really received
    per_repository = stats.requests / len(names)
    print(f"calls per looked-up repository: {per_repository:.2f} ({stats.requests} for {len(names)}, "
          f"{len(org_owners)} organization owners)")
    assert per_repository < 3  # was 5
    assert stats.requests <= lookup.estimate(len(names))  # the reservation covers it

    # The same names again: the cache answers, GitHub is not asked.
    simulator.reset_stats()
    again = lookup.lookup_many(names)
    assert simulator.stats.requests == 0
    assert {a.source for a in again if isinstance(a, Found)} == {"cache"}


def test_contributors_are_counted_as_the_collector_counts_them(simulator: SimulatorServer) -> None:
    """With anonymous contributors (``anon=true``): GitHub lists fewer without them."""
    repo = next(r for r in simulator.store.repos if r.anon_contributors > 0 and not r.empty
                and r.commits_count < 50_000)
    row = make_lookup(simulator.url).lookup(repo.full_name)
    assert row["contributors_count"] == repo.contributors_count


def test_unknown_names_cost_only_their_share_of_the_graphql_query(simulator: SimulatorServer) -> None:
    lookup = make_lookup(simulator.url)
    simulator.reset_stats()
    answers = lookup.lookup_many([f"nobody/missing-{i}" for i in range(10)])
    assert all(isinstance(a, RepositoryNotFound) for a in answers)
    assert simulator.stats.requests == 1


def test_rest_only_without_graphql_still_builds_the_collector_row() -> None:
    with SimulatorServer(repos=30, seed=12, tokens=TOKENS, graphql=False) as sim:
        lookup = make_lookup(sim.url)
        names = [r.full_name for r in sim.store.repos if not r.empty][:5]
        answers = lookup.lookup_many(names)
        for answer in answers:
            assert isinstance(answer, Found)
            assert_collector_row(sim, answer.row)
        assert sim.stats.requests <= 1 + 5 * len(names)  # one /graphql 404, then the collector's REST path
        assert not lookup.graphql_usable()  # the 404 is remembered: later lookups do not ask again
        assert lookup.estimate(1) == 5
        sim.reset_stats()
        more = [r.full_name for r in sim.store.repos if not r.empty][5:8]
        assert all(isinstance(a, Found) for a in lookup.lookup_many(more))
        assert sim.stats.requests <= 5 * len(more)


def test_without_a_token_graphql_is_not_tried(simulator: SimulatorServer) -> None:
    lookup = make_lookup(simulator.url, tokens=())
    simulator.reset_stats()
    repo = next(r for r in simulator.store.repos if not r.empty and r.commits_count < 50_000)
    assert_collector_row(simulator, lookup.lookup(repo.full_name))
    assert simulator.stats.calls("graphql") == 0
