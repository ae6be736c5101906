"""Collection benchmark: stargazer's collector next to the naive method, on the simulator (10,000
repositories, 3 tokens), in API calls per fully enriched repository, coverage and wall time.

    .venv/bin/python -m bench.collect [--repos 10000] [--seed 7] [--workers 4] [--naive-sample 200]

- stargazer: `stars:>=50` cut into star/date slices under the 1000 cap, then enrichment (GraphQL batches of
  50 for subscribers/commits/releases/user followers, one REST request per repository for contributors, one
  per organization owner). Measured twice: with GraphQL (the default) and REST only (`--no-graphql`: four
  one-request counts per repository, one request per owner).
- naive: the search pages a single query can give (10 pages of 100: the 1000 cap), then for each repository
  `GET /repos/{r}`, every page of its contributors, commits and releases with per_page=100, and its owner.
  The naive enrichment runs on an evenly spaced sample of the 1000 reachable repositories (default 200) and
  is extrapolated to the 1000 (calls and time scale linearly with repositories); it says so in the results.

The simulator runs in its own process (its own interpreter lock) with quotas large enough never to bind, so
wall times measure the machinery. What the quotas would cost on the real API is computed from the call counts:
3 tokens x (5,000 core requests/hour, 30 searches/minute, 5,000 GraphQL points/hour).

Results: bench/results/collect.json and bench/results/collect.md.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]

from bench import provenance  # noqa: E402
from data_collection.client import GitHubClient  # noqa: E402
from data_collection.collector import CollectOptions, collect  # noqa: E402
from data_collection.dataset import read_dataset  # noqa: E402
from data_collection.schema import ENRICHMENT_COLUMNS  # noqa: E402
from data_collection.settings import Settings  # noqa: E402
from data_collection.simulator import SimulatorServer  # noqa: E402
from envsettings import child_environment  # noqa: E402

TOKENS = ("bench-token-1", "bench-token-2", "bench-token-3")
#: Real GitHub quotas per token: core requests/hour, searches/minute, GraphQL points/hour.
REAL = {"core": 5000 / 3600, "search": 30 / 60, "graphql": 5000 / 3600}


def start_simulator(repos: int, seed: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "data_collection.simulator",
            "--port",
            "0",
            "--repos",
            str(repos),
            "--seed",
            str(seed),
            "--tokens",
            ",".join(TOKENS),
            "--quota-core",
            "100000000",
            "--quota-search",
            "100000000",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_environment({"PYTHONPATH": str(REPO_ROOT)}),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise SystemExit("bench: the simulator did not start")
    return proc, json.loads(line)["url"]


def mismatches(truth_sim: SimulatorServer, frame: pd.DataFrame) -> int:
    """Enrichment values differing from the simulator's truth (a 403 'too large' must be empty)."""
    bad = 0
    limit = truth_sim.config.contributors_too_large_commits
    for row in frame.itertuples(index=False):
        truth = truth_sim.truth(row.full_name)
        for column in ENRICHMENT_COLUMNS:
            got = getattr(row, column)
            got = None if pd.isna(got) else int(got)
            refused = column == "contributors_count" and truth["commits_count"] >= limit
            want = None if refused else truth[column]
            bad += got != want
    return bad


def real_hours(calls: dict[str, int], tokens: int = 3) -> float:
    """Hours the quotas alone would take on api.github.com (each resource is metered separately)."""
    return max(calls.get(r, 0) / (rate * tokens) for r, rate in REAL.items()) / 3600


def run_stargazer(
    url: str, workers: int, graphql: bool, truth_sim: SimulatorServer, expected: int, tmp: Path
) -> dict[str, Any]:
    out = tmp / f"repos-{'graphql' if graphql else 'rest'}.csv"
    settings = Settings(api_url=url, tokens=TOKENS)
    started = time.perf_counter()
    meta = collect(
        CollectOptions(
            out=out, min_stars=50, workers=workers, graphql=None if graphql else False, show_progress=None
        ),
        settings,
    )
    wall = time.perf_counter() - started
    frame = read_dataset(out)
    calls = meta["api_calls"]
    total = sum(calls.values())
    return {
        "rows": len(frame),
        "coverage": len(frame) / expected,
        "slices": len(meta["slices"]),
        "api_calls": calls,
        "calls_total": total,
        "calls_per_repo": total / len(frame),
        "wall_seconds": round(wall, 2),
        "repos_per_second": round(len(frame) / wall, 1),
        "enrichment_mismatches": mismatches(truth_sim, frame),
        "real_github_hours_3_tokens": round(real_hours(calls), 3),
    }


