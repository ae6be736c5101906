"""The cap-splitting walk, pinned down against the in-process fake (unit: no server)."""

from __future__ import annotations

from collections import Counter

import pytest
import requests_mock

from data_collection.checkpoint import Checkpoint
from data_collection.client import GitHubClient
from data_collection.search import SEARCH_CAP, SearchWalk
from tests.data_collection.fake_github import FakeGitHub, population


def walk(settings, journal, fake, **kw):
    with requests_mock.Mocker() as m:
        fake.install(m)
        client = GitHubClient(settings)
        w = SearchWalk(client, journal, **kw)
        rows = w.run()
    return w, rows, client


def test_every_repository_exactly_once_across_the_cap(settings, journal):
    fake = FakeGitHub(population(3500, min_stars=10))
    w, rows, client = walk(settings, journal, fake, min_stars=10)
    assert len(rows) == 3500 > SEARCH_CAP
    assert {r["id"] for r in rows} == {r.id for r in fake.repos}
    assert all(s["rows"] <= SEARCH_CAP for s in w.slices_meta())
    assert all(s["expected"] in (None, s["rows"]) for s in w.slices_meta())
    # Walking the sorted answer wastes nothing: about one page per 100 repositories (plus boundary overlap).
    assert client.calls["search"] <= 3500 / 100 * 1.6


def test_star_value_over_the_cap_is_split_by_created_date(settings, journal):
    fake = FakeGitHub(population(3000, tie_value=12, ties=1500, min_stars=10))
    w, rows, _ = walk(settings, journal, fake, min_stars=10)
    assert Counter(r["stargazers_count"] for r in rows)[12] == 1500
    assert len({r["id"] for r in rows}) == len(rows) == 3000
    assert any("created:" in s["query"] for s in w.slices_meta())


def test_max_repos_keeps_the_top_n_and_stops_early(settings, journal):
    fake = FakeGitHub(population(5000, min_stars=10))
    _, rows, client = walk(settings, journal, fake, min_stars=10, max_repos=1200)
    expected = sorted(fake.repos, key=lambda r: (-r.stars, r.id))[:1200]
    assert [r["id"] for r in rows] == [r.id for r in expected]
    assert client.calls["search"] < 30  # did not read all 5000


def test_journal_replays_without_new_calls(settings, tmp_path):
    fake = FakeGitHub(population(2500, min_stars=10))
    j1 = Checkpoint(tmp_path / "j.sqlite", {"p": 1}, resume=False)
    _, first, c1 = walk(settings, j1, fake, min_stars=10)
    j1.close()
    j2 = Checkpoint(tmp_path / "j.sqlite", {"p": 1}, resume=True)
    _, again, c2 = walk(settings, j2, fake, min_stars=10)
    j2.close()
    assert c1.calls["search"] > 0 and c2.calls["search"] == 0
    assert again == first


def test_extra_qualifiers_are_part_of_every_query(settings, journal):
    fake = FakeGitHub(population(50, min_stars=10))
    w, rows, _ = walk(settings, journal, fake, min_stars=10, query_extra="  language:python ")
    assert w.base_query == "stars:>=10 language:python"
    assert all(s["query"].endswith("language:python") for s in w.slices_meta())
    assert len(rows) == 50


@pytest.mark.parametrize("min_stars", [10, 5000])
def test_small_results_are_one_slice(settings, journal, min_stars):
    fake = FakeGitHub(population(300, min_stars=10))
    w, rows, _ = walk(settings, journal, fake, min_stars=min_stars)
    assert len(w.slices) == 1
    assert len(rows) == sum(1 for r in fake.repos if r.stars >= min_stars)
