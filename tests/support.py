"""Helpers shared by the test packages (fixtures live in conftest.py files): service requirements
(docs/contracts.md §7), ports, waiting, shared data paths, the serving tests' models, rows, workers and
stacks, and the deploy tests' hosts and pushes.

The synthetic data and model versions themselves are in ``synthetic/`` (the benchmarks use them too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor

from data_collection.dataset import render_csv
from data_collection.schema import DATASET_COLUMNS
from data_collection.settings import Settings as GitHubSettings
from data_collection.simulator import SimulatorServer
from model_serving import artifact, features, releases
from model_serving.process_stack.services import CeleryWorker, RabbitMQ, rabbitmq_available
from model_serving.process_stack.stack import Stack, StackConfig
from model_serving.production_server import prediction_log
from model_serving.production_server.observability import DETAIL_HEADER
from model_serving.production_server.settings import ServingSettings
from synthetic.dataset import synthetic_dataset
from synthetic.versions import NO_TUNING, build_tiny_version, placeholder_metrics

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RAW_API_PAGES = SHARED_DATA / "Data-Engineering-II-Project" / "raw_api_pages"

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    """Skip when a real service/tool is missing locally; fail in CI, where a missing service is a defect."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI but missing: {what}")
    pytest.skip(f"missing: {what}")


def require_executable(name: str, *candidates: str) -> str:
    """Return the path of an executable (PATH or given absolute candidates), or skip/fail per require()."""
    found = shutil.which(name) or next((c for c in candidates if Path(c).exists()), None)
    require(found is not None, f"executable {name}")
    return str(found)


def require_root(what: str) -> None:
    require(os.geteuid() == 0, f"root for {what}")


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """Shared data may be absent (then skip, even in CI): it is never copied into the repo."""
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    return path


