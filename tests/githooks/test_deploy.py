"""The deploy command end to end over real ``git push``: switch, worker pickup, rollback, pruning, two hosts
(one refusing), racing deploys. Hosts are made by the real installer; hooks run the real code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_serving import artifact
from model_serving.development_server.deploy import DeployRepo
from tests.support import DEPLOY_KEYS, OTHER_DEPLOY_KEYS, REPO_ROOT, Host, install_host, stargazer_lines

pytestmark = pytest.mark.integration

WORKER = """
import json, sys, time
from pathlib import Path
import pandas as pd
from githooks.check_model import SAMPLE_FILE
from model_serving import artifact, features
from model_serving.production_server.model_store import ModelStore

store = ModelStore(Path(sys.argv[1]), artifact.parse_public_key(sys.argv[2]))
frame = pd.DataFrame(json.loads(SAMPLE_FILE.read_text()))
deadline = time.monotonic() + float(sys.argv[3])
served = None
while time.monotonic() < deadline:  # one "task" per loop: the cheap check; predict with a newly loaded model
    model = store.refresh()
    if model is not None and model.version != served:
        point, low, high = features.predict_with_interval(model.pipeline, frame)
        print(json.dumps({"version": model.version, "first": float(point[0])}), flush=True)
        served = model.version
    time.sleep(0.1)
