"""The load-and-predict check of a pushed model, run in a SEPARATE, sandboxed, time-limited process.

Why a separate process: unpickling runs code. pre-receive has already checked the HMAC signature and the
sha256 (so the bytes come from whoever holds the deploy secret), but a signed model can still be broken or
hostile: it may fail to load, hang, eat memory, or try to read the secret, rewrite ``current`` or phone home.
So the child runs through ``githooks/check-sandbox`` (as root, or through the one sudo rule that
``githooks/install.py`` writes for the deploy user) as ``stargazer.checkuser``: a dedicated account outside
the deploy user's group that can read no secret and write no model directory, with no network (an empty
network namespace), in its own PID namespace, under address-space, CPU and wall-clock limits. The model
reaches it on stdin (the lengths of ``model.json`` and of the dataset snapshot, those two, then
``model.joblib``; the snapshot goes along: the child validates the version as a whole), so it needs no
access to the hook's files at all. With ``stargazer.checkuser`` empty (a development machine without root)
the child runs as the hook's own user with the same limits but no user or network isolation.

With a quality gate on the host (``githooks/gate.py``), the same child also scores the pushed model and the
serving one on the frozen evaluation set: the bundle then carries the eval set and the serving release's
model.json and model.joblib too (read by the hook, like the pushed model: the check user reads no file of the
host's). The serving model is scored first and its numbers printed on their own line BEFORE the pushed pickle
is unpickled, so a hostile pushed model cannot rewrite them.

Parent side: :func:`run_check`. Child side: ``python -m githooks.check_model --stdin`` (or ``<version_dir>``),
which prints one JSON line on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": "<one line>"}``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

SAMPLE_FILE: Final = Path(__file__).with_name("canned_sample.json")
SANDBOX_SCRIPT: Final = Path(__file__).with_name("check-sandbox")
_MAX_ERROR: Final = 300
_MAX_MANIFEST: Final = 1 << 20
_MAX_SNAPSHOT: Final = 1 << 30
_MAX_EVALSET: Final = 1 << 28
_MAX_SERVING_MODEL: Final = 1 << 33
_KILLED: Final = (124, 137, -signal.SIGKILL, 128 + signal.SIGXCPU, -signal.SIGXCPU)
_BACKSTOP_SECONDS: Final = 20  # on top of the sandbox's own limit (its timeout, then SIGKILL 5 s later)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str  # one line: the failure, or a summary of the success
    seconds: float
    details: dict[str, Any]


@dataclass(frozen=True)
class GateInputs:
    """What the child needs to score models: the eval set, and the serving release (None: first model)."""

    evalset: Path
    serving: Path | None


@dataclass(frozen=True)
class Received:
    """The child's copy of the bundle: the pushed version's directory, and the gate's inputs if any."""

    version_dir: Path
    evalset: Path | None = None
    serving: Path | None = None


@dataclass(frozen=True)
class Sandbox:
    """How the check child is started: who runs it, with which interpreter and code, within which limits."""

    user: str | None  # None: the hook's own user, no isolation (development machines only)
    python: Path
    app_dir: Path
    memory_mb: int
    script: Path = SANDBOX_SCRIPT

    def fixed_arguments(self) -> list[str]:
        """Everything the sudo rule pins: the script and its arguments before SECONDS."""
        return [str(self.script), str(self.user), str(self.python), str(self.app_dir), str(self.memory_mb)]

    def command(self, seconds: int) -> list[str]:
        if not self.user:
            return [
                "prlimit",
                f"--as={self.memory_mb * 1024 * 1024}",
                f"--cpu={seconds}",
                "--core=0",
                str(self.python),
                "-m",
                "githooks.check_model",
                "--stdin",
            ]
        sandboxed = [*self.fixed_arguments(), str(seconds)]
        return sandboxed if os.geteuid() == 0 else ["sudo", "-n", *sandboxed]


def write_bundle(version_dir: Path, bundle: Path, gate_inputs: GateInputs | None = None) -> None:
    """What the child reads on stdin: a header line of sizes, the files in that order, then model.joblib.

    Header "<model.json> <snapshot>" (the snapshot is 0 bytes when the version ships none; the installer's
    probe sends only the first number), or with a quality gate "<model.json> <snapshot> <evalset> <serving
    model.json> <serving model.joblib>" (the serving sizes are 0 for the first model on a host). The pushed
    model.joblib is the rest of the stream."""
    from model_serving import artifact

    manifest = (version_dir / artifact.MANIFEST_FILE).read_bytes()
    snapshot = version_dir / artifact.SNAPSHOT_FILE
    parts: list[Path] = [snapshot] if snapshot.is_file() else []
    sizes = [len(manifest), snapshot.stat().st_size if snapshot.is_file() else 0]
    if gate_inputs is not None:
        parts.append(gate_inputs.evalset)
        sizes.append(gate_inputs.evalset.stat().st_size)
        if gate_inputs.serving is not None:
            serving = [gate_inputs.serving / name for name in (artifact.MANIFEST_FILE, artifact.MODEL_FILE)]
            parts += serving
            sizes += [path.stat().st_size for path in serving]
        else:
            sizes += [0, 0]
    with bundle.open("wb") as out:
        out.write((" ".join(map(str, sizes)) + "\n").encode())
        out.write(manifest)
        for part in [*parts, version_dir / artifact.MODEL_FILE]:
            with part.open("rb") as data:
                shutil.copyfileobj(data, out, 1 << 20)