def free_port() -> int:
    """An unused TCP port on loopback (each test service gets its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: Ray forwards its workers' output to the driver with a "(<task or actor> pid=N[, ip=A])" prefix (coloured on
#: a terminal). In a CLI's captured output those lines can land anywhere, even after the CLI's last line.
_RAY_FORWARDED = re.compile(r"^(\x1b\[[0-9;]*m)?\((\S+ )?pid=\d+(, ip=[0-9.]+)?\)")


def own_lines(output: str) -> list[str]:
    """A command's own output lines, without Ray's forwarded worker-log lines or trailing blanks."""
    lines = [line for line in output.strip().splitlines() if not _RAY_FORWARDED.match(line)]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


#: The tokens the simulator tests' simulators accept.
SIMULATOR_TOKENS = ("tok-a", "tok-b", "tok-c")

#: Starts a private GitHub simulator (``SimulatorServer`` keyword arguments), stopped at teardown.
MakeSim = Callable[..., SimulatorServer]


def bearer(token: str = SIMULATOR_TOKENS[0]) -> dict[str, str]:
    """The Authorization header a GitHub client sends for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def poll_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; once ``timeout`` has passed,
    return its last (falsy) answer. For waits that may end either way (a grace period before a SIGKILL)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy (and return that), else fail naming ``what``.

    Timeouts are generous on purpose: the tests run on a busy two-core machine.
    """
    value = poll_until(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    return value


# ------------------------------------------------------------------------------------------------------------
# Serving: signed models and their installation
# ------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DeployKeys:
    """An Ed25519 deploy key pair as the vault holds it (base64 text), and as the code takes it."""

    signing_text: str
    public_text: str

    @classmethod
    def generate(cls) -> DeployKeys:
        return cls(*artifact.generate_key_pair())

    @property
    def signing(self) -> Ed25519PrivateKey:
        """What ``deploy`` signs with (``artifact.sign_version``)."""
        return artifact.parse_signing_key(self.signing_text)

    @property
    def public(self) -> bytes:
        """What hooks, workers and web processes verify with (``artifact.verify_signature``)."""
        return artifact.parse_public_key(self.public_text)

    def write_public(self, path: Path) -> Path:
        """The public key file, as the deploy_key role writes it on a production host."""
        path.write_text(self.public_text + "\n", encoding="utf-8")
        path.chmod(0o644)
        return path


#: The deploy key pair every test signs with (``DEPLOY_KEYS.signing``) and gives its hooks, workers, web
#: processes and stacks to verify with (``DEPLOY_KEYS.public``, or ``public_text`` in their environment).
DEPLOY_KEYS = DeployKeys.generate()
#: Another pair: what it signs, a host holding DEPLOY_KEYS' public key must refuse.
OTHER_DEPLOY_KEYS = DeployKeys.generate()


@dataclasses.dataclass(frozen=True)
class Models:
    """Two signed versions (v1, v2) ready to be installed as releases."""

    v1: Path
    v2: Path


def install(model_dir: Path, version_dir: Path) -> str:
    """Install a version as the served release the way post-receive does (extracted next to ``model_dir``,
    then moved in) and return its name. ``version_dir`` itself is left as it was."""
    staged = model_dir.parent / f"staged-{version_dir.name}-{time.monotonic_ns()}"
    shutil.copytree(version_dir, staged)
    releases.install_release(staged, model_dir, actor="tests", move=True)
    return version_dir.name


def install_signed_tiny_model(root: Path) -> tuple[Path, str]:
    """A tiny forest, signed with DEPLOY_KEYS and installed as ``root/production/current``."""
    version_dir = build_tiny_version(root / "models")
    artifact.sign_version(version_dir, DEPLOY_KEYS.signing)
    model_dir = root / "production"
    return model_dir, install(model_dir, version_dir)


def block_while_gate(gate: str, seconds: float) -> None:
    """Called by the unpickler of a ``gated_load_version`` model: blocks while the file ``gate`` exists.

    The wait is interruptible: Celery's soft time limit (a signal whose handler raises) ends it, as it would
    end a genuinely slow ``joblib.load`` of a big model on a busy disk. Removing the gate ends it too.
    """
    deadline = time.monotonic() + seconds
    while Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class BlockWhileGate:
    """Pickled as a call of ``block_while_gate``: unpickling the model it is attached to runs that call."""

    def __init__(self, gate: Path, seconds: float) -> None:
        self.gate = str(gate)
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, tuple[str, float]]:
        return block_while_gate, (self.gate, self.seconds)


def gated_load_version(models_dir: Path, signing_key: Ed25519PrivateKey, gate: Path, seconds: float,
                       seed: int = 7) -> Path:
    """A signed tiny model whose loading blocks ``seconds`` while the file ``gate`` exists, else is quick.

    The model itself is sound (signature, sha256, predictions): a store that gives up on it after an
    interrupted load has judged the release on something that was not the release's fault.
    """
    version_dir = build_tiny_version(models_dir, seed=seed)
    model_file = version_dir / artifact.MODEL_FILE
    pipeline = joblib.load(model_file)
    pipeline.load_gate = BlockWhileGate(gate, seconds)
    joblib.dump(pipeline, model_file, compress=3)
    manifest = artifact.read_manifest(version_dir)
    digest = artifact.sha256_of(model_file)
    artifact.write_manifest(version_dir, manifest.model_copy(update={"sha256": digest}))
    artifact.sign_version(version_dir, signing_key)
    return version_dir


class BrokenRegressor(RegressorMixin, BaseEstimator):
    """Fits like a model; predicting raises (``mode="raise"``) or blocks for ``seconds`` (``mode="hang"``).

    It lives in an importable module because the Celery workers (cwd: the checkout) unpickle it.
    """

    def __init__(self, mode: str = "raise", seconds: float = 600.0) -> None:
        self.mode = mode
        self.seconds = seconds

    def fit(self, X: Any, y: Any) -> BrokenRegressor:
        self.n_features_in_ = np.shape(X)[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        if self.mode == "hang":
            time.sleep(self.seconds)
        raise RuntimeError("the shadow model exploded")


def broken_version(models_dir: Path, mode: str, signing_key: Ed25519PrivateKey) -> Path:
    """A signed version whose regressor is a BrokenRegressor (not compilable: scikit-learn's path runs it).

    Pre-receive would refuse it (the canned-sample check predicts with it), so the shadow tests install it
    with ``releases.install_shadow``, the function post-receive calls after the checks: what is tested is the
    worker's side, which must survive whatever the shadow does.
    """
    data = synthetic_dataset(50, 5)
    pipeline = features.build_pipeline(BrokenRegressor(mode))
    pipeline.fit(features.select_input(data), features.target_of(data))
    version = artifact.write_version(
        pipeline, models_dir,
        dataset={"path": "synthetic", "sha256": "0" * 64, "rows": 50},
        metrics={"protocol": "test fixture: a broken model", "cv": placeholder_metrics(0.0),
                 "holdout": placeholder_metrics(0.0)},
        params={}, tuning=NO_TUNING, baseline={},
    )
    artifact.sign_version(version, signing_key)
    return version


#: Rows of the training data a ``version_with_training_data`` ships.
TRAINING_ROWS = 1500


def version_with_training_data(root: Path, signing_key: Ed25519PrivateKey, *, rows: int = TRAINING_ROWS,
                               seed: int = 1, now: datetime | None = None,
                               holdout: dict[str, float] | None = None) -> Path:
    """A version written as training writes it (with ``dataset_file``), signed as deploy signs it.

    The model itself is a constant (drift never runs it); the training rows are the synthetic dataset's.
    """
    frame = synthetic_dataset(rows, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    dataset = root / f"repos-{seed}.csv"
    dataset.write_bytes(render_csv(json_rows(frame)))
    metrics = holdout or {"r2_log": 0.5, "r2": 0.4, "mae": 1.0, "rmse": 1.5, "spearman": 0.7}
    version = artifact.write_version(
        DummyRegressor().fit([[0]], [1]), root / "models",
        dataset={"path": str(dataset), "sha256": "0" * 64, "rows": rows},
        metrics={"protocol": "test", "cv": metrics, "holdout": metrics}, params={},
        tuning=NO_TUNING, baseline={}, dataset_file=dataset, now=now,
    )
    artifact.sign_version(version, signing_key)
    return version


# ------------------------------------------------------------------------------------------------------------
# Serving: what clients send
# ------------------------------------------------------------------------------------------------------------

#: Where tests leave what a person would rather look at (screenshots); git-ignored, CI keeps it.
TEST_ARTIFACTS = Path(os.environ.get("STARGAZER_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def chromium_page(**context: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page of headless Chromium (Debian's, driven by Playwright), and the console errors it logs.

    ``context`` goes to ``new_context`` (e.g. ``ignore_https_errors=True`` for a self-signed certificate).
    """
    chromium = require_executable("chromium", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "python package playwright")
        raise
    TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 1000}, **context).new_page()
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            yield page, console_errors
        finally:
            browser.close()


