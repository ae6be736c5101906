"""GitHubClient against requests-mock: retries, rate limits, 401, ETag; secrets never in messages."""

from __future__ import annotations

import logging
import re
import time

import pytest
import requests
import requests_mock

from data_collection.client import GitHubClient, GitHubError
from data_collection.settings import Settings
from data_collection.tokens import TokenPool
from tests.data_collection.fake_github import API

SECRETS = ("tok-aaaa-1111", "tok-bbbb-2222")
URL = API + "/repos/o/r"


def limits(remaining=100, reset=9_999_999_999, resource="core"):
    return {"x-ratelimit-remaining": str(remaining), "x-ratelimit-reset": str(reset),
            "x-ratelimit-limit": "5000", "x-ratelimit-resource": resource}


def auth_of(request) -> str:
    return request.headers.get("Authorization", "")


class FakeTime:
    """Sleeping advances the clock the token pool reads: rate-limit waits take no real time."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(settings, **changes):
    fake = FakeTime()
    s = Settings(**{**settings.__dict__, **changes})
    return GitHubClient(s, TokenPool(list(s.tokens), clock=fake), sleep=fake.sleep), fake.sleeps


@pytest.fixture
def client(settings):
    return make_client(settings)[0]


def test_etag_304_is_served_from_cache_and_not_counted(client):
    with requests_mock.Mocker() as m:
        m.get(URL, [{"json": {"id": 1}, "headers": {"ETag": '"v1"', **limits()}},
                    {"status_code": 304, "headers": limits()}])
        first = client.get("/repos/o/r")
        second = client.get("/repos/o/r")
        assert m.request_history[1].headers["If-None-Match"] == '"v1"'
    assert first.data == second.data == {"id": 1}
    assert second.from_cache and not first.from_cache
    assert client.calls["core"] == 1 and client.not_modified == 1


def test_502_storm_is_retried_with_backoff_then_succeeds(settings):
    client, sleeps = make_client(settings, max_tries=5, backoff_base=1.0, backoff_max=8.0)
    with requests_mock.Mocker() as m:
        m.get(URL, [{"status_code": 502, "text": "bad gateway"}] * 3 + [{"json": {"ok": 1}}])
        assert client.get("/repos/o/r").data == {"ok": 1}
    assert len(sleeps) == 3 and all(0 <= s <= 8 for s in sleeps)


def test_bounded_tries_then_one_line_error_without_secrets(client):
    with requests_mock.Mocker() as m:
        m.get(URL, status_code=503)
        with pytest.raises(GitHubError) as err:
            client.get("/repos/o/r")
    message = str(err.value)
    assert "failed after 3 tries" in message and "\n" not in message
    assert not any(s in message for s in SECRETS)


def test_timeouts_and_connection_errors_are_transient(client):
    with requests_mock.Mocker() as m:
        m.get(URL, [{"exc": requests.ConnectTimeout}, {"exc": requests.ConnectionError},
                    {"json": {"ok": 1}}])
        assert client.get("/repos/o/r").data == {"ok": 1}


def test_401_drops_the_token_and_continues_with_the_next(client, caplog):
    def answer(request, context):
        if auth_of(request).endswith(SECRETS[0]):
            context.status_code = 401
            return {"message": "Bad credentials"}
        return {"ok": 1}

    with requests_mock.Mocker() as m, caplog.at_level(logging.DEBUG):
        m.get(URL, json=answer)
        for _ in range(3):
            assert client.get("/repos/o/r").data == {"ok": 1}
    assert [t.position for t in client.pool.tokens] == [2]
    assert "token#1" in caplog.text
    assert not any(s in caplog.text for s in SECRETS)


def test_secondary_limit_retry_after_pauses_the_token(settings):
    client, sleeps = make_client(settings)
    with requests_mock.Mocker() as m:
        m.get(URL, [{"status_code": 403, "headers": {"Retry-After": "7", **limits()},
                     "json": {"message": "You have exceeded a secondary rate limit"}},
                    {"json": {"ok": 1}, "headers": limits()}])
        assert client.get("/repos/o/r").data == {"ok": 1}
        first, second = m.request_history
    assert auth_of(first) != auth_of(second)  # the paused token was not reused
    assert sleeps == []  # another token was free: no waiting at all


def test_429_without_retry_after_uses_the_configured_pause(settings):
    client, sleeps = make_client(settings, tokens=SECRETS[:1], secondary_wait=3.0)
    with requests_mock.Mocker() as m:
        m.get(URL, [{"status_code": 429, "json": {"message": "slow down"}}, {"json": {"ok": 1}}])
        assert client.get("/repos/o/r").data == {"ok": 1}
    assert len(sleeps) == 1 and sleeps[0] >= 3.0


def test_primary_limit_rotates_then_sleeps_until_reset(settings):
    reset = int(time.time()) + 5
    client, sleeps = make_client(settings)
    with requests_mock.Mocker() as m:
        m.get(URL, [{"status_code": 403, "headers": limits(0, reset), "json": {"message": "rate limit"}},
                    {"status_code": 403, "headers": limits(0, reset), "json": {"message": "rate limit"}},
                    {"json": {"ok": 1}, "headers": limits(4999, reset + 3600)}])
        assert client.get("/repos/o/r").data == {"ok": 1}
        auths = [auth_of(r) for r in m.request_history]
    assert auths[0] != auths[1]  # rotation first
    assert len(sleeps) == 1 and 3 <= sleeps[0] <= 6.5  # then one sleep until the earliest reset


def test_ordinary_403_and_404_are_errors_or_answers_as_asked(client):
    with requests_mock.Mocker() as m:
        m.get(URL, status_code=404, json={"message": "Not Found"}, headers=limits())
        with pytest.raises(GitHubError, match="HTTP 404 Not Found"):
            client.get("/repos/o/r")
        assert client.get("/repos/o/r", accept=(404,)).status == 404
        m.get(API + "/repos/o/r/contributors", status_code=403, headers=limits(),
              json={"message": "The history or contributor list is too large to list contributors"})
        assert client.get("/repos/o/r/contributors", accept=(403,)).status == 403


def test_link_last_page_is_the_count(client):
    link = f'<{URL}/commits?per_page=1&page=2>; rel="next", <{URL}/commits?per_page=1&page=4321>; rel="last"'
    with requests_mock.Mocker() as m:
        m.get(URL + "/commits", json=[{}], headers={"Link": link, **limits()})
        assert client.get("/repos/o/r/commits", {"per_page": 1}).last_page() == 4321


def test_truncated_json_is_retried(client):
    with requests_mock.Mocker() as m:
        m.get(URL, [{"text": '{"id": 1', "headers": limits()}, {"json": {"id": 1}}])
        assert client.get("/repos/o/r").data == {"id": 1}


def test_resource_header_decides_the_meter(client):
    with requests_mock.Mocker() as m:
        m.get(re.compile(API + "/search/.*"), json={"total_count": 0, "items": []},
              headers=limits(9, resource="search"))
        client.get("/search/repositories", {"q": "stars:>=1"})
    token = client.pool.tokens[0]
    assert client.pool.quota(token, "search").remaining == 9
    assert client.calls == {"search": 1}


def test_graphql_rate_limited_200_rotates_to_another_token(client):
    spent = {"errors": [{"type": "RATE_LIMITED", "message": "API rate limit already exceeded"}]}
    with requests_mock.Mocker() as m:
        m.post(API + "/graphql", [
            {"json": spent, "headers": limits(0, resource="graphql")},
            {"json": {"data": {"r0": None}}, "headers": limits(4000, resource="graphql")}])
        assert client.graphql("query { x }").data == {"data": {"r0": None}}
        first, second = m.request_history
    assert auth_of(first) != auth_of(second)
    assert client.pool.quota(client.pool.tokens[0], "graphql").remaining == 0
