"""The quality gate over real ``git push``: hosts made by the real installer with a frozen evaluation set
built by the real ``evalset`` command, models deployed by the real ``deploy`` command, scored in the sandboxed
check.

The "worse" model is honest: the same pipeline fitted on the same kind of rows with the stars shuffled, so it
learns the star distribution but not which repository has which. The numbers each refusal names are checked
against the two models scored here, in this process, on the same evaluation set.
"""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import joblib
import pytest
from click.testing import CliRunner

from data_collection.dataset import write_dataset
from githooks import gate
from model_serving import artifact
from model_serving.development_server.evalset import evalset_command
from synthetic.dataset import synthetic_dataset
from synthetic.versions import fitted_pipeline, shuffled_pipeline, write_at
from tests.support import Host, install_host

pytestmark = pytest.mark.integration

SPEARMAN_FLOOR = 0.5
REASON = "on-call accepts the regression until the 12:00 retrain"


@dataclass(frozen=True)
class GateWorld:
    models: Path
    good: Path
    worse: Path
    evalset: Path
    sha256: str
    good_scores: gate.Scores
    worse_scores: gate.Scores

    def host(self, root: Path, name: str, public_key_file: Path) -> Host:
        """A host with its own copy of the eval set (a test may tamper with it)."""
        (root / name).mkdir(parents=True, exist_ok=True)
        copy = root / name / self.evalset.name
        shutil.copyfile(self.evalset, copy)
        return install_host(
            root,
            name,
            public_key_file,
            extra=["--evalset", str(copy), "--evalset-sha256", self.sha256,
                   "--gate-floor", f"spearman={SPEARMAN_FLOOR}"],
        )  # fmt: skip


