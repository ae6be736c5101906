"""Enrichment counts each value in one request, journals it, and handles GitHub's refusals."""

from __future__ import annotations

import pytest
import requests_mock

from data_collection.checkpoint import Checkpoint
from data_collection.client import ApiResponse, GitHubClient
from data_collection.enrich import REPO_FIELDS, Enricher, count_from
from data_collection.normalize import normalize_item
from data_collection.search import SearchWalk
from data_collection.settings import Settings
from data_collection.simulator import SimulatorServer
from tests.data_collection.fake_github import FakeGitHub, population


def test_count_from_answers():
    assert count_from(ApiResponse(204, None, {})) == 0
    assert count_from(ApiResponse(409, {"message": "Git Repository is empty."}, {})) == 0
    assert count_from(ApiResponse(403, {"message": "too large"}, {})) is None
    assert count_from(ApiResponse(200, [], {})) == 0
    assert count_from(ApiResponse(200, [{}], {})) == 1
    assert count_from(ApiResponse(200, [{}], {}, {"last": "https://x/y?per_page=1&page=77"})) == 77


def test_enrichment_uses_one_request_per_value_and_one_per_owner(settings, journal):
    repos = population(40)
    fake = FakeGitHub(repos)
    rows = [normalize_item(r.item(), "2024-01-01T00:00:00Z") for r in repos]
    with requests_mock.Mocker() as m:
        fake.install(m)
        Enricher(GitHubClient(settings), journal, workers=4).run(rows)
    owners = {r.owner for r in repos}
    assert fake.calls.count("/graphql") == 1  # asked once, 404: REST only from then on
    assert len(fake.calls) == 1 + 4 * len(repos) + len(owners)
    by_name = {r.full_name: r for r in repos}
    for row in rows:
        repo = by_name[row["full_name"]]
        assert row["contributors_count"] == repo.contributors
        assert row["commits_count"] == repo.commits  # 0 via the 409 of an empty repository
        assert row["releases_count"] == repo.releases
        assert row["subscribers_count"] == repo.stars // 20
        assert row["owner_followers"] == 7
    # Everything is journaled: a second run asks nothing.
    fake.calls.clear()
    with requests_mock.Mocker() as m:
        fake.install(m)
        Enricher(GitHubClient(settings), journal, workers=2).run(rows)
    assert fake.calls == []


def test_refused_contributor_list_is_empty_not_a_sentinel(settings, journal):
    repo = population(1)[0]
    row = normalize_item(repo.item(), "2024-01-01T00:00:00Z")
    with requests_mock.Mocker() as m:
        FakeGitHub([repo]).install(m)
        m.get(f"https://api.example.test/repos/{repo.full_name}/contributors", status_code=403,
              json={"message": "The history or contributor list is too large to list contributors"})
        Enricher(GitHubClient(settings), journal, workers=1).run([row])
    assert row["contributors_count"] is None and row["commits_count"] == repo.commits


def test_graphql_batches_cut_calls_to_about_one_per_repository(settings, journal):
    repos = population(120)
    fake = FakeGitHub(repos, graphql=True)
    rows = [normalize_item(r.item(), "2024-01-01T00:00:00Z") for r in repos]
    with requests_mock.Mocker() as m:
        fake.install(m)
        Enricher(GitHubClient(settings), journal, workers=3).run(rows)
    assert fake.calls.count("/graphql") == 3  # 120 / 50 per query
    assert len(fake.calls) == 3 + len(repos)  # + contributors; user followers came with the batches
    by_name = {r.full_name: r for r in repos}
    for row in rows:
        repo = by_name[row["full_name"]]
        assert (row["subscribers_count"], row["commits_count"], row["releases_count"],
                row["contributors_count"], row["owner_followers"]) == (
                repo.stars // 20, repo.commits, repo.releases, repo.contributors, 7)


@pytest.mark.integration
def test_progress_counts_a_repository_only_when_all_its_values_are_in(tmp_path):
    """Owner lookups are jobs too: counting jobs instead of repositories would put the bar ahead of the
    work."""
    tokens = ("tok-enrich-k1-5e1f0a", "tok-enrich-k2-9c3b7d")
    journal = Checkpoint(tmp_path / "j.sqlite", {"t": 1}, resume=False)
    with SimulatorServer(repos=150, seed=31, tokens=tokens, quota_core=100_000, quota_search=100_000,
                         graphql=False) as sim:
        client = GitHubClient(Settings(api_url=sim.url, tokens=tokens, max_tries=3, backoff_base=0.01,
                                       backoff_max=0.05, secondary_wait=0.2))
        try:
            rows = SearchWalk(client, journal, min_stars=50).run()
            owners = {r["owner_login"] for r in rows}
            assert len(owners) > 20  # owner lookups are a real share of the jobs

            seen: list[tuple[int, int]] = []

            def progress(value: int) -> None:
                complete = sum(1 for fields in journal.enrichment().values()
                               if len(fields) == len(REPO_FIELDS))
                seen.append((value, complete))

            Enricher(client, journal, workers=3, progress=progress).run(rows)
        finally:
            client.close()
            journal.close()
    assert seen and seen[-1][0] == len(rows)
    overstated = [(value, complete) for value, complete in seen if value > complete]
    assert overstated == [], f"bar ahead of the work: {overstated[:5]}"
