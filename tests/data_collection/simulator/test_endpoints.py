"""Repository, list, user and rate-limit endpoints: counts in ONE request via Link rel="last", real paging."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from data_collection.simulator import SimulatorServer
from data_collection.simulator.model import Repo
from tests.support import MakeSim, bearer

LISTS = {"contributors": "contributors_count", "commits": "commits_count", "releases": "releases_count"}


def _count_in_one_request(http: requests.Session, sim: SimulatorServer, repo: Repo, kind: str) -> int | None:
    r = http.get(f"{sim.url}/repos/{repo.full_name}/{kind}", params={"per_page": 1, "anon": 1},
                 headers=bearer())
    if r.status_code in (204, 409):
        return 0
    if r.status_code != 200:
        return None
    if "last" in r.links:
        return int(parse_qs(urlsplit(r.links["last"]["url"]).query)["page"][0])
    return len(r.json())


def _sample(sim: SimulatorServer) -> list[Repo]:
    ordinary = [r for r in sim.store.repos
                if not r.empty and r.commits_count < sim.config.contributors_too_large_commits]
    by_stars = sorted(ordinary, key=lambda r: r.stargazers_count)
    picks = by_stars[:: max(1, len(by_stars) // 25)]
    return picks + [r for r in sim.store.repos if r.releases_count in (0, 1)][:4]


def test_per_page_1_last_page_is_the_true_count(big_sim: SimulatorServer, http: requests.Session) -> None:
    for repo in _sample(big_sim):
        truth = big_sim.truth(repo.full_name)
        for kind, field in LISTS.items():
            assert _count_in_one_request(http, big_sim, repo, kind) == truth[field], (repo.full_name, kind)


def test_paging_through_a_list_yields_exactly_its_items(big_sim: SimulatorServer,
                                                        http: requests.Session) -> None:
    """The naive benchmark pages with per_page=100: the lists must really exist, with the right lengths."""
    repo = next(r for r in sorted(big_sim.store.repos, key=lambda r: r.commits_count)
                if 250 < r.commits_count < 400 and r.contributors_count > 5)
    for kind in ("commits", "contributors"):
        url: str | None = f"{big_sim.url}/repos/{repo.full_name}/{kind}?per_page=100&anon=1"
        items = []
        while url:
            page = http.get(url, headers=bearer())
            assert page.status_code == 200
            items += page.json()
            url = page.links.get("next", {}).get("url")
        key = "sha" if kind == "commits" else "contributions"
        assert len(items) == getattr(repo, LISTS[kind])
        if kind == "commits":
            assert len({i[key] for i in items}) == len(items)
            assert items[0]["commit"]["author"]["date"] >= items[-1]["commit"]["author"]["date"]
    users_only = http.get(f"{big_sim.url}/repos/{repo.full_name}/contributors?per_page=100", headers=bearer())
    assert len(users_only.json()) == min(100, repo.contributors_count - repo.anon_contributors)
    assert {c["type"] for c in users_only.json()} == {"User"}


def test_without_anon_only_the_first_500_linked_contributors(big_sim: SimulatorServer,
                                                             http: requests.Session) -> None:
    """GitHub links only 500 author emails to users: anon=1 is the only way to count the rest."""
    repo = next(r for r in big_sim.store.repos if r.contributors_count - r.anon_contributors > 600
                and r.commits_count < big_sim.config.contributors_too_large_commits)
    for anon, expected in (("0", 500), ("1", repo.contributors_count)):
        r = http.get(f"{big_sim.url}/repos/{repo.full_name}/contributors",
                     params={"per_page": 1, "anon": anon}, headers=bearer())
        assert int(parse_qs(urlsplit(r.links["last"]["url"]).query)["page"][0]) == expected
    tail = http.get(f"{big_sim.url}/repos/{repo.full_name}/contributors",
                    params={"per_page": 1, "anon": 1, "page": 501}, headers=bearer()).json()
    assert tail[0]["type"] == "Anonymous" and "login" not in tail[0]


def test_full_repository_has_the_enrichment_fields(big_sim: SimulatorServer, http: requests.Session) -> None:
    repo = max(big_sim.store.repos, key=lambda r: r.stargazers_count)
    # case-insensitive, as GitHub
    body = http.get(f"{big_sim.url}/repos/{repo.full_name.upper()}", headers=bearer()).json()
    assert body["full_name"] == repo.full_name
    assert body["subscribers_count"] == repo.subscribers_count
    assert body["network_count"] == repo.network_count
    assert body["watchers_count"] == body["stargazers_count"] == repo.stargazers_count  # GitHub's alias
    assert "score" not in body
    if repo.owner.type == "Organization":
        assert body["organization"]["login"] == repo.owner.login


def test_users_and_organizations(big_sim: SimulatorServer, http: requests.Session) -> None:
    owners = {r.owner.login: r.owner for r in big_sim.store.repos}
    for kind in ("User", "Organization"):
        owner = next(o for o in owners.values() if o.type == kind)
        body = http.get(f"{big_sim.url}/users/{owner.login}", headers=bearer()).json()
        assert body["type"] == kind and body["followers"] == owner.followers and body["login"] == owner.login
    assert http.get(f"{big_sim.url}/users/no-such-user-xyz", headers=bearer()).status_code == 404


def test_unknown_repositories_and_paths_are_404(big_sim: SimulatorServer, http: requests.Session) -> None:
    for path in ("/repos/nobody/nothing", "/repos/nobody/nothing/commits", "/nope"):
        r = http.get(big_sim.url + path, headers=bearer())
        assert r.status_code == 404 and r.json()["message"] == "Not Found"


def test_biggest_histories_refuse_contributors(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(contributors_too_large_commits=2000)
    huge = next(r for r in sim.store.repos if r.commits_count >= 2000)
    r = http.get(f"{sim.url}/repos/{huge.full_name}/contributors", params={"per_page": 1}, headers=bearer())
    assert r.status_code == 403
    assert r.json()["message"] == ("The history or contributor list is too large to list contributors for "
                                   "this repository via the API.")
    assert r.headers["x-ratelimit-remaining"] != "0"  # not a rate limit: the client must not wait
    commits = http.get(f"{sim.url}/repos/{huge.full_name}/commits?per_page=1", headers=bearer())
    assert commits.status_code == 200


def test_empty_repository(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(repos=2000)
    empty = next(r for r in sim.store.repos if r.empty)
    commits = http.get(f"{sim.url}/repos/{empty.full_name}/commits?per_page=1", headers=bearer())
    assert commits.status_code == 409 and commits.json()["message"] == "Git Repository is empty."
    contributors = http.get(f"{sim.url}/repos/{empty.full_name}/contributors?per_page=1&anon=1",
                            headers=bearer())
    assert contributors.status_code == 204 and contributors.content == b""
    releases = http.get(f"{sim.url}/repos/{empty.full_name}/releases?per_page=1", headers=bearer())
    assert releases.status_code == 200 and releases.json() == [] and "Link" not in releases.headers


def test_rate_limit_endpoint_is_free(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    http.get(f"{sim.url}/repos/{sim.store.repos[0].full_name}", headers=bearer())
    first = http.get(f"{sim.url}/rate_limit", headers=bearer()).json()
    second = http.get(f"{sim.url}/rate_limit", headers=bearer()).json()
    assert first == second
    core = first["resources"]["core"]
    assert core["limit"] == 5000 and core["used"] == 1 and core["remaining"] == 4999
    assert first["resources"]["search"]["limit"] == 30 and first["rate"] == core
    anon = http.get(f"{sim.url}/rate_limit").json()["resources"]
    assert anon["core"]["limit"] == 60 and anon["search"]["limit"] == 10
    assert sim.stats.charged_total() == 1


def test_concurrent_clients(big_sim: SimulatorServer) -> None:
    """Several threads with their own keep-alive connections, at once: every answer right and complete."""
    repos = _sample(big_sim)[:16]
    errors: list[str] = []
    before = big_sim.stats.requests

    def work(i: int) -> None:
        with requests.Session() as s:
            for repo in repos[i::4] * 5:
                r = s.get(f"{big_sim.url}/repos/{repo.full_name}", headers=bearer(("tok-a", "tok-b")[i % 2]))
                if r.status_code != 200 or r.json()["id"] != repo.id:
                    errors.append(f"{repo.full_name}: {r.status_code}")
                q = s.get(f"{big_sim.url}/search/repositories", params={"q": "stars:>=50", "per_page": 100,
                                                                         "page": i + 1}, headers=bearer())
                if q.status_code != 200 or len(q.json()["items"]) != 100:
                    errors.append(f"search: {q.status_code}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert big_sim.stats.requests - before == 2 * 5 * sum(len(repos[i::4]) for i in range(8))


def test_a_stopped_simulator_is_unreachable_even_on_kept_alive_connections(make_sim: MakeSim,
                                                                          http: requests.Session) -> None:
    sim = make_sim()
    url = f"{sim.url}/rate_limit"
    assert http.get(url, headers=bearer()).status_code == 200  # the session now holds a keep-alive connection
    sim.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(url, headers=bearer(), timeout=5)


@pytest.mark.parametrize("header", ["Bearer tok-b", "token tok-b", "bearer tok-b"])
def test_both_authorization_schemes(big_sim: SimulatorServer, http: requests.Session, header: str) -> None:
    r = http.get(f"{big_sim.url}/rate_limit", headers={"Authorization": header})
    assert r.status_code == 200 and r.json()["resources"]["core"]["limit"] == 1_000_000
