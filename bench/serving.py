"""Serving benchmark: the whole stack (wrk -> nginx -> gunicorn -> RabbitMQ -> Celery worker -> model) next to
calling the same prediction code in-process, for 1- and 5-repository requests, with 1 and 2 worker processes.
In-process, the compiled path a worker runs (``compiled_pipeline``) is measured next to the scikit-learn path
it is checked against, and a CPU breakdown shows where each spends its time.

    .venv/bin/python -m bench.serving [--duration 8] [--connections 1,2,4,8,16,32]

Model: the demo's, i.e. the newest ``models/<version>`` when there is one; otherwise a forest of the size the
demo's tuning produces (200 trees, depth 16, 4,000 rows) is trained once into ``var/bench-model/``. Never the
tiny test model: its cost says nothing about serving.

Load: ``wrk`` (closed loop: each connection sends its next request when the answer arrives) at increasing
connection counts; the saturation point is where throughput stops rising. nginx is configured to exempt the
benchmark's address from ``limit_req`` (``nginx_limit_req_exempt``), exactly how an operator would exempt a
load tester, so the numbers measure the stack, not the rate limit. Every answer must be a 200, else the
run is marked invalid.

Caveat printed with the results: wrk, nginx, gunicorn, RabbitMQ and the workers share this machine's cores,
and the load average at the time is recorded, because other jobs on the machine change the numbers.

Results: bench/results/serving.json and bench/results/serving.md.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]

from bench import provenance  # noqa: E402
from model_serving import artifact, features, releases  # noqa: E402
from model_serving.process_stack.services import group_members  # noqa: E402
from model_serving.process_stack.stack import Stack, StackConfig  # noqa: E402
from model_serving.production_server import compiled_pipeline  # noqa: E402

BENCH_VAR = REPO_ROOT / "var" / "bench-model"
# A throwaway Ed25519 pair made per run: the benchmark signs its copies of the model with it, and the
# stack's workers and the in-process pools (given the public key) verify them.
_SIGNING_TEXT, PUBLIC_KEY_TEXT = artifact.generate_key_pair()
SIGNING_KEY = artifact.parse_signing_key(_SIGNING_TEXT)
PUBLIC_KEY = artifact.parse_public_key(PUBLIC_KEY_TEXT)
TARGET_RPS = 200.0
TARGET_P99_MS = 100.0


# ----------------------------------------------------------------------------------------------------------
# model and inputs
# ----------------------------------------------------------------------------------------------------------


def _compatible(version_dir: Path) -> bool:
    """A cached bench model trained by older serving code (another feature version) is trained again."""
    try:
        artifact.check_compatible(artifact.read_manifest(version_dir))
    except artifact.ArtifactError:
        return False
    return True


def bench_model(choice: str = "newest") -> tuple[Path, str]:
    """The version directory to serve and where it came from.

    ``choice``: "newest" (the demo's model when there is one), "demo-sized" (always the 200-tree forest below,
    so runs stay comparable whatever training left in models/), or a version directory.
    """
    if choice not in ("newest", "demo-sized"):
        return Path(choice), "given on the command line"
    newest = artifact.newest_version(REPO_ROOT / "models") if choice == "newest" else None
    if newest is not None and _compatible(newest):
        return newest, "newest models/<version> (the demo's model)"
    label = ("demo-sized forest trained by bench/serving.py" if choice == "demo-sized"
             else "demo-sized forest trained by bench/serving.py (no models/ yet)")
    existing = artifact.newest_version(BENCH_VAR / "models")
    if existing is not None and _compatible(existing):
        return existing, label
    from sklearn.ensemble import RandomForestRegressor

    from synthetic.dataset import synthetic_dataset

    data = synthetic_dataset(rows=4000, seed=1)
    params = {
        "n_estimators": 200,
        "max_depth": 16,
        "min_samples_leaf": 2,
        "max_features": 0.5,
        "max_samples": 0.8,
    }
    pipeline = features.build_pipeline(RandomForestRegressor(**params, random_state=0, n_jobs=2))
    pipeline.fit(features.select_input(data), features.target_of(data))
    # Serving predicts with one core per worker process (the fitted forest, not the template, carries it).
    pipeline.named_steps["model"].regressor_.set_params(n_jobs=1)
    fake = {"r2_log": 0.0, "r2": 0.0, "mae": 0.0, "rmse": 0.0, "spearman": 0.0}
    version = artifact.write_version(
        pipeline,
        BENCH_VAR / "models",
        dataset={"path": "synthetic (synthetic/dataset.py), 4000 rows", "sha256": "0" * 64, "rows": 4000},
        metrics={"protocol": "benchmark model: accuracy not measured", "cv": fake, "holdout": fake},
        params=params,
        tuning={"trials": 0, "wall_seconds": 0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={},
    )
    return version, label


def request_rows(count: int) -> list[dict[str, Any]]:
    """Repositories described by hand (no GitHub lookup in the measured path), varied so no cache helps."""
    rows = []
    for i in range(count):
        rows.append(
            {
                "full_name": f"bench/repo-{i}",
                "language": ["Python", "Go", "Rust", "JavaScript", "C++"][i % 5],
                "license_spdx": "mit",
                "owner_type": "Organization",
                "forks_count": 40 * (i + 1) ** 2,
                "open_issues_count": 7 * i,
                "size": 12000 + i,
                "topics": "cli|ml",
                "created_at": "2018-03-01T00:00:00Z",
                "pushed_at": "2026-10-01T00:00:00Z",
                "has_wiki": True,
                "has_pages": False,
                "has_issues": True,
                "has_projects": False,
                "has_discussions": i % 2 == 0,
                "contributors_count": 12 * (i + 1),
                "commits_count": 900 + i,
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------------------
# in-process baseline
# ----------------------------------------------------------------------------------------------------------


#: In-process paths: what a worker runs, and the scikit-learn reference it is checked against.
PATHS = {
    "compiled": "compiled (what a worker runs: compiled_pipeline.predict_rows from the JSON rows)",
    "scikit-learn": "scikit-learn, two passes (the reference the compiled path is checked against)",
}


def _predictor(pipeline: Any, path: str) -> Any:
    """A callable rows -> (point, low, high) for the given path."""
    if path == "compiled":
        model = compiled_pipeline.compile_pipeline(pipeline)
        return model.predict_rows
    return lambda rows: compiled_pipeline.reference_predict(pipeline, pd.DataFrame.from_records(rows))


def _inprocess_worker(args: tuple[str, int, float, str, bytes]) -> tuple[list[float], float]:
    version_dir, count, seconds, path, public_key = args
    pipeline, _ = artifact.load_version(Path(version_dir), public_key)
    predict = _predictor(pipeline, path)
    rows = request_rows(count)
    for _ in range(5):  # warm-up
        predict(rows)
    latencies = []
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        predict(rows)
        latencies.append(time.perf_counter() - started)
    return latencies, time.process_time() - cpu_started


def in_process(version_dir: Path, count: int, processes: int, seconds: float,
               path: str = "compiled") -> dict[str, Any]:
    """The same prediction code, no network, no queue: the ceiling the stack is compared with."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        task = (str(version_dir), count, seconds, path, PUBLIC_KEY)
        per_process = pool.map(_inprocess_worker, [task] * processes)
    latencies = [x for chunk, _ in per_process for x in chunk]
    cpu = sum(c for _, c in per_process)
    return {
        "mode": "in-process",
        "path": path,
        "repos_per_request": count,
        "processes": processes,
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "cpu_ms_per_request": round(1000 * cpu / max(1, len(latencies)), 3),
    }


