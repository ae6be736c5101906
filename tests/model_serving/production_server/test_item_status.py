"""Per-item errors carry a status a program can act on: 404 no such repository, 503 GitHub not askable now.

Both come from the real lookup client talking to the GitHub simulator over HTTP.
"""

from __future__ import annotations

from data_collection.settings import Settings as GitHubSettings
from data_collection.simulator import SimulatorServer
from model_serving.production_server.inputs import RequestItem
from model_serving.production_server.lookup import RepositoryLookup
from model_serving.production_server.prediction import _resolve


def _lookup(url: str, token: str) -> RepositoryLookup:
    return RepositoryLookup(GitHubSettings(api_url=url, tokens=(token,)), ttl=60, negative_ttl=60,
                            cache_size=10, threads=2, timeout=2)


def _named(name: str) -> RequestItem:
    return RequestItem(full_name=name, lookup=True, row=None, actual_stars=None)


def test_unknown_repository_is_404_and_a_known_one_is_predicted() -> None:
    with SimulatorServer(repos=5, seed=1, tokens=("t1",)) as sim:
        known = sim.store.repos[0].full_name
        results = _resolve([_named("ghost/never-was"), _named(known)], _lookup(sim.url, "t1"))
    assert results[0].to_json() == {"full_name": "ghost/never-was", "status": 404,
                                    "error": "repository ghost/never-was not found on GitHub"}
    assert results[1].error is None and results[1].inputs["full_name"] == known


def test_spent_quota_is_503_per_item_not_a_false_not_found() -> None:
    with SimulatorServer(repos=5, seed=1, tokens=("t1",)) as sim:
        sim.exhaust("t1")
        known = sim.store.repos[0].full_name
        results = _resolve([_named(known)], _lookup(sim.url, "t1"))
    answer = results[0].to_json()
    assert answer["status"] == 503
    assert "rate limit is used up" in answer["error"]