#: What nginx sends for a client in nginx_readyz_detail_allow: /readyz answers with the worker's detail.
READYZ_DETAIL = {DETAIL_HEADER: "1"}

CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Dataset rows as a JSON client sends them (and the API logs them): JSON types, null (never NaN) for
    unknown values, booleans for flags."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for row in rows:
        for key, value in row.items():
            if value in ("true", "false"):
                row[key] = value == "true"
            elif hasattr(value, "item"):
                row[key] = value.item()
    return rows


def request_rows(count: int = 5, seed: int = 9) -> list[dict[str, Any]]:
    """``count`` synthetic repositories as a JSON client describes them."""
    return json_rows(synthetic_dataset(count, seed=seed))


def five_rows(seed: int = 3) -> list[dict[str, Any]]:
    """Five repositories described by their dataset columns (JSON-ready), two with their actual stars."""
    rows = json_rows(synthetic_dataset(rows=5, seed=seed).loc[:, list(DATASET_COLUMNS)])
    for index, row in enumerate(rows):
        row["full_name"] = f"example/repo-{index}"
        if index >= 2:
            row.pop("stargazers_count")
    return rows


def unshifted_requests(count: int, seed: int = 2) -> list[dict[str, Any]]:
    """Repositories drawn from the training distribution (another sample of it)."""
    return json_rows(synthetic_dataset(count, seed=seed))