def cpu_breakdown(version_dir: Path, count: int = 5, repeat: int = 20) -> dict[str, float]:
    """CPU milliseconds per call of each stage of one prediction (process time, so other load matters less).

    The compiled path (what a worker runs) stage by stage, next to the scikit-learn paths it replaced, whose
    stages explain where their CPU went. Every path is verified to give the same answers before timing.
    """
    pipeline, _ = artifact.load_version(version_dir, PUBLIC_KEY)
    rows = request_rows(count)
    frame = pd.DataFrame.from_records(rows)
    X = features.select_input(frame)
    encoded = np.asarray(pipeline[:-1].transform(X))
    forest = pipeline.named_steps["model"].regressor_
    compile_started = time.process_time()
    model = compiled_pipeline.compile_pipeline(pipeline)
    compile_ms = 1000 * (time.process_time() - compile_started)
    numeric, categories = compiled_pipeline.fast_features(rows) or ((), ())
    compiled_encoded = model.encode(numeric, categories)

    def cpu_ms(call: Any, times: int = repeat) -> float:
        call()
        started = time.process_time()
        for _ in range(times):
            call()
        return round(1000 * (time.process_time() - started) / times, 3)

    # Verified before timing: every path answers exactly what the scikit-learn reference answers.
    reference = compiled_pipeline.reference_predict(pipeline, frame)
    for name, got in (("compiled", model.predict_rows(rows)),
                      ("scikit-learn one pass", features.predict_with_interval(pipeline, frame))):
        if not all(np.allclose(a, b, rtol=1e-12, atol=0) for a, b in zip(reference, got, strict=True)):
            raise click.ClickException(f"{name} differs from the reference prediction")
    return {
        "compiled: predict_rows from JSON rows (what a worker runs now)": cpu_ms(
            lambda: model.predict_rows(request_rows(count)), 20 * repeat),
        "compiled: fast feature step (fast_features)": cpu_ms(
            lambda: compiled_pipeline.fast_features(rows), 20 * repeat),
        "compiled: encoder": cpu_ms(lambda: model.encode(numeric, categories), 20 * repeat),
        "compiled: all trees walked at once (forest.per_tree)": cpu_ms(
            lambda: model.forest.per_tree(compiled_encoded), 20 * repeat),
        "compiled: built once per loaded model (compile + verify), ms": round(compile_ms, 1),
        "scikit-learn, two passes (compiled_pipeline.reference_predict)": cpu_ms(
            lambda: compiled_pipeline.reference_predict(pipeline,
                                                        pd.DataFrame.from_records(request_rows(count)))),
        "scikit-learn, one pass (features.predict_with_interval without a compiled model: the fallback)":
            cpu_ms(lambda: features.predict_with_interval(pipeline, pd.DataFrame.from_records(
                request_rows(count)))),
        "pandas feature step (RepositoryFeatures.transform)": cpu_ms(
            lambda: pipeline.named_steps["features"].transform(X)),
        "feature + encoding transform (pipeline[:-1].transform)": cpu_ms(lambda: pipeline[:-1].transform(X)),
        "forest.predict": cpu_ms(lambda: forest.predict(encoded)),
        "per-tree predict loop (interval, with input validation)": cpu_ms(
            lambda: [t.predict(encoded) for t in forest.estimators_]),
    }