def run_check(
    version_dir: Path, *, sandbox: Sandbox, timeout: float, gate_inputs: GateInputs | None = None
) -> CheckResult:
    """Load ``version_dir``'s model and predict the canned sample in a sandboxed child; never raises.

    With ``gate_inputs``, the child also scores it (and the serving model) on the eval set:
    ``details["gate"]`` then holds ``pushed`` and ``serving`` scores (or ``serving_error``)."""
    started = time.perf_counter()
    seconds = max(1, math.ceil(timeout))
    what = "load and predict the canned sample" + (" and score the evaluation set" if gate_inputs else "")
    with tempfile.TemporaryDirectory(prefix="stargazer-check-") as scratch:
        bundle = Path(scratch) / "bundle"
        write_bundle(version_dir, bundle, gate_inputs)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(sandbox.app_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": scratch,
            "TMPDIR": scratch,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        with bundle.open("rb") as stdin:
            outcome = _run(sandbox.command(seconds), stdin, env, seconds + _BACKSTOP_SECONDS, what)
    elapsed = time.perf_counter() - started
    if isinstance(outcome, str):
        return CheckResult(False, outcome, elapsed, {})
    returncode, out, err = outcome
    if returncode in _KILLED:
        return CheckResult(False, f"model did not {what} within {seconds} s (killed)", elapsed, {})
    report = _last_json_line(out)
    if report is not None and report.get("ok") is True and gate_inputs is not None:
        # The serving model's line is the child's FIRST: printed before the pushed pickle was loaded.
        first = _first_json_line(out) or {}
        report["gate"] = {**(first.get("serving") or {}), "pushed": report.get("gate_pushed")}
    if report is not None and report.get("ok") is True:
        where = f" as {sandbox.user}, no network" if sandbox.user else " (no sandbox user)"
        message = (
            f"loads and predicts the canned sample ({report.get('rows')} rows) in {elapsed:.1f} s{where}"
        )
        return CheckResult(True, message, elapsed, report)
    if report is not None and report.get("error"):
        return CheckResult(False, _one_line(str(report["error"])), elapsed, report)
    last_err = (err.strip().splitlines() or ["no output"])[-1]
    return CheckResult(
        False, _one_line(f"model check exited with code {returncode}: {last_err}"), elapsed, {}
    )


def _run(
    command: list[str], stdin: IO[bytes], env: dict[str, str], deadline: float, what: str
) -> tuple[int, str, str] | str:
    """Run the child; (returncode, stdout, stderr), or a one-line reason it could not run to the end."""
    try:
        child = subprocess.Popen(
            command,
            env=env,
            cwd="/",
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills everything it started
        )
    except OSError as exc:
        return f"cannot start the model check ({command[0]}): {exc.strerror}"
    try:
        out, err = child.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        _kill(child)
        child.communicate()
        return f"model did not {what} within {deadline:g} s (killed)"
    return child.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _kill(child: subprocess.Popen[bytes]) -> None:
    """The sandbox kills by itself; this backstop reaches what the hook's user may signal (sudo relays it)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except PermissionError:
        child.terminate()
    except ProcessLookupError:
        pass


def _json_objects(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The lines that are JSON objects; the child's other output (warnings, tracebacks) is passed over."""
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value


def _last_json_line(text: str) -> dict[str, Any] | None:
    return next(_json_objects(reversed(text.strip().splitlines())), None)


def _first_json_line(text: str) -> dict[str, Any] | None:
    return next(_json_objects(text.strip().splitlines()), None)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_ERROR else flat[: _MAX_ERROR - 1] + "…"


def check(version_dir: Path, evalset: Path | None = None, serving: Path | None = None) -> dict[str, Any]:
    """Child side: load and predict (no signature check: the parent did it; the child holds no secret).

    With ``evalset``: first the serving model's scores (printed at once, see the module's docstring), then the
    pushed model's, in ``gate_pushed``."""
    import pandas as pd

    from githooks import gate
    from model_serving import artifact, features

    started = time.perf_counter()
    evaluation = None
    if evalset is not None:
        artifact.validate_version(version_dir, None, require_signature=False)  # refused before any scoring
        evaluation = gate.read_evalset(evalset)
        print(json.dumps({"serving": _serving_scores(serving, evaluation)}), flush=True)
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
    report: dict[str, Any] = {
        "ok": True,
        "version": manifest.version,
        "rows": len(rows),
        "predictions": [round(float(v), 3) for v in point],
        "load_seconds": round(loaded - started, 3),
        "predict_seconds": round(time.perf_counter() - loaded, 3),
        "uid": os.getuid(),
    }
    if evaluation is not None:
        try:
            scores = gate.score(pipeline, evaluation)
        except Exception as exc:  # a foreign model failing on real rows is a refusal, said in one line
            raise artifact.ArtifactError(
                f"model cannot predict the evaluation set: {type(exc).__name__}: {exc}"
            ) from None
        report["gate_pushed"] = dataclasses.asdict(scores)
    return report


def _serving_scores(serving: Path | None, frame: Any) -> dict[str, Any]:
    """The serving model's scores, or why it has none (then the gate judges by the floors)."""
    from githooks import gate

    if serving is None:
        return {}
    try:
        pipeline, version = gate.load_serving(serving)
        scores = gate.score(pipeline, frame)
    except Exception as exc:  # an unusable serving model must not block the push of its replacement
        return {"serving_error": _one_line(f"{type(exc).__name__}: {exc}")}
    return {"serving": dataclasses.asdict(scores), "serving_version": version}


def receive(stream: IO[bytes], into: Path) -> Received:
    """Child side of :func:`write_bundle`: model.json, the snapshot (if any), model.joblib into ``into``; the
    eval set and the serving model (if sent) into ``into/gate/``."""
    from githooks import gate
    from model_serving import artifact

    header = stream.readline(128)
    try:
        sizes = [int(part) for part in header.split()]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2, 5):
        raise ValueError("the model bundle on stdin has no length line")
    sizes += [0] * (5 - len(sizes))
    size, snapshot_size, evalset_size, serving_manifest_size, serving_model_size = sizes
    if not 0 < size <= _MAX_MANIFEST:
        raise ValueError(f"the model bundle announces a model.json of {size} bytes")
    if not 0 <= snapshot_size <= _MAX_SNAPSHOT:
        raise ValueError(f"the model bundle announces a dataset snapshot of {snapshot_size} bytes")
    if not (0 <= evalset_size <= _MAX_EVALSET and 0 <= serving_manifest_size <= _MAX_MANIFEST
            and 0 <= serving_model_size <= _MAX_SERVING_MODEL):
        raise ValueError("the model bundle announces gate files of impossible sizes")
    if bool(serving_manifest_size) != bool(serving_model_size) or (serving_model_size and not evalset_size):
        raise ValueError("the model bundle announces half a serving model")
    manifest = stream.read(size)
    if len(manifest) != size:
        raise ValueError("the model bundle on stdin ends inside model.json")
    (into / artifact.MANIFEST_FILE).write_bytes(manifest)
    _copy_exactly(stream, into / artifact.SNAPSHOT_FILE, snapshot_size, "the dataset snapshot")
    received = Received(into)
    if evalset_size:
        gate_dir = into / "gate"
        (gate_dir / "serving").mkdir(parents=True)
        evalset = gate_dir / gate.EVALSET_FILE
        _copy_exactly(stream, evalset, evalset_size, "the evaluation set")
        serving = gate_dir / "serving" if serving_model_size else None
        if serving is not None:
            _copy_exactly(
                stream, serving / artifact.MANIFEST_FILE, serving_manifest_size, "the serving model.json"
            )
            _copy_exactly(stream, serving / artifact.MODEL_FILE, serving_model_size, "the serving model")
        received = Received(into, evalset, serving)
    with (into / artifact.MODEL_FILE).open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return received


def _copy_exactly(stream: IO[bytes], target: Path, size: int, what: str) -> None:
    """``size`` bytes of the stream into ``target`` (nothing written for 0)."""
    if not size:
        return
    with target.open("wb") as data:
        remaining = size
        while remaining:
            chunk = stream.read(min(remaining, 1 << 20))
            if not chunk:
                raise ValueError(f"the model bundle on stdin ends inside {what}")
            data.write(chunk)
            remaining -= len(chunk)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(
            json.dumps({"ok": False, "error": "usage: python -m githooks.check_model --stdin|<version_dir>"})
        )
        return 2
    try:
        if argv[1] == "--stdin":
            received = receive(sys.stdin.buffer, Path(tempfile.mkdtemp(prefix="version-")))
        else:
            received = Received(Path(argv[1]))
        report = check(received.version_dir, received.evalset, received.serving)
    except Exception as exc:
        plain = type(exc).__name__ in ("ArtifactError", "GateError")
        message = str(exc) if plain else f"{type(exc).__name__}: {exc}"
        print(json.dumps({"ok": False, "error": _one_line(message)}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
