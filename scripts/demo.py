"""``make demo`` / ``make demo-stop`` / ``make serve``: the operator's path, with every tier on this machine.

    python -m scripts.demo run     # converge site.yml on inventory/demo.yml, collect, evalset, train, deploy,
                                   # serve
    python -m scripts.demo serve   # converge, deploy the newest trained model if none is served, serve
    python -m scripts.demo stop    # supervisorctl shutdown of the demo's supervisord (every program it runs)

What each stage runs is what an operator runs on a real fleet: ``ansible-playbook site.yml`` configures every
tier (here: one host, connection local, ``inventory/demo.yml``); then, as the stargazer user of the
development host, with the settings Ansible wrote (``stargazer.env``): collect from GitHub (the simulator
Ansible started), hold a sample of the collection out of training as the quality gate's frozen evaluation
set (a second ``site.yml`` converge installs it on the production host: ``githooks_evalset_file``), train on
the rest on the Ray head Ansible started (``RAY_ADDRESS``), and deploy by ``git push`` into the production
host's deploy repository, whose hooks validate the model, score it on the evaluation set (the gate) and switch
the release nginx, gunicorn and the Celery workers serve. Each stage prints one line; the commands' own
output goes to ``var/demo/logs/``. The environment is read in ``demo_settings.py`` only.

A second run reuses what is there: the converge changes nothing, a finished dataset made with the same
simulator and sizes is kept, so is the evaluation set held out of it (``var/demo/evalset/demo-key.json``), and
a model trained on the same dataset with the same trials and seed is deployed again instead of being retrained
(``models/demo-trained.json`` records which).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests
import yaml

from scripts.demo_settings import DemoSettings

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "inventory" / "demo.yml"
PLAYBOOKS = ROOT / "playbooks"
BIN = Path(sys.executable).parent
STAGES = 6
SIMULATOR_PROGRAM = "stargazer-github-simulator"


class DemoError(click.ClickException):
    """A stage that failed: one line, the log to read, exit status 1."""


@dataclass(frozen=True)
class Sizes:
    """How much the demo collects and trains (small enough for 10 minutes on 2 cores)."""

    min_stars: int
    max_repos: int
    trials: int
    seed: int
    held_out: int | None = None  # repositories of the gate's evaluation set (None: a tenth, at least 40)


@dataclass(frozen=True)
class Host:
    """The all-in-one host as inventory/demo.yml describes it (the one source of its paths and ports)."""

    inventory: Path
    vars: dict[str, Any]

    @classmethod
    def load(cls, path: Path = INVENTORY) -> Host:
        inventory = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls(path.resolve(), inventory["all"]["hosts"]["localhost"])

    def get(self, name: str) -> Any:
        """A host variable, with the two templates the inventory uses for paths resolved."""
        value = self.vars[name]
        if not isinstance(value, str):
            return value
        resolved = value.replace("{{ inventory_dir | dirname }}", str(self.inventory.parent.parent))
        if "{{ demo_root }}" in resolved:
            resolved = resolved.replace("{{ demo_root }}", str(self.get("demo_root")))
        return resolved

    def path(self, name: str) -> Path:
        return Path(self.get(name))

    @property
    def logs(self) -> Path:
        """The stages' logs: var/demo/logs/."""
        return self.path("demo_root") / "logs"

    @property
    def user(self) -> str:
        return str(self.get("stargazer_user"))

    @property
    def home(self) -> Path:
        return self.path("stargazer_home")

    @property
    def python(self) -> Path:
        return self.path("stargazer_app_dir") / ".venv" / "bin" / "python"

    @property
    def supervisor_config(self) -> Path:
        return self.path("supervisor_config_file")

    @property
    def https_port(self) -> int | None:
        port = self.vars.get("nginx_https_listen")
        return int(port) if port else None

    @property
    def url(self) -> str:
        if self.https_port:
            return f"https://127.0.0.1:{self.https_port}/"
        return f"http://127.0.0.1:{self.get('stargazer_http_port')}/"

    @property
    def certificate(self) -> Path:
        return self.path("nginx_conf_dir") / "tls" / "stargazer.crt"

    @property
    def deploy_repo(self) -> Path:
        return self.path("githooks_repo_dir")

    @property
    def evalset_dir(self) -> Path:
        """The controller's copy of the gate's evaluation set (the inventory's githooks_evalset_file)."""
        return self.path("demo_evalset_dir")