def shifted_requests(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """People now ask about much more forked, younger repositories: three features move, the rest do not."""
    frame = synthetic_dataset(count, seed=seed)
    frame["forks_count"] = frame["forks_count"] * 25 + 500
    collected = pd.Timestamp("2026-11-01T00:00:00Z")
    young = collected - pd.to_timedelta(frame.index.to_series() % 60 + 1, unit="D")
    frame["created_at"] = young.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()
    frame["pushed_at"] = frame["collected_at"]
    return json_rows(frame)


def write_requests(log: Path, rows: list[dict[str, Any]], version: str, *, batch: int = 5,
                   max_bytes: int = 150_000, backups: int = 20,
                   start: datetime = datetime(2026, 11, 2, tzinfo=UTC)) -> None:
    """Append ``rows`` to a prediction log as the web process does, ``batch`` per request, rotating small
    files."""
    for offset in range(0, len(rows), batch):
        now = start + timedelta(seconds=offset)
        entries = [prediction_log.record(model_version=version, inputs=row, predicted=100.0,
                                         interval=(50.0, 200.0), actual=None, source="given", now=now)
                   for row in rows[offset:offset + batch]]
        assert prediction_log.append(log, entries, max_bytes=max_bytes, backups=backups)


def csrf_token(client: FlaskClient) -> str:
    page = client.get("/")
    assert page.status_code == 200
    return page_csrf_token(page.get_data(as_text=True))


def page_csrf_token(html: str) -> str:
    """The CSRF token of the form page ``html`` (what a browser posts back)."""
    match = CSRF_INPUT.search(html)
    assert match, "the form page carries no CSRF token"
    return match.group(1)


def hand_typed_rows(forks: Sequence[int] = (10, 5000, 40, 300, 2)) -> list[dict[str, Any]]:
    """Rows a person describes by hand in the form, differing only in forks (so the ranking is known)."""
    return [{"language": "Python", "forks_count": count, "open_issues_count": 3, "size": 2000,
             "topics_count": 2, "created_at": "2020-01-01", "pushed_at": "2026-10-01", "owner_type": "User",
             "has_issues": True}
            for count in forks]


def form_data(rows: list[dict[str, Any]], token: str | None) -> dict[str, str]:
    """The browser's POST body for up to five rows (``{"full_name": ..., "forks_count": ...}`` each)."""
    data: dict[str, str] = {}
    if token is not None:
        data["csrf_token"] = token
    for index, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, bool):
                if value:
                    data[f"rows-{index}-{name}"] = "y"
            elif value is not None:
                data[f"rows-{index}-{name}"] = str(value)
    return data


# ------------------------------------------------------------------------------------------------------------
# Serving: real brokers, workers, apps and whole stacks
# ------------------------------------------------------------------------------------------------------------


def start_broker(state_dir: Path) -> RabbitMQ:
    require(rabbitmq_available(), "rabbitmq-server (scripts/install_system_deps.sh)")
    broker = RabbitMQ(state_dir)
    broker.start()
    try:
        broker.wait_ready(60)
    except Exception:
        broker.stop()
        raise
    return broker


def worker_env(broker_url: str, model_dir: Path, state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "STARGAZER_BROKER_URL": broker_url,
        "STARGAZER_MODEL_DIR": str(model_dir),
        "STARGAZER_DEPLOY_PUBLIC_KEY": DEPLOY_KEYS.public_text,
        "STARGAZER_STATE_DIR": str(state_dir),
        "STARGAZER_PREDICTION_LOG": str(state_dir / "worker-predictions.jsonl"),
        # Lookups never reach the real GitHub from a test: an address where nothing listens.
        "GITHUB_API_URL": f"http://127.0.0.1:{free_port()}",
        **extra,
    }


WorkerFactory = Callable[..., CeleryWorker]


