"""data_collection against the project's GitHub simulator over real HTTP (loopback): the collector, and the
``collect`` command line run as a real process (its progress bar, its errors, what it leaves behind).

Every test starts its own simulator on a free port and stops it at teardown. Ground truth comes from the
simulator itself (`sim.expected(q)`, `sim.truth(name)`, `sim.stats`), not from our own code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from data_collection.checkpoint import checkpoint_path
from data_collection.client import GitHubClient, GitHubError
from data_collection.collector import CollectOptions, collect
from data_collection.dataset import DatasetError, read_dataset
from data_collection.schema import DATASET_COLUMNS, ENRICHMENT_COLUMNS
from data_collection.settings import Settings
from data_collection.simulator import SimulatorServer
from tests.support import REPO_ROOT, wait_until

pytestmark = pytest.mark.integration

TOKENS = ("tok-alpha-8f2c91", "tok-bravo-77d0e4", "tok-charlie-1b9a55")
FAST = {"max_tries": 4, "backoff_base": 0.01, "backoff_max": 0.05, "secondary_wait": 0.2}


@pytest.fixture
def simulator():
    started: list[SimulatorServer] = []

    def start(**config) -> SimulatorServer:
        config.setdefault("tokens", TOKENS)
        config.setdefault("quota_search", 100_000)
        config.setdefault("quota_core", 100_000)
        sim = SimulatorServer(**config).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def settings_for(sim: SimulatorServer, tokens=TOKENS, **changes) -> Settings:
    return Settings(api_url=sim.url, tokens=tuple(tokens), **{**FAST, **changes})


def run(sim, out: Path, tokens=TOKENS, settings: Settings | None = None, **options) -> dict:
    options.setdefault("min_stars", 50)
    options.setdefault("show_progress", False)
    return collect(CollectOptions(out=out, **options), settings or settings_for(sim, tokens))


def check_enrichment(sim, frame: pd.DataFrame) -> None:
    """Every enrichment value equals the simulator's truth; None only where GitHub refuses."""
    for row in frame.itertuples(index=False):
        truth = sim.truth(row.full_name)
        for column in ENRICHMENT_COLUMNS:
            got = getattr(row, column)
            got = None if pd.isna(got) else int(got)
            too_large = truth["commits_count"] >= sim.config.contributors_too_large_commits
            if column == "contributors_count" and too_large:
                assert got is None, (row.full_name, column)  # 403 "too large": unknown, not a sentinel
            else:
                assert got == truth[column], (row.full_name, column, got, truth[column])


def names(frame: pd.DataFrame) -> list[str]:
    return list(frame["full_name"])


# -- coverage past the cap ---------------------------------------------------------------------------------
def test_collects_every_repository_past_the_cap_with_date_splits(simulator, tmp_path):
    # A steep star distribution puts >1000 repositories on one star value (50): it needs created-date
    # slices; the top needs star slices. 6,000 repositories, search only.
    sim = simulator(repos=6000, seed=3, star_alpha=10.0)
    expected = sim.expected("stars:>=50")
    assert len(expected) >= 5000
    meta = run(sim, tmp_path / "repos.csv", enrich=False)
    frame = read_dataset(tmp_path / "repos.csv")
    assert list(frame.columns) == list(DATASET_COLUMNS)
    assert sorted(names(frame)) == sorted(r.full_name for r in expected)  # complete, nothing extra
    assert frame["full_name"].is_unique and frame["id"].is_unique
    truth = {r.full_name: r for r in expected}
    assert all(truth[n].stargazers_count == s for n, s in zip(frame.full_name, frame.stargazers_count,
                                                               strict=True))
    assert all(s["rows"] <= 1000 for s in meta["slices"])
    assert any("created:" in s["query"] for s in meta["slices"])
    assert frame[list(ENRICHMENT_COLUMNS)].isna().all().all()  # --no-enrich: empty, not sentinels
    assert meta["api_calls"]["search"] == sim.stats.calls("search")  # our count is the server's count
    assert meta["rows"] == len(frame) and meta["query"] == "stars:>=50"


def test_incomplete_results_are_asked_again_until_complete(simulator, tmp_path):
    sim = simulator(repos=2500, seed=21, incomplete_rate=0.3)
    run(sim, tmp_path / "repos.csv", enrich=False)
    frame = read_dataset(tmp_path / "repos.csv")
    assert sorted(names(frame)) == sorted(r.full_name for r in sim.expected("stars:>=50"))
    assert sim.stats.faults["incomplete"] >= 3


