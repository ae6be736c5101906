"""``/readyz`` and malformed bodies through nginx, with the real stack (RabbitMQ, worker, gunicorn, nginx).

Clients come from several loopback addresses (127.0.0.1 is allowlisted and exempt from the limits here,
127.0.0.2 and 127.0.0.3 are anybody), so one stack shows what each kind of client is told.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from model_serving import artifact, releases
from model_serving.process_stack.stack import Stack
from synthetic.versions import build_tiny_version
from tests.support import (
    DEPLOY_KEYS,
    install_signed_tiny_model,
    require_stack_tools,
    start_stack,
    wait_until,
)

pytestmark = pytest.mark.integration

#: How long one web process reuses a readiness probe in this stack: long enough that the cache test cannot
#: be passed by a slow machine spreading its requests out, short enough that a changed state shows soon.
CACHE_SECONDS = 5.0
ANYBODY = "127.0.0.2"
LIMITED = "127.0.0.3"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path, str]]:
    require_stack_tools()
    model_dir, version = install_signed_tiny_model(tmp_path_factory.mktemp("model"))
    stack = start_stack(
        tmp_path_factory.mktemp("stack"), model_dir,
        env={"STARGAZER_READY_CACHE_SECONDS": str(CACHE_SECONDS)},
        nginx_variables={
            "nginx_readyz_detail_allow": ["127.0.0.1"],
            "nginx_limit_req_exempt": ["127.0.0.1/32"],
            "nginx_readyz_limit_req_rate": "1r/s",
            "nginx_readyz_limit_req_burst": 3,
        },
    )
    try:
        yield stack, model_dir, version
    finally:
        stack.stop()


def get_from(stack: Stack, source: str, path: str, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, Any]]:
    """GET through nginx with the client's socket bound to ``source`` (any 127/8 address is loopback)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def pings_answered(stack: Stack) -> float:
    text = requests.get(f"{stack.url}/metrics", timeout=10).text
    found = re.search(r'stargazer_worker_tasks_total\{outcome="success",task="ping"\} ([0-9.e+]+)', text)
    assert found, "the worker's ping counter is missing from /metrics (the stack's start-up pinged)"
    return float(found.group(1))


def test_readyz_detail_goes_only_to_an_allowlisted_address(served: tuple[Stack, Path, str]) -> None:
    stack, _, version = served
    status, detail = get_from(stack, "127.0.0.1", "/readyz")
    assert status == 200 and detail["ready"] is True
    assert detail["model_version"] == version and detail["broker"] is True
    assert isinstance(detail["worker"]["pid"], int)

    status, public = get_from(stack, ANYBODY, "/readyz")
    assert status == 200
    assert public == {"ready": True, "reason": "a worker answered with a loaded model"}
    # A client cannot ask for the detail itself: nginx overwrites the header it uses to tell the app.
    status, forged = get_from(stack, ANYBODY, "/readyz", {"X-Stargazer-Readyz-Detail": "1"})
    assert status == 200 and forged == public


def test_readyz_is_rate_limited_per_address(served: tuple[Stack, Path, str]) -> None:
    stack, _, _ = served
    statuses = []
    for _ in range(12):  # 1 r/s with a burst of 3: most of twelve back-to-back requests are refused
        status, body = get_from(stack, LIMITED, "/readyz")
        statuses.append(status)
        if status == 429:
            assert body["error"] == "too many requests: slow down and retry"
    assert statuses.count(429) >= 5, statuses
    assert set(statuses) <= {200, 429}
    # Another address is not affected.
    assert get_from(stack, ANYBODY, "/readyz")[0] == 200


def test_readyz_reuses_its_probe_instead_of_pinging_per_call(served: tuple[Stack, Path, str]) -> None:
    stack, _, _ = served
    before = pings_answered(stack)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: get_from(stack, "127.0.0.1", "/readyz")[0], range(40)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 40
    pings = pings_answered(stack) - before
    # One web process: at most one probe per CACHE_SECONDS window the requests spanned (a probe per call
    # would be 40 pings, each with its own broker connection).
    allowed = int(elapsed // CACHE_SECONDS) + 2
    print(f"40 /readyz calls in {elapsed:.2f} s sent {pings:g} pings (allowed {allowed})")
    assert pings <= allowed


@pytest.mark.parametrize("body", [
    '{"repositories": [{"full_name": "a/b", "forks_count": ' + "9" * 5000 + "}]}",
    '{"repositories": ' + "[" * 100_000 + "]" * 100_000 + "}",
], ids=["5000-digit integer", "100000 nested arrays"])
def test_malformed_bodies_are_400_json_through_nginx(served: tuple[Stack, Path, str], body: str) -> None:
    stack, _, _ = served
    answer = requests.post(f"{stack.url}/api/v1/predict", data=body,
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("malformed JSON: ")
    assert answer.json()["details"] == {}
    gunicorn_logs = "".join(p.log_file.read_text(errors="replace") for p in stack.gunicorns)
    assert "Traceback" not in gunicorn_logs


def test_a_refused_release_is_detail_for_the_allowlist_and_a_short_reason_for_others(
    served: tuple[Stack, Path, str], tmp_path: Path,
) -> None:
    stack, model_dir, version = served
    # A newer release whose bytes stop matching its signed manifest after install (a bit flip on disk).
    newer = build_tiny_version(tmp_path, seed=11)
    artifact.sign_version(newer, DEPLOY_KEYS.signing)
    releases.install_release(newer, model_dir, actor="tests")
    installed = model_dir / "current" / artifact.MODEL_FILE
    installed.chmod(0o644)
    installed.write_bytes(b"rotten")
    try:
        def detail_shows_refusal() -> dict[str, Any] | None:
            status, detail = get_from(stack, "127.0.0.1", "/readyz")
            return detail if status == 200 and detail.get("error") else None

        detail = wait_until(detail_shows_refusal, 60, "the worker to report the refused release")
        assert detail["model_version"] == version  # still serving the release it had
        assert "does not match model.json" in detail["error"] and str(model_dir) in detail["error"]

        status, public = get_from(stack, ANYBODY, "/readyz")
        assert status == 200
        assert public == {"ready": True, "reason": (
            "a worker answered with a loaded model; the newest release is not served: "
            "the installed model release was refused (see the worker's log)")}
        # The API keeps answering with the old model.
        answer = requests.post(f"{stack.url}/api/v1/predict", timeout=30,
                               json={"repositories": [{"created_at": "2020-01-01", "forks_count": 3}]})
        assert answer.status_code == 200 and answer.json()["model_version"] == version
    finally:
        releases.install_release(model_dir / "releases" / version, model_dir, actor="tests")  # roll back
