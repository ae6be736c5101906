"""GitHub calls per looked-up repository: the production lookup next to the collector's REST path.

    .venv/bin/python -m bench.lookup_calls [--repos 100] [--seed 11]

Both run against the GitHub simulator (the project's stand-in for api.github.com), which counts every request
it receives. "REST only" is the same lookup with GraphQL turned off (``GITHUB_GRAPHQL_BATCH=0``, the path
taken without a token or when ``/graphql`` answers 404): the repository, three counts and the owner, as
every lookup cost before GraphQL batching. (The simulator's own ``graphql=False`` mode is not used: its 404
carries the anonymous quota's headers, 60 calls, which the token pool then believes.) Each run uses a fresh
lookup (empty cache). Rows are compared with the simulator's ground truth, so a cheaper lookup that built a
different row would show as mismatches.

Results: bench/results/lookup_calls.json and bench/results/lookup_calls.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

REPO_ROOT = Path(__file__).resolve().parent.parent

from bench import provenance  # noqa: E402
from data_collection.settings import Settings as GitHubSettings  # noqa: E402
from data_collection.simulator import SimulatorServer  # noqa: E402
from model_serving.production_server.lookup import Found, RepositoryLookup  # noqa: E402

TOKENS = ("bench-lookup-token",)


def measure(repos: int, seed: int, graphql: bool) -> dict[str, Any]:
    with SimulatorServer(repos=repos * 2, seed=seed, tokens=TOKENS) as sim:
        chosen = [r for r in sim.store.repos if not r.empty][:repos]
        github = GitHubSettings(api_url=sim.url, tokens=TOKENS, graphql_batch=50 if graphql else 0)
        lookup = RepositoryLookup(github, ttl=600, negative_ttl=60, cache_size=10_000, threads=8,
                                  timeout=10.0)
        sim.reset_stats()
        answers = lookup.lookup_many([r.full_name for r in chosen])
        stats = sim.stats
        mismatches = 0
        for repo, answer in zip(chosen, answers, strict=True):
            truth = sim.truth(repo.full_name)
            if not isinstance(answer, Found) or any(answer.row[k] != v for k, v in truth.items()):
                mismatches += 1
        return {
            "graphql": graphql,
            "repositories": len(chosen),
            "organization_owners": len({r.owner.login for r in chosen if r.owner.type == "Organization"}),
            "calls": stats.requests,
            "calls_per_repository": round(stats.requests / len(chosen), 2),
            "by_endpoint": stats.by_endpoint,
            "rows_unlike_the_collector": mismatches,
        }


@click.command()
@click.option("--repos", default=100, show_default=True, help="repositories looked up in one request")
@click.option("--seed", default=11, show_default=True)
def main(repos: int, seed: int) -> None:
    started = provenance.capture()
    runs = [measure(repos, seed, graphql=True), measure(repos, seed, graphql=False)]
    stamp = started["measured_at"]
    lines = [
        "# GitHub calls per looked-up repository",
        "",
        f"`bench/lookup_calls.py --repos {repos} --seed {seed}`, {stamp}, GitHub simulator; one request, "
        "empty cache.",
        "",
        "| path | repositories | organization owners | calls | calls per repository "
        "| rows unlike the collector |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        name = "GraphQL batch + 2 REST (production default)" if run["graphql"] else "REST only (no GraphQL)"
        lines.append(f"| {name} | {run['repositories']} | {run['organization_owners']} | {run['calls']} | "
                     f"{run['calls_per_repository']:.2f} | {run['rows_unlike_the_collector']} |")
    provenance.write_results("lookup_calls", {"seed": seed, "runs": runs}, "\n".join(lines), started)
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