def test_max_repos_is_the_top_n_by_stars_then_id(simulator, tmp_path):
    sim = simulator(repos=2000, seed=5)
    run(sim, tmp_path / "a.csv", enrich=False, max_repos=1200)
    run(sim, tmp_path / "b.csv", enrich=False, max_repos=1200)
    a, b = read_dataset(tmp_path / "a.csv"), read_dataset(tmp_path / "b.csv")
    top = sorted(sim.expected("stars:>=50"), key=lambda r: (-r.stargazers_count, r.id))[:1200]
    assert names(a) == names(b) == [r.full_name for r in top]


# -- enrichment -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("graphql", [True, False])
def test_enrichment_matches_the_truth_in_one_request_per_value(simulator, tmp_path, graphql):
    sim = simulator(repos=250, seed=11, contributors_too_large_commits=3000, graphql=graphql)
    meta = run(sim, tmp_path / "repos.csv", workers=4)
    frame = read_dataset(tmp_path / "repos.csv")
    check_enrichment(sim, frame)
    assert frame["contributors_count"].isna().any()  # some refused as "too large", left empty
    stats = sim.stats
    n = len(frame)
    assert stats.calls("contributors") == n  # no GraphQL field for it: one REST request each, never paging
    owners = frame.drop_duplicates("owner_login")
    if graphql:
        assert stats.calls("graphql") == -(-n // 50)  # 50 repositories per query
        assert stats.calls("repo") == stats.calls("commits") == stats.calls("releases") == 0
        # users' followers come with the batches; organizations have none in GraphQL: REST, once each
        assert stats.calls("user") == (owners["owner_type"] == "Organization").sum()
        assert sum(meta["api_calls"].values()) / n < 1.5
    else:
        for endpoint in ("repo", "commits", "releases"):
            assert stats.calls(endpoint) == n
        assert stats.calls("user") == len(owners)  # one per owner
    assert sum(meta["api_calls"].values()) == stats.requests - stats.calls("rate_limit")


# -- rate limits and faults -------------------------------------------------------------------------------
def test_rotation_when_one_token_is_exhausted(simulator, tmp_path):
    sim = simulator(repos=120, seed=2)
    sim.exhaust(TOKENS[0], "core")
    started = time.monotonic()
    run(sim, tmp_path / "repos.csv", workers=3)
    check_enrichment(sim, read_dataset(tmp_path / "repos.csv"))
    stats = sim.stats
    assert stats.charged.get(TOKENS[0], {}).get("core", 0) == 0
    assert stats.charged[TOKENS[1]]["core"] > 30 and stats.charged[TOKENS[2]]["core"] > 30
    assert stats.faults.get("exhausted", 0) <= 3  # learned from the first refusal(s), then rotated
    assert time.monotonic() - started < 20  # no waiting for the exhausted token's reset


def test_all_tokens_exhausted_then_reset_in_scaled_time(simulator, tmp_path, caplog):
    sim = simulator(repos=60, seed=4, quota_core=20, reset_seconds=1.0)
    with caplog.at_level(logging.INFO, logger="data_collection"):
        run(sim, tmp_path / "repos.csv", tokens=TOKENS[:2], workers=2)
    frame = read_dataset(tmp_path / "repos.csv")
    check_enrichment(sim, frame)
    assert "all tokens spent for core: sleeping" in caplog.text
    # ~80 core requests through 2 x 20 per window: resets waited out, few refusals wasted
    assert sim.stats.charged_total("core") >= len(frame)
    assert sim.stats.faults.get("exhausted", 0) <= 6


def test_secondary_limit_is_honoured(simulator, tmp_path):
    sim = simulator(repos=80, seed=6, secondary_retry_after=1)
    sim.force_secondary(3)
    sim.configure(secondary_rate=0.02)
    # One worker: with several, requests already in flight on a token when it is paused reach GitHub inside
    # the pause, which nobody can prevent; what we check is that we never SEND on a paused token.
    run(sim, tmp_path / "repos.csv", workers=1)
    check_enrichment(sim, read_dataset(tmp_path / "repos.csv"))
    assert sim.stats.faults["secondary"] >= 3
    assert sim.stats.faults.get("secondary_violation", 0) == 0  # never asked again before Retry-After


def test_502_storm_is_survived_and_an_endless_one_is_a_clear_error(simulator, tmp_path):
    sim = simulator(repos=80, seed=8)
    sim.force_errors(3, status=502)
    sim.configure(error_rate_502=0.15, error_rate_503=0.05)
    # 8 tries for the storm: with 4, one request in ~600 meets four faults in a row (0.2^4) and a run of a few
    # hundred requests failed about one time in six (which faults land where depends on thread timing).
    run(sim, tmp_path / "repos.csv", workers=3, settings=settings_for(sim, TOKENS, max_tries=8))
    check_enrichment(sim, read_dataset(tmp_path / "repos.csv"))
    assert sim.stats.faults["502"] >= 3
    sim.configure(error_rate_502=1.0)
    with pytest.raises(GitHubError, match=r"failed after 4 tries: HTTP 502"):
        run(sim, tmp_path / "never.csv")
    assert not (tmp_path / "never.csv").exists()
    assert checkpoint_path(tmp_path / "never.csv").exists()  # nothing lost: resumable


def test_revoked_token_is_dropped_by_position_never_by_value(simulator, tmp_path, caplog):
    sim = simulator(repos=60, seed=9)
    sim.revoke(TOKENS[1])
    with caplog.at_level(logging.DEBUG):
        run(sim, tmp_path / "repos.csv", workers=2)
    check_enrichment(sim, read_dataset(tmp_path / "repos.csv"))
    assert "token#2" in caplog.text and "401" in caplog.text
    # dropped at its first refusal: at most one 401 per worker (requests already in flight on it)
    assert 1 <= sim.stats.by_status.get(401, 0) <= 2
    everything = caplog.text + "".join(p.read_text(errors="replace") for p in tmp_path.iterdir())
    assert not any(t in everything for t in TOKENS)


def test_etag_304_costs_no_quota(simulator):
    sim = simulator(repos=20, seed=1)
    client = GitHubClient(settings_for(sim, TOKENS[:1]))
    name = sim.store.repos[0].full_name
    first = client.get(f"/repos/{name}")
    charged = sim.stats.charged_total("core")
    second = client.get(f"/repos/{name}")
    assert second.from_cache and second.data == first.data
    assert sim.stats.not_modified == 1 and sim.stats.charged_total("core") == charged
    assert int(second.headers["x-ratelimit-remaining"]) == int(first.headers["x-ratelimit-remaining"])
    assert client.calls["core"] == 1 and client.not_modified == 1
    client.close()


# -- resumability ------------------------------------------------------------------------------------------
def cli(sim, out: Path, *extra: str, tokens=TOKENS, progress: bool = False) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update({"GITHUB_API_URL": sim.url, "GITHUB_TOKENS": ",".join(tokens), "GITHUB_MAX_TRIES": "4",
                "GITHUB_BACKOFF_BASE": "0.01", "GITHUB_BACKOFF_MAX": "0.05", "PYTHONPATH": str(REPO_ROOT)})
    return subprocess.Popen([sys.executable, "-m", "data_collection", "collect", "--min-stars", "50",
                             "--out", str(out), "--progress" if progress else "--no-progress", *extra],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def journal_progress(path: Path) -> tuple[int, int]:
    """(search pages, enrichment values) journaled so far, read while the collector writes."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            pages = db.execute("SELECT COUNT(*) FROM search_pages").fetchone()[0]
            values = db.execute("SELECT COUNT(*) FROM enrichment").fetchone()[0]
        return pages, values
    except sqlite3.Error:
        return 0, 0


@pytest.mark.parametrize("phase, threshold, repos, max_repos, enrich", [
    ("search", 4, 1500, 1300, False),  # killed between search pages
    ("enrich", 400, 600, 300, True),   # killed among enrichment workers
])
def test_resume_after_kill_9_gives_the_same_dataset(simulator, tmp_path, phase, threshold, repos, max_repos,
                                                    enrich):
    sim = simulator(repos=repos, seed=12)
    workers = 3
    reference = tmp_path / "reference.csv"
    ref_meta = run(sim, reference, workers=workers, max_repos=max_repos, enrich=enrich)
    reference_requests = sim.stats.requests
    sim.reset_stats()

    out = tmp_path / "killed.csv"
    args = ["--workers", str(workers), "--max-repos", str(max_repos), *([] if enrich else ["--no-enrich"])]
    proc = cli(sim, out, *args)
    journal = checkpoint_path(out)

    def far_enough_or_finished() -> bool:
        pages, values = journal_progress(journal)
        return proc.poll() is not None or (pages if phase == "search" else values) >= threshold

    wait_until(far_enough_or_finished, 60, f"{threshold} journaled {phase} steps", interval=0.005)
    assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.communicate()
    assert not out.exists()  # no partial dataset visible
    spent_before_kill = sim.stats.requests

    resumed = cli(sim, out, *args, "--resume")
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert "resuming from" in stderr
    a, b = read_dataset(reference), read_dataset(out)
    pd.testing.assert_frame_equal(a.drop(columns="collected_at"), b.drop(columns="collected_at"))
    assert b["full_name"].is_unique
    # Only what was in flight at the kill is asked twice.
    assert 0 < spent_before_kill < reference_requests
    assert sim.stats.requests <= reference_requests + workers
    assert not checkpoint_path(out).exists()  # done: the journal is removed
    assert ref_meta["rows"] == len(b)


# -- atomicity and secrecy ---------------------------------------------------------------------------------
def test_readers_never_see_a_partial_dataset(simulator, tmp_path):
    sim = simulator(repos=1500, seed=13)
    out = tmp_path / "repos.csv"
    run(sim, out, enrich=False, max_repos=300)
    seen_errors: list[str] = []
    reads = [0]
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                read_dataset(out)  # with its meta: the pair must be consistent too
                reads[0] += 1
            except DatasetError as exc:
                seen_errors.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(2):
            run(sim, out, enrich=False)  # 1,400+ rows replace 300, while being read
    finally:
        stop.set()
        thread.join()
    assert reads[0] > 0 and seen_errors == []
    assert len(read_dataset(out)) > 1400
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_cli_success_and_no_token_anywhere(simulator, tmp_path):
    sim = simulator(repos=120, seed=14)
    sim.revoke(TOKENS[0])
    sim.force_errors(2, status=502)
    out = tmp_path / "out" / "repos.csv"
    proc = cli(sim, out, "--workers", "2")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"{out}: " in stdout and "repositories" in stdout
    assert "token#1" in stderr  # the drop is reported, by position
    files = "".join(p.read_text(errors="replace") for p in out.parent.iterdir())
    assert not any(t in stdout + stderr + files for t in TOKENS)
    all_revoked = cli(sim, tmp_path / "other.csv", tokens=TOKENS[:1])
    stdout, stderr = all_revoked.communicate(timeout=120)
    assert all_revoked.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rejected" in errors[0] and TOKENS[0] not in stderr


# -- the command line's progress bar and failures -----------------------------------------------------------
def test_cli_progress_bar_shows_repositories_and_the_quota_of_each_token(simulator, tmp_path):
    tokens = TOKENS[:2]
    sim = simulator(repos=150, seed=31, tokens=tokens, graphql=False)
    proc = cli(sim, tmp_path / "repos.csv", "--workers", "2", tokens=tokens, progress=True)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    n = len(sim.expected("stars:>=50"))
    frames = re.split(r"[\r\n]", stderr)
    # tqdm's frames: "enrich: 100%|...| 150/150 [..., core quota token#1=99812 token#2=99811]"
    quota = re.compile(r"core quota token#1=(\d+) token#2=(\d+)")
    enrich = [f for f in frames if f.startswith("enrich") and quota.search(f)]
    assert enrich, stderr[-2000:]
    assert any(f"{n}/{n}" in f for f in enrich)
    left = [tuple(map(int, quota.search(f).groups())) for f in enrich]
    assert all(a < 100_000 and b < 100_000 for a, b in left[-1:])  # real counts from the headers, both tokens
    assert any(re.search(r"search quota token#1=(\d+|\?) token#2=(\d+|\?)", f) for f in frames)
    assert not any(t in stderr + stdout for t in TOKENS)
    # the sidecar carries every key of docs/contracts.md §1, and its sha256 is the CSV's
    meta = json.loads((tmp_path / "repos.csv.meta.json").read_text())
    assert {"schema_version", "query", "min_stars", "slices", "rows", "collected_started_at",
            "collected_finished_at", "api_calls", "sha256"} <= set(meta)
    assert meta["sha256"] == hashlib.sha256((tmp_path / "repos.csv").read_bytes()).hexdigest()
    assert meta["rows"] == n and meta["collected_started_at"] <= meta["collected_finished_at"]


def test_cli_progress_bar_says_when_every_token_is_spent_and_it_sleeps(simulator, tmp_path):
    tokens = TOKENS[:2]
    sim = simulator(repos=40, seed=32, tokens=tokens, quota_core=40, quota_search=1000, reset_seconds=1.0,
                    graphql=False)
    proc = cli(sim, tmp_path / "repos.csv", "--workers", "2", tokens=tokens, progress=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    frames = re.split(r"[\r\n]", stderr)
    # on the bar itself (its description), not only in the log
    sleeping = [f for f in frames if f.startswith("all tokens spent for core: sleeping") and "|" in f]
    assert sleeping, stderr[-2000:]


def test_cli_fatal_error_leaves_a_journal_for_resume_and_one_line_without_tokens(simulator, tmp_path):
    sim = simulator(repos=150, seed=31, graphql=False)
    sim.configure(error_rate_502=1.0)
    out = tmp_path / "repos.csv"
    proc = cli(sim, out)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed after 4 tries: HTTP 502" in errors[0], stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    journal = checkpoint_path(out)
    assert journal.exists()  # kept for --resume
    left_behind = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert not any(t.encode() in left_behind for t in TOKENS)
    assert not any(t in stderr + stdout for t in TOKENS)
