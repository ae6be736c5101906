"""``make demo``'s path, for real: the all-in-one inventory converges every tier and serves what it trained.

The test runs ``python -m scripts.demo run`` (what ``make demo`` runs) on a copy of ``inventory/demo.yml``
whose paths, ports, accounts and Ray temp dir are this test's own, so a demo running on this machine is never
touched. Only sizes are smaller. The first run must converge site.yml (simulator, Ray head, RabbitMQ, Celery,
gunicorn, nginx under one supervisord), collect from the simulator it started, train on the Ray head it
started (token auth, ``RAY_ADDRESS``), deploy by ``git push`` through the hooks and answer a name through
nginx over HTTPS. Between collecting and training it holds a sample of the collection out as the quality
gate's evaluation set, which the githooks role installs, so the deploy's push is scored by the gate and the
served release's record (``/api/v1/models``, ``/models``) holds those scores; no name of the set is in the
served training dataset. The second run must change nothing (``changed=0``) and reuse the dataset, the
evaluation set and the model.
Then, from outside: the form lists the simulator's names, and a name the dataset does not hold is looked up
on the simulator (this fleet's GitHub). ``python -m scripts.demo stop`` must leave no process of the demo
behind.
"""

from __future__ import annotations

import csv
import grp
import gzip
import hashlib
import io
import os
import pwd
import re
import secrets
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.playbooks.ansible_run import ansible_env
from tests.support import REPO_ROOT, chromium_page, free_port, require_executable, require_root

# Two demo runs (each under _demo's own deadline) and the stop: far beyond the suite's default timeout.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2 * 2400 + 600)]

MAX_REPOS = 300
HELD_OUT = 40  # scripts/demo.py's default for this size: a tenth of the collection, at least 40


@dataclass
class DemoRuns:
    inventory: Path
    hostvars: dict[str, object]
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.hostvars['nginx_https_listen']}/"

    @property
    def certificate(self) -> str:
        return str(Path(str(self.hostvars["demo_root"])) / "nginx" / "etc" / "tls" / "stargazer.crt")


def _head_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def _free_range(size: int) -> int:
    """The first port of ``size`` consecutive free ports on loopback (Ray's worker port range)."""
    for _ in range(50):
        base = free_port()
        if base + size > 65000:
            continue
        socks = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                socks.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {size} consecutive free ports")


def _test_inventory(workdir: Path, user: str) -> tuple[Path, dict[str, object]]:
    """inventory/demo.yml with this test's root, ports, accounts, pinned code and a small simulator."""
    demo = yaml.safe_load((REPO_ROOT / "inventory" / "demo.yml").read_text())
    hostvars = demo["all"]["hosts"]["localhost"]
    ray = _free_range(16)
    workers = _free_range(40)
    hostvars.update({
        "demo_root": str(workdir / "demo"),
        "common_app_repo": f"file://{REPO_ROOT}",
        "common_app_version": _head_commit(),
        "common_venv_extra_site_dirs": [sysconfig.get_paths()["purelib"]],
        "stargazer_user": user,
        "stargazer_group": user,
        "deploy_client_user": f"{user}d",
        "deploy_client_group": user,
        "celery_worker_user": f"{user}w",
        "celery_worker_group": f"{user}w",
        # The key pair is made by the checkout's keygen, run from the checkout (the copy lives elsewhere).
        "demo_keygen": str(hostvars["demo_keygen"]).replace("{{ inventory_dir | dirname }}", str(REPO_ROOT)),
        "stargazer_http_port": free_port(),
        "nginx_https_listen": free_port(),
        "gunicorn_port": free_port(),
        "gunicorn_workers": 1,
        "stargazer_broker_port": free_port(),
        "rabbitmq_dist_port": free_port(),
        "rabbitmq_nodename": f"rabbit-{user}@localhost",
        "github_simulator_port": free_port(),
        "github_simulator_repos": 600,
        "ray_head_port": free_port(),
        "ray_head_temp_dir": f"/tmp/sgz-{user}-ray",
        "ray_head_num_cpus": 2,
        "ray_head_port_args": f"--ray-client-server-port={ray}",
        "ray_node_port_args": (
            f"--node-manager-port={ray + 1} --object-manager-port={ray + 2} --metrics-export-port={ray + 3}"
            f" --dashboard-agent-grpc-port={ray + 4} --dashboard-agent-listen-port={ray + 5}"
            f" --runtime-env-agent-port={ray + 6}"
            f" --min-worker-port={workers} --max-worker-port={workers + 39}"
        ),
    })
    inventory_dir = workdir / "inventory"
    inventory_dir.mkdir()
    (inventory_dir / "group_vars").symlink_to(REPO_ROOT / "inventory" / "group_vars")
    path = inventory_dir / "demo.yml"
    path.write_text(yaml.safe_dump(demo, sort_keys=False))
    return path, hostvars