def log_path(host: Host, name: str) -> Path:
    host.logs.mkdir(parents=True, exist_ok=True)
    return host.logs / f"{name}.log"


def shown(path: Path) -> str:
    """A path as the reader should type it: relative to the checkout when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


class Stage:
    """One line per stage: its number and what it does, then (on the same line) the outcome and time."""

    def __init__(self, number: int, name: str, doing: str) -> None:
        self.started = time.monotonic()
        click.echo(f"[{number}/{STAGES}] {name:<8} {doing} ... ", nl=False)

    def done(self, outcome: str, log: Path | None = None) -> None:
        where = f"; log {shown(log)}" if log else ""
        click.echo(f"{outcome} ({time.monotonic() - self.started:.0f} s{where})")


def run_logged(argv: Sequence[str], log: Path, *, cwd: Path, env: dict[str, str], what: str,
               append: bool = False) -> str:
    """Run a command with its output in ``log``; on failure end the demo with its last line."""
    started = time.monotonic()
    with log.open("a" if append else "w", encoding="utf-8") as handle:
        handle.write(f"$ {shlex.join(argv)}\n")
        # Each line stamped with the seconds since the start: the log says where the time went.
        with subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") as process:
            assert process.stdout is not None
            for line in process.stdout:
                handle.write(f"{time.monotonic() - started:7.1f}s {line}")
        returncode = process.wait()
    text = log.read_text(encoding="utf-8", errors="replace")
    if returncode != 0:
        click.echo("failed")
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
        reason = last[0].strip()[:300]
        raise DemoError(f"{what} failed (exit {returncode}): {reason} -- see {shown(log)}")
    return text


# --- stage 1: Ansible ---------------------------------------------------------------------------------------

# Lines of the log carry a time stamp ("  12.3s ") before ansible's own text.
RECAP = re.compile(r"^\s*[0-9.]+s localhost\s+:\s+ok=\d+\s+changed=(\d+)\s", re.M)


def ansible_playbook(host: Host, playbook: str, log: Path, *, append: bool = False) -> str:
    """Run a playbook of playbooks/ on the demo's inventory; returns the recap's changed count."""
    env = DemoSettings.from_env().ansible_environment(
        str(BIN), ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    text = run_logged([str(BIN / "ansible-playbook"), "-i", str(host.inventory), playbook], log,
                      cwd=PLAYBOOKS, env=env, what=f"ansible-playbook {playbook}", append=append)
    recap = RECAP.findall(text.rsplit("PLAY RECAP", 1)[-1])
    return recap[-1] if recap else "?"


def converge(host: Host) -> None:
    stage = Stage(1, "converge", f"ansible-playbook -i {shown(host.inventory)} site.yml (all tiers here)")
    log = log_path(host, "converge")
    # The inventory finds the evaluation set there (an empty directory: no gate yet, and no warning).
    host.evalset_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    changed = ansible_playbook(host, "site.yml", log)
    stage.done(f"ok, changed={changed}", log)


# --- running as the stargazer user, with the settings Ansible wrote -----------------------------------------

def stargazer_env(host: Host, **extra: str) -> dict[str, str]:
    """stargazer.env (what Ansible configured for shells on the host) plus ``extra``, nothing of root's."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(host.home),
           "PYTHONUNBUFFERED": "1"}
    env_file = host.path("stargazer_config_dir") / "stargazer.env"
    for line in env_file.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            env[name] = shlex.split(value)[0] if value else ""
    env.update(extra)
    return env


def as_stargazer(host: Host, argv: Sequence[str]) -> list[str]:
    """The command run as the service user (root only: the demo creates that user)."""
    runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"
    return [runuser, "-u", host.user, "--", *argv]