"""


class Worker:
    """A process serving "tasks" from ``current`` the way a Celery worker does (production model_store)."""

    def __init__(self, model_dir: Path, timeout: float = 240) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(model_dir / "current"), DEPLOY_KEYS.public_text, str(timeout)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        self.seen: list[str] = []

    def wait_for(self, version: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            current = json.loads(line)["version"]
            if not self.seen or self.seen[-1] != current:
                self.seen.append(current)
            if current == version:
                return
        raise AssertionError(f"worker never served {version}; saw {self.seen}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()  # else a ResourceWarning surfaces at some later GC, in whoever's code


def _assert_one_switched(output: str, host: Host, version: str) -> None:
    assert f"switched {host.name}: current -> {version}" in output, output


def test_deploy_switches_current_worker_follows_and_rollback(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy
) -> None:
    host = install_host(tmp_path, "h1", public_key_file)
    v0, v1 = versions[0].name, versions[1].name
    first = deploy("--version", v0, models=versions[0].parent, remotes=[host])
    assert first.exit_code == 0, first.output
    _assert_one_switched(first.output, host, v0)
    assert "loads and predicts the canned sample" in first.output
    assert host.current() == v0

    worker = Worker(host.model_dir)
    try:
        worker.wait_for(v0)
        second = deploy("--version", v1, models=versions[0].parent, remotes=[host])
        assert second.exit_code == 0, second.output
        worker.wait_for(v1)  # no restart, no broker: the worker noticed the new current between tasks

        back = deploy("--rollback", models=versions[0].parent, remotes=[host])
        assert back.exit_code == 0, back.output
        assert f"deploy {v0}" in back.output
        worker.wait_for(v0)
        assert worker.seen == [v0, v1, v0]
    finally:
        worker.stop()

    log = host.log()
    assert [(e["event"], e["version"], e["previous"]) for e in log] == [
        ("deploy", v0, None),
        ("deploy", v1, v0),
        ("rollback", v0, v1),
    ]
    for entry in log:
        assert entry["host"] == "h1"
        assert entry["actor"] and "@" in entry["actor"]  # who pushed (sent as a push option)
        assert entry["user"]  # the OS user the hook ran as
        assert entry["time"].endswith("Z")
    assert log[-1]["commit"] == host.ref("refs/heads/deploy")
    # The deploy repository: one root commit per version, tagged; training output left unsigned.
    dev = DeployRepo(tmp_path / "deploy.git")
    for version in (v0, v1):
        commit = dev.resolve(f"refs/tags/model-{version}")
        assert commit is not None
        assert dev.git("rev-list", "--parents", "-n", "1", commit) == commit  # no parent
        assert dev.git("ls-tree", "--name-only", commit).split() == ["model.joblib", "model.json"]
        assert artifact.read_manifest(versions[0].parent / version).signature is None
    assert host.git("for-each-ref", "--format=%(refname)", "refs/staging").stdout == ""

    again = deploy("--version", v0, models=versions[0].parent, remotes=[host])
    assert again.exit_code == 0 and "already serving this commit" in again.output
    deleted = subprocess.run(
        ["git", "push", host.url, ":refs/heads/deploy"], capture_output=True, text=True, check=False
    )
    assert deleted.returncode != 0
    assert stargazer_lines(deleted.stderr) == [
        f"stargazer: refused refs/heads/deploy ({'0' * 10}): deleting the deploy branch is not allowed "
        "(push an earlier version to roll back)"
    ]
    assert host.current() == v0 and len(host.log()) == 3


def test_a_failed_switch_fails_every_rerun_by_host_name_until_the_host_is_fixed(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy
) -> None:
    """git moves ``deploy`` before post-receive runs: a failed switch must not make re-runs "up to date"."""
    host = install_host(tmp_path, "h1", public_key_file)
    models = versions[0].parent
    v0, v1, v2 = (v.name for v in versions[:3])
    assert deploy("--version", v0, models=models, remotes=[host]).exit_code == 0
    serving = host.ref("refs/heads/deploy")
    assert host.ref("refs/stargazer/serving") == serving

    blocker = tmp_path / "a-file-not-a-directory"
    blocker.write_text("")
    host.set("stargazer.modeldir", str(blocker / "models"))  # post-receive fails after git moved the ref
    for attempt in range(2):
        failed = deploy("--version", v1, models=models, remotes=[host])
        assert failed.exit_code == 1, f"attempt {attempt}: {failed.output}"
        assert "current NOT switched" in failed.output
        assert f"Error: no host switched: {host.url} did not switch to {v1}" in failed.output
        assert host.ref("refs/heads/deploy") == serving  # put back to what current serves
    assert host.current() == v0

    host.set("stargazer.modeldir", str(host.model_dir))
    fixed = deploy("--version", v1, models=models, remotes=[host])
    assert fixed.exit_code == 0, fixed.output
    assert host.current() == v1

    # A post-receive that died before it could put the branch back (killed, power cut): the branch names v2,
    # current serves v1. Redeploying v2 is then "up to date" for git; the deploy must still say it failed.
    dev = DeployRepo(tmp_path / "deploy.git")
    v2_commit, _ = dev.commit_version(versions[2], DEPLOY_KEYS.signing)
    no_hooks = tmp_path / "no-hooks"
    no_hooks.mkdir()
    host.set("core.hooksPath", str(no_hooks))
    moved = dev.git("push", host.url, f"+{v2_commit}:refs/heads/deploy")
    host.git("config", "--local", "--unset", "core.hooksPath")
    assert host.ref("refs/heads/deploy") == v2_commit and host.current() == v1, moved
    stale = deploy("--version", v2, models=models, remotes=[host])
    assert stale.exit_code == 1, stale.output
    assert f"{host.url}: FAILED" in stale.output and "not switched: serves" in stale.output
    assert f"Error: no host switched: {host.url} did not switch to {v2}" in stale.output
    assert host.current() == v1


def test_pruning_keeps_n_releases_and_old_objects_go(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy
) -> None:
    host = install_host(tmp_path, "h1", public_key_file, keep=1)
    models = versions[0].parent
    blob = {
        v.name: subprocess.run(
            ["git", "hash-object", str(v / "model.joblib")], capture_output=True, text=True, check=True
        ).stdout.strip()
        for v in versions[:2]
    }

    def releases() -> list[str]:
        return sorted(p.name for p in (host.model_dir / "releases").iterdir())

    def has_object(oid: str) -> bool:
        return host.git("cat-file", "-e", oid).returncode == 0

    assert deploy("--version", versions[0].name, models=models, remotes=[host]).exit_code == 0
    assert has_object(blob[versions[0].name])
    assert deploy("--version", versions[1].name, models=models, remotes=[host]).exit_code == 0
    assert releases() == [versions[1].name]
    assert host.log()[-1]["pruned"] == [versions[0].name]
    assert not has_object(blob[versions[0].name])  # the old model's bytes left the host's repository
    assert has_object(blob[versions[1].name])

    # Rolling back to a pruned version: the tag still exists on the development side, git sends it again.
    back = deploy(f"model-{versions[0].name}", models=models, remotes=[host])
    assert back.exit_code == 0, back.output
    assert host.current() == versions[0].name
    assert releases() == [versions[0].name]
    assert host.log()[-1]["event"] == "rollback"
    assert not has_object(blob[versions[1].name]) and has_object(blob[versions[0].name])


def test_two_hosts_one_refuses_then_none_switches_and_a_phase_two_failure_is_reported(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy
) -> None:
    h1 = install_host(tmp_path, "h1", public_key_file)
    h2_key = DEPLOY_KEYS.write_public(tmp_path / "h2_key")
    h2 = install_host(tmp_path, "h2", h2_key)
    models = versions[0].parent
    first = deploy("--version", versions[0].name, models=models, remotes=[h1, h2])
    assert first.exit_code == 0, first.output
    assert "phase 1/2" in first.output and "phase 2/2" in first.output
    assert "validated at staging" in first.output  # phase 2 did not repeat the load check
    assert h1.current() == h2.current() == versions[0].name

    OTHER_DEPLOY_KEYS.write_public(h2_key)  # h2 no longer trusts the development side's signature
    second = deploy("--version", versions[1].name, models=models, remotes=[h1, h2])
    assert second.exit_code == 1
    assert f"{h2.url}: REFUSED: stargazer: refused refs/staging/{versions[1].name}" in second.output
    assert "signature does not match" in second.output
    assert f"Error: no host switched: {h2.url} refused {versions[1].name}" in second.output
    assert "phase 2/2" not in second.output
    assert h1.current() == h2.current() == versions[0].name
    assert len(h1.log()) == len(h2.log()) == 1
    for host in (h1, h2):
        assert host.git("for-each-ref", "--format=%(refname)", "refs/staging").stdout == ""
    for keys in (DEPLOY_KEYS, OTHER_DEPLOY_KEYS):
        assert keys.signing_text not in second.output

    # Phase 2 can still fail on a host (here: its model directory became unusable after phase 1 passed).
    # That cannot be undone atomically; the command must say exactly which host serves what.
    DEPLOY_KEYS.write_public(h2_key)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    h2.set("stargazer.modeldir", str(blocked))
    third = deploy("--version", versions[1].name, models=models, remotes=[h1, h2])
    assert third.exit_code == 1
    assert "current NOT switched" in third.output
    assert (
        f"Error: DEPLOY INCOMPLETE: {h1.url} switched to {versions[1].name}, {h2.url} did not: "
        "hosts now serve different versions" in third.output
    )
    assert h1.current() == versions[1].name and h2.current() == versions[0].name


def test_racing_deploys_end_consistent_and_log_both(
    tmp_path: Path, versions: list[Path], public_key_file: Path, dev_env: None, git_ready: None
) -> None:
    host = install_host(tmp_path, "h1", public_key_file)
    models = versions[0].parent

    def start(version: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "model_serving.development_server.deploy",
                "deploy",
                "--version",
                version.name,
                "--models",
                str(models),
                "--repo",
                str(tmp_path / "deploy.git"),
                "--remote",
                host.url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO_ROOT,
        )

    racers = [start(versions[2]), start(versions[3])]
    outputs = [r.communicate(timeout=300)[0] for r in racers]
    assert [r.returncode for r in racers] == [0, 0], outputs
    log = host.log()
    assert sorted(e["version"] for e in log) == sorted([versions[2].name, versions[3].name])
    assert log[1]["previous"] == log[0]["version"]
    tip = host.ref("refs/heads/deploy")
    assert log[-1]["commit"] == tip
    assert host.current() == log[-1]["version"]


def test_raw_pushes_racing_from_two_repositories_stay_consistent(
    tmp_path: Path, versions: list[Path], public_key_file: Path, dev_env: None, git_ready: None
) -> None:
    """No development-side lock here: git's ref lock and the hosts' release lock keep things consistent."""
    host = install_host(tmp_path, "h1", public_key_file)
    commits = []
    for index, version in enumerate(versions[2:]):
        repo = DeployRepo(tmp_path / f"dev{index}.git")
        repo.ensure()
        commits.append((repo, repo.commit_version(version, DEPLOY_KEYS.signing)[0]))
    racers = [
        subprocess.Popen(
            ["git", f"--git-dir={repo.path}", "push", host.url, f"+{commit}:refs/heads/deploy"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for repo, commit in commits
    ]
    outputs = [r.communicate(timeout=300)[0] for r in racers]
    succeeded = [r.returncode == 0 for r in racers]
    assert any(succeeded), outputs
    for ok, output in zip(succeeded, outputs, strict=True):
        if not ok:  # the loser is told by git, clearly; it never half-switched anything
            assert "failed to update ref" in output or "cannot lock ref" in output or "rejected" in output, (
                output
            )
    log = host.log()
    assert len(log) == sum(succeeded)
    tip = host.ref("refs/heads/deploy")
    assert log[-1]["commit"] == tip
    assert host.current() == log[-1]["version"]
    assert json.loads((host.model_dir / "current" / "model.json").read_text())["version"] == host.current()
