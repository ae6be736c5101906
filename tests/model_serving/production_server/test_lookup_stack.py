"""Lookups through the real stack: client -> nginx -> two gunicorns -> RabbitMQ -> Celery worker,
with the GitHub simulator as GitHub.

Each client connects from its own loopback address (127.0.0.2, .3 ...), so nginx sees distinct clients and
passes each one's address to the app in X-Real-IP, as it would for clients on the internet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from data_collection.dataset import render_csv
from data_collection.settings import Settings as GitHubSettings
from data_collection.simulator import SimulatorServer
from model_serving import artifact, releases
from model_serving.process_stack.stack import Stack
from model_serving.production_server.lookup import RepositoryLookup
from synthetic.versions import build_tiny_version
from tests.support import DEPLOY_KEYS, five_rows, require_stack_tools, start_stack

pytestmark = pytest.mark.integration

TOKENS = ("stack-lookup-token",)
BUDGET_PER_HOUR = 12  # three single-name lookups (3-4 calls each, 4 reserved)
DATASET_COLLECTED_AT = "2026-01-02T03:04:05Z"
LOOKUP_BURST = 5


class FromAddress(HTTPAdapter):
    """Connect from a given local address (a distinct client as nginx sees it)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(repos=60, seed=31, tokens=TOKENS) as sim:
        yield sim


def usable(sim: SimulatorServer) -> list[str]:
    """Names of repositories whose lookup is ordinary (not empty, contributors listable, a user owner)."""
    return [r.full_name for r in sim.store.repos
            if not r.empty and r.commits_count < 50_000 and r.owner.type == "User"]


@pytest.fixture(scope="module")
def known(simulator: SimulatorServer) -> list[dict[str, Any]]:
    """Rows of the model's training dataset: five simulator repositories, collected on a known day."""
    lookup = RepositoryLookup(GitHubSettings(api_url=simulator.url, tokens=TOKENS), ttl=0, negative_ttl=0,
                              cache_size=10, threads=2, timeout=5.0)
    rows = [lookup.lookup(name) for name in usable(simulator)[:5]]
    for row in rows:
        row["collected_at"] = DATASET_COLLECTED_AT
    return rows


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, simulator: SimulatorServer,
          known: list[dict[str, Any]]) -> Iterator[Stack]:
    require_stack_tools()
    root = tmp_path_factory.mktemp("lookup-stack")
    dataset = root / "training.csv"
    dataset.write_bytes(render_csv(known))
    version = build_tiny_version(root / "models")
    manifest = artifact.read_manifest(version)
    snapshot = artifact.write_snapshot(dataset, version, rows=len(known))
    artifact.write_manifest(version, artifact.Manifest.model_validate(
        {**manifest.model_dump(mode="json"), "dataset_snapshot": snapshot}))
    artifact.sign_version(version, DEPLOY_KEYS.signing)
    model_dir = root / "production"
    releases.install_release(version, model_dir, actor="tests")
    assert (model_dir / "current" / artifact.SNAPSHOT_FILE).is_file()  # the release keeps the snapshot
    started = start_stack(
        root / "stack", model_dir, gunicorn_instances=2,
        env={"GITHUB_API_URL": simulator.url, "GITHUB_TOKENS": ",".join(TOKENS),
             "STARGAZER_GITHUB_BUDGET_PER_HOUR": str(BUDGET_PER_HOUR)},
        nginx_variables={"nginx_lookup_limit_req_rate": "1r/m", "nginx_lookup_limit_req_burst": LOOKUP_BURST},
    )
    try:
        yield started
    finally:
        started.stop()


def test_a_known_name_is_answered_from_the_dataset_and_fresh_asks_github(
    stack: Stack, simulator: SimulatorServer, known: list[dict[str, Any]]
) -> None:
    name = known[0]["full_name"]
    session = client("127.0.0.5")
    simulator.reset_stats()
    answer = session.post(f"{stack.url}/api/v1/predict", json={"repositories": [{"full_name": name}]},
                          timeout=30)
    assert answer.status_code == 200, answer.text
    item = answer.json()["predictions"][0]
    assert item["source"] == "dataset" and item["collected_at"] == DATASET_COLLECTED_AT
    assert item["actual_stars"] == known[0]["stargazers_count"]
    assert not answer.history  # answered at the general door: no GitHub, no lookup zone
    assert simulator.stats.requests == 0

    fresh = session.post(f"{stack.url}/api/v1/predict",
                         json={"repositories": [{"full_name": name}], "fresh": True}, timeout=30)
    assert fresh.status_code == 200, fresh.text
    assert [r.status_code for r in fresh.history] == [307]  # sent on to the lookup door
    item = fresh.json()["predictions"][0]
    assert item["source"] == "github" and item["collected_at"] != DATASET_COLLECTED_AT
    assert 0 < simulator.stats.requests <= 4


def test_one_client_spends_its_budget_and_another_is_still_answered(
    stack: Stack, simulator: SimulatorServer, known: list[dict[str, Any]]
) -> None:
    known_names = {row["full_name"] for row in known}
    names = [n for n in usable(simulator) if n not in known_names]
    greedy = client("127.0.0.2")
    simulator.reset_stats()
    answers = []
    for name in names[:6]:
        body = {"repositories": [{"full_name": name}]}
        answers.append(greedy.post(f"{stack.url}/api/v1/predict", json=body, timeout=30))
        if answers[-1].status_code == 429:
            break
    codes = [a.status_code for a in answers]
    assert codes[:-1] == [200] * (len(codes) - 1) and codes[-1] == 429, codes
    assert len(codes) >= 3
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) > 60
    assert refused.headers["Content-Type"].startswith("application/json")
    body = refused.json()
    assert body["error"].startswith("your GitHub lookup budget is spent")
    assert body["details"]["retry_after"] == int(refused.headers["Retry-After"])
    assert simulator.stats.requests <= BUDGET_PER_HOUR  # two gunicorns, one budget

    other = client("127.0.0.3").post(f"{stack.url}/api/v1/predict",
                                     json={"repositories": [{"full_name": names[len(codes)]}]}, timeout=30)
    assert other.status_code == 200, other.text
    assert other.json()["predictions"][0]["source"] == "github"

    # The spent client cannot name itself another client: nginx replaces the X-Real-IP it sends.
    spoofed = greedy.post(f"{stack.url}/api/v1/predict", headers={"X-Real-IP": "203.0.113.99"},
                          json={"repositories": [{"full_name": names[len(codes) + 1]}]}, timeout=30)
    assert spoofed.status_code == 429


def test_lookups_have_their_own_nginx_zone(stack: Stack) -> None:
    """Past the lookup zone's burst the lookup door answers nginx's 429; the general door still works."""
    session = client("127.0.0.4")
    rows = five_rows()
    codes = [session.post(f"{stack.url}/api/v1/lookup", json={"repositories": rows}, timeout=30).status_code
             for _ in range(LOOKUP_BURST + 3)]
    assert codes[:LOOKUP_BURST + 1] == [200] * (LOOKUP_BURST + 1), codes
    assert codes[-1] == 429, codes
    limited = session.post(f"{stack.url}/api/v1/lookup", json={"repositories": rows}, timeout=30)
    assert limited.status_code == 429
    assert limited.json()["details"] == {"status": 429, "source": "nginx", "rate": "1r/m"}
    assert limited.json()["error"] == "too many GitHub lookups: slow down and retry"
    general = session.post(f"{stack.url}/api/v1/predict", json={"repositories": rows}, timeout=30)
    assert general.status_code == 200, general.text  # describing by hand is not a lookup