# ----------------------------------------------------------------------------------------------------------
# through the stack with wrk
# ----------------------------------------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {{\\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d, " ..
    "\\"requests\\": %d, \\"errors\\": %d}}\\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(url: str, body_file: Path, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = ((client_after.ru_utime + client_after.ru_stime)
                  - (client_before.ru_utime + client_before.ru_stime))
    if result.returncode != 0:
        raise click.ClickException(f"wrk failed: {result.stderr.strip()[:300]}")
    match = re.search(r"^JSON (\{.*\})$", result.stdout, re.MULTILINE)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if not match or not rps:
        raise click.ClickException(f"cannot parse wrk output:\n{result.stdout[-500:]}")
    stats = json.loads(match.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    return {
        "connections": connections,
        "rps": float(rps.group(1)),
        "requests": stats["requests"],
        "p50_ms": stats["p50_us"] / 1000,
        "p90_ms": stats["p90_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "max_ms": stats["max_us"] / 1000,
        "errors": stats["errors"],
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        # wrk itself shares the 2 cores: its CPU is part of what the machine spends per request here.
        "wrk_cpu_ms_per_request": round(1000 * client_cpu / max(1, stats["requests"]), 2),
    }


def drain(url: str, body: Path) -> None:
    """Wait until the tasks wrk left in flight are answered, so the next run starts with an empty queue.

    wrk stops at its deadline with requests still queued; without this, the next run's first requests
    would wait behind them and its latency would measure the previous run's backlog. The queue is FIFO, so
    one request answered means everything queued before it is done.
    """
    import requests

    for _ in range(2):
        requests.post(f"{url}/api/v1/predict", data=body.read_bytes(),
                      headers={"Content-Type": "application/json"}, timeout=120)


def tier_cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by every process of each tier (all members of each started process group)."""
    ticks = os.sysconf("SC_CLK_TCK")
    tiers = {"nginx": [stack.nginx], "gunicorn": stack.gunicorns, "celery": stack.workers,
             "rabbitmq": [stack.broker]}
    used: dict[str, float] = {}
    for tier, processes in tiers.items():
        total = 0
        for process in processes:
            if process is None or process.pid is None:
                continue
            for member in group_members(process.pid):
                try:
                    raw = Path(f"/proc/{member}/stat").read_text()
                except OSError:
                    continue
                fields = raw[raw.rindex(")") + 2 :].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
        used[tier] = total / ticks
    return used


def through_stack(
    version_dir: Path,
    workers: int,
    counts: list[int],
    connections: list[int],
    seconds: float,
    work: Path,
    progress: tqdm,
) -> list[dict[str, Any]]:
    model_dir = work / f"production-{workers}"
    if releases.current_release(model_dir) is None:
        staged = work / f"staged-{workers}" / version_dir.name
        staged.mkdir(parents=True)
        for name in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):
            shutil.copy2(version_dir / name, staged / name)
        artifact.sign_version(staged, SIGNING_KEY)
        releases.install_release(staged, model_dir, actor="bench", move=True)
    config = StackConfig(
        state_dir=work / f"stack-{workers}",
        model_dir=model_dir,
        celery_workers=1,
        celery_concurrency=workers,
        gunicorn_workers=2,
        gunicorn_threads=8,
        nginx_variables={"nginx_limit_req_exempt": ["127.0.0.0/8"], "nginx_worker_processes": 1},
        env={artifact.PUBLIC_KEY_ENV: PUBLIC_KEY_TEXT, "GITHUB_API_URL": "http://127.0.0.1:9"},
    )
    rows_out = []
    with Stack(config) as stack:
        stack.start(timeout=120)
        for count in counts:
            body = work / f"body-{count}.json"
            body.write_text(json.dumps({"repositories": request_rows(count)}))
            script = work / f"post-{count}.lua"
            script.write_text(WRK_SCRIPT.format(body=body))
            run_wrk(f"{stack.url}/api/v1/predict", body, script, 4, 4)  # warm-up: every process loaded
            for conns in connections:
                drain(stack.url, body)
                cpu_before = tier_cpu_seconds(stack)
                row = run_wrk(f"{stack.url}/api/v1/predict", body, script, conns, seconds)
                cpu_after = tier_cpu_seconds(stack)
                row.update({"mode": "stack", "repos_per_request": count, "worker_processes": workers})
                row["cpu_ms_per_request"] = {
                    tier: round(1000 * (cpu_after[tier] - cpu_before[tier]) / max(1, row["requests"]), 2)
                    for tier in cpu_after
                }
                rows_out.append(row)
                progress.set_postfix_str(f"{workers}w {count}r c={conns}: {row['rps']:.0f}/s")
                progress.update()
    return rows_out


# ----------------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------------


def saturation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The lowest concurrency reaching 95 % of the best throughput: beyond it only latency grows."""
    best = max(r["rps"] for r in rows)
    return min((r for r in rows if r["rps"] >= 0.95 * best), key=lambda r: r["connections"])


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark",
        "",
        f"Measured {result['measured_at']} on {result['machine']['cpus']} cores (load average before/after: "
        f"{result['machine']['load_before']} / {result['machine']['load_after']}).",
        f"Model: `{result['model']['version']}` ({result['model']['source']}; "
        f"{result['model']['trees']} trees, {result['model']['size_mb']:.1f} MB on disk).",
        "Path: wrk → nginx → gunicorn (2 workers × 8 threads) → RabbitMQ → Celery (prefork; the model "
        "compiled once per loaded model by the worker's store) → model; "
        "nginx exempts the benchmark from `limit_req` by configuration.",
        "",
        "## In-process (the same prediction call, no network, no queue)",
        "",
        "| path | repos/request | processes | requests/s | p50 ms | p99 ms | CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["in_process"]:
        lines.append(
            f"| {r['path']} | {r['repos_per_request']} | {r['processes']} | {r['rps']:.1f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_ms_per_request']:.2f} |"
        )
    lines += ["", *(f"- {name}: {text}" for name, text in PATHS.items())]
    lines += [
        "",
        "## CPU per 5-repository prediction, by stage (process time)",
        "",
        "| stage | CPU ms |",
        "|---|---:|",
    ]
    for stage, value in result["cpu_breakdown_ms_5_repos"].items():
        lines.append(f"| {stage} | {value:.3f} |" if value < 1 else f"| {stage} | {value:.1f} |")
    lines += [
        "",
        "## Through the whole stack (closed loop, wrk connections = requests in flight)",
        "",
        "| worker processes | repos/request | connections | requests/s | p50 ms | p90 ms | p99 ms | "
        "non-200 | CPU ms per request: nginx / gunicorn / rabbitmq / celery | wrk CPU ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in result["stack"]:
        lines.append(
            f"| {r['worker_processes']} | {r['repos_per_request']} | {r['connections']} | "
            f"{r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['non_2xx'] + r['errors']} | {_cpu_cell(r)} | {r.get('wrk_cpu_ms_per_request', 0):.2f} |"
        )
    lines += ["", "## Summary", "", "| | value |", "|---|---|"]
    for key, value in result["summary"].items():
        lines.append(f"| {key} | {value} |")
    lines += ["", result["verdict"], ""]
    return "\n".join(lines)


@click.command()
@click.option("--duration", default=8.0, show_default=True, help="Seconds per wrk run.")
@click.option("--connections", default="1,2,4,8,16", show_default=True, help="wrk connection counts.")
@click.option("--inprocess-seconds", default=6.0, show_default=True)
@click.option("--model", "model_choice", default="newest", show_default=True,
              help='"newest" (models/ first), "demo-sized" (the 200-tree bench forest), or a version dir.')
def main(duration: float, connections: str, inprocess_seconds: float, model_choice: str) -> None:
    if shutil.which("wrk") is None:
        raise click.ClickException("wrk is not installed (scripts/install_system_deps.sh installs it)")
    conns = [int(c) for c in connections.split(",")]
    counts = [1, 5]
    version_dir, source = bench_model(model_choice)
    manifest = artifact.read_manifest(version_dir)
    started = provenance.capture()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serving-", dir=REPO_ROOT / "var") as tmp:
        work = Path(tmp)
        signed = work / "signed" / version_dir.name
        signed.mkdir(parents=True)
        for name in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):
            shutil.copy2(version_dir / name, signed / name)
        artifact.sign_version(signed, SIGNING_KEY)
        pipeline, _ = artifact.load_version(signed, PUBLIC_KEY)
        trees = len(getattr(pipeline.named_steps["model"].regressor_, "estimators_", []))
        del pipeline

        breakdown = cpu_breakdown(signed)
        inproc = []
        runs = [("compiled", count, processes) for count in counts for processes in (1, 2)]
        runs += [("scikit-learn", 5, processes) for processes in (1, 2)]
        for path, count, processes in tqdm(runs, desc="in-process"):
            inproc.append(in_process(signed, count, processes, inprocess_seconds, path))
        stack_rows: list[dict[str, Any]] = []
        with tqdm(total=2 * len(counts) * len(conns), desc="through the stack") as progress:
            for workers in (1, 2):
                stack_rows += through_stack(signed, workers, counts, conns, duration, work, progress)

    valid = [r for r in stack_rows if r["non_2xx"] == 0 and r["errors"] == 0 and r["requests"] > 0]
    five = [r for r in valid if r["repos_per_request"] == 5 and r["worker_processes"] == 2]
    five_sat = saturation(five) if five else None
    meeting = [r for r in five if r["rps"] >= TARGET_RPS and r["p99_ms"] < TARGET_P99_MS]
    best_inproc_5 = max(r["rps"] for r in inproc if r["repos_per_request"] == 5 and r["path"] == "compiled")
    summary = {
        "5-repo requests/s at saturation (2 worker processes)": (
            f"{five_sat['rps']:.1f} at {five_sat['connections']} connections, "
            f"p99 {five_sat['p99_ms']:.1f} ms" if five_sat else "n/a"
        ),
        "best in-process 5-repo requests/s (2 processes, compiled path)": f"{best_inproc_5:.1f}",
        "best in-process 5-repo requests/s (2 processes, scikit-learn two-pass path)": "{:.1f}".format(
            max((r["rps"] for r in inproc if r["path"] == "scikit-learn"), default=0.0)),
        "stack / in-process throughput ratio (5 repos, 2 processes)": f"{five_sat['rps'] / best_inproc_5:.2f}"
        if five_sat
        else "n/a",
        "stack p50 overhead at 1 connection (5 repos, 2 processes)": _overhead(inproc, five),
        "2 vs 1 worker processes, 5-repo saturation throughput": _scaling(valid),
        "CPU ms per 5-repo request by tier, median over runs (nginx / gunicorn / rabbitmq / celery)":
            _median_cpu([r for r in valid if r["repos_per_request"] == 5]),
        "wrk's own CPU ms per 5-repo request (the load generator shares the cores), median":
            "{:.2f}".format(float(np.median([r.get("wrk_cpu_ms_per_request", 0.0) for r in valid
                                             if r["repos_per_request"] == 5] or [0.0]))),
        "throughput bound from CPU alone (cores x 1000 / total CPU ms per 5-repo request)":
            _cpu_bound([r for r in valid if r["repos_per_request"] == 5]),
        "target": f">= {TARGET_RPS:.0f} five-repo requests/s with p99 < {TARGET_P99_MS:.0f} ms",
    }
    bound = _bounding_tier([r for r in valid if r["repos_per_request"] == 5])
    if meeting:
        best = max(meeting, key=lambda r: r["rps"])
        verdict = (
            f"Target MET: {best['rps']:.0f} five-repo requests/s at {best['connections']} connections "
            f"with p99 {best['p99_ms']:.0f} ms (2 worker processes). {bound}"
        )
    else:
        verdict = (
            "Target NOT met: no run reached 200 five-repo requests/s with p99 under 100 ms "
            f"(best: {five_sat['rps']:.0f}/s at {five_sat['connections']} connections, p99 "
            f"{five_sat['p99_ms']:.0f} ms). {bound}" if five_sat else "Target NOT met: no valid run."
        )
    result = {
        "measured_at": started["measured_at"],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
        },
        "model": {
            "version": manifest.version,
            "source": source,
            "trees": trees,
            "size_mb": (version_dir / artifact.MODEL_FILE).stat().st_size / 1e6,
        },
        "settings": {
            "prediction_path": "compiled_pipeline (built once per loaded model by the worker's model store)",
            "task_delivery_mode": "transient",
            "wrk_seconds": duration,
            "connections": conns,
            "gunicorn": "2 workers x 8 threads",
            "nginx_worker_processes": 1,
            "celery_prefetch": 1,
        },
        "cpu_breakdown_ms_5_repos": breakdown,
        "in_process": inproc,
        "stack": stack_rows,
        "summary": summary,
        "verdict": verdict,
        "target": {"rps": TARGET_RPS, "p99_ms": TARGET_P99_MS, "met": bool(meeting)},
    }
    provenance.write_results("serving", result, markdown(result), started)
    click.echo(markdown(result))


TIERS = ("nginx", "gunicorn", "rabbitmq", "celery")


def _median_cpu(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "n/a"
    medians = [float(np.median([r["cpu_ms_per_request"][t] for r in rows])) for t in TIERS]
    return " / ".join(f"{m:.1f}" for m in medians)


def _cpu_bound(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "n/a"
    total = float(np.median([sum(r["cpu_ms_per_request"].values()) for r in rows]))
    web = float(np.median([sum(r["cpu_ms_per_request"][t] for t in TIERS[:3]) for r in rows]))
    cores = os.cpu_count() or 1
    return (f"{cores * 1000 / total:.0f} requests/s for the whole stack; the web tiers alone (nginx, "
            f"gunicorn, RabbitMQ: {web:.1f} ms) would allow {cores * 1000 / web:.0f}/s")


def _bounding_tier(rows: list[dict[str, Any]]) -> str:
    """Where the CPU of a 5-repository request goes, tier by tier, and what that allows on these cores."""
    if not rows:
        return ""
    medians = {t: float(np.median([r["cpu_ms_per_request"][t] for r in rows])) for t in TIERS}
    client = float(np.median([r.get("wrk_cpu_ms_per_request", 0.0) for r in rows]))
    total = sum(medians.values())
    cores = os.cpu_count() or 1
    top = max(medians, key=lambda t: medians[t])
    return (f"Bound: CPU. Per 5-repo request the stack spends {total:.1f} ms (largest: {top} "
            f"{medians[top]:.1f} ms) and wrk {client:.1f} ms, so {cores} cores allow about "
            f"{cores * 1000 / (total + client):.0f} requests/s with the load generator on the same machine "
            f"({cores * 1000 / total:.0f}/s without it).")


def _cpu_cell(row: dict[str, Any]) -> str:
    cpu = row.get("cpu_ms_per_request") or {}
    return " / ".join(f"{cpu.get(t, 0):.1f}" for t in TIERS)


def _overhead(inproc: list[dict[str, Any]], five: list[dict[str, Any]]) -> str:
    single = [r for r in five if r["connections"] == 1]
    base = [r for r in inproc
            if r["repos_per_request"] == 5 and r["processes"] == 1 and r["path"] == "compiled"]
    if not single or not base:
        return "n/a"
    stack_p50, inproc_p50 = single[0]["p50_ms"], base[0]["p50_ms"]
    return f"{stack_p50 - inproc_p50:.1f} ms ({stack_p50:.1f} vs {inproc_p50:.2f})"


def _scaling(rows: list[dict[str, Any]]) -> str:
    best = {
        w: max(
            (r["rps"] for r in rows if r["worker_processes"] == w and r["repos_per_request"] == 5),
            default=0.0,
        )
        for w in (1, 2)
    }
    if not best[1]:
        return "n/a"
    return f"{best[2]:.1f} / {best[1]:.1f} = {best[2] / best[1]:.2f}x"


if __name__ == "__main__":
    main()
