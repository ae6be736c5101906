"""When, on which code and on how busy a machine a benchmark ran: the one place every bench script stamps
and writes its results.

A figure without its date, commit and load cannot be judged stale or noisy, and README/docs quote these
files (docs/benchmarks.md). Each script calls `capture()` before it measures and `write_results()` at the
end; the JSON gets a `provenance` object, the Markdown a line under its title.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
# The result files themselves change while benchmarks run; they do not make the measured code dirty.
_NOT_CODE = ":(exclude)bench/results"


def _git(*args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return completed.stdout.strip()


def capture() -> dict[str, Any]:
    """The provenance of a measurement that starts now (call it before measuring: the load is at start)."""
    return {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git("rev-parse", "--short=10", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", _NOT_CODE)),
        "cores": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def markdown_line(provenance: dict[str, Any]) -> str:
    """One sentence naming the date, code version and machine, for the top of a result's Markdown."""
    commit = provenance["commit"] + (" with uncommitted changes" if provenance["dirty"] else "")
    one, five, _ = provenance["load_average_start"]
    inferred = provenance.get("inferred")
    return (
        f"Provenance: measured {provenance['measured_at']} on commit `{commit}`, "
        f"{provenance['cores']} cores, "
        f"load average {one:.2f} (1 min) / {five:.2f} (5 min) at the start"
        + (f" (not recorded by the run: {inferred})." if inferred else ".")
    )


def write_results(
    name: str, report: dict[str, Any], markdown: str, provenance: dict[str, Any], results: Path = RESULTS
) -> Path:
    """Write bench/results/<name>.json (provenance first) and <name>.md (provenance under the title)."""
    results.mkdir(parents=True, exist_ok=True)
    stamped = {"provenance": provenance, **{k: v for k, v in report.items() if k != "provenance"}}
    path = results / f"{name}.json"
    path.write_text(json.dumps(stamped, indent=2) + "\n")
    lines = markdown.rstrip("\n").split("\n")
    stamp = markdown_line(provenance)
    if lines and lines[0].startswith("# "):
        lines[1:1] = ["", stamp]
    else:
        lines[0:0] = [stamp, ""]
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    return path
