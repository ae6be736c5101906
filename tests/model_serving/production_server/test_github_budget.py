"""The per-client GitHub budget: its bucket arithmetic, its sharing across processes, the client's address,
and what the form and the API answer once it is spent (the app in-process; the same through nginx is in
test_lookup_stack.py)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from data_collection.simulator import SimulatorServer
from model_serving.production_server.budget import BudgetSpent, GitHubBudget
from model_serving.production_server.client_address import client_address, parse_networks
from tests.support import AppFactory, csrf_token, form_data, free_port

TOKENS = ("budget-token",)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refuses_with_the_wait_and_refills(tmp_path: Path) -> None:
    clock = Clock()
    budget = GitHubBudget(tmp_path / "b.sqlite3", per_hour=360, clock=clock)  # one call per 10 s
    held = budget.reserve("10.0.0.1", 300)
    budget.settle(held, 340)  # the lookup needed more than reserved: charged
    assert budget.remaining("10.0.0.1") == pytest.approx(20)
    with pytest.raises(BudgetSpent) as spent:
        budget.reserve("10.0.0.1", 30)
    assert spent.value.retry_after == 100  # 10 more calls at one per 10 s
    assert "retry in 100 s" in str(spent.value)
    assert budget.remaining("10.0.0.2") == 360  # another client is untouched
    clock.now += 100
    budget.settle(budget.reserve("10.0.0.1", 30), 12)  # unused calls go back
    assert budget.remaining("10.0.0.1") == pytest.approx(18)
    clock.now += 3600
    assert budget.remaining("10.0.0.1") == 360  # never above the hourly budget


def test_a_request_larger_than_the_budget_waits_for_a_full_bucket(tmp_path: Path) -> None:
    clock = Clock()
    budget = GitHubBudget(tmp_path / "b.sqlite3", per_hour=100, clock=clock)
    budget.settle(budget.reserve("c", 250), 250)  # admitted on a full bucket, leaves a debt
    with pytest.raises(BudgetSpent) as spent:
        budget.reserve("c", 250)
    assert spent.value.retry_after == 9000  # back to a full bucket: 250 calls at 100 an hour


def _spend(path: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    budget = GitHubBudget(Path(path), per_hour=120)
    admitted = 0
    for _ in range(60):
        try:
            budget.reserve("shared-client", 1)
            admitted += 1
        except BudgetSpent:
            pass
    results.put(admitted)


def test_processes_share_one_budget(tmp_path: Path) -> None:
    """Four processes (as gunicorn's workers) spending for one client admit exactly the budget, no more."""
    path = tmp_path / "budget.sqlite3"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_spend, args=(str(path), results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    admitted = sum(results.get(timeout=10) for _ in workers)
    assert 120 <= admitted <= 121  # the refill during the run may add a call


def test_the_client_is_nginx_s_x_real_ip_only_from_a_trusted_proxy() -> None:
    trusted = parse_networks("127.0.0.1, 10.0.0.0/24")
    assert client_address("127.0.0.1", {"X-Real-IP": "203.0.113.7"}, trusted) == "203.0.113.7"
    assert client_address("10.0.0.5", {"X-Real-IP": "203.0.113.7"}, trusted) == "203.0.113.7"
    assert client_address("198.51.100.9", {"X-Real-IP": "203.0.113.7"}, trusted) == "198.51.100.9"
    assert client_address("127.0.0.1", {"X-Real-IP": "not an address"}, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", {}, trusted) == "127.0.0.1"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(repos=40, seed=21, tokens=TOKENS) as sim:
        yield sim


def spent_client(make_app: AppFactory, simulator: SimulatorServer) -> FlaskClient:
    """An app whose clients may cause one GitHub call an hour (no broker: nothing is predicted)."""
    app = make_app(f"amqp://stargazer:nothing@127.0.0.1:{free_port()}/stargazer", task_timeout=2.0,
                   github_budget_per_hour=1.0, github_url=simulator.url)
    return app.test_client()


def test_the_api_answers_429_with_retry_after_and_other_clients_go_on(
    make_app: AppFactory, simulator: SimulatorServer
) -> None:
    client = spent_client(make_app, simulator)
    names = [r.full_name for r in simulator.store.repos if not r.empty]
    first = {"X-Real-IP": "203.0.113.10"}
    # At the lookup door (where nginx sends lookups): the first request spends more than the budget.
    client.post("/api/v1/lookup", json={"repositories": [{"full_name": names[0]}]}, headers=first)
    asked = simulator.stats.requests
    refused = client.post("/api/v1/lookup", json={"repositories": [{"full_name": names[1]}]}, headers=first)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 60
    body = refused.get_json()
    assert body["error"].startswith("your GitHub lookup budget is spent")
    assert body["details"]["retry_after"] == int(refused.headers["Retry-After"])
    assert simulator.stats.requests == asked  # refused before GitHub was asked
    other = client.post("/api/v1/lookup", json={"repositories": [{"full_name": names[1]}]},
                        headers={"X-Real-IP": "203.0.113.11"})
    assert other.status_code != 429  # 503 here: no broker; the lookup itself went ahead
    assert simulator.stats.requests > asked


def test_the_form_says_the_budget_is_spent(make_app: AppFactory, simulator: SimulatorServer) -> None:
    client = spent_client(make_app, simulator)
    names = [r.full_name for r in simulator.store.repos if not r.empty]
    token = csrf_token(client)
    client.post("/predict", data=form_data([{"full_name": names[2]}], token))
    page = client.post("/predict", data=form_data([{"full_name": names[3]}], token))
    assert page.status_code == 429
    assert int(page.headers["Retry-After"]) > 60
    text = page.get_data(as_text=True)
    assert "your GitHub lookup budget is spent" in text and "describe the repositories by hand" in text
    assert f'value="{names[3]}"' in text  # the form comes back as it was filled
