"""releases.py: install, atomic switch, rollback, pruning, log, locking (no git here: see tests/githooks)."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from model_serving import artifact, releases
from synthetic.versions import make_versions


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_versions(tmp_path_factory.mktemp("models"), 4)


def test_install_switches_current_and_logs(versions: list[Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "production"
    release = releases.install_release(versions[0], model_dir, actor="alice", host="h1")

    assert release == model_dir / "releases" / versions[0].name
    assert (model_dir / "current").is_symlink()
    assert os.readlink(model_dir / "current") == f"releases/{versions[0].name}"  # relative: dir can move
    assert releases.current_version(model_dir) == versions[0].name
    assert artifact.sha256_of(release / "model.joblib") == artifact.read_manifest(versions[0]).sha256
    assert oct((release / "model.joblib").stat().st_mode & 0o777) == "0o444"
    [entry] = releases.read_deploy_log(model_dir)
    assert entry["event"] == "deploy"
    assert entry["version"] == versions[0].name
    assert entry["previous"] is None
    assert entry["actor"] == "alice"
    assert entry["host"] == "h1"
    assert entry["user"]
    assert entry["time"].endswith("Z")
    assert versions[0].is_dir()  # a copy, the source stays


def test_older_version_is_a_rollback_and_reuses_the_release(versions: list[Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "production"
    releases.install_release(versions[0], model_dir)
    releases.install_release(versions[1], model_dir)
    inode = (model_dir / "releases" / versions[0].name / "model.joblib").stat().st_ino
    releases.install_release(versions[0], model_dir)
    releases.install_release(versions[0], model_dir)

    assert releases.current_version(model_dir) == versions[0].name
    assert (model_dir / "releases" / versions[0].name / "model.joblib").stat().st_ino == inode
    events = [(e["event"], e["version"], e["previous"]) for e in releases.read_deploy_log(model_dir)]
    assert events == [
        ("deploy", versions[0].name, None),
        ("deploy", versions[1].name, versions[0].name),
        ("rollback", versions[0].name, versions[1].name),
        ("redeploy", versions[0].name, versions[0].name),
    ]


def test_keeps_the_last_n_activated_releases(versions: list[Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "production"
    for version in versions:
        releases.install_release(version, model_dir, keep=2)
    kept = sorted(p.name for p in (model_dir / "releases").iterdir())
    assert kept == [versions[2].name, versions[3].name]
    log = releases.read_deploy_log(model_dir)
    assert log[2]["pruned"] == [versions[0].name]
    assert log[3]["pruned"] == [versions[1].name]
    # A rollback to a kept release makes it the most recent one: the other kept one survives the next install.
    releases.install_release(versions[2], model_dir, keep=2)
    releases.install_release(versions[0], model_dir, keep=2)
    kept = sorted(p.name for p in (model_dir / "releases").iterdir())
    assert kept == [versions[0].name, versions[2].name]


def test_corrupt_source_is_refused_and_current_untouched(versions: list[Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "production"
    releases.install_release(versions[0], model_dir)
    broken = tmp_path / "broken" / versions[1].name
    shutil.copytree(versions[1], broken)
    with (broken / "model.joblib").open("ab") as handle:
        handle.write(b"tampered")

    with pytest.raises(artifact.ArtifactError, match="sha256"):
        releases.install_release(broken, model_dir)
    assert releases.current_version(model_dir) == versions[0].name
    assert sorted(p.name for p in (model_dir / "releases").iterdir()) == [versions[0].name]
    assert len(releases.read_deploy_log(model_dir)) == 1


def test_missing_manifest_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(artifact.ArtifactError) as info:
        releases.install_release(tmp_path / "empty", tmp_path / "production")
    assert "\n" not in str(info.value)
    assert "model.json missing" in str(info.value)


def test_refuses_a_current_that_is_not_a_symlink(versions: list[Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "production"
    (model_dir / "current").mkdir(parents=True)
    with pytest.raises(releases.ReleaseError, match="not a symlink"):
        releases.install_release(versions[0], model_dir)


def _install(args: tuple[str, str]) -> str:
    version, model_dir = args
    return releases.install_release(Path(version), Path(model_dir), keep=3).name


def test_concurrent_installs_stay_consistent(versions: list[Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "production"
    jobs = [(str(v), str(model_dir)) for v in versions * 3]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_install, jobs)
    log = releases.read_deploy_log(model_dir)
    assert len(log) == len(jobs)
    assert log[-1]["version"] == releases.current_version(model_dir)
    for before, after in itertools.pairwise(log):
        assert after["previous"] == before["version"]  # the lock serialized them: a clean chain
    assert len(list((model_dir / "releases").iterdir())) <= 3
    assert not list(model_dir.glob(".current.*"))


def test_ensure_current_installs_newest_only_when_missing(versions: list[Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "production"
    models_dir = versions[0].parent
    assert releases.ensure_current(tmp_path / "nothing", model_dir) is None
    first = releases.ensure_current(models_dir, model_dir)
    assert first is not None and first.name == versions[-1].name
    releases.install_release(versions[0], model_dir)
    again = releases.ensure_current(models_dir, model_dir)
    assert again is not None and again.name == versions[0].name
    assert [e["actor"] for e in releases.read_deploy_log(model_dir)] == ["make serve", None]
    assert json.loads((models_dir / versions[0].name / "model.json").read_text())["signature"] is None


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
def test_release_files_and_directories_are_fsynced_before_current_switches(
    versions: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, move: bool
) -> None:
    """A power cut after the switch must not leave ``current`` pointing at empty files or a lost rename."""
    model_dir = tmp_path / "production"
    source = tmp_path / "source" / versions[0].name
    shutil.copytree(versions[0], source)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    releases.install_release(source, model_dir, move=move)

    switch = events.index(("replace", str(model_dir / "current")))
    before = [path for kind, path in events[:switch] if kind == "fsync"]
    releases_dir = str(model_dir / "releases")
    incoming = [p for p in before if p.startswith(releases_dir + "/.incoming-")]
    files = {Path(p).name for p in incoming if p.endswith((".joblib", ".json"))}
    assert files == {"model.joblib", "model.json"}
    assert [p for p in incoming if Path(p).name.startswith(".incoming-")], "release directory not fsynced"
    assert releases_dir in before, "releases/ (the rename of the release into place) not fsynced"
    assert ("fsync", str(model_dir)) in events[switch:], "the model directory (the switch) not fsynced"