def stargazer_run(host: Host, argv: Sequence[str], log: Path, what: str, **extra: str) -> str:
    return run_logged(as_stargazer(host, [str(host.python), *argv]), log, cwd=host.home,
                      env=stargazer_env(host, **extra), what=what)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- stage 2: collection ------------------------------------------------------------------------------------

def collection_key(host: Host, sizes: Sizes) -> str:
    """What makes a finished dataset reusable: the simulator (its program line) and the collection sizes."""
    program = host.path("supervisor_conf_dir") / f"{SIMULATOR_PROGRAM}.conf"
    command = next((line for line in program.read_text(encoding="utf-8").splitlines()
                    if line.startswith("command=")), "")
    source = json.dumps([command, sizes.min_stars, sizes.max_repos])
    return hashlib.sha256(source.encode()).hexdigest()


def collect(host: Host, sizes: Sizes) -> Path:
    dataset = host.home / "data" / "repos.csv"
    meta_file = dataset.with_name(dataset.name + ".meta.json")
    stamp = dataset.with_name(dataset.name + ".demo-key")
    key = collection_key(host, sizes)
    stage = Stage(2, "collect", f"repositories with >= {sizes.min_stars} stars (top {sizes.max_repos}) "
                                f"from the GitHub simulator")
    log = log_path(host, "collect")
    if dataset.exists() and meta_file.exists() and stamp.exists() and stamp.read_text().strip() == key:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        stage.done(f"reused {shown(dataset)}: {meta['rows']} rows")
        return dataset
    argv = ["-m", "data_collection", "collect", "--min-stars", str(sizes.min_stars),
            "--max-repos", str(sizes.max_repos), "--out", "data/repos.csv", "--workers", "4", "--resume",
            "--no-progress"]
    tokens = str(host.path("stargazer_config_dir") / "github_tokens")
    run_as_user_mkdir(host, host.home / "data")
    try:
        stargazer_run(host, argv, log, "collection", GITHUB_TOKENS_FILE=tokens)
    except DemoError:
        if "was made with other parameters" not in log.read_text(encoding="utf-8", errors="replace"):
            raise
        # An interrupted collection of another simulator or other sizes: its progress cannot be reused.
        for leftover in dataset.parent.glob("repos.csv.checkpoint.sqlite*"):
            leftover.unlink()
        click.echo("(an earlier checkpoint had other parameters: collecting afresh) ... ", nl=False)
        stargazer_run(host, argv, log, "collection", GITHUB_TOKENS_FILE=tokens)
    stamp.write_text(key + "\n", encoding="utf-8")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    calls = sum(meta["api_calls"].values()) if isinstance(meta["api_calls"], dict) else meta["api_calls"]
    stage.done(f"{meta['rows']} rows, {calls} API calls", log)
    return dataset


def run_as_user_mkdir(host: Host, path: Path) -> None:
    subprocess.run(as_stargazer(host, ["mkdir", "-p", str(path)]), check=True)


# --- stage 3: the quality gate's evaluation set ------------------------------------------------------------

EVALSET_MADE = re.compile(r"evaluation set (\S+\.csv\.gz): (\d+) repositories")
MIN_HELD_OUT = 40  # the gate needs 20 rows; 40 keep its Spearman from being mostly noise on the test's sizes


def repository_names(path: Path) -> set[str]:
    """The ``full_name`` column of a dataset CSV, gzipped or not, case-folded as GitHub compares names."""
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    return {row["full_name"].casefold() for row in csv.DictReader(io.StringIO(text)) if row.get("full_name")}


def installed_evalset(host: Host) -> str | None:
    """The evaluation set the production host's hooks check pushes against (git config stargazer.evalset)."""
    result = subprocess.run(["git", "config", "--file", str(host.deploy_repo / "config"), "--get",
                             "stargazer.evalset"], capture_output=True, text=True, check=False)
    return Path(result.stdout.strip()).name if result.returncode == 0 else None


