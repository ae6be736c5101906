"""Shadow scoring's cost on serving latency: the same stack and load as bench/serving.py, with and without a
shadow, side by side in one run.

    .venv/bin/python -m bench.shadow [--duration 8] [--connections 1,4,8] [--rounds 2]

Stack: wrk -> nginx -> gunicorn (2 x 8 threads) -> RabbitMQ -> Celery (2 prefork processes) -> model, as in
bench/serving.py (its helpers are reused: model, request rows, wrk script, drain), 5-repository requests.
Serving model: bench/serving.py's demo-sized forest (200 trees). Shadow: a second forest of the same size
and shape trained with another seed (so the shadow costs what a real candidate would), installed with
``releases.install_shadow`` exactly as post-receive installs it, and cleared with ``releases.clear_shadow``.

Order: for each connection count, the runs alternate without / with a shadow, ``--rounds`` times (ABAB...),
so a change of the machine's load during the run hits both sides alike; each side's numbers are the median
over its rounds. After every switch of the shadow a warm-up run lets each worker process load it (the load
happens in the shadow thread, never in a task; the measured run starts only once every worker process has
scored with it, so the load itself is not measured). The shadow log of each "with" run gives each model's own
scoring time and how many requests were not shadowed because the shadow thread was busy (``dropped``).

Results: bench/results/shadow.json and bench/results/shadow.md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent

from bench import provenance  # noqa: E402
from bench import serving as serving_bench  # noqa: E402
from model_serving import artifact, features, releases  # noqa: E402
from model_serving.process_stack.stack import Stack, StackConfig  # noqa: E402
from model_serving.production_server import shadow_log, shadow_report  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
SHADOW_VAR = REPO_ROOT / "var" / "bench-model" / "shadow-models"
REPOS = 5
PROCESSES = 2  # Celery prefork processes, as bench/serving.py's 2-process runs


def shadow_model() -> Path:
    """A demo-sized forest like bench/serving.py's, another seed: the candidate the shadow scores."""
    existing = artifact.newest_version(SHADOW_VAR)
    if existing is not None and serving_bench._compatible(existing):
        return existing
    from sklearn.ensemble import RandomForestRegressor

    from synthetic.dataset import synthetic_dataset

    data = synthetic_dataset(rows=4000, seed=2)
    params = {"n_estimators": 200, "max_depth": 16, "min_samples_leaf": 2, "max_features": 0.5,
              "max_samples": 0.8}
    pipeline = features.build_pipeline(RandomForestRegressor(**params, random_state=1, n_jobs=2))
    pipeline.fit(features.select_input(data), features.target_of(data))
    pipeline.named_steps["model"].regressor_.set_params(n_jobs=1)
    fake = {"r2_log": 0.0, "r2": 0.0, "mae": 0.0, "rmse": 0.0, "spearman": 0.0}
    return artifact.write_version(
        pipeline, SHADOW_VAR,
        dataset={"path": "synthetic (synthetic/dataset.py), 4000 rows, seed 2", "sha256": "0" * 64,
                 "rows": 4000},
        metrics={"protocol": "benchmark shadow model: accuracy not measured", "cv": fake, "holdout": fake},
        params=params, tuning={"trials": 0, "wall_seconds": 0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={},
    )


def signed_copy(version_dir: Path, into: Path) -> Path:
    target = into / version_dir.name
    target.mkdir(parents=True)
    for name in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):
        shutil.copy2(version_dir / name, target / name)
    artifact.sign_version(target, serving_bench.SIGNING_KEY)
    return target


def shadow_numbers(model_dir: Path, version: str, since: float) -> dict[str, Any]:
    report = shadow_report.build(shadow_log.read(shadow_log.path_for(model_dir), shadow_version=version,
                                                 since=since),
                                 shadow_version=version, serving_version=None, since=since, host="bench")
    shadowed, dropped = report["requests"], report["dropped"]
    return {
        "shadowed_requests": shadowed,
        "not_shadowed_busy": dropped,
        "shadow_errors": report["errors"],
        "scoring_ms": report["latency_ms"],
    }


def run(stack: Stack, body: Path, script: Path, connections: int, seconds: float, *,
        shadow_version: str | None, model_dir: Path) -> dict[str, Any]:
    serving_bench.drain(stack.url, body)
    started = time.time()
    row = serving_bench.run_wrk(f"{stack.url}/api/v1/predict", body, script, connections, seconds)
    row["shadow"] = shadow_version is not None
    if shadow_version is not None:
        row.update(shadow_numbers(model_dir, shadow_version, started))
    return row