class Workers:
    """Starts real ``celery worker`` processes under ``root``; ``stop_all`` stops each by its pid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[CeleryWorker] = []

    def start(self, broker_url: str, model_dir: Path, *, concurrency: int = 1, wait: bool = True,
              **env: str) -> CeleryWorker:
        index = len(self.started)
        state = self.root / f"worker-{index}"
        worker = CeleryWorker(state, concurrency=concurrency, index=index,
                              env=worker_env(broker_url, model_dir, state, **env))
        self.started.append(worker)
        worker.start()
        if wait:
            worker.wait_ready(60)
        return worker

    def stop_all(self) -> None:
        for worker in reversed(self.started):
            with contextlib.suppress(Exception):
                # Cold shutdown first (SIGQUIT to the worker's own pid): a test has nothing in flight worth
                # the seconds of a warm one. stop() then makes sure the whole process group is gone.
                record = worker.record()
                if record is not None and record.alive():
                    os.kill(record.pid, signal.SIGQUIT)
                worker.stop(timeout=10)


def app_settings(broker_url: str, model_dir: Path, tmp_path: Path, **overrides: Any) -> ServingSettings:
    github = GitHubSettings(api_url=overrides.pop("github_url", f"http://127.0.0.1:{free_port()}"))
    # Tests change the broker, worker or model between two /readyz calls: each call probes afresh unless a
    # test is about the cache.
    overrides.setdefault("ready_cache_seconds", 0.0)
    return ServingSettings(
        broker_url=broker_url,
        model_dir=model_dir,
        deploy_public_key=DEPLOY_KEYS.public,
        prediction_log=tmp_path / "predictions.jsonl",
        secret_key="test-secret-key",
        github=github,
        **overrides,
    )


AppFactory = Callable[..., Flask]

#: Limits low enough that a test can reach them, high enough that the other tests never do.
TEST_LIMIT = {"nginx_limit_req_rate": "20r/s", "nginx_limit_req_burst": 30}


def require_stack_tools() -> None:
    require_executable("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
    require_executable("nginx", "/usr/sbin/nginx")


def start_stack(state_dir: Path, model_dir: Path, **overrides: Any) -> Stack:
    """The whole serving stack for real (RabbitMQ -> Celery worker -> gunicorn -> nginx), one of each unless
    ``overrides`` say otherwise; every process dies with the test run."""
    env = {
        "STARGAZER_DEPLOY_PUBLIC_KEY": DEPLOY_KEYS.public_text,
        # Name lookups must never reach the real GitHub from a test: an address where nothing listens.
        "GITHUB_API_URL": f"http://127.0.0.1:{free_port()}",
        **overrides.pop("env", {}),
    }
    config = StackConfig(
        state_dir=state_dir,
        model_dir=model_dir,
        celery_workers=1,
        celery_concurrency=1,
        gunicorn_workers=1,
        gunicorn_threads=4,
        nginx_variables=dict(TEST_LIMIT, **overrides.pop("nginx_variables", {})),
        env=env,
        die_with_parent=True,  # a killed test run leaves no broker, worker, gunicorn or nginx behind
        **overrides,
    )
    return Stack(config).start(timeout=60)


def queue_counts(broker: RabbitMQ, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of a queue, as RabbitMQ itself counts them."""
    result = broker.ctl("list_queues", "-p", broker.vhost, "-q", "--no-table-headers",
                        "name", "messages_ready", "messages_unacknowledged")
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    return 0, 0


def worker_hostname(worker: CeleryWorker) -> str:
    """The node name a worker answers remote-control queries under."""
    return worker.hostname.replace("%h", socket.gethostname())


def inspect_worker(app: Flask, worker: CeleryWorker) -> Any:
    """Remote-control queries to this one worker (others on the same broker must not answer)."""
    return app.extensions["celery"].control.inspect(timeout=5, destination=[worker_hostname(worker)])


def one_reply(replies: dict[str, Any] | None) -> Any:
    """The only worker's answer to a remote-control query."""
    assert replies and len(replies) == 1, replies
    return next(iter(replies.values()))


def switch_current(model_dir: Path, release: Path) -> None:
    """Point ``current`` at a release directory the way releases.py does (relative symlink, rename)."""
    tmp = model_dir / ".current-switch"
    os.symlink(Path("releases") / release.name, tmp)
    os.replace(tmp, model_dir / "current")


def metric_sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of Prometheus exposition text (labels in any order); 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0

# ------------------------------------------------------------------------------------------------------------
# Deploy: production hosts made by the real installer, and crafted pushes
# ------------------------------------------------------------------------------------------------------------

INSTALL_SH = REPO_ROOT / "githooks" / "install.sh"
CHECK_TIMEOUT = 60.0  # generous for a loaded 2-core CI machine; the time-limit case sets its own


