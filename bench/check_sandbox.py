"""What the load check's sandbox costs: the same check with and without it, alternating, on this machine.

    sudo .venv/bin/python -m bench.check_sandbox [--runs 5]

Both modes run ``githooks.check_model.run_check`` on the same model (the 8-tree test model of
tests/githooks, so the interpreter start and imports dominate, as in a real push's check):
- ``no sandbox``: ``stargazer.checkuser ''``, the child as the hook's own user under prlimit (what the check
  cost before the sandbox: one interpreter with the same imports);
- ``sandbox``: githooks/check-sandbox as root: check user, empty network and PID namespaces, prlimit,
  setpriv, timeout (a hook running as the deploy user adds one ``sudo``).
Runs alternate so that other jobs on the machine load both modes alike. Needs root (the sandbox) and creates
the check user ``stargazer-check`` when missing, as githooks/install.sh does.

Results: bench/results/check_sandbox.json and bench/results/check_sandbox.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parent.parent

from bench import provenance  # noqa: E402
from githooks import sandbox_setup  # noqa: E402
from githooks.check_model import Sandbox, run_check  # noqa: E402
from githooks.settings import DEFAULT_CHECK_MEMORY_MB, DEFAULT_CHECK_USER  # noqa: E402


@click.command()
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True)
def main(runs: int) -> None:
    if os.geteuid() != 0:
        raise click.ClickException("run as root: the sandbox needs root (namespaces, setpriv)")
    from synthetic.versions import make_versions

    sandbox_setup.ensure_check_user(DEFAULT_CHECK_USER)
    common = {"python": Path(sys.executable), "app_dir": REPO_ROOT, "memory_mb": DEFAULT_CHECK_MEMORY_MB}
    modes = {
        "no sandbox": Sandbox(user=None, **common),
        "sandbox": Sandbox(user=DEFAULT_CHECK_USER, **common),
    }
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    started = provenance.capture()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        [version] = make_versions(Path(scratch), 1)
        for _ in range(runs):
            for name, sandbox in modes.items():
                result = run_check(version, sandbox=sandbox, timeout=120)
                if not result.ok:
                    raise click.ClickException(f"{name}: {result.message}")
                seconds[name].append(round(result.seconds, 2))
    load_after = os.getloadavg()[0]
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report = {
        "time": started["measured_at"],
        "cores": os.cpu_count(),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "runs": runs,
        "seconds": seconds,
        "median_seconds": medians,
        "sandbox_extra_seconds": round(medians["sandbox"] - medians["no sandbox"], 2),
    }
    lines = [
        "# Load-check sandbox benchmark",
        "",
        f"{report['time']}, {report['cores']} cores, load average {load_before:.2f} before / "
        f"{load_after:.2f} after (other jobs on the machine change the numbers). 8-tree test model.",
        "",
        "| mode | median, s | runs, s |",
        "|---|---|---|",
        *(
            f"| {name} | {medians[name]:.2f} | {', '.join(f'{v:.2f}' for v in seconds[name])} |"
            for name in modes
        ),
        "",
        f"Sandbox cost per check: **{report['sandbox_extra_seconds']:+.2f} s** (median difference).",
        "",
    ]
    provenance.write_results("check_sandbox", report, "\n".join(lines), started)
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
