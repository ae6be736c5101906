"""Rate limits, credentials, conditional requests and faults, as a GitHub client meets them."""

from __future__ import annotations

import threading
import time

import requests

from data_collection.simulator import SimulatorServer
from tests.support import MakeSim, bearer


def _repo_url(sim: SimulatorServer, i: int = 0) -> str:
    return f"{sim.url}/repos/{sim.store.repos[i].full_name}"


def test_headers_count_down_and_reset_with_scaled_time(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(quota_core=3, reset_seconds=1.0)
    seen = []
    for _ in range(3):
        r = http.get(_repo_url(sim), headers=bearer())
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "3" and r.headers["x-ratelimit-resource"] == "core"
        seen.append((int(r.headers["x-ratelimit-remaining"]), int(r.headers["x-ratelimit-used"])))
    assert seen == [(2, 1), (1, 2), (0, 3)]
    reset = int(r.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 2.5  # a real epoch second, one scaled window away
    refused = http.get(_repo_url(sim), headers=bearer())
    assert refused.status_code == 403
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) == reset
    assert refused.json()["message"].startswith("API rate limit exceeded for user ID")
    # another token has its own quota
    assert http.get(_repo_url(sim), headers=bearer("tok-b")).headers["x-ratelimit-remaining"] == "2"
    time.sleep(max(0.0, reset - time.time()) + 0.05)  # what a client does: sleep until the reset second
    again = http.get(_repo_url(sim), headers=bearer())
    assert again.status_code == 200 and again.headers["x-ratelimit-remaining"] == "2"
    assert sim.stats.faults["exhausted"] == 1
    assert sim.stats.charged["tok-a"] == {"core": 4}


def test_search_has_its_own_resource_and_quota(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    r = http.get(f"{sim.url}/search/repositories?q=stars:>=50", headers=bearer())
    assert r.headers["x-ratelimit-resource"] == "search" and r.headers["x-ratelimit-limit"] == "30"
    assert http.get(_repo_url(sim), headers=bearer()).headers["x-ratelimit-remaining"] == "4999"
    anon = http.get(f"{sim.url}/search/repositories?q=stars:>=50")
    assert anon.headers["x-ratelimit-limit"] == "10"
    sim.exhaust("tok-a", "search")
    assert http.get(f"{sim.url}/search/repositories?q=stars:>=50", headers=bearer()).status_code == 403
    assert http.get(_repo_url(sim), headers=bearer()).status_code == 200  # core untouched


def test_unauthenticated_quota_and_429_option(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(anon_quota_core=2, exhausted_status=429)
    assert [http.get(_repo_url(sim)).status_code for _ in range(3)] == [200, 200, 429]
    body = http.get(_repo_url(sim)).json()
    assert body["message"].startswith("API rate limit exceeded for 127.0.0.1.")


def test_unknown_and_revoked_tokens_get_401(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    bad = http.get(_repo_url(sim), headers=bearer("not-a-token"))
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    assert http.get(_repo_url(sim), headers={"Authorization": "Basic abc"}).status_code == 401
    assert http.get(_repo_url(sim), headers=bearer("tok-c")).status_code == 200
    sim.revoke("tok-c")
    assert http.get(_repo_url(sim), headers=bearer("tok-c")).status_code == 401
    assert sim.stats.by_token.get("<invalid>") == 3 and sim.stats.charged_total() == 1
    sim.add_token("tok-new")
    assert http.get(_repo_url(sim), headers=bearer("tok-new")).status_code == 200


def test_304_is_not_charged_when_authenticated(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    first = http.get(_repo_url(sim), headers=bearer())
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    for _ in range(3):
        cond = http.get(_repo_url(sim), headers={**bearer(), "If-None-Match": etag})
        assert cond.status_code == 304 and cond.content == b"" and cond.headers["ETag"] == etag
        assert cond.headers["x-ratelimit-remaining"] == "4999"
    assert http.get(_repo_url(sim), headers={**bearer(), "If-None-Match": 'W/"stale"'}).status_code == 200
    assert sim.stats.not_modified == 3 and sim.stats.charged["tok-a"]["core"] == 2
    # the same content keeps its ETag; other content has another
    assert http.get(_repo_url(sim), headers=bearer()).headers["ETag"] == etag
    assert http.get(_repo_url(sim, 1), headers=bearer()).headers["ETag"] != etag
    # an anonymous 304 is charged (GitHub's rule spares only authorized conditional requests)
    anon_etag = http.get(_repo_url(sim)).headers["ETag"]
    anon = http.get(_repo_url(sim), headers={"If-None-Match": anon_etag})
    assert anon.status_code == 304 and anon.headers["x-ratelimit-remaining"] == "58"


def test_secondary_limit_with_retry_after(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(secondary_retry_after=1)
    sim.force_secondary(1)
    r = http.get(_repo_url(sim), headers=bearer())
    assert r.status_code == 403 and r.headers["Retry-After"] == "1"
    assert "secondary rate limit" in r.json()["message"]
    assert r.headers["x-ratelimit-remaining"] != "0"  # how a client tells it from the primary limit
    early = http.get(_repo_url(sim), headers=bearer())  # not waiting is refused again
    assert early.status_code == 403 and "Retry-After" in early.headers
    assert http.get(_repo_url(sim), headers=bearer("tok-b")).status_code == 200  # other callers unaffected
    time.sleep(1.05)
    assert http.get(_repo_url(sim), headers=bearer()).status_code == 200
    assert sim.stats.faults["secondary_violation"] == 1 and sim.stats.faults["secondary"] == 2
    assert sim.stats.charged["tok-a"]["core"] == 1
    sim.configure(secondary_status=429)
    sim.force_secondary(1)
    assert http.get(_repo_url(sim), headers=bearer("tok-c")).status_code == 429


def test_too_many_concurrent_requests_trip_the_secondary_limit(make_sim: MakeSim) -> None:
    sim = make_sim(max_concurrent=2, slow_rate=1.0, slow_seconds=0.8, secondary_retry_after=0)
    statuses: list[int] = []

    def one(token: str) -> None:
        with requests.Session() as s:
            statuses.append(s.get(_repo_url(sim), headers=bearer(token)).status_code)

    threads = [threading.Thread(target=one, args=("tok-a",)) for _ in range(4)]
    threads.append(threading.Thread(target=one, args=("tok-b",)))  # another caller is not affected
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(statuses) == [200, 200, 200, 403, 403]
    assert sim.stats.faults["concurrency"] == 2
    assert sim.stats.charged == {"tok-a": {"core": 2}, "tok-b": {"core": 1}}


def test_forced_502_storm(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    sim.force_errors(4, status=502)
    statuses = [http.get(_repo_url(sim), headers=bearer()).status_code for _ in range(6)]
    assert statuses == [502, 502, 502, 502, 200, 200]
    assert http.get(f"{sim.url}/rate_limit", headers=bearer()).json()["resources"]["core"]["used"] == 2
    sim.force_errors(1, status=503)
    assert http.get(_repo_url(sim), headers=bearer()).status_code == 503
    assert sim.stats.faults == {"502": 4, "503": 1}


def test_random_faults_are_seeded(make_sim: MakeSim, http: requests.Session) -> None:
    def run() -> list[int]:
        sim = make_sim(seed=21, error_rate_502=0.2, error_rate_503=0.1, secondary_rate=0.1,
                                        secondary_retry_after=0)
        return [http.get(_repo_url(sim, i), headers=bearer(("tok-a", "tok-b", "tok-c")[i % 3])).status_code
                for i in range(60)]

    first, second = run(), run()
    assert first == second
    assert {200, 502, 503, 403} <= set(first)


def test_slow_replies(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(slow_rate=1.0, slow_seconds=0.3)
    started = time.perf_counter()
    assert http.get(_repo_url(sim), headers=bearer()).status_code == 200
    assert time.perf_counter() - started >= 0.3
    sim.configure(slow_rate=0.0)
    started = time.perf_counter()
    http.get(_repo_url(sim), headers=bearer())
    assert time.perf_counter() - started < 0.3
    assert sim.stats.faults["slow"] == 1


def test_every_answer_carries_github_headers(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    for path in ("/rate_limit", "/repos/x/y", "/search/repositories?q=stars:>1", "/users/nobody"):
        r = http.get(sim.url + path, headers=bearer())
        for header in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-used",
                       "x-ratelimit-resource", "x-github-request-id"):
            assert header in r.headers, (path, header)
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        assert int(r.headers["Content-Length"]) == len(r.content)
    ids = {http.get(sim.url + "/rate_limit").headers["x-github-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_control_endpoints_are_off_unless_asked(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    assert http.get(f"{sim.url}/_simulator/stats").status_code == 404
    assert http.post(f"{sim.url}/_simulator/control", json={"revoke": "tok-a"}).status_code == 404
    assert http.get(_repo_url(sim), headers=bearer()).status_code == 200


def test_runtime_configuration_is_validated(make_sim: MakeSim) -> None:
    sim = make_sim()
    for bad in ({"error_rate_502": 1.5}, {"repos": 10}, {"no_such_setting": 1}, {"exhausted_status": 500}):
        try:
            sim.configure(**bad)
        except ValueError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError(f"accepted {bad}")


def test_time_scale_shrinks_githubs_windows(make_sim: MakeSim, http: requests.Session) -> None:
    from data_collection.simulator import SimulatorConfig

    cfg = SimulatorConfig(time_scale=3600)
    assert (cfg.window("core"), cfg.window("search"), cfg.window("graphql")) == (1.0, 60 / 3600, 1.0)
    assert SimulatorConfig(time_scale=3600, reset_seconds=5).window("search") == 5.0
    sim = make_sim(time_scale=60, quota_search=1)  # search: 60 s / 60 = a one-second window
    first = http.get(f"{sim.url}/search/repositories?q=stars:>=50", headers=bearer())
    assert first.status_code == 200
    assert http.get(f"{sim.url}/search/repositories?q=stars:>=50", headers=bearer()).status_code == 403
    reset = int(first.headers["x-ratelimit-reset"])
    assert reset <= time.time() + 2
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    assert http.get(f"{sim.url}/search/repositories?q=stars:>=50", headers=bearer()).status_code == 200