@dataclasses.dataclass(frozen=True)
class Host:
    """One production host: a bare repository with the hooks, and its STARGAZER_MODEL_DIR."""

    name: str
    repo: Path
    model_dir: Path

    @property
    def url(self) -> str:
        return str(self.repo)

    def current(self) -> str | None:
        return releases.current_version(self.model_dir)

    def log(self) -> list[dict]:
        return releases.read_deploy_log(self.model_dir)

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", f"--git-dir={self.repo}", *args], capture_output=True, text=True, check=False
        )

    def ref(self, name: str) -> str | None:
        result = self.git("rev-parse", "--verify", "--quiet", name)
        return result.stdout.strip() or None

    def set(self, key: str, value: str) -> None:
        self.git("config", "--local", key, value)


def install_host(
    root: Path, name: str, public_key_file: Path, *, keep: int = 5, probe: bool = False,
    extra: Sequence[str] = ()
) -> Host:
    """Run the real installer (githooks/install.sh), as Ansible does (``extra``: more installer options)."""
    repo, model_dir = root / name / "models.git", root / name / "var-models"
    result = subprocess.run(
        [
            str(INSTALL_SH),
            "--repo",
            str(repo),
            "--model-dir",
            str(model_dir),
            "--public-key-file",
            str(public_key_file),
            "--keep",
            str(keep),
            "--check-timeout",
            f"{CHECK_TIMEOUT:g}",
            "--prune-expire",
            "now",
            "--host-name",
            name,
            "--probe" if probe else "--no-probe",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("changed=true")
    return Host(name, repo, model_dir)


def stargazer_lines(text: str) -> list[str]:
    """The hooks' lines as the pusher sees them, without git's ``remote:`` prefix."""
    return [line.removeprefix("remote:").strip() for line in text.splitlines() if "stargazer:" in line]


def signed_copy(
    version: Path, into: Path, *, keys: DeployKeys = DEPLOY_KEYS, edit: dict | None = None
) -> Path:
    """A copy of a version, its manifest optionally edited, then signed (as a deploy would sign it)."""
    target = into / version.name
    shutil.copytree(version, target)
    if edit:
        data = json.loads((target / "model.json").read_text())
        data.update(edit)
        (target / "model.json").write_text(json.dumps(data))
    artifact.sign_version(target, keys.signing)
    return target


class PickledCall:
    """Pickles as a call to ``func(*args)``: what a hostile or broken model.joblib does when loaded."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return (self.func, self.args)


def with_model_bytes(version: Path, into: Path, payload: bytes, name: str, *, sign: bool = True) -> Path:
    """A copy of ``version`` named ``name``, model.joblib replaced by ``payload``, sha256 updated, signed."""
    target = into / name
    shutil.copytree(version, target)
    (target / "model.joblib").write_bytes(payload)
    data = json.loads((target / "model.json").read_text())
    data.update(version=name, sha256=artifact.sha256_of(target / "model.joblib"))
    (target / "model.json").write_text(json.dumps(data))
    if sign:
        artifact.sign_version(target, DEPLOY_KEYS.signing)
    return target


@dataclasses.dataclass
class Pusher:
    """Builds deploy-shaped commits with plumbing in a scratch repository and pushes them."""

    repo: Path

    def git(self, *args: str, input_text: str | None = None) -> str:
        result = subprocess.run(
            ["git", f"--git-dir={self.repo}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=True,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t",
            },
        )
        return result.stdout.strip()

    def commit(self, files: dict[str, Path | bytes]) -> str:
        entries = []
        for name, content in sorted(files.items()):
            if isinstance(content, Path):
                oid = self.git("hash-object", "-w", "--", str(content))
            else:
                oid = self.git("hash-object", "-w", "--stdin", input_text=content.decode("latin-1"))
            entries.append(f"100644 blob {oid}\t{name}\n")
        tree = self.git("mktree", input_text="".join(entries))
        return self.git("commit-tree", tree, "-m", "crafted")

    def push(self, host: Host, refspecs: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", f"--git-dir={self.repo}", "push", "--porcelain", host.url, *refspecs],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def version_files(version: Path) -> dict[str, Path | bytes]:
    return {"model.joblib": version / "model.joblib", "model.json": version / "model.json"}
