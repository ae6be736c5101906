"""Shadow scoring end to end: real ``git push`` into a host made by the real installer, whose model directory
the whole stack serves (RabbitMQ, Celery worker, gunicorn, nginx, all really started), under a bounded loop of
API requests.

- a shadow run under load that ends in a promote;
- a promote refused by thresholds (the shadow stays, nothing switches);
- broken shadows (raising, hanging, tampered bytes) never change an answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from model_serving import artifact, releases
from model_serving.development_server.deploy import deploy_command
from model_serving.process_stack.stack import Stack
from model_serving.production_server import shadow, shadow_log, shadow_report
from synthetic.versions import make_versions
from tests.support import (
    DEPLOY_KEYS,
    Host,
    broken_version,
    five_rows,
    install_host,
    require_stack_tools,
    start_stack,
    wait_until,
)

pytestmark = pytest.mark.integration

#: The load loop's bound: it stops here even if the test never says stop.
MAX_REQUESTS = 4000
#: Pause between two requests (~8/s: well under nginx's test rate limit of 20 r/s).
PACE = 0.12


@dataclass
class Load:
    """A bounded loop of API requests in a thread; every answer's status and model version is kept."""

    url: str
    answers: list[tuple[int, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        bodies = [json.dumps({"repositories": five_rows(seed)}) for seed in range(3, 13)]
        with requests.Session() as session:
            for index in range(MAX_REQUESTS):
                if self.stop.is_set():
                    return
                try:
                    response = session.post(f"{self.url}/api/v1/predict", data=bodies[index % len(bodies)],
                                            headers={"Content-Type": "application/json"}, timeout=30)
                    version = response.json().get("model_version") if response.ok else None
                    self.answers.append((response.status_code, version))
                except requests.RequestException as exc:
                    self.answers.append((0, type(exc).__name__))
                time.sleep(PACE)

    def finish(self) -> list[tuple[int, str | None]]:
        self.stop.set()
        self.thread.join(timeout=60)
        return list(self.answers)

    def wait_for(self, version: str, timeout: float = 90) -> None:
        wait_until(lambda: any(v == version for _, v in self.answers[-5:]), timeout,
                   f"answers from {version}")


@dataclass
class Served:
    host: Host
    stack: Stack
    models: Path
    versions: list[str]
    repo: Path

    def deploy(self, *args: str) -> tuple[int, str]:
        argv = [*args, "--models", str(self.models), "--repo", str(self.repo), "--remote", self.host.url]
        result = CliRunner().invoke(deploy_command, argv, catch_exceptions=False)
        return result.exit_code, result.output


@pytest.fixture(scope="module")
def model_versions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_versions(tmp_path_factory.mktemp("shadow-models"), 3)


@pytest.fixture
def served(tmp_path: Path, model_versions: list[Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """A host serving the first version (deployed by git push) and the whole stack on its model directory."""
    require_stack_tools()
    monkeypatch.setenv(artifact.SIGNING_KEY_ENV, DEPLOY_KEYS.signing_text)
    for name in (artifact.SIGNING_KEY_FILE_ENV, "STARGAZER_DEPLOY_REMOTES", "STARGAZER_DEPLOY_REPO",
                 "STARGAZER_APP_DIR", "STARGAZER_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    host = install_host(tmp_path, "prod1", DEPLOY_KEYS.write_public(tmp_path / "deploy_public_key"))
    names = [v.name for v in model_versions]
    first = Served(host, None, model_versions[0].parent, names, tmp_path / "deploy.git")  # type: ignore[arg-type]
    code, output = first.deploy("--version", names[0])
    assert code == 0, output
    stack = start_stack(tmp_path / "stack", host.model_dir,
                        env={artifact.PUBLIC_KEY_ENV: DEPLOY_KEYS.public_text})
    try:
        first.stack = stack
        yield first
    finally:
        stack.stop()


def test_a_shadow_run_under_load_ends_in_a_promote(served: Served) -> None:
    v0, v1 = served.versions[0], served.versions[1]
    load = Load(served.stack.url)
    try:
        load.wait_for(v0)
        code, output = served.deploy("--version", v1, "--shadow-requests", "25", "--shadow", "10",
                                     "--poll", "1")
        assert code == 0, output
        assert "request(s) scored by both models" in output  # progress while waiting
        report_lines = output[output.index(f"shadow report of {v1}:"):]
        assert f"shadow {v1} beside {v0}" in report_lines
        assert "log ratio ln(1+shadow)-ln(1+serving): p10" in report_lines
        assert "rank agreement over" in report_lines and "Spearman mean" in report_lines
        assert "scoring ms per request: serving p50" in report_lines and "shadow p50" in report_lines
        assert releases.current_version(served.host.model_dir) == v0
        shadowing = len(load.answers)

        code, output = served.deploy("--promote", "--if-shadow-within",
                                     "min_requests=25,max_error_rate=0,min_rank_agreement=-1")
        assert code == 0, output
        assert "within min_requests=25, max_error_rate=0, min_rank_agreement=-1 on every host" in output
        assert f"switched prod1: current -> {v1}" in output
        load.wait_for(v1)
    finally:
        answers = load.finish()
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:5]
    versions = [v for _, v in answers]
    assert set(versions[:shadowing]) == {v0}  # the shadow never answered
    switched = versions.index(v1)
    assert set(versions[switched:]) == {v1} and set(versions[:switched]) == {v0}
    assert not (served.host.model_dir / releases.SHADOW_LINK).is_symlink()
    assert served.host.ref("refs/stargazer/shadow") is None
    lines = list(shadow_log.read(shadow_log.path_for(served.host.model_dir), shadow_version=v1, since=0))
    assert len(lines) >= 25
    assert all(line["serving_version"] == v0 and line["error"] is None and len(line["shadow"]) == 5
               for line in lines)


def test_a_promote_refused_by_thresholds_switches_nothing(served: Served) -> None:
    v0, v2 = served.versions[0], served.versions[2]
    load = Load(served.stack.url)
    try:
        load.wait_for(v0)
        code, output = served.deploy("--version", v2, "--shadow-requests", "10", "--shadow", "10",
                                     "--poll", "1")
        assert code == 0, output
        code, output = served.deploy("--promote", "--if-shadow-within",
                                     "max_error_rate=0,max_abs_log_diff_p50=0.000001")
        assert code == 1, output
        error = output.strip().splitlines()[-1]
        assert error.startswith(
            f"Error: not promoted: the shadow of {v2} is not within the thresholds: "
            f"{served.host.url}: max_abs_log_diff_p50=1e-06: median |log ratio| is "), error
        assert "max_error_rate" not in error
        assert releases.current_version(served.host.model_dir) == v0
        assert releases.shadow_version(served.host.model_dir) == v2
        code, output = served.deploy("--shadow-stop")
        assert code == 0 and f"shadow cleared on prod1 (was {v2})" in output, output
    finally:
        answers = load.finish()
    assert answers and all(answer == (200, v0) for answer in answers), set(answers)


def test_broken_shadows_never_change_an_answer(served: Served, tmp_path: Path) -> None:
    v0, v1 = served.versions[0], served.versions[1]
    model_dir = served.host.model_dir
    log_path = shadow_log.path_for(model_dir)
    load = Load(served.stack.url)
    try:
        load.wait_for(v0)

        raising = broken_version(tmp_path / "broken", "raise", DEPLOY_KEYS.signing)
        releases.install_shadow(raising, model_dir)
        since = time.time() - 1
        def lines_about(version: str) -> list[dict]:
            return list(shadow_log.read(log_path, shadow_version=version, since=since))

        wait_until(lambda: len(lines_about(raising.name)) >= 5, 90, "shadow lines about the raising model")
        report = shadow_report.build(shadow_log.read(log_path, shadow_version=raising.name, since=since),
                                     shadow_version=raising.name, serving_version=v0, since=since, host="h")
        assert report["requests"] == 0 and report["error_rate"] == 1.0
        assert "failed to predict: RuntimeError: the shadow model exploded" in report["first_error"]

        tampered = tmp_path / "tampered" / v1
        tampered.parent.mkdir()
        for name in (artifact.MANIFEST_FILE, artifact.MODEL_FILE):
            (tampered / name).parent.mkdir(exist_ok=True)
            (tampered / name).write_bytes((served.models / v1 / name).read_bytes())
        artifact.sign_version(tampered, DEPLOY_KEYS.signing)
        release = releases.install_shadow(tampered, model_dir)
        joblib_path = release / artifact.MODEL_FILE
        joblib_path.chmod(0o644)
        with joblib_path.open("r+b") as handle:  # one byte changed on disk after the install
            handle.seek(100)
            byte = handle.read(1)
            handle.seek(100)
            handle.write(bytes([byte[0] ^ 0xFF]))
        since = time.time() - 1
        wait_until(lambda: len(lines_about(v1)) >= 3, 90, "shadow lines about the tampered release")
        [first, *_] = shadow_log.read(log_path, shadow_version=v1, since=since)
        assert first["shadow"] is None and "sha256" in first["error"] and "not loaded" in first["error"]

        hanging = broken_version(tmp_path / "hanging", "hang", DEPLOY_KEYS.signing)
        releases.install_shadow(hanging, model_dir)
        worker_log = served.stack.workers[0].log_file
        wait_until(lambda: "shadow scoring has been running for" in worker_log.read_text(errors="replace"),
                   shadow.STUCK_SECONDS + 90, "the worker logging the stuck shadow")
        before = len(load.answers)
        wait_until(lambda: len(load.answers) >= before + 10, 60, "answers while the shadow hangs")
        releases.clear_shadow(model_dir)
    finally:
        answers = load.finish()
    assert answers and all(answer == (200, v0) for answer in answers), set(answers)
