"""Deploy benchmark: one host (one push) next to two hosts (two phases), and a host repository that prunes
old model objects next to one that keeps them.

    .venv/bin/python -m bench.deploy [--deploys 3]

Model: demo-sized forests (the same parameters as bench/serving.py: 200 trees, depth 16, 4,000 rows; joblib
compressed), one per seed so every version has different bytes; trained once into ``var/bench-deploy/``.
Each deploy runs the real command (``python -m model_serving.development_server.deploy``, a new process, as
a person would) against bare repositories made by the real installer, over git's local transport; the time
therefore includes the interpreter start, signing, hashing into git, the pushes, both hooks (with the
load-and-predict check as ``nobody``) and the switch. SSH transfer time is not included.

Results: bench/results/deploy.json and bench/results/deploy.md (with the load average: other jobs on this
2-core machine change the numbers).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

REPO_ROOT = Path(__file__).resolve().parent.parent

from bench import provenance  # noqa: E402
from envsettings import child_environment  # noqa: E402
from model_serving import artifact, features  # noqa: E402

BENCH_VAR = REPO_ROOT / "var" / "bench-deploy"
# A throwaway Ed25519 pair for throwaway hosts: deploy signs with the first, the hooks verify with the second.
SIGNING_KEY, PUBLIC_KEY = artifact.generate_key_pair()
PARAMS = {
    "n_estimators": 200,
    "max_depth": 16,
    "min_samples_leaf": 2,
    "max_features": 0.5,
    "max_samples": 0.8,
}


def demo_sized_versions(count: int) -> list[Path]:
    """``count`` demo-sized model versions with distinct bytes (trained once, reused afterwards)."""
    from datetime import timedelta

    from sklearn.ensemble import RandomForestRegressor

    from synthetic.dataset import synthetic_dataset

    models = BENCH_VAR / "models"
    existing = (
        sorted(p for p in models.glob("*") if artifact.VERSION_PATTERN.match(p.name))
        if models.is_dir()
        else []
    )
    fake = {"r2_log": 0.0, "r2": 0.0, "mae": 0.0, "rmse": 0.0, "spearman": 0.0}
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for seed in range(len(existing), count):
        data = synthetic_dataset(rows=4000, seed=seed)
        pipeline = features.build_pipeline(RandomForestRegressor(**PARAMS, random_state=seed, n_jobs=2))
        pipeline.fit(features.select_input(data), features.target_of(data))
        pipeline.named_steps["model"].regressor_.set_params(n_jobs=1)
        existing.append(
            artifact.write_version(
                pipeline,
                models,
                dataset={
                    "path": "synthetic (synthetic/dataset.py), 4000 rows",
                    "sha256": "0" * 64,
                    "rows": 4000,
                },
                metrics={"protocol": "benchmark model: accuracy not measured", "cv": fake, "holdout": fake},
                params=PARAMS,
                tuning={"trials": 0, "wall_seconds": 0, "nodes": 0, "cpus": 0, "search": "none"},
                baseline={},
                now=start + timedelta(minutes=seed),
            )
        )
    return existing[:count]


def install(root: Path, name: str, public_key_file: Path, prune_expire: str) -> dict[str, Path]:
    repo, model_dir = root / name / "models.git", root / name / "models"
    subprocess.run(
        [str(REPO_ROOT / "githooks" / "install.sh"), "--repo", str(repo), "--model-dir", str(model_dir),
         "--public-key-file", str(public_key_file), "--keep", "2", "--prune-expire", prune_expire,
         "--host-name", name, "--no-probe"],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"repo": repo, "model_dir": model_dir}


def write_public_key(root: Path) -> Path:
    """The public key file a production host holds (world-readable, as the deploy_key role writes it)."""
    path = root / "deploy-public-key"
    path.write_text(PUBLIC_KEY + "\n")
    path.chmod(0o644)
    return path


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def switch_skew(hosts: list[dict[str, Path]]) -> float:
    """Seconds between the first and the last host switching (from their deploy logs' last entries)."""
    from model_serving import releases

    times = [
        datetime.strptime(releases.read_deploy_log(h["model_dir"])[-1]["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        for h in hosts
    ]
    return round((max(times) - min(times)).total_seconds(), 3)


def deploy(target: str, models: Path, dev_repo: Path, hosts: list[dict[str, Path]]) -> dict[str, Any]:
    command = [sys.executable, "-m", "model_serving.development_server.deploy", "deploy", target,
               "--models", str(models), "--repo", str(dev_repo)]  # fmt: skip
    for host in hosts:
        command += ["--remote", str(host["repo"])]
    started = time.perf_counter()
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=child_environment({artifact.SIGNING_KEY_ENV: SIGNING_KEY}),
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"deploy failed: {result.stdout}{result.stderr}")
    checks = [float(x) for x in re.findall(r"canned sample \(\d+ rows\) in ([\d.]+) s", result.stdout)]
    return {"target": target, "hosts": len(hosts), "seconds": round(seconds, 2), "check_seconds": checks}


@click.command()
@click.option("--deploys", default=3, show_default=True, help="Versions deployed in a row to each setup.")
def main(deploys: int) -> None:
    started = provenance.capture()
    load_before = os.getloadavg()
    versions = demo_sized_versions(deploys)
    models = versions[0].parent
    model_mib = [round((v / artifact.MODEL_FILE).stat().st_size / 2**20, 2) for v in versions]
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        root = Path(tmp)
        public_key_file = write_public_key(root)
        single = install(root, "single", public_key_file, "now")
        pruned = install(root, "pruned", public_key_file, "now")
        unpruned = install(root, "unpruned", public_key_file, "never")
        one_host, two_hosts, sizes = [], [], []
        for version in versions:
            one_host.append(deploy(version.name, models, root / "dev-a.git", [single]))
            two_hosts.append(deploy(version.name, models, root / "dev-b.git", [pruned, unpruned]))
            two_hosts[-1]["switch_skew_seconds"] = switch_skew([pruned, unpruned])
            sizes.append(
                {"version": version.name, "pruned_repo_bytes": du(pruned["repo"]),
                 "unpruned_repo_bytes": du(unpruned["repo"]),
                 "releases_bytes": du(pruned["model_dir"] / "releases")}
            )  # fmt: skip
        rollback = deploy(f"model-{versions[0].name}", models, root / "dev-a.git", [single])
    mean_one = statistics.mean(d["seconds"] for d in one_host)
    mean_two = statistics.mean(d["seconds"] for d in two_hosts)
    last = sizes[-1]
    report = {
        "name": "deploy",
        "when": started["measured_at"],
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "model": {"params": PARAMS, "model_joblib_mib": model_mib},
        "one_host": one_host,
        "two_hosts": two_hosts,
        "rollback_to_pruned_version": rollback,
        "repository_sizes": sizes,
        "ratios": {
            "two_hosts_over_one_host_seconds": round(mean_two / mean_one, 2),
            "unpruned_over_pruned_repo_bytes": round(
                last["unpruned_repo_bytes"] / last["pruned_repo_bytes"], 2
            ),
        },
    }
    mib = 2**20
    lines = [
        "# Deploy benchmark",
        "",
        f"{report['when']}, {os.cpu_count()} cores, load average {load_before[0]:.2f} before / "
        f"{report['machine']['loadavg_after'][0]:.2f} after (other jobs on the machine change the numbers).",
        f"Model: demo-sized forest, model.joblib {', '.join(map(str, model_mib))} MiB (joblib compress=3).",
        "",
        "| deploy | one host (one push), s | two hosts (two phases), s | hosts switched apart, s "
        "| load-and-predict checks, s |",
        "|---|---|---|---|---|",
    ]
    for a, b in zip(one_host, two_hosts, strict=True):
        checks = ", ".join(f"{c:.1f}" for c in a["check_seconds"] + b["check_seconds"])
        lines.append(
            f"| {a['target']} | {a['seconds']:.1f} | {b['seconds']:.1f} | {b['switch_skew_seconds']:.2f} "
            f"| {checks} |"
        )
    lines += [
        f"| rollback to a pruned version ({rollback['target']}) | {rollback['seconds']:.1f} | | | "
        f"{', '.join(f'{c:.1f}' for c in rollback['check_seconds'])} |",
        "",
        f"Two hosts / one host: **{report['ratios']['two_hosts_over_one_host_seconds']}x** (hosts validate "
        "in parallel; the second phase repeats only the cheap checks).",
        "",
        "| after deploying | host repo pruned, MiB | host repo never pruned, MiB | releases/ (keep 2), MiB |",
        "|---|---|---|---|",
    ]
    for size in sizes:
        lines.append(
            f"| {size['version']} | {size['pruned_repo_bytes'] / mib:.1f} "
            f"| {size['unpruned_repo_bytes'] / mib:.1f} | {size['releases_bytes'] / mib:.1f} |"
        )
    lines += [
        "",
        f"Never pruned / pruned: **{report['ratios']['unpruned_over_pruned_repo_bytes']}x** after {deploys} "
        "deploys (grows by one model per deploy without pruning; stays at one model with it).",
    ]
    provenance.write_results("deploy", report, "\n".join(lines), started)
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