def naive_enrich(client: GitHubClient, full_name: str, owner: str) -> None:
    client.get(f"/repos/{full_name}")
    for path, params in (("contributors", {"anon": "true"}), ("commits", {}), ("releases", {})):
        page = 1
        while True:
            resp = client.get(
                f"/repos/{full_name}/{path}",
                {**params, "per_page": 100, "page": page},
                accept=(403, 404, 409),
            )
            if resp.status != 200 or "next" not in resp.links:
                break
            page += 1
    client.get(f"/users/{owner}", accept=(404,))


def run_naive(url: str, workers: int, sample: int, expected: int) -> dict[str, Any]:
    client = GitHubClient(Settings(api_url=url, tokens=TOKENS), pool_size=workers + 2)
    started = time.perf_counter()
    items: list[dict[str, Any]] = []
    for page in range(1, 11):  # the cap: page 11 of 100 is a 422
        data = client.get(
            "/search/repositories",
            {"q": "stars:>=50", "sort": "stars", "order": "desc", "per_page": 100, "page": page},
        ).data
        items.extend(data["items"])
    search_wall = time.perf_counter() - started
    search_calls = client.calls["search"]
    step = max(1, len(items) // sample)
    chosen = items[::step][:sample]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda it: naive_enrich(client, it["full_name"], it["owner"]["login"]), chosen))
    sample_wall = time.perf_counter() - started
    sample_calls = client.calls["core"]
    per_repo = sample_calls / len(chosen)
    reachable = len({it["id"] for it in items})
    scale = reachable / len(chosen)
    calls = {"search": search_calls, "core": round(sample_calls * scale)}
    total = calls["search"] + calls["core"]
    client.close()
    return {
        "reachable_rows": reachable,
        "coverage": reachable / expected,
        "sample": len(chosen),
        "sample_core_calls": sample_calls,
        "sample_wall_seconds": round(sample_wall, 2),
        "core_calls_per_repo_in_sample": round(per_repo, 2),
        "extrapolated_to": reachable,
        "api_calls_extrapolated": calls,
        "calls_total_extrapolated": total,
        "calls_per_repo": total / reachable,
        "wall_seconds_extrapolated": round(search_wall + sample_wall * scale, 2),
        "real_github_hours_3_tokens_extrapolated": round(real_hours(calls), 3),
        "note": f"enrichment measured on {len(chosen)} evenly spaced repositories of the {reachable} "
        "reachable, extrapolated linearly; the repositories beyond the cap cannot be reached at all",
    }


