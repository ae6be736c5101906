"""Issue #2 bullets that the other files did not prove end to end (found in review), against the simulator.

- the progress bar counts a repository only when ALL its enrichment values are in (owner lookups are jobs
  too, and used to advance the bar: it showed 88 % done at 36 % of the requests);
- the CLI's progress bar, in a real process, shows repositories done and the remaining quota of EACH token,
  by position;
- after a fatal error the journal left behind for --resume, and the error line, hold no token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data_collection.checkpoint import Checkpoint, checkpoint_path
from data_collection.client import GitHubClient
from data_collection.enrich import REPO_FIELDS, Enricher
from data_collection.search import SearchWalk
from data_collection.settings import Settings
from data_collection.simulator import SimulatorServer
from tests.support import REPO_ROOT

pytestmark = pytest.mark.integration

TOKENS = ("tok-issue2-k1-5e1f0a", "tok-issue2-k2-9c3b7d")


@pytest.fixture
def sim():
    server = SimulatorServer(repos=150, seed=31, tokens=TOKENS, quota_core=100_000, quota_search=100_000,
                             graphql=False).start()
    yield server
    server.stop()


def settings_for(server: SimulatorServer) -> Settings:
    return Settings(api_url=server.url, tokens=TOKENS, max_tries=3, backoff_base=0.01, backoff_max=0.05,
                    secondary_wait=0.2)


def test_progress_counts_only_fully_enriched_repositories(sim, tmp_path):
    journal = Checkpoint(tmp_path / "j.sqlite", {"t": 1}, resume=False)
    client = GitHubClient(settings_for(sim))
    try:
        rows = SearchWalk(client, journal, min_stars=50).run()
        owners = {r["owner_login"] for r in rows}
        assert len(owners) > 20  # owner lookups are a real share of the jobs

        seen: list[tuple[int, int]] = []

        def progress(value: int) -> None:
            complete = sum(1 for fields in journal.enrichment().values() if len(fields) == len(REPO_FIELDS))
            seen.append((value, complete))

        Enricher(client, journal, workers=3, progress=progress).run(rows)
    finally:
        client.close()
        journal.close()
    assert seen and seen[-1][0] == len(rows)
    overstated = [(value, complete) for value, complete in seen if value > complete]
    assert overstated == [], f"bar ahead of the work: {overstated[:5]}"


def cli(server: SimulatorServer, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update({"GITHUB_API_URL": server.url, "GITHUB_TOKENS": ",".join(TOKENS), "GITHUB_MAX_TRIES": "3",
                "GITHUB_BACKOFF_BASE": "0.01", "GITHUB_BACKOFF_MAX": "0.05", "PYTHONPATH": str(REPO_ROOT)})
    return subprocess.run([sys.executable, "-m", "data_collection", "collect", "--min-stars", "50",
                           "--out", str(out), *extra], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_progress_bar_shows_repositories_and_quota_per_token(sim, tmp_path):
    result = cli(sim, tmp_path / "repos.csv", "--workers", "2", "--progress")
    assert result.returncode == 0, result.stderr[-2000:]
    n = len(sim.expected("stars:>=50"))
    frames = re.split(r"[\r\n]", result.stderr)
    # tqdm's frames: "enrich: 100%|...| 150/150 [..., core quota token#1=99812 token#2=99811]"
    quota = re.compile(r"core quota token#1=(\d+) token#2=(\d+)")
    enrich = [f for f in frames if f.startswith("enrich") and quota.search(f)]
    assert enrich, result.stderr[-2000:]
    assert any(f"{n}/{n}" in f for f in enrich)
    left = [tuple(map(int, quota.search(f).groups())) for f in enrich]
    assert all(a < 100_000 and b < 100_000 for a, b in left[-1:])  # real counts from the headers, both tokens
    assert any(re.search(r"search quota token#1=(\d+|\?) token#2=(\d+|\?)", f) for f in frames)
    assert not any(t in result.stderr + result.stdout for t in TOKENS)
    # the sidecar carries every key of docs/contracts.md §1, and its sha256 is the CSV's
    meta = json.loads((tmp_path / "repos.csv.meta.json").read_text())
    assert {"schema_version", "query", "min_stars", "slices", "rows", "collected_started_at",
            "collected_finished_at", "api_calls", "sha256"} <= set(meta)
    assert meta["sha256"] == hashlib.sha256((tmp_path / "repos.csv").read_bytes()).hexdigest()
    assert meta["rows"] == n and meta["collected_started_at"] <= meta["collected_finished_at"]


def test_cli_bar_says_when_every_token_is_spent_and_it_sleeps(tmp_path):
    server = SimulatorServer(repos=40, seed=32, tokens=TOKENS, quota_core=40, quota_search=1000,
                             reset_seconds=1.0, graphql=False).start()
    try:
        result = cli(server, tmp_path / "repos.csv", "--workers", "2", "--progress")
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    frames = re.split(r"[\r\n]", result.stderr)
    # on the bar itself (its description), not only in the log
    assert any(f.startswith("all tokens spent for core: sleeping") and "|" in f for f in frames), \
        result.stderr[-2000:]


def test_fatal_error_leaves_a_journal_and_a_line_without_tokens(sim, tmp_path):
    sim.configure(error_rate_502=1.0)
    out = tmp_path / "repos.csv"
    result = cli(sim, out, "--no-progress")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed after 3 tries: HTTP 502" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    journal = checkpoint_path(out)
    assert journal.exists()  # kept for --resume
    left_behind = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert not any(t.encode() in left_behind for t in TOKENS)
    assert not any(t in result.stderr + result.stdout for t in TOKENS)
