"""The load-and-predict check of a pushed model, run in a SEPARATE, unprivileged, time-limited process.

Why a separate process: unpickling runs code. pre-receive has already checked the HMAC signature and the
sha256 (so the bytes come from whoever holds the deploy secret), but a signed model can still be broken: it
may fail to load, hang, or blow up on prediction. Running the load in a child lets the hook kill it after
``stargazer.checktimeout`` seconds, and when the hook runs as root the child runs as ``stargazer.checkuser``
(``nobody`` by default, through ``setpriv`` with no new privileges), with a scrubbed environment that holds
no deploy secret, so even a malicious pickle signed by mistake can read and write very little.

Parent side: :func:`run_check`. Child side: ``python -m githooks.check_model <version_dir>``, which prints one
JSON line on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": "<one line>"}``).
"""

from __future__ import annotations

import json
import math
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SAMPLE_FILE: Final = Path(__file__).with_name("canned_sample.json")
_MAX_ERROR: Final = 300


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str  # one line: the failure, or a summary of the success
    seconds: float
    details: dict[str, Any]


def unprivileged_prefix(user: str | None) -> list[str]:
    """``setpriv`` arguments that drop root to ``user`` (empty when not root or no user is configured)."""
    if os.geteuid() != 0 or not user:
        return []
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"check user {user!r} does not exist on this host") from None
    return [
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
        "--",
    ]


def run_check(
    version_dir: Path, *, python: Path, app_dir: Path, user: str | None, timeout: float
) -> CheckResult:
    """Load ``version_dir``'s model and predict the canned sample in a child process; never raises."""
    started = time.perf_counter()
    try:
        prefix = unprivileged_prefix(user)
    except ValueError as exc:
        return CheckResult(False, str(exc), 0.0, {})
    with tempfile.TemporaryDirectory(prefix="stargazer-check-home-") as home:
        if prefix:  # the unprivileged child's own HOME/TMPDIR (joblib and matplotlib want one)
            entry = pwd.getpwnam(str(user))
            os.chown(home, entry.pw_uid, entry.pw_gid)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(app_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        command = [*prefix, str(python), "-m", "githooks.check_model", str(version_dir)]
        try:
            child = subprocess.Popen(
                command,
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout kills everything it started
            )
        except OSError as exc:
            return CheckResult(False, f"cannot start the model check: {exc.strerror}", 0.0, {})
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return CheckResult(
                False,
                f"model did not load and predict the canned sample within {timeout:g} s (killed)",
                time.perf_counter() - started,
                {},
            )
    seconds = time.perf_counter() - started
    report = _last_json_line(out.decode("utf-8", "replace"))
    if report is not None and report.get("ok") is True:
        message = (
            f"loads and predicts the canned sample ({report.get('rows')} rows) in {seconds:.1f} s"
            f"{' as ' + user if prefix else ''}"
        )
        return CheckResult(True, message, seconds, report)
    if report is not None and report.get("error"):
        return CheckResult(False, _one_line(str(report["error"])), seconds, report)
    last_err = (err.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
    return CheckResult(
        False, _one_line(f"model check exited with code {child.returncode}: {last_err}"), seconds, {}
    )


def _last_json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_ERROR else flat[: _MAX_ERROR - 1] + "…"


def check(version_dir: Path) -> dict[str, Any]:
    """Child side: load and predict (no signature check: the parent did it; the child holds no secret)."""
    import pandas as pd

    from model_serving import artifact, features

    started = time.perf_counter()
    pipeline, manifest = artifact.load_version(version_dir, None, require_signature=False)
    loaded = time.perf_counter()
    rows = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    frame = pd.DataFrame(rows)
    try:
        point, low, high = features.predict_with_interval(pipeline, frame)
    except Exception as exc:  # any failure of a foreign model is reported, not raised
        raise artifact.ArtifactError(
            f"model cannot predict the canned sample: {type(exc).__name__}: {exc}"
        ) from None
    values = [float(v) for v in (*point, *low, *high)]
    if len(point) != len(rows) or len(low) != len(rows) or len(high) != len(rows):
        raise artifact.ArtifactError(f"model returned {len(point)} predictions for {len(rows)} rows")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise artifact.ArtifactError("model predicts negative or non-finite stars for the canned sample")
    if any(lo > hi for lo, hi in zip(low, high, strict=True)):
        raise artifact.ArtifactError("model's interval is inverted (p10 > p90) on the canned sample")
    return {
        "ok": True,
        "version": manifest.version,
        "rows": len(rows),
        "predictions": [round(float(v), 3) for v in point],
        "load_seconds": round(loaded - started, 3),
        "predict_seconds": round(time.perf_counter() - loaded, 3),
        "uid": os.getuid(),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(json.dumps({"ok": False, "error": "usage: python -m githooks.check_model <version_dir>"}))
        return 2
    try:
        report = check(Path(argv[1]))
    except Exception as exc:
        message = str(exc) if type(exc).__name__ == "ArtifactError" else f"{type(exc).__name__}: {exc}"
        print(json.dumps({"ok": False, "error": _one_line(message)}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