def reusable_evalset(host: Host, key: str, training: Path) -> Path | None:
    """The evaluation set made earlier from the same collection and sizes, if the training file is intact."""
    stamp = host.evalset_dir / "demo-key.json"
    if not stamp.exists() or not training.exists():
        return None
    made = json.loads(stamp.read_text(encoding="utf-8"))
    evalset = host.evalset_dir / str(made.get("evalset"))
    if made.get("key") != key or not evalset.is_file() or made.get("training") != file_digest(training):
        return None
    return evalset


def hold_out_evalset(host: Host, dataset: Path, sizes: Sizes) -> tuple[Path, Path]:
    """Hold a seeded sample of the collection out of training as the gate's evaluation set, and have the
    githooks role install it on the production host; returns (the training dataset, the evaluation set).

    The rest of the collection becomes ``data/train.csv``, the only file training reads, so no repository of
    the set is ever trained on. The form's example names stay in training: the demo shows them answered from
    the served dataset."""
    collected = int(json.loads(dataset.with_name(dataset.name + ".meta.json").read_text())["rows"])
    rows = sizes.held_out or max(MIN_HELD_OUT, collected // 10)
    stage = Stage(3, "evalset", f"hold {rows} of {collected} repositories out of training (quality gate)")
    if collected < 2 * rows:
        click.echo("failed")
        raise DemoError(f"only {collected} repositories collected: too few to hold {rows} out of training "
                        "(collect more with --max-repos, or hold fewer out with --held-out)")
    log = log_path(host, "evalset")
    training = dataset.with_name("train.csv")
    examples = example_names(host)
    key = json.dumps({"dataset": file_digest(dataset), "rows": rows, "seed": sizes.seed,
                      "kept_in_training": examples}, sort_keys=True)
    evalset = reusable_evalset(host, key, training)
    made = evalset is None
    if evalset is None:
        keep = host.evalset_dir / "kept-in-training.csv"
        keep.write_text("full_name\n" + "".join(f"{name}\n" for name in examples), encoding="utf-8")
        text = stargazer_run(host, ["-m", "model_serving.development_server", "evalset", "--from",
                                    str(dataset.relative_to(host.home)), "--exclude", str(keep), "--rows",
                                    str(rows), "--seed", str(sizes.seed), "--out", "data",
                                    "--rest-out", str(training.relative_to(host.home))], log, "evalset")
        found = EVALSET_MADE.search(text)
        if found is None:
            raise DemoError(f"the evalset command named no evaluation set; see {shown(log)}")
        # The controller's copy, root's like the inventory: what the githooks role installs on the host.
        evalset = host.evalset_dir / Path(found.group(1)).name
        shutil.move(host.home / found.group(1), evalset)
        os.chown(evalset, 0, 0)
        evalset.chmod(0o644)
        (host.evalset_dir / "demo-key.json").write_text(
            json.dumps({"key": key, "evalset": evalset.name, "training": file_digest(training)}) + "\n",
            encoding="utf-8")
    for older in host.evalset_dir.glob("evalset-*.csv.gz"):
        if older != evalset:
            older.unlink()
    trained_on = int(json.loads(training.with_name(training.name + ".meta.json").read_text())["rows"])
    gate = "gate on"
    if installed_evalset(host) != evalset.name:
        # The whole site.yml, as stage 1: a play alone would template shared files (stargazer.env, the
        # form's example names) without what the other plays set, and the next converge would change them.
        changed = ansible_playbook(host, "site.yml", log, append=made)
        if installed_evalset(host) != evalset.name:
            raise DemoError(f"site.yml did not install {evalset.name} (git config stargazer.evalset of "
                            f"{shown(host.deploy_repo)}); see {shown(log)}")
        gate = f"gate on (site.yml changed={changed})"
    what = f"{'reused' if not made else 'wrote'} {shown(evalset)}, {trained_on} left to train on; {gate}"
    stage.done(what, log if made or gate != "gate on" else None)
    return training, evalset


# --- stage 4: training on the Ray head ----------------------------------------------------------------------

def wait_for_port(host: str, port: int, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise DemoError(f"{what} does not listen on {host}:{port} after {deadline_s:.0f} s") from None
            time.sleep(0.5)


def feature_version(host: Host) -> int:
    """FEATURE_VERSION of the code the hosts run (a model of another one would be refused at deploy)."""
    result = subprocess.run(
        as_stargazer(host, [str(host.python), "-c",
                            "from model_serving.features import FEATURE_VERSION; print(FEATURE_VERSION)"]),
        env=stargazer_env(host), cwd=host.home, capture_output=True, text=True, check=True,
    )
    return int(result.stdout.strip())


def train(host: Host, dataset: Path, sizes: Sizes) -> str:
    ray_address = stargazer_env(host).get("RAY_ADDRESS", "")
    stage = Stage(4, "train", f"screening + Ray Tune ({sizes.trials} trials) on the Ray head {ray_address}")
    models = host.home / "models"
    record = models / "demo-trained.json"
    key = json.dumps({"dataset": file_digest(dataset), "trials": sizes.trials, "seed": sizes.seed,
                      "feature_version": feature_version(host)}, sort_keys=True)
    if record.exists():
        previous = json.loads(record.read_text(encoding="utf-8"))
        if previous.get("key") == key and (models / previous["version"] / "model.json").exists():
            stage.done(f"reused model {previous['version']} (same dataset, trials, seed)")
            return str(previous["version"])
    host_part, _, port = ray_address.rpartition(":")
    wait_for_port(host_part, int(port), 180, "the Ray head")
    log = log_path(host, "train")
    stargazer_run(host, ["-m", "model_serving.development_server", "train", "--data",
                         str(dataset.relative_to(host.home)),
                         "--trials", str(sizes.trials), "--out", "models/", "--seed", str(sizes.seed)],
                  log, "training")
    newest = max((p for p in models.iterdir() if (p / "model.json").exists()), key=lambda p: p.name)
    manifest = json.loads((newest / "model.json").read_text(encoding="utf-8"))
    record.write_text(json.dumps({"key": key, "version": newest.name}) + "\n", encoding="utf-8")
    nodes = manifest.get("tuning", {}).get("nodes", "?")
    r2 = manifest.get("metrics", {}).get("holdout", {}).get("r2_log")
    score = f", held-out R² (log) {r2:.3f}" if isinstance(r2, float) else ""
    stage.done(f"model {newest.name} ({nodes} Ray node{'s' if nodes != 1 else ''}{score})", log)
    return newest.name


# --- stage 5: deploy by git push ----------------------------------------------------------------------------

def deploy(host: Host, version: str, number: int = 5, evalset: Path | None = None) -> None:
    stage = Stage(number, "deploy", f"git push {version} to {shown(host.deploy_repo)} (pre-receive checks, "
                                    "post-receive switches)")
    log = log_path(host, "deploy")
    argv = ["-m", "model_serving.development_server", "deploy", "--version", version,
            "--remote", str(host.deploy_repo)]
    current = host.path("stargazer_model_dir") / "current"
    reason = stale_gate_reason(current, version, evalset)
    if reason:
        argv += ["--override-gate", reason]
    # The demo's one service account also signs (inventory/demo.yml: the signing key's group is stargazer),
    # and keeps the deploy repository (the signed commits, the rollback history) in its own home.
    stargazer_run(host, argv, log, "deploy",
                  STARGAZER_DEPLOY_SIGNING_KEY_FILE=str(host.path("deploy_client_signing_key_file")),
                  STARGAZER_DEPLOY_REPO=str(host.home / "var" / "deploy.git"))
    served = current.resolve().name if current.exists() else None
    if served != version:
        raise DemoError(f"deploy ended but {shown(current)} is {served}, not {version}; see {shown(log)}")
    stage.done(f"serving {version}{gate_summary(host, version)}", log)


def stale_gate_reason(current: Path, version: str, evalset: Path | None) -> str | None:
    """Why the gate may be overridden: the serving model was trained on the evaluation set (a demo from before
    it held one out), so its scores on it are not a fair bar. None: let the gate judge."""
    dataset = current / "dataset.csv.gz"
    if evalset is None or not dataset.exists() or current.resolve().name == version:
        return None
    if not repository_names(dataset) & repository_names(evalset):
        return None
    return (f"the serving model {current.resolve().name} was trained on repositories of {evalset.name} "
            "(deployed before the demo held an evaluation set out)")


def gate_summary(host: Host, version: str) -> str:
    """The quality gate's numbers for ``version`` as its release record keeps them (the deploy log)."""
    log = host.path("stargazer_model_dir") / "deploy-log.jsonl"
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    gate = next((entry["gate"] for entry in reversed(entries)
                 if entry.get("version") == version and isinstance(entry.get("gate"), dict)), None)
    if gate is None or not isinstance(gate.get("pushed"), dict):
        return "; no quality gate scores"
    pushed = gate["pushed"]
    return (f"; gate {gate.get('decision')}: Spearman {pushed['spearman']:.2f}, "
            f"MAE log {pushed['mae_log']:.2f}, coverage {pushed['coverage']:.2f} "
            f"on {gate.get('rows')} held-out repositories")


# --- stage 6: serving ---------------------------------------------------------------------------------------

def served_answer(host: Host, version: str, number: int = 6) -> list[str]:
    """Wait until nginx answers with ``version`` and a name is predicted; return the example names."""
    stage = Stage(number, "serve", f"nginx -> gunicorn -> RabbitMQ -> Celery at {host.url}")
    # Per request, not on a Session: requests lets REQUESTS_CA_BUNDLE override a session's verify.
    verify: str | bool = str(host.certificate) if host.https_port else True
    deadline = time.monotonic() + 180
    ready: dict[str, Any] | str = {}
    while time.monotonic() < deadline:
        try:
            ready = requests.get(f"{host.url}readyz", timeout=5, verify=verify).json()
        except (requests.RequestException, ValueError) as exc:
            ready = f"{type(exc).__name__}: {exc}"
        if isinstance(ready, dict) and ready.get("ready") and ready.get("model_version") == version:
            break
        time.sleep(1)
    else:
        raise DemoError(f"{host.url}readyz did not report {version} ready within 180 s: {ready}")
    examples = example_names(host)
    if not examples:
        stage.done(f"ready, model {version}")
        return examples
    sources = []
    predicted = None
    for fresh in (False, True):  # from the served dataset, then asked of the simulator (this fleet's GitHub)
        response = requests.post(f"{host.url}api/v1/predict", timeout=30, verify=verify,
                                 json={"repositories": [{"full_name": examples[0]}], "fresh": fresh})
        item = response.json().get("predictions", [{}])[0] if response.status_code == 200 else {}
        if "predicted_stars" not in item:
            raise DemoError(f"{examples[0]} (fresh={str(fresh).lower()}) got {response.status_code} from "
                            f"{host.url}api/v1/predict: {response.text[:200]}")
        sources.append(str(item.get("source", "?")))
        predicted = item["predicted_stars"]
    what = f"{examples[0]}: {predicted:,.0f} stars predicted (sources: {' then '.join(sources)})"
    stage.done(f"ready, model {version}; {what}")
    return examples


def example_names(host: Host) -> list[str]:
    program = host.path("supervisor_conf_dir") / "stargazer-gunicorn.conf"
    found = re.search(r'STARGAZER_EXAMPLE_REPOSITORIES="([^"]*)"', program.read_text(encoding="utf-8"))
    return [n for n in (found.group(1).split(",") if found else []) if n]


def farewell(host: Host, examples: list[str]) -> None:
    tls = " (self-signed certificate: accept it once)" if host.https_port else ""
    click.echo(f"Open the form: {host.url}{tls}")
    if examples:
        click.echo(f"Names to try: {', '.join(examples)}")
    click.echo(f"Logs: {shown(host.logs)}/ (stages), {shown(host.path('stargazer_log_dir'))}/ (services). "
               "Stop everything: make demo-stop")


# --- the commands -------------------------------------------------------------------------------------------

def require_root() -> None:
    if os.geteuid() != 0:
        raise DemoError("the demo needs root: it creates the stargazer user and runs the services as it, "
                        "like a VM (run `sudo make demo`)")


def timed(run: Callable[[], None]) -> None:
    started = time.monotonic()
    run()
    click.echo(f"Done in {time.monotonic() - started:.0f} s.")


INVENTORY_OPTION = click.option(
    "--inventory", "inventory", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=INVENTORY, show_default=True,
    help="All-in-one inventory (tests use a copy with their own paths and ports).",
)


@click.group()
def main() -> None:
    """The demo: every tier of the fleet on this machine, configured by Ansible."""


@main.command("run")
@click.option("--min-stars", type=click.IntRange(0), default=50, show_default=True)
@click.option("--max-repos", type=click.IntRange(1), default=4000, show_default=True)
@click.option("--trials", type=click.IntRange(1), default=16, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--held-out", type=click.IntRange(MIN_HELD_OUT), default=None,
              help="Repositories held out of training as the quality gate's evaluation set "
                   f"[default: a tenth of those collected, at least {MIN_HELD_OUT}]")
@INVENTORY_OPTION
def run_command(min_stars: int, max_repos: int, trials: int, seed: int, held_out: int | None,
                inventory: Path) -> None:
    """Converge, collect, hold the gate's evaluation set out, train, deploy, serve."""
    require_root()
    sizes = Sizes(min_stars=min_stars, max_repos=max_repos, trials=trials, seed=seed, held_out=held_out)
    host = Host.load(inventory)

    def everything() -> None:
        click.echo(f"stargazer demo: the operator's path on this machine (stage logs in {shown(host.logs)}/)")
        converge(host)
        dataset = collect(host, sizes)
        training, evalset = hold_out_evalset(host, dataset, sizes)
        version = train(host, training, sizes)
        deploy(host, version, evalset=evalset)
        farewell(host, served_answer(host, version))

    timed(everything)


@main.command("serve")
@INVENTORY_OPTION
def serve_command(inventory: Path) -> None:
    """Converge, deploy the newest trained model if none is served yet, and wait until it answers."""
    require_root()
    host = Host.load(inventory)

    def serving() -> None:
        converge(host)
        current = host.path("stargazer_model_dir") / "current"
        models = host.home / "models"
        trained = sorted(p.name for p in models.glob("*") if (p / "model.json").exists())
        if current.exists():
            version = current.resolve().name
        elif trained:
            version = trained[-1]
            deploy(host, version)
        else:
            raise DemoError("no model to serve: nothing deployed and nothing trained yet (run: make demo)")
        farewell(host, served_answer(host, version))

    timed(serving)


@main.command("stop")
@INVENTORY_OPTION
def stop_command(inventory: Path) -> None:
    """Stop the demo's supervisord and every program it runs (simulator, Ray head, serving stack)."""
    require_root()
    host = Host.load(inventory)
    config = host.supervisor_config
    pidfile = host.path("supervisor_pidfile")
    if not config.exists() or not pidfile.exists():
        click.echo("nothing to stop: the demo's supervisord is not running")
        return
    pid = int(pidfile.read_text().strip() or 0)
    subprocess.run(["supervisorctl", "-c", str(config), "shutdown"], capture_output=True, check=False)
    deadline = time.monotonic() + 120
    while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if pid and Path(f"/proc/{pid}").exists():
        raise DemoError(f"supervisord (pid {pid}) did not stop within 120 s")
    leftovers = demo_processes(host)
    for leftover in leftovers:
        os.kill(leftover, 15)
    temp = Path(str(host.get("ray_head_temp_dir")))
    if temp.is_dir():
        shutil.rmtree(temp, ignore_errors=True)
    extra = f" and {len(leftovers)} leftover process(es)" if leftovers else ""
    click.echo(f"stopped: supervisord (pid {pid}) and its programs{extra}")


def demo_processes(host: Host) -> list[int]:
    """PIDs whose command line names the demo's own directories (Ray's temp dir, the app venv)."""
    markers = (str(host.get("ray_head_temp_dir")).encode(), str(host.path("stargazer_app_dir")).encode())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(marker in cmdline for marker in markers):
            found.append(int(entry.name))
    return found


if __name__ == "__main__":
    main()