def _demo(command: str, inventory: Path, workdir: Path, *args: str, timeout: float = 2400) -> (
        subprocess.CompletedProcess[str]):
    return subprocess.run(
        [sys.executable, "-m", "scripts.demo", command, "--inventory", str(inventory), *args],
        cwd=REPO_ROOT, env=ansible_env(workdir), capture_output=True, text=True, timeout=timeout, check=False,
    )


def _remove_accounts(*names: str) -> None:
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["userdel", name], capture_output=True, check=False)
    for name in names:
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        subprocess.run(["groupdel", name], capture_output=True, check=False)
    for name in names:
        Path(f"/etc/sudoers.d/stargazer-check-{name}").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def demo_runs(workdir: Path) -> Iterator[DemoRuns]:
    require_root("the demo creates its service accounts")
    for tool in ("supervisord", "supervisorctl", "nginx", "rabbitmq-server", "git", "runuser", "sudo"):
        require_executable(tool, f"/usr/sbin/{tool}", f"/usr/bin/{tool}", f"/sbin/{tool}")
    user = f"sgzd{secrets.token_hex(2)}"
    inventory, hostvars = _test_inventory(workdir, user)
    sizes = ("--max-repos", str(MAX_REPOS), "--trials", "2", "--seed", "3")
    try:
        first = _demo("run", inventory, workdir, *sizes)
        assert first.returncode == 0, first.stdout + first.stderr + _log_tails(hostvars)
        second = _demo("run", inventory, workdir, *sizes)
        assert second.returncode == 0, second.stdout + second.stderr + _log_tails(hostvars)
        yield DemoRuns(inventory, hostvars, first, second)
    finally:
        stopped = _demo("stop", inventory, workdir, timeout=300)
        _remove_accounts(f"{user}d", f"{user}w", user)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert _processes_naming(str(workdir), str(hostvars["ray_head_temp_dir"])) == []


def _log_tails(hostvars: dict[str, object]) -> str:
    logs = Path(str(hostvars["demo_root"])) / "logs"
    return "".join(f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                   for log in sorted(logs.glob("*.log")))


def _processes_naming(*markers: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in markers):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_the_first_run_goes_through_every_stage_with_one_line_each(demo_runs: DemoRuns) -> None:
    lines = demo_runs.first.stdout.splitlines()
    for number, stage in enumerate(("converge", "collect", "evalset", "train", "deploy", "serve"), start=1):
        assert any(line.startswith(f"[{number}/6] {stage}") for line in lines), demo_runs.first.stdout
    assert len([line for line in lines if line.startswith("[")]) == 6, demo_runs.first.stdout
    assert re.search(r"\[1/6\] converge .* ok, changed=[1-9]\d*", demo_runs.first.stdout)
    assert re.search(rf"\[2/6\] collect .* {MAX_REPOS} rows", demo_runs.first.stdout)
    assert re.search(rf"\[3/6\] evalset +hold {HELD_OUT} of {MAX_REPOS} .* wrote .*evalset-.*\.csv\.gz, "
                     rf"{MAX_REPOS - HELD_OUT} left to train on; gate on \(site\.yml changed=[1-9]",
                     demo_runs.first.stdout)
    assert re.search(r"\[4/6\] train .* model \d{8}T\d{6}Z-[0-9a-f]{8} \(1 Ray node", demo_runs.first.stdout)
    assert re.search(rf"\[5/6\] deploy .* gate first-model: Spearman .* on {HELD_OUT} held-out",
                     demo_runs.first.stdout)
    assert "sources: dataset then" in demo_runs.first.stdout
    assert f"Open the form: {demo_runs.url}" in demo_runs.first.stdout
    # Ray Tune's trial tables and Ansible's task lines stay in the logs.
    assert "Trial" not in demo_runs.first.stdout and "TASK [" not in demo_runs.first.stdout
    logs = Path(str(demo_runs.hostvars["demo_root"])) / "logs"
    assert "TASK [ray_head" in (logs / "converge.log").read_text()
    assert "Trial" in (logs / "train.log").read_text()


def test_the_second_run_changes_nothing_and_reuses_dataset_and_model(demo_runs: DemoRuns) -> None:
    out = demo_runs.second.stdout
    assert "[1/6] converge" in out and "ok, changed=0 " in out, out
    assert re.search(rf"\[2/6\] collect .* reused .*: {MAX_REPOS} rows", out), out
    # The same evaluation set, already installed by the first converge: no second one.
    first_evalset = re.search(r"wrote \S*/(evalset-\S+\.csv\.gz)", demo_runs.first.stdout)
    assert first_evalset is not None
    assert re.search(rf"\[3/6\] evalset .* reused \S*/{re.escape(first_evalset.group(1))}, .*; gate on \(",
                     out), out
    assert "site.yml changed" not in out, out
    assert "[4/6] train" in out and "reused model" in out, out
    first_version = re.search(r"model (\d{8}T\d{6}Z-[0-9a-f]{8}) \(1 Ray node", demo_runs.first.stdout)
    assert first_version is not None and f"serving {first_version.group(1)}" in out