def markdown(result: dict[str, Any]) -> str:
    s, r, n = result["stargazer_graphql"], result["stargazer_rest_only"], result["naive"]
    result.setdefault("ratio_wall_per_repo", (n["wall_seconds_extrapolated"] / n["reachable_rows"])
                      / (s["wall_seconds"] / s["rows"]))
    rows = [
        ("repositories collected", f"{s['rows']:,}", f"{r['rows']:,}", f"{n['reachable_rows']:,}"),
        ("coverage of `stars:>=50`", f"{s['coverage']:.1%}", f"{r['coverage']:.1%}", f"{n['coverage']:.1%}"),
        (
            "API calls per fully enriched repository",
            f"{s['calls_per_repo']:.2f}",
            f"{r['calls_per_repo']:.2f}",
            f"{n['calls_per_repo']:.2f} (sample of {n['sample']})",
        ),
        (
            "API calls by resource",
            json.dumps(s["api_calls"]),
            json.dumps(r["api_calls"]),
            json.dumps(n["api_calls_extrapolated"]) + " (extrapolated)",
        ),
        (
            "wall time, simulator (s)",
            f"{s['wall_seconds']}",
            f"{r['wall_seconds']}",
            f"{n['wall_seconds_extrapolated']} (extrapolated)",
        ),
        (
            "repositories per second",
            f"{s['repos_per_second']}",
            f"{r['repos_per_second']}",
            f"{n['reachable_rows'] / max(n['wall_seconds_extrapolated'], 1e-9):.1f}",
        ),
        (
            "wall time per enriched repository (ms)",
            f"{1000 * s['wall_seconds'] / s['rows']:.1f}",
            f"{1000 * r['wall_seconds'] / r['rows']:.1f}",
            f"{1000 * n['wall_seconds_extrapolated'] / n['reachable_rows']:.1f} (extrapolated)",
        ),
        (
            "quota time on api.github.com, 3 tokens (h)",
            f"{s['real_github_hours_3_tokens']}",
            f"{r['real_github_hours_3_tokens']}",
            f"{n['real_github_hours_3_tokens_extrapolated']}",
        ),
        (
            "enrichment values differing from the truth",
            f"{s['enrichment_mismatches']}",
            f"{r['enrichment_mismatches']}",
            "not checked",
        ),
    ]
    t = result["targets"]
    lines = [
        "# Collection benchmark",
        "",
        f"Simulator: {result['setup']['repos']:,} repositories (seed {result['setup']['seed']}), "
        f"{result['setup']['tokens']} tokens, {result['setup']['workers']} enrichment workers; "
        f"{result['expected_repositories']:,} match `stars:>=50` (forks excluded, as on GitHub). "
        f"Machine: {result['setup']['cpus']} CPUs, load average {result['setup']['load_average']} "
        "at the start.",
        "",
        "| | stargazer (GraphQL batches) | stargazer (REST only) | naive |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "- Ratio naive / stargazer, calls per enriched repository: "
        f"**{result['ratio_calls_per_repo']:.1f}x** (REST only: {result['ratio_calls_per_repo_rest']:.1f}x); "
        "wall time per enriched repository: "
        f"**{result['ratio_wall_per_repo']:.0f}x**.",
        "- Targets: coverage 100% where naive stops at 1000: "
        f"**{'met' if t['coverage_100'] else 'MISSED'}**; "
        f"<= 4 calls per fully enriched repository: **{'met' if t['calls_le_4'] else 'MISSED'}** "
        f"({s['calls_per_repo']:.2f}; REST only {r['calls_per_repo']:.2f}).",
        f"- {n['note']}.",
        "- Wall times are on the local simulator with quotas that never bind; the quota-time row is what "
        "GitHub's limits alone would impose (the binding resource per method).",
        "",
        f"Measured {result['measured_at']}.",
    ]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--repos", type=click.IntRange(100), default=10_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--workers", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option("--naive-sample", type=click.IntRange(10), default=200, show_default=True)
def main(repos: int, seed: int, workers: int, naive_sample: int) -> None:
    truth_sim = SimulatorServer(repos=repos, seed=seed, tokens=TOKENS)  # never started: ground truth only
    expected = len(truth_sim.expected("stars:>=50"))
    proc, url = start_simulator(repos, seed)
    started = provenance.capture()
    load = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
            click.echo(f"== stargazer, GraphQL batches ({expected:,} repositories expected)", err=True)
            smart = run_stargazer(url, workers, True, truth_sim, expected, Path(tmp))
            click.echo(f"   {smart['calls_per_repo']:.2f} calls/repo, {smart['wall_seconds']} s", err=True)
            click.echo("== stargazer, REST only", err=True)
            rest = run_stargazer(url, workers, False, truth_sim, expected, Path(tmp))
            click.echo(f"   {rest['calls_per_repo']:.2f} calls/repo, {rest['wall_seconds']} s", err=True)
        click.echo(f"== naive: search to the cap, then paging on a sample of {naive_sample}", err=True)
        naive = run_naive(url, workers, naive_sample, expected)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result = {
        "measured_at": started["measured_at"],
        "setup": {
            "repos": repos,
            "seed": seed,
            "tokens": len(TOKENS),
            "workers": workers,
            "naive_sample": naive_sample,
            "cpus": os.cpu_count(),
            "load_average": round(load, 2),
            "python": platform.python_version(),
        },
        "expected_repositories": expected,
        "stargazer_graphql": smart,
        "stargazer_rest_only": rest,
        "naive": naive,
        "ratio_calls_per_repo": naive["calls_per_repo"] / smart["calls_per_repo"],
        "ratio_calls_per_repo_rest": naive["calls_per_repo"] / rest["calls_per_repo"],
        "ratio_wall_per_repo": (naive["wall_seconds_extrapolated"] / naive["reachable_rows"])
        / (smart["wall_seconds"] / smart["rows"]),
        "targets": {
            "coverage_100": math.isclose(smart["coverage"], 1.0),
            "calls_le_4": smart["calls_per_repo"] <= 4.0,
        },
    }
    provenance.write_results("collect", result, markdown(result), started)
    print(markdown(result))


if __name__ == "__main__":
    main()
