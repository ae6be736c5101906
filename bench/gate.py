"""What the quality gate adds to a push: the same pushes into a host with an evaluation set and one without.

    sudo .venv/bin/python -m bench.gate [--rounds 5]

Setup: two hosts made by the real installer (githooks/install.sh, as root: the sandboxed check runs as
``stargazer-check``), ``gated`` with a frozen evaluation set built by the real ``evalset`` code, ``plain``
without; demo-sized forests (bench/deploy.py's: 200 trees, depth 16, ~8.6 MiB), two versions signed and
committed once by the deploy command's own code; both hosts first serve version A. Each round then pushes B
and A back (``git push +<commit>:refs/heads/deploy``, the raw push the deploy command makes, timed from the
pusher's side: both hooks, the sandboxed check and the switch) to the two hosts in alternating order, so other
jobs on this 2-core machine load both alike. Every push on ``gated`` scores both models on the eval set (A vs
B, then B vs A: a rollback to a version served before, so nothing is refused).

Results: bench/results/gate.json and bench/results/gate.md: median push time per host, the added seconds
(median of the per-round differences) and the ratio.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parent.parent

from bench import provenance  # noqa: E402
from bench.deploy import SIGNING_KEY, demo_sized_versions, write_public_key  # noqa: E402
from model_serving import artifact  # noqa: E402

EVAL_ROWS = 500


def _evalset(root: Path) -> tuple[Path, str]:
    """500 synthetic repositories no demo-sized model was trained on (their 4,000 names are excluded)."""
    from data_collection.dataset import write_dataset
    from model_serving.development_server.evalset import build
    from synthetic.dataset import synthetic_dataset

    def rows(frame: object) -> list[dict]:
        return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in frame.to_dict("records")]

    write_dataset(rows(synthetic_dataset(4000, 0)), root / "train.csv", {"source": "bench"})
    write_dataset(rows(synthetic_dataset(4000 + EVAL_ROWS, 99)), root / "collected.csv", {"source": "bench"})
    path, sha256, counts = build(root / "collected.csv", [root / "train.csv"], root, rows=None, seed=0,
                                 rest_out=None)  # fmt: skip
    assert counts["rows"] == EVAL_ROWS, counts
    return path, sha256


def _install(root: Path, name: str, public_key_file: Path, extra: list[str]) -> dict[str, Path]:
    repo, model_dir = root / name / "models.git", root / name / "models"
    subprocess.run(
        [str(REPO_ROOT / "githooks" / "install.sh"), "--repo", str(repo), "--model-dir", str(model_dir),
         "--public-key-file", str(public_key_file), "--keep", "2", "--prune-expire", "now",
         "--host-name", name, "--no-probe", *extra],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"repo": repo, "model_dir": model_dir}


def _push(dev_repo: Path, host: dict[str, Path], commit: str) -> tuple[float, str]:
    started = time.perf_counter()
    refspec = f"+{commit}:refs/heads/deploy"
    result = subprocess.run(
        ["git", f"--git-dir={dev_repo}", "push", "--porcelain", str(host["repo"]), refspec],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise click.ClickException(f"push to {host['repo']} failed: {result.stderr.strip()[-800:]}")
    return seconds, result.stderr


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True)
def main(rounds: int) -> None:
    if os.geteuid() != 0:
        raise click.ClickException("run as root: the installer sets up the check sandbox")
    from model_serving.development_server.deploy import DeployRepo

    versions = demo_sized_versions(2)
    started = provenance.capture()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        root = Path(tmp)
        evalset, sha256 = _evalset(root)
        public_key_file = write_public_key(root)
        gate_options = ["--evalset", str(evalset), "--evalset-sha256", sha256]
        hosts = {
            "gated": _install(root, "gated", public_key_file, gate_options),
            "plain": _install(root, "plain", public_key_file, []),
        }
        dev = DeployRepo(root / "dev.git")
        dev.ensure()
        first, second = (dev.commit_version(v, artifact.parse_signing_key(SIGNING_KEY))[0] for v in versions)
        for host in hosts.values():
            _push(dev.path, host, first)  # both serve A before the timed pushes
        seconds: dict[str, list[float]] = {name: [] for name in hosts}
        checks: dict[str, list[float]] = {name: [] for name in hosts}
        lines: dict[str, str] = {}
        for number in range(rounds):
            order = list(hosts) if number % 2 == 0 else list(reversed(hosts))
            for commit in (second, first):
                for name in order:
                    took, output = _push(dev.path, hosts[name], commit)
                    seconds[name].append(round(took, 2))
                    found = re.search(r"canned sample \(\d+ rows\) in ([\d.]+) s", output)
                    checks[name].append(float(found.group(1)) if found else float("nan"))
                    lines[name] = next(x for x in output.splitlines() if "accepted" in x)
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    added = [g - p for g, p in zip(seconds["gated"], seconds["plain"], strict=True)]
    report = {
        "name": "gate",
        "when": started["measured_at"],
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after},
        "model": {"model_joblib_mib": [round((v / artifact.MODEL_FILE).stat().st_size / 2**20, 2)
                                       for v in versions]},
        "evalset": {"file": evalset.name, "rows": EVAL_ROWS},
        "pushes_per_host": len(seconds["gated"]),
        "push_seconds": seconds,
        "check_seconds": checks,
        "median_push_seconds": medians,
        "gate_added_seconds_median": round(statistics.median(added), 2),
        "gate_added_seconds_max": round(max(added), 2),
        "ratio_gated_over_plain": round(medians["gated"] / medians["plain"], 2),
        "last_accepted_line": lines,
    }
    md = [
        "# Quality gate benchmark",
        "",
        f"{report['when']}, {os.cpu_count()} cores, load average {load_before[0]:.2f} before / "
        f"{load_after[0]:.2f} after (other jobs on the machine change the numbers).",
        f"Model: demo-sized forest (200 trees), model.joblib "
        f"{', '.join(map(str, report['model']['model_joblib_mib']))} MiB; evaluation set {EVAL_ROWS} "
        "repositories. Raw `git push` of the deploy branch, sandboxed check as stargazer-check, both hooks "
        "and the switch included; pushes alternate between the hosts.",
        "",
        "| host | median push, s | pushes, s | load-and-predict(+gate) check, s |",
        "|---|---|---|---|",
        *(
            f"| {name} | {medians[name]:.2f} | {', '.join(f'{v:.2f}' for v in seconds[name])} "
            f"| {', '.join(f'{v:.1f}' for v in checks[name])} |"
            for name in hosts
        ),
        "",
        f"Gate's added push time: **{report['gate_added_seconds_median']:+.2f} s** median of the paired "
        f"differences (max {report['gate_added_seconds_max']:+.2f} s); gated / plain median: "
        f"**{report['ratio_gated_over_plain']}x**.",
        "",
        f"A gated push says: `{lines['gated'].removeprefix('remote: ')[:400]}`",
        "",
    ]
    provenance.write_results("gate", report, "\n".join(md), started)
    click.echo("\n".join(md))


if __name__ == "__main__":
    main()