def test_the_form_shows_the_simulators_names_and_answers_one_the_dataset_does_not_hold(
        demo_runs: DemoRuns) -> None:
    simulator = f"http://127.0.0.1:{demo_runs.hostvars['github_simulator_port']}"
    top = requests.get(f"{simulator}/search/repositories", timeout=30,
                       params={"q": "stars:>=50", "sort": "stars", "order": "desc", "per_page": 3}).json()
    examples = [item["full_name"] for item in top["items"]]
    page = requests.get(demo_runs.url, timeout=30, verify=demo_runs.certificate)
    assert page.status_code == 200
    assert "Names to try:" in page.text and all(f"<code>{name}</code>" in page.text for name in examples)

    # Ranked beyond the collected top MAX_REPOS: only the simulator knows it.
    beyond = requests.get(f"{simulator}/search/repositories", timeout=30,
                          params={"q": "stars:>=50", "sort": "stars", "order": "desc", "per_page": 100,
                                  "page": MAX_REPOS // 100 + 1}).json()["items"][-1]["full_name"]
    answer = requests.post(f"{demo_runs.url}api/v1/predict", timeout=60, verify=demo_runs.certificate,
                           json={"repositories": [{"full_name": beyond}, {"full_name": examples[0]}]})
    assert answer.status_code == 200, answer.text
    items = {item["full_name"]: item for item in answer.json()["predictions"]}
    assert items[beyond]["source"] not in {"dataset", "given"} and items[beyond]["predicted_stars"] > 0
    assert items[examples[0]]["source"] == "dataset" and items[examples[0]]["actual_stars"] > 0


def test_a_person_ranks_a_simulator_name_in_chromium(demo_runs: DemoRuns) -> None:
    """The browser path of the demo: the form over HTTPS (self-signed), a name typed, the ranked answer."""
    simulator = f"http://127.0.0.1:{demo_runs.hostvars['github_simulator_port']}"
    name = requests.get(f"{simulator}/search/repositories", timeout=30,
                        params={"q": "stars:>=50", "sort": "stars", "order": "desc", "per_page": 100,
                                "page": MAX_REPOS // 100 + 1}).json()["items"][0]["full_name"]
    with chromium_page(ignore_https_errors=True) as (page, _):
        response = page.goto(demo_runs.url)
        assert response is not None and response.status == 200
        assert "Names to try:" in page.locator("#examples").inner_text()
        page.fill("#rows-0-full_name", name)
        with page.expect_navigation():
            page.click("button[type=submit]")
        table = page.locator("table.ranking tbody tr")
        assert table.count() == 1
        assert name in table.nth(0).inner_text()


def _names(path: Path) -> set[str]:
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    return {row["full_name"].casefold() for row in csv.DictReader(io.StringIO(text))}


def test_the_served_release_holds_gate_scores_on_an_evaluation_set_it_was_not_trained_on(
        demo_runs: DemoRuns) -> None:
    root = Path(str(demo_runs.hostvars["demo_root"]))
    evalsets = sorted((root / "evalset").glob("evalset-*.csv.gz"))
    assert len(evalsets) == 1, evalsets
    evalset = evalsets[0]
    held_out = _names(evalset)
    assert len(held_out) == HELD_OUT

    # Held out of the collection: every name was collected, none is in what the served model was trained on.
    collected = _names(root / "home" / "data" / "repos.csv")
    served_training = _names(root / "production" / "current" / "dataset.csv.gz")
    assert held_out <= collected
    assert held_out.isdisjoint(served_training)
    assert served_training == collected - held_out

    # The production host's hooks check pushes against exactly this file.
    config = root / "git" / "stargazer-deploy.git" / "config"
    installed = subprocess.run(
        ["git", "config", "--file", str(config), "--get-regexp", r"^stargazer\.evalset"],
        capture_output=True, text=True, check=True).stdout
    settings = dict(line.split(" ", 1) for line in installed.splitlines())
    assert Path(settings["stargazer.evalset"]).name == evalset.name
    assert settings["stargazer.evalsetsha256"] == hashlib.sha256(evalset.read_bytes()).hexdigest()

    history = requests.get(f"{demo_runs.url}api/v1/models", timeout=30, verify=demo_runs.certificate)
    assert history.status_code == 200, history.text
    serving = [release for release in history.json()["releases"] if release["serving"]]
    assert len(serving) == 1
    gate = serving[0]["gate"]
    assert gate["evalset"] == evalset.name and gate["rows"] == HELD_OUT
    assert gate["decision"] == "first-model"
    floors = {"spearman": 0.2, "coverage": 0.2}  # the githooks role's default floors; MAE log at most 2
    assert all(gate["pushed"][metric] >= floor for metric, floor in floors.items()), gate
    assert 0 < gate["pushed"]["mae_log"] <= 2.0, gate

    page = requests.get(f"{demo_runs.url}models", timeout=30, verify=demo_runs.certificate)
    assert page.status_code == 200
    assert "first-model" in page.text
    assert f"pushed.spearman {gate['pushed']['spearman']:.3f}" in page.text
