"""/search/repositories over real HTTP: true totals, the 1000-result cap, Link headers, qualifiers, order."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

import requests

from data_collection.simulator import SimulatorServer
from tests.support import MakeSim, bearer


def _search(http: requests.Session, sim: SimulatorServer, **params: object) -> requests.Response:
    return http.get(f"{sim.url}/search/repositories", params=params, headers=bearer())


def _page_of(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["page"][0])


def test_total_count_is_true_but_only_1000_are_reachable(big_sim: SimulatorServer,
                                                         http: requests.Session) -> None:
    everyone = [r for r in big_sim.store.repos if not r.fork and r.stargazers_count >= 50]
    r = _search(http, big_sim, q="stars:>=50", sort="stars", order="desc", per_page=100)
    assert r.status_code == 200
    body = r.json()
    assert body["total_count"] == len(everyone) > 1000
    assert body["incomplete_results"] is False and len(body["items"]) == 100
    assert _page_of(r.links["last"]["url"]) == 10  # 1000 / 100, not total/100
    assert _page_of(r.links["next"]["url"]) == 2 and "prev" not in r.links
    last = _search(http, big_sim, q="stars:>=50", sort="stars", order="desc", per_page=100, page=10)
    assert last.status_code == 200 and len(last.json()["items"]) == 100
    assert "next" not in last.links and _page_of(last.links["prev"]["url"]) == 9
    assert _page_of(last.links["first"]["url"]) == 1
    beyond = _search(http, big_sim, q="stars:>=50", sort="stars", order="desc", per_page=100, page=11)
    assert beyond.status_code == 422
    assert beyond.json()["message"] == "Only the first 1000 search results are available"


def test_link_urls_keep_the_query_and_point_back_at_the_simulator(big_sim: SimulatorServer,
                                                                  http: requests.Session) -> None:
    r = _search(http, big_sim, q="stars:50..60 language:Python", per_page=7, page=3)
    for rel in ("prev", "next", "last", "first"):
        url = r.links[rel]["url"]
        assert url.startswith(big_sim.url + "/search/repositories?")
        qs = parse_qs(urlsplit(url).query)
        assert qs["q"] == ["stars:50..60 language:Python"] and qs["per_page"] == ["7"]
    total = r.json()["total_count"]
    assert _page_of(r.links["last"]["url"]) == math.ceil(min(total, 1000) / 7)
    # following "next" from the first page visits every match exactly once
    seen: list[int] = []
    url: str | None = f"{big_sim.url}/search/repositories?q=stars:50..60+language:Python&per_page=50"
    while url:
        page = http.get(url, headers=bearer())
        seen += [item["id"] for item in page.json()["items"]]
        url = page.links.get("next", {}).get("url")
    assert len(seen) == len(set(seen)) == min(total, 1000)


def test_per_page_is_capped_at_100(big_sim: SimulatorServer, http: requests.Session) -> None:
    assert len(_search(http, big_sim, q="stars:>=50", per_page=500).json()["items"]) == 100
    assert len(_search(http, big_sim, q="stars:>=50").json()["items"]) == 30  # GitHub's default


def test_star_and_date_slices_partition_the_population(big_sim: SimulatorServer,
                                                       http: requests.Session) -> None:
    """What a cap-splitting collector relies on: disjoint slices whose totals add up to the whole."""
    whole = _search(http, big_sim, q="stars:>=50", per_page=1).json()["total_count"]
    parts = ["stars:50..59", "stars:60..99", "stars:100..999", "stars:>=1000"]
    assert sum(_search(http, big_sim, q=p, per_page=1).json()["total_count"] for p in parts) == whole
    day = [
        "stars:50 created:<2015-01-01",
        "stars:50 created:2015-01-01..2019-12-31",
        "stars:50 created:>=2020-01-01",
    ]
    at_50 = _search(http, big_sim, q="stars:50", per_page=1).json()["total_count"]
    assert sum(_search(http, big_sim, q=p, per_page=1).json()["total_count"] for p in day) == at_50 > 0


def test_results_match_the_qualifiers(big_sim: SimulatorServer, http: requests.Session) -> None:
    items = _search(http, big_sim, q="stars:100..500 language:python created:>=2018-01-01",
                    sort="stars", order="asc", per_page=100).json()["items"]
    assert items
    stars = [i["stargazers_count"] for i in items]
    assert stars == sorted(stars) and stars[0] >= 100 and stars[-1] <= 500
    assert {i["language"] for i in items} == {"Python"}
    assert all(i["created_at"] >= "2018-01-01" for i in items)
    expected = big_sim.expected("stars:100..500 language:python created:>=2018-01-01")
    assert _search(http, big_sim, q="stars:100..500 language:python created:>=2018-01-01",
                   per_page=1).json()["total_count"] == len(expected)


def test_forks_only_when_asked(big_sim: SimulatorServer, http: requests.Session) -> None:
    forks = [r for r in big_sim.store.repos if r.fork]
    assert forks
    plain = _search(http, big_sim, q="stars:>=0", per_page=1).json()["total_count"]
    with_forks = _search(http, big_sim, q="stars:>=0 fork:true", per_page=1).json()["total_count"]
    only = _search(http, big_sim, q="stars:>=0 fork:only", per_page=1).json()["total_count"]
    assert with_forks == plain + only == len(big_sim.store.repos) and only == len(forks)


def test_bad_queries_get_422(big_sim: SimulatorServer, http: requests.Session) -> None:
    missing = _search(http, big_sim, per_page=1)
    assert missing.status_code == 422 and missing.json()["errors"][0]["code"] == "missing"
    bad = _search(http, big_sim, q="stars:>lots")
    assert bad.status_code == 422 and "stars:>lots" in bad.json()["errors"][0]["message"]


def test_incomplete_results_carry_part_of_the_page(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(incomplete_rate=1.0, quota_search=1000)
    body = _search(http, sim, q="stars:>=50", per_page=30).json()
    assert body["incomplete_results"] is True and 0 < len(body["items"]) < 30
    sim.configure(incomplete_rate=0.0)
    body = _search(http, sim, q="stars:>=50", per_page=30).json()
    assert body["incomplete_results"] is False and len(body["items"]) == 30
    assert sim.stats.faults["incomplete"] == 1
