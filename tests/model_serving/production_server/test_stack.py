"""The whole stack for real: client -> nginx -> gunicorn (2 upstreams) -> RabbitMQ -> Celery worker -> model.

What only the assembled stack can show: answers come back through nginx with its headers and compression,
nginx's own refusals (413, 429) keep the API's JSON shape, /healthz and /readyz pass through, and traffic is
spread over several gunicorn upstreams.

A second stack (one of each process) is configured only through the environment an operator sets:
GITHUB_API_URL / GITHUB_TOKENS pointing at the project's GitHub simulator, short lookup TTLs and non-default
task time limits. On it: name lookups use that GitHub and those tokens and expire after the TTL; the worker
runs with those limits and prefetch 1; ``/metrics`` adds up web and worker processes; the result page's chart
follows the table's ranking; a RabbitMQ restart is survived without restarting anything else.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from data_collection.simulator import SimulatorServer
from data_collection.simulator.stats import ANONYMOUS
from model_serving.process_stack.services import Gunicorn, http_get
from model_serving.process_stack.stack import Stack
from tests.support import (
    DEPLOY_KEYS,
    AppFactory,
    five_rows,
    form_data,
    free_port,
    hand_typed_rows,
    inspect_worker,
    metric_sample,
    one_reply,
    page_csrf_token,
    queue_counts,
    require_stack_tools,
    start_stack,
    wait_until,
)

# ``stack`` and ``signed_model`` are conftest.py's module-scoped fixtures: one stack for this module.
pytestmark = pytest.mark.integration

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


def test_api_round_trip_through_nginx(stack: Stack, signed_model: tuple[Path, str]) -> None:
    rows = five_rows()
    answer = requests.post(f"{stack.url}/api/v1/predict", json={"repositories": rows},
                           headers={"Accept-Encoding": "gzip"}, timeout=15)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == signed_model[1]
    predictions = body["predictions"]
    assert [p["full_name"] for p in predictions] == [r["full_name"] for r in rows]  # the order sent
    assert sorted(p["rank"] for p in predictions) == [1, 2, 3, 4, 5]
    by_rank = sorted(predictions, key=lambda p: p["rank"])
    assert [p["predicted_stars"] for p in by_rank] == sorted((p["predicted_stars"] for p in predictions),
                                                             reverse=True)
    for sent, got in zip(rows, predictions, strict=True):  # the interval's guarantees: test_features.py
        assert got["actual_stars"] == sent.get("stargazers_count")
    assert answer.headers["Content-Encoding"] == "gzip"  # JSON is compressed by nginx
    for header in SECURITY_HEADERS:
        assert header in answer.headers


def test_form_round_trip_through_nginx(stack: Stack, signed_model: tuple[Path, str]) -> None:
    session = requests.Session()
    page = session.get(f"{stack.url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    form = form_data(hand_typed_rows(), page_csrf_token(page.text))
    result = session.post(f"{stack.url}/predict", data=form, timeout=15)
    assert result.status_code == 200, result.text[:500]
    assert signed_model[1] in result.text
    ranks = re.findall(r"<tr>\s*<td>(\d)</td>", result.text)
    assert ranks == ["1", "2", "3", "4", "5"]

    # Without the CSRF token (a cross-site post), no prediction is made.
    forged = requests.post(f"{stack.url}/predict", data={k: v for k, v in form.items() if k != "csrf_token"},
                           timeout=10)
    assert forged.status_code == 400


def test_nginx_refuses_a_10_mb_body_as_json_before_the_app(stack: Stack) -> None:
    answer = requests.post(f"{stack.url}/api/v1/predict", data=b"{" + b" " * (10 * 1024 * 1024) + b"}",
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["details"]["source"] == "nginx"
    assert "too large" in answer.json()["error"]


def test_rate_limit_answers_429_as_json(stack: Stack) -> None:
    def post(_: int) -> requests.Response:
        return requests.post(f"{stack.url}/api/v1/predict", json={"repositories": []}, timeout=10)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, range(80)))
    codes = [a.status_code for a in answers]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, codes
    assert set(codes) <= {400, 429}  # the others reached the app, which refused the empty list
    assert limited[0].json()["error"].startswith("too many requests")
    assert all(h in limited[0].headers for h in SECURITY_HEADERS)


def test_health_ready_and_metrics_pass_through(stack: Stack, signed_model: tuple[Path, str]) -> None:
    health = requests.get(f"{stack.url}/healthz", timeout=5)
    assert health.status_code == 200
    ready = requests.get(f"{stack.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["model_version"] == signed_model[1]
    # /metrics is allowed from 127.0.0.1 (nginx_metrics_allow) and sums gunicorn and Celery processes.
    metrics = requests.get(f"{stack.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert signed_model[1] in metrics.text


def test_requests_are_spread_over_both_gunicorn_upstreams(stack: Stack) -> None:
    assert len(stack.gunicorns) == 2
    before = [_requests_logged(g.log_file) for g in stack.gunicorns]
    for _ in range(12):
        assert requests.get(f"{stack.url}/healthz", timeout=5).status_code == 200
    after = [_requests_logged(g.log_file) for g in stack.gunicorns]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_gzip_page_and_one_security_header_each(stack: Stack) -> None:
    page = requests.get(f"{stack.url}/", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
    assert page.headers["Content-Encoding"] == "gzip"
    assert b"<form" in gzip.decompress(page.raw.read())
    for header in SECURITY_HEADERS:
        assert len(page.raw.headers.getlist(header)) == 1, header  # nginx's, not also the app's


def _requests_logged(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if '"GET /healthz' in line)


def test_embedded_broker_fallback_answers_without_rabbitmq(
    tmp_path: Path, signed_model: tuple[Path, str]
) -> None:
    """Where RabbitMQ cannot be installed, make serve falls back to kombu's filesystem transport: slower,
    but the same app, tasks and worker answer through nginx."""
    require_stack_tools()
    embedded = start_stack(tmp_path / "stack", signed_model[0], broker="embedded")
    try:
        assert embedded.broker is None and embedded.broker_url == "filesystem://"
        answer = requests.post(f"{embedded.url}/api/v1/predict", json={"repositories": five_rows()},
                               timeout=20)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == signed_model[1]
        assert len(answer.json()["predictions"]) == 5
    finally:
        embedded.stop()
    assert all(not p.is_running() for p in embedded.processes())


def test_gunicorn_serves_on_a_unix_socket(tmp_path: Path, signed_model: tuple[Path, str]) -> None:
    """An upstream may be a unix socket (nginx_upstreams: ["unix:/run/stargazer/gunicorn.sock"])."""
    socket_path = tmp_path / "gunicorn.sock"
    env = {
        "STARGAZER_MODEL_DIR": str(signed_model[0]),
        "STARGAZER_STATE_DIR": str(tmp_path),
        "STARGAZER_DEPLOY_PUBLIC_KEY": DEPLOY_KEYS.public_text,
        "STARGAZER_BROKER_URL": f"amqp://nobody:nothing@127.0.0.1:{free_port()}/none",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    gunicorn = Gunicorn(tmp_path / "gunicorn", bind=f"unix:{socket_path}", workers=1, threads=2, env=env)
    with gunicorn:
        gunicorn.start().wait_ready(60)
        status, body = http_get(gunicorn.address, "/healthz")
        assert status == 200, body
    assert not gunicorn.is_running()


# ------------------------------------------------------------------------------------------------------------
# A stack configured by an operator's environment (one gunicorn, so one lookup cache)
# ------------------------------------------------------------------------------------------------------------

TOKENS = ("stack-token-a", "stack-token-b")
LOOKUP_TTL = 3.0
SOFT_LIMIT, HARD_LIMIT = 4.0, 7.0


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(repos=40, seed=21, tokens=TOKENS) as sim:
        yield sim


@pytest.fixture(scope="module")
def configured_stack(tmp_path_factory: pytest.TempPathFactory, signed_model: tuple[Path, str],
                     simulator: SimulatorServer) -> Iterator[Stack]:
    require_stack_tools()
    started = start_stack(tmp_path_factory.mktemp("configured-stack"), signed_model[0], env={
        "GITHUB_API_URL": simulator.url,
        "GITHUB_TOKENS": ",".join(TOKENS),
        "STARGAZER_LOOKUP_TTL": str(LOOKUP_TTL),
        "STARGAZER_LOOKUP_NEGATIVE_TTL": str(LOOKUP_TTL),
        "STARGAZER_TASK_SOFT_TIME_LIMIT": str(SOFT_LIMIT),
        "STARGAZER_TASK_HARD_TIME_LIMIT": str(HARD_LIMIT),
        "STARGAZER_TASK_TIMEOUT": "30",  # the prefetch test holds tasks for a few seconds
    })
    try:
        yield started
    finally:
        started.stop()


def predict(stack: Stack, repositories: list[dict[str, Any]]) -> requests.Response:
    return requests.post(f"{stack.url}/api/v1/predict", json={"repositories": repositories}, timeout=60)


def test_lookups_use_the_configured_github_and_tokens_and_expire_after_the_ttl(
    configured_stack: Stack, simulator: SimulatorServer, signed_model: tuple[Path, str]
) -> None:
    stack = configured_stack
    known = [simulator.store.repos[i] for i in (2, 7)]
    body = [{"full_name": known[0].full_name}, {"full_name": "ghost/never-was"},
            {"full_name": known[1].full_name}]
    simulator.reset_stats()
    cached_from = time.monotonic()  # no cache entry of this test is older than this
    first = predict(stack, body)
    assert first.status_code == 200, first.text
    predictions = first.json()["predictions"]
    assert first.json()["model_version"] == signed_model[1]
    assert [p.get("actual_stars") for p in predictions] == [known[0].stargazers_count, None,
                                                            known[1].stargazers_count]
    # The unknown repository is a per-item error ("404 per item"): no rank, the others ranked 1 and 2.
    assert predictions[1] == {"full_name": "ghost/never-was",
                              "error": "repository ghost/never-was not found on GitHub", "status": 404}
    assert sorted(p["rank"] for p in predictions if "rank" in p) == [1, 2]
    asked = simulator.stats
    # One GraphQL query for all three names finds the ghost missing; only the two found ones cost REST calls.
    assert asked.calls("graphql") == 1 and asked.calls("repo") == 2
    assert ANONYMOUS not in asked.by_token and set(asked.by_token) <= set(TOKENS), asked.by_token

    again = predict(stack, body)
    assert again.status_code == 200
    cached = [{**p, "source": "cache"} if p.get("source") == "github" else p for p in predictions]
    assert again.json()["predictions"] == cached
    assert simulator.stats.requests == asked.requests  # found and not-found both came from the cache

    def asked_again() -> bool:  # once the TTL is over, every name is asked again
        assert predict(stack, body).status_code == 200
        return simulator.stats.calls("repo") >= 2 * asked.calls("repo")

    wait_until(asked_again, LOOKUP_TTL + 30, "the cached lookups to expire", interval=0.5)
    assert time.monotonic() - cached_from >= LOOKUP_TTL, "asked GitHub again before the TTL was over"


def test_worker_runs_with_the_configured_limits_and_prefetch_one(
    configured_stack: Stack, signed_model: tuple[Path, str], make_app: AppFactory
) -> None:
    stack = configured_stack
    inspect = inspect_worker(make_app(stack.broker_url, signed_model[0]), stack.workers[0])
    conf = one_reply(inspect.conf(with_defaults=True))
    assert conf["task_soft_time_limit"] == SOFT_LIMIT and conf["task_time_limit"] == HARD_LIMIT  # from env
    assert conf["task_acks_late"] is True and conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    stats = one_reply(inspect.stats())
    assert stats["prefetch_count"] == 1  # what the worker asked RabbitMQ for (concurrency 1 x multiplier 1)


def test_a_worker_holds_one_message_and_the_others_wait_in_the_queue(
    configured_stack: Stack, signed_model: tuple[Path, str], make_app: AppFactory
) -> None:
    """With its pool process frozen, the worker reserves exactly one message: the rest stay in RabbitMQ,
    where another worker could take them (the default multiplier, 4, would hold four)."""
    stack = configured_stack
    assert stack.broker is not None
    inspect = inspect_worker(make_app(stack.broker_url, signed_model[0]), stack.workers[0])
    (child,) = one_reply(inspect.stats())["pool"]["processes"]
    pool = ThreadPoolExecutor(3)
    os.kill(child, signal.SIGSTOP)
    try:
        futures = [pool.submit(predict, stack, five_rows(seed)) for seed in (4, 5, 6)]
        wait_until(lambda: queue_counts(stack.broker, "stargazer") == (2, 1), 60,
                   "one task held by the worker, two queued")
        # A second message would be taken at once if prefetch allowed it: a second of nothing is the proof.
        time.sleep(1.0)
        assert queue_counts(stack.broker, "stargazer") == (2, 1), "prefetch 1: no second message reserved"
        assert not any(f.done() for f in futures)
    finally:
        with contextlib.suppress(ProcessLookupError):  # never leave a frozen process behind
            os.kill(child, signal.SIGCONT)
        pool.shutdown(wait=True)
    assert [f.result().status_code for f in futures] == [200, 200, 200]
    assert queue_counts(stack.broker, "stargazer") == (0, 0)


def test_metrics_through_nginx_count_requests_latency_outcomes_and_the_model_version(
    configured_stack: Stack, signed_model: tuple[Path, str]
) -> None:
    stack = configured_stack
    before = requests.get(f"{stack.url}/metrics", timeout=5).text
    for _ in range(3):
        assert predict(stack, five_rows()).status_code == 200
    assert predict(stack, [{"forks_count": -1, "created_at": "2020-01-01"}]).status_code == 400
    text = requests.get(f"{stack.url}/metrics", timeout=5).text

    def grew(name: str, by: float, **labels: str) -> None:
        delta = metric_sample(text, name, **labels) - metric_sample(before, name, **labels)
        assert delta == by, (name, labels, delta)

    grew("stargazer_http_requests_total", 3, method="POST", endpoint="/api/v1/predict", status="200")
    grew("stargazer_http_requests_total", 1, method="POST", endpoint="/api/v1/predict", status="400")
    grew("stargazer_http_request_duration_seconds_count", 4, endpoint="/api/v1/predict")
    grew("stargazer_http_request_duration_seconds_bucket", 4, endpoint="/api/v1/predict", le="+Inf")
    fastest = metric_sample(text, "stargazer_http_request_duration_seconds_bucket",
                            endpoint="/api/v1/predict", le="0.005")
    count = metric_sample(text, "stargazer_http_request_duration_seconds_count", endpoint="/api/v1/predict")
    assert fastest < count  # a histogram, not one bucket
    grew("stargazer_task_outcomes_total", 3, outcome="success")
    grew("stargazer_predictions_total", 15, model_version=signed_model[1])
    # Worker processes' own samples reach the same scrape (multiprocess mode):
    grew("stargazer_worker_tasks_total", 3, task="predict_batch", outcome="success")
    assert metric_sample(text, "stargazer_model_info", version=signed_model[1]) == 1.0


def test_result_page_chart_is_in_the_tables_rank_order(configured_stack: Stack) -> None:
    stack = configured_stack
    session = requests.Session()
    page = session.get(f"{stack.url}/", timeout=10).text
    form = {"csrf_token": page_csrf_token(page)}
    # Entered smallest first: the ranking reverses the order, and the chart must follow the ranking.
    for i, (name, forks, created) in enumerate([("small/one", 0, "2026-06-01"), ("", 900, "2018-01-01"),
                                                ("big/one", 20000, "2012-01-01")]):
        form.update({f"rows-{i}-full_name": name, f"rows-{i}-language": "Python",
                     f"rows-{i}-forks_count": str(forks), f"rows-{i}-open_issues_count": str(forks // 10),
                     f"rows-{i}-size": "4000", f"rows-{i}-created_at": created,
                     f"rows-{i}-pushed_at": "2026-10-01"})
    result = session.post(f"{stack.url}/predict", data=form, timeout=15)
    assert result.status_code == 200, result.text[:500]
    table = result.text[result.text.index("<tbody>"):result.text.index("</tbody>")]
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>\s*<td>([^<]+)</td>\s*<td class=\"num\">([\d,]+)</td>", table)
    assert [int(rank) for rank, _, _ in rows] == [1, 2, 3]
    predicted = [float(p.replace(",", "")) for _, _, p in rows]
    assert predicted == sorted(predicted, reverse=True)
    names = [name for _, name, _ in rows]
    assert sorted(names) == ["Repository 2 (by hand)", "big/one", "small/one"]  # unnamed: as the form says
    assert re.findall(r'class="label">([^<]+)</text>', result.text) == names


def test_rabbitmq_restart_under_gunicorn_is_recovered_without_restarting_anything_else(
    configured_stack: Stack, signed_model: tuple[Path, str]
) -> None:
    """Several gunicorn threads, each with its own rpc:// reply consumer, all recover from a new broker."""
    stack = configured_stack
    assert stack.broker is not None

    def pids() -> list[int | None]:
        return [p.pid for p in [*stack.gunicorns, *stack.workers, stack.nginx] if p is not None]

    def codes(pool: ThreadPoolExecutor) -> list[int]:
        return [r.status_code for r in pool.map(lambda seed: predict(stack, five_rows(seed)), range(8))]

    before = pids()
    with ThreadPoolExecutor(4) as pool:
        assert set(codes(pool)) == {200}
        broker_pid = stack.broker.pid
        stack.broker.restart(timeout=60)
        assert stack.broker.pid != broker_pid  # a new broker process: every connection to it was cut
        back = time.monotonic()
        statuses: list[int] = []

        def healthy_round() -> bool:
            round_codes = codes(pool)
            statuses.extend(round_codes)
            return set(round_codes) == {200}

        wait_until(healthy_round, 60, "eight concurrent predictions after the broker came back", interval=0.5)
        print(f"recovered {time.monotonic() - back:.1f} s after the broker was back; statuses {statuses}")
        assert set(statuses) <= {200, 503, 504}, statuses  # refused clearly while recovering, never a 500
        for _ in range(3):  # healthy, not lucky
            assert set(codes(pool)) == {200}
    ready = requests.get(f"{stack.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["model_version"] == signed_model[1]
    assert pids() == before  # nothing was restarted but the broker