def warm_shadow(url: str, body: Path, script: Path, model_dir: Path, version: str, *, processes: int,
                timeout: float = 180.0) -> None:
    """Send load until every worker process has scored with the shadow (its load must not be measured)."""
    since = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        serving_bench.run_wrk(url, body, script, 4, 2)
        lines = shadow_log.read(shadow_log.path_for(model_dir), shadow_version=version, since=since)
        if len({line["pid"] for line in lines if line.get("shadow") is not None}) >= processes:
            return
    raise click.ClickException(f"the worker processes did not load the shadow within {timeout:g} s")


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in rows]))


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Shadow scoring: serving latency with and without a shadow",
        "",
        f"Measured {result['measured_at']} on {result['machine']['cpus']} cores (load average before/after: "
        f"{result['machine']['load_before']} / {result['machine']['load_after']}).",
        f"Serving model `{result['serving_model']}`, shadow `{result['shadow_model']}` (each a demo-sized "
        "forest, 200 trees). Path: wrk → nginx → gunicorn (2 × 8 threads) → RabbitMQ → Celery (2 prefork "
        f"processes) → model; {REPOS}-repository requests; {result['settings']['rounds']} alternating rounds "
        f"of {result['settings']['wrk_seconds']:g} s per side and connection count, medians shown.",
        "",
        "| connections | p50 ms without | p50 ms with | p50 ratio | p99 ms without | p99 ms with | "
        "p99 ratio | req/s without | req/s with | share shadowed | not shadowed (busy) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in result["comparison"]:
        lines.append(
            f"| {c['connections']} | {c['p50_ms_without']:.1f} | {c['p50_ms_with']:.1f} | "
            f"{c['p50_ratio']:.2f} | {c['p99_ms_without']:.1f} | {c['p99_ms_with']:.1f} | "
            f"{c['p99_ratio']:.2f} | {c['rps_without']:.0f} | {c['rps_with']:.0f} | "
            f"{c['shadowed_share']:.0%} | {c['not_shadowed']} |"
        )
    lines += [
        "",
        "Each model's own scoring time per request in the workers, from the shadow log (all \"with\" runs):",
        "",
        "| model | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    for model, values in result["scoring_ms"].items():
        lines.append(f"| {model} | {values['p50']:.2f} | {values['p99']:.2f} |")
    lines += ["", result["verdict"], "",
              "wrk, nginx, gunicorn, RabbitMQ and both worker processes share the 2 cores; the shadow thread "
              "takes its CPU from the same cores between tasks.", ""]
    return "\n".join(lines)


def compare(rows: list[dict[str, Any]], conns: list[int]) -> tuple[list[dict[str, Any]], float, str]:
    """Per connection count: the medians of each side, their ratios; the worst ratio and the verdict."""
    invalid = [r for r in rows if r["non_2xx"] or r["errors"] or not r["requests"]]
    comparison = []
    for count in conns:
        without = [r for r in rows if r["connections"] == count and not r["shadow"]]
        with_ = [r for r in rows if r["connections"] == count and r["shadow"]]
        shadowed = sum(r["shadowed_requests"] for r in with_)
        comparison.append({
            "connections": count,
            "p50_ms_without": median_of(without, "p50_ms"), "p50_ms_with": median_of(with_, "p50_ms"),
            "p99_ms_without": median_of(without, "p99_ms"), "p99_ms_with": median_of(with_, "p99_ms"),
            "rps_without": median_of(without, "rps"), "rps_with": median_of(with_, "rps"),
            # Of the requests the workers scored during the "with" runs, the share the shadow scored too.
            "shadowed_share": shadowed / max(1, shadowed + sum(r["not_shadowed_busy"] for r in with_)),
            "not_shadowed": sum(r["not_shadowed_busy"] for r in with_),
        })
        last = comparison[-1]
        last["p50_ratio"] = last["p50_ms_with"] / last["p50_ms_without"]
        last["p99_ratio"] = last["p99_ms_with"] / last["p99_ms_without"]
    worst = max(max(c["p50_ratio"], c["p99_ratio"]) for c in comparison)
    verdict = (
        f"{'Does NOT double' if worst < 2 else 'DOUBLES'} serving latency: the largest with/without ratio "
        f"of p50 or p99 over all connection counts is {worst:.2f}."
        + (f" INVALID: {len(invalid)} run(s) had errors or non-200 answers." if invalid else "")
    )
    return comparison, worst, verdict


@click.command()
@click.option("--duration", default=8.0, show_default=True, help="Seconds per wrk run.")
@click.option("--connections", default="1,4,8", show_default=True, help="wrk connection counts.")
@click.option("--rounds", default=2, show_default=True, help="Alternating without/with rounds per count.")
@click.option("--render-only", is_flag=True,
              help="Measure nothing: recompute the comparison of the runs in bench/results/shadow.json.")
def main(duration: float, connections: str, rounds: int, render_only: bool) -> None:
    if render_only:
        saved = json.loads((RESULTS / "shadow.json").read_text())
        saved["comparison"], saved["max_ratio"], saved["verdict"] = compare(
            saved["runs"], saved["settings"]["connections"])
        provenance.write_results("shadow", saved, markdown(saved), saved["provenance"])
        click.echo(markdown(saved))
        return
    if shutil.which("wrk") is None:
        raise click.ClickException("wrk is not installed (scripts/install_system_deps.sh installs it)")
    conns = [int(c) for c in connections.split(",")]
    serving_dir, _ = serving_bench.bench_model("demo-sized")
    candidate_dir = shadow_model()
    started = provenance.capture()
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    (REPO_ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-shadow-", dir=REPO_ROOT / "var") as tmp:
        work = Path(tmp)
        model_dir = work / "production"
        serving = signed_copy(serving_dir, work / "signed")
        releases.install_release(serving, model_dir, actor="bench", move=True)
        candidate = signed_copy(candidate_dir, work / "signed-shadow")
        body = work / "body.json"
        body.write_text(json.dumps({"repositories": serving_bench.request_rows(REPOS)}))
        script = work / "post.lua"
        script.write_text(serving_bench.WRK_SCRIPT.format(body=body))
        config = StackConfig(
            state_dir=work / "stack", model_dir=model_dir, celery_workers=1,
            celery_concurrency=PROCESSES,
            gunicorn_workers=2, gunicorn_threads=8,
            nginx_variables={"nginx_limit_req_exempt": ["127.0.0.0/8"], "nginx_worker_processes": 1},
            env={artifact.PUBLIC_KEY_ENV: serving_bench.PUBLIC_KEY_TEXT, "GITHUB_API_URL": "http://127.0.0.1:9"},
        )
        with Stack(config) as stack:
            stack.start(timeout=180)
            url = f"{stack.url}/api/v1/predict"
            serving_bench.run_wrk(url, body, script, 4, 4)  # warm-up: every worker process loaded
            for count in conns:
                for round_index in range(rounds):
                    for with_shadow in (False, True):
                        if with_shadow:
                            releases.install_shadow(candidate, model_dir)
                            warm_shadow(url, body, script, model_dir, candidate.name, processes=PROCESSES)
                        else:
                            releases.clear_shadow(model_dir)
                        row = run(stack, body, script, count, duration, model_dir=model_dir,
                                  shadow_version=candidate.name if with_shadow else None)
                        row["round"] = round_index
                        rows.append(row)
                        click.echo(f"c={count} round {round_index} shadow={with_shadow}: "
                                   f"p50 {row['p50_ms']:.1f} p99 {row['p99_ms']:.1f} ms, {row['rps']:.0f}/s")
            releases.clear_shadow(model_dir)
            scoring = shadow_numbers(model_dir, candidate.name, 0.0)["scoring_ms"]

    comparison, worst, verdict = compare(rows, conns)
    result = {
        "measured_at": started["measured_at"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)},
        "serving_model": serving_dir.name,
        "shadow_model": candidate_dir.name,
        "settings": {"wrk_seconds": duration, "connections": conns, "rounds": rounds,
                     "repos_per_request": REPOS, "gunicorn": "2 workers x 8 threads", "celery_processes": 2},
        "runs": rows,
        "comparison": comparison,
        "scoring_ms": scoring,
        "max_ratio": worst,
        "valid": not any(r["non_2xx"] or r["errors"] or not r["requests"] for r in rows),
        "verdict": verdict,
    }
    provenance.write_results("shadow", result, markdown(result), started)
    click.echo(markdown(result))


if __name__ == "__main__":
    main()
