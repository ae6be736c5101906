"""The prediction log rotates by size so the disk never fills: N old files kept, no line lost or torn, even
with several processes writing at once (as gunicorn's workers do)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from model_serving.production_server import prediction_log
from model_serving.production_server.settings import ServingSettings


def _entry(number: int, writer: int = 0) -> dict[str, object]:
    return {"writer": writer, "number": number, "padding": "x" * 150}


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_writing_past_the_limit_rotates_and_keeps_n_files(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    for number in range(200):
        assert prediction_log.append(log, [_entry(number)], max_bytes=2000, backups=3)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("predictions.jsonl."))
    assert names == [f"predictions.jsonl.{suffix}" for suffix in ("1", "2", "3", "lock")]
    files = [prediction_log.rotated_name(log, i) for i in (3, 2, 1)] + [log]
    assert all(0 < f.stat().st_size <= 2000 for f in files)
    kept = [e["number"] for f in files for e in _lines(f)]
    # Oldest first across .3, .2, .1 and the live file: the newest entries, contiguous, ending with the last.
    assert kept == list(range(200 - len(kept), 200))
    assert len(kept) >= 3 * (2000 // 200)


def test_rotation_off_and_no_backups(tmp_path: Path) -> None:
    unbounded = tmp_path / "unbounded.jsonl"
    for number in range(50):
        prediction_log.append(unbounded, [_entry(number)], max_bytes=0)
    assert len(_lines(unbounded)) == 50 and not prediction_log.rotated_name(unbounded, 1).exists()
    truncated = tmp_path / "truncated.jsonl"
    for number in range(50):
        prediction_log.append(truncated, [_entry(number)], max_bytes=1000, backups=0)
    assert truncated.stat().st_size <= 1000 and not prediction_log.rotated_name(truncated, 1).exists()
    assert _lines(truncated)[-1]["number"] == 49


WRITER = """
import sys
from pathlib import Path
from model_serving.production_server import prediction_log
log, writer, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for number in range(count):
    entries = [{"writer": writer, "number": number, "padding": "x" * 150}] * (1 + number % 3)
    assert prediction_log.append(log, entries, max_bytes=4096, backups=10_000)
"""


def test_processes_writing_at_once_lose_and_tear_no_line(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    writers, count = 4, 300
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(w), str(count)]) for w in range(writers)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * writers
    files = [log, *tmp_path.glob("predictions.jsonl.[0-9]*")]
    seen: dict[tuple[object, object], int] = {}
    for path in files:
        for entry in _lines(path):  # json.loads fails on a torn or interleaved line
            key = (entry["writer"], entry["number"])
            seen[key] = seen.get(key, 0) + 1
        # A writer that opened the file just before a rotation finishes its one write into the rotated file.
        assert path.stat().st_size <= 4096 + 3 * 200 * (writers - 1), path
    assert seen == {(w, n): 1 + n % 3 for w in range(writers) for n in range(count)}
    assert len(files) > 10  # it did rotate, many times


def test_settings_read_the_rotation_limits(tmp_path: Path) -> None:
    settings = ServingSettings.from_env({
        "STARGAZER_STATE_DIR": str(tmp_path),
        "STARGAZER_PREDICTION_LOG_MAX_BYTES": "1048576",
        "STARGAZER_PREDICTION_LOG_BACKUPS": "2",
    })
    assert (settings.prediction_log_max_bytes, settings.prediction_log_backups) == (1048576, 2)
    default = ServingSettings.from_env({"STARGAZER_STATE_DIR": str(tmp_path)})
    assert default.prediction_log_max_bytes == prediction_log.DEFAULT_MAX_BYTES