def _rows(frame: object) -> list[dict]:
    return [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in frame.to_dict("records")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    root = tmp_path_factory.mktemp("gate")
    training = synthetic_dataset(200, 0)  # what the good model is fitted on (fitted_pipeline(0))
    write_dataset(_rows(training), root / "train.csv", {"source": "test"})
    collected = synthetic_dataset(500, 11)  # its first 200 names are training names
    collected.loc[5, "full_name"] = collected.loc[5, "full_name"].upper()  # GitHub names ignore case
    write_dataset(_rows(collected), root / "collected.csv", {"source": "test"})
    result = CliRunner().invoke(
        evalset_command,
        ["--from", str(root / "collected.csv"), "--exclude", str(root / "train.csv"), "--out", str(root)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    sha256 = re.search(r"^sha256 ([0-9a-f]{64})$", result.output, re.MULTILINE).group(1)
    [evalset] = root.glob("evalset-*.csv.gz")

    models = root / "models"
    good = write_at(fitted_pipeline(0), models, 0)
    worse = write_at(shuffled_pipeline(1), models, 1)
    frame = gate.read_evalset(evalset)
    scores = [gate.score(joblib.load(v / artifact.MODEL_FILE), frame) for v in (good, worse)]
    world = GateWorld(models, good, worse, evalset, sha256, *scores)
    # What the tests below rely on: the good model clears the floor, the shuffled one falls far below it.
    assert world.good_scores.spearman > SPEARMAN_FLOOR + 0.1 > world.worse_scores.spearman + 0.2
    return world


def test_the_evaluation_set_holds_no_training_repository(world: GateWorld) -> None:
    frame = gate.read_evalset(world.evalset)
    names = {name.casefold() for name in frame["full_name"]}
    training = {name.casefold() for name in synthetic_dataset(200, 0)["full_name"]}
    assert len(frame) == 300 and not names & training  # OWNER5/REPO5 went too, whatever its case


def test_a_first_model_below_the_floors_is_refused_and_one_above_them_accepted(
    world: GateWorld, tmp_path: Path, public_key_file: Path, deploy
) -> None:
    host = world.host(tmp_path, "gate-first", public_key_file)
    w = world.worse_scores
    refused = deploy("--version", world.worse.name, models=world.models, remotes=[host])
    assert refused.exit_code == 1, refused.output
    assert "quality gate: below the floors: first model on this host" in refused.output
    assert f"Spearman {w.spearman:.3f} (floor {SPEARMAN_FLOOR:g}, missed)" in refused.output
    assert f"MAE log1p(stars) {w.mae_log:.3f} (ceiling 2" in refused.output
    assert "stargazer.override-gate='<reason>'" in refused.output
    assert host.current() is None and host.log() == []

    accepted = deploy("--version", world.good.name, models=world.models, remotes=[host])
    assert accepted.exit_code == 0, accepted.output
    assert "quality gate passed: first model on this host" in accepted.output
    assert host.current() == world.good.name
    entry = host.log()[-1]
    assert entry["gate"]["decision"] == "first-model" and entry["gate"]["evalset"] == world.evalset.name
    assert entry["gate"]["pushed"] == pytest.approx(world.good_scores.to_json(), abs=1e-3)
    assert entry["gate"]["rows"] == 300 and "override_reason" not in entry


def test_a_worse_model_is_refused_naming_both_models_numbers_then_deployed_with_an_override(
    world: GateWorld, tmp_path: Path, public_key_file: Path, deploy
) -> None:
    host = world.host(tmp_path, "gate-worse", public_key_file)
    assert deploy("--version", world.good.name, models=world.models, remotes=[host]).exit_code == 0
    g, w = world.good_scores, world.worse_scores

    refused = deploy("--version", world.worse.name, models=world.models, remotes=[host])
    assert refused.exit_code == 1, refused.output
    [line] = [x for x in refused.output.splitlines() if "quality gate" in x]
    assert f"pushed {world.worse.name} vs serving {world.good.name} on {world.evalset.name} (300" in line
    assert f"Spearman {w.spearman:.3f} vs {g.spearman:.3f} (worse by more than 0.05)" in line
    assert f"MAE log1p(stars) {w.mae_log:.3f} vs {g.mae_log:.3f}" in line
    assert f"p10-p90 coverage {w.coverage:.3f} vs {g.coverage:.3f}" in line
    assert host.current() == world.good.name and len(host.log()) == 1

    overridden = deploy(
        "--version", world.worse.name, "--override-gate", REASON, models=world.models, remotes=[host]
    )
    assert overridden.exit_code == 0, overridden.output
    assert f"quality gate OVERRIDDEN ({REASON})" in overridden.output
    assert host.current() == world.worse.name
    entry = host.log()[-1]
    assert entry["override_reason"] == REASON
    assert entry["gate"]["decision"] == "overridden" and entry["gate"]["serving_version"] == world.good.name
    assert entry["gate"]["pushed"] == pytest.approx(w.to_json(), abs=1e-3)
    assert entry["gate"]["serving"] == pytest.approx(g.to_json(), abs=1e-3)

    better = deploy("--version", world.good.name, models=world.models, remotes=[host])
    assert better.exit_code == 0 and "quality gate passed" in better.output
    assert host.log()[-1]["gate"]["decision"] == "passed" and "override_reason" not in host.log()[-1]

    # Back to a version this host has served: a rollback is not refused for being worse.
    rollback = deploy("--version", world.worse.name, models=world.models, remotes=[host])
    assert rollback.exit_code == 0, rollback.output
    assert "this host served this version before" in rollback.output
    assert host.log()[-1]["gate"]["decision"] == "served-before" and host.current() == world.worse.name


def test_a_tampered_evaluation_set_is_refused_in_one_line(
    world: GateWorld, tmp_path: Path, public_key_file: Path, deploy
) -> None:
    host = world.host(tmp_path, "gate-tampered", public_key_file)
    installed = tmp_path / "gate-tampered" / world.evalset.name
    lines = gzip.decompress(installed.read_bytes()).splitlines(keepends=True)
    installed.write_bytes(gzip.compress(b"".join(lines[:-1])))  # still a valid eval set, one row short

    refused = deploy("--version", world.good.name, models=world.models, remotes=[host])
    assert refused.exit_code == 1, refused.output
    assert f"quality gate: evaluation set {installed} has sha256 " in refused.output
    assert f"not the {world.sha256[:12]}… of stargazer.evalsetsha256 (modified or replaced)" in refused.output
    assert host.current() is None

    overridden = deploy(
        "--version", world.good.name, "--override-gate", REASON, models=world.models, remotes=[host]
    )
    assert overridden.exit_code == 0, overridden.output
    entry = host.log()[-1]
    assert entry["override_reason"] == REASON and entry["gate"]["decision"] == "overridden"
    assert "modified or replaced" in entry["gate"]["skipped"]


def test_the_installer_refuses_an_evaluation_set_it_was_not_given(
    world: GateWorld, tmp_path: Path, public_key_file: Path, git_ready: None
) -> None:
    import subprocess

    from tests.support import INSTALL_SH

    base = [str(INSTALL_SH), "--repo", str(tmp_path / "r.git"), "--model-dir", str(tmp_path / "m"),
            "--public-key-file", str(public_key_file), "--no-probe", "--check-user", ""]  # fmt: skip
    wrong = subprocess.run([*base, "--evalset", str(world.evalset), "--evalset-sha256", "0" * 64],
                           capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert wrong.returncode == 1
    assert f"evaluation set {world.evalset} has sha256 {world.sha256}, not the {'0' * 64}" in wrong.stderr

    not_a_set = tmp_path / "evalset-x.csv.gz"
    not_a_set.write_bytes(gzip.compress(b"full_name,stars\nrepo/a,3\n"))
    bad = subprocess.run([*base, "--evalset", str(not_a_set)], capture_output=True, text=True, check=False,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "evaluation set is unreadable" in bad.stderr
    assert "header does not match the dataset schema" in bad.stderr

    good = subprocess.run([*base, "--evalset", str(world.evalset)], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert f"set stargazer.evalsetsha256={world.sha256}" in good.stdout
    dropped = subprocess.run(base, capture_output=True, text=True, check=False, timeout=120)
    assert "unset stargazer.evalset (no quality gate)" in dropped.stdout


def test_two_hosts_gate_in_phase_one_and_log_the_override_on_both(
    world: GateWorld, tmp_path: Path, public_key_file: Path, deploy
) -> None:
    hosts = [world.host(tmp_path, name, public_key_file) for name in ("gate-a", "gate-b")]
    first = deploy("--version", world.good.name, models=world.models, remotes=hosts)
    assert first.exit_code == 0, first.output
    assert first.output.count("quality gate passed: first model on this host") == 2  # in phase 1 (staging)
    refused = deploy("--version", world.worse.name, models=world.models, remotes=hosts)
    assert refused.exit_code == 1 and "no host switched" in refused.output
    assert refused.output.count("quality gate: worse than the serving model") == 2

    overridden = deploy(
        "--version", world.worse.name, "--override-gate", REASON, models=world.models, remotes=hosts
    )
    assert overridden.exit_code == 0, overridden.output
    for host in hosts:  # phase 2 switched with the verdict each host gave the staged commit in phase 1
        first_entry, entry = host.log()
        assert first_entry["gate"]["decision"] == "first-model"
        assert entry["override_reason"] == REASON and entry["gate"]["decision"] == "overridden"
        assert host.current() == world.worse.name
