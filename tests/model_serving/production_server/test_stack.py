"""The whole stack for real: client -> nginx -> gunicorn (2 upstreams) -> RabbitMQ -> Celery worker -> model.

What only the assembled stack can show: answers come back through nginx with its headers and compression,
nginx's own refusals (413, 429) keep the API's JSON shape, /healthz and /readyz pass through, and traffic is
spread over several gunicorn upstreams.
"""

from __future__ import annotations

import gzip
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from model_serving.process_stack.services import Gunicorn, http_get
from model_serving.process_stack.stack import Stack

from . import stack_fixtures
from .stack_fixtures import five_rows

# The module-scoped fixtures: one stack for this module, stopped by pid after its last test.
signed_model = stack_fixtures.signed_model
stack = stack_fixtures.stack

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
    for sent, got in zip(rows, predictions, strict=True):
        low, high = got["interval"]
        assert low <= got["predicted_stars"] <= high
        assert got["actual_stars"] == sent.get("stargazers_count")
    assert answer.headers["Content-Encoding"] == "gzip"  # JSON is compressed by nginx
    for header in SECURITY_HEADERS:
        assert header in answer.headers


def test_form_round_trip_through_nginx(stack: Stack, signed_model: tuple[Path, str]) -> None:
    session = requests.Session()
    page = session.get(f"{stack.url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert token, "the form carries a CSRF token"
    form = {"csrf_token": token.group(1)}
    for i, forks in enumerate([10, 5000, 40, 300, 2]):
        form.update({
            f"rows-{i}-language": "Python", f"rows-{i}-forks_count": str(forks),
            f"rows-{i}-open_issues_count": "3", f"rows-{i}-size": "2000", f"rows-{i}-topics_count": "2",
            f"rows-{i}-created_at": "2020-01-01", f"rows-{i}-pushed_at": "2026-10-01",
            f"rows-{i}-owner_type": "User", f"rows-{i}-has_issues": "y",
        })
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
    stack_fixtures.require_stack_tools()
    embedded = stack_fixtures.start_stack(tmp_path / "stack", signed_model[0], broker="embedded")
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
        "STARGAZER_DEPLOY_SECRET": stack_fixtures.DEPLOY_SECRET.decode(),
        "STARGAZER_BROKER_URL": f"amqp://nobody:nothing@127.0.0.1:{stack_fixtures.free_port()}/none",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    gunicorn = Gunicorn(tmp_path / "gunicorn", bind=f"unix:{socket_path}", workers=1, threads=2, env=env)
    with gunicorn:
        gunicorn.start().wait_ready(60)
        status, body = http_get(gunicorn.address, "/healthz")
        assert status == 200, body
    assert not gunicorn.is_running()
