"""pre-receive refusals over a real ``git push``: one line per problem, nothing switched, nothing stored.

All refusal cases travel in ONE push (each as its own ``refs/staging/<version>``, plus one bad push to
``deploy`` and one to another branch), next to one GOOD staging ref as a control: the hook must name every bad
ref with its reason, say nothing against the good one, and git must then reject the whole push. One push
keeps the suite fast (one hook process; the load checks run in parallel) and shows the "one line per problem"
rule directly. The time limit gets its own push, with a short limit.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import pickle
import subprocess
import time
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline

from model_serving import artifact
from tests.support import (
    DEPLOY_KEYS,
    OTHER_DEPLOY_KEYS,
    DeployKeys,
    Host,
    PickledCall,
    Pusher,
    install_host,
    signed_copy,
    stargazer_lines,
    version_files,
    with_model_bytes,
)

pytestmark = pytest.mark.integration


def _hmac_signed(version: Path) -> Path:
    """``version`` signed in place as deploy signed before Ed25519: HMAC-SHA256 with a shared secret."""
    data = json.loads((version / "model.json").read_text())
    data.pop("signature", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    digest = hmac.new(b"the-old-deploy-secret", canonical, hashlib.sha256).hexdigest()
    data["signature"] = "hmac-sha256:" + digest
    (version / "model.json").write_text(json.dumps(data))
    return version


def _pipeline_that_cannot_predict() -> bytes:
    """A real fitted sklearn pipeline that reads a column no repository has: fails at predict, not at load."""
    frame = pd.DataFrame({"no_such_column": [1.0, 2.0, 3.0]})
    pipeline = Pipeline(
        [
            ("select", ColumnTransformer([("x", "passthrough", ["no_such_column"])])),
            ("model", DummyRegressor()),
        ]
    )
    pipeline.fit(frame, [1.0, 2.0, 3.0])
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    return buffer.getvalue()


def _renamed(
    version: Path, into: Path, name: str, *, keys: DeployKeys = DEPLOY_KEYS, edit: dict | None = None
) -> Path:
    """A signed copy whose manifest says ``version: name`` (so each case has its own staging ref)."""
    return signed_copy(version, into, keys=keys, edit={"version": name, **(edit or {})})


def _name(index: int) -> str:
    return f"20261102T0000{index:02d}Z-{index:08x}"


@pytest.fixture(scope="module")
def refused_push(tmp_path_factory: pytest.TempPathFactory, versions: list[Path], git_ready: None) -> dict:
    """One host with a good version deployed, then one push carrying every refusal case and one good ref."""
    root = tmp_path_factory.mktemp("refusals")
    public_key_file = DEPLOY_KEYS.write_public(root / "public_key")
    host = install_host(root, "h1", public_key_file)
    pusher = Pusher(root / "scratch.git")
    subprocess.run(["git", "init", "-q", "--bare", str(pusher.repo)], check=True)
    craft = root / "craft"
    craft.mkdir()

    good = signed_copy(versions[0], craft / "good-deployed")
    first = pusher.push(host, [f"{pusher.commit(version_files(good))}:refs/heads/deploy"])
    assert first.returncode == 0, first.stderr
    assert host.current() == versions[0].name

    def case_dir(label: str) -> Path:
        path = craft / label
        path.mkdir()
        return path

    control_version = _renamed(versions[1], case_dir("control"), _name(0))
    tampered = _renamed(versions[1], case_dir("sha"), _name(10))
    with (tampered / "model.joblib").open("ab") as handle:
        handle.write(b"\0appended after signing")
    edited = _renamed(versions[1], case_dir("edited"), _name(11))
    data = json.loads((edited / "model.json").read_text())
    data["metrics"]["holdout"]["r2"] = 0.99  # a better-looking number, after signing
    (edited / "model.json").write_text(json.dumps(data))
    columns = [c for c in artifact.expected_input_columns() if c["name"] != "forks_count"]
    marker_unsigned = Path("/tmp") / f"stargazer-test-unsigned-pickle-ran-{os.getpid()}"
    marker_nobody = root / "written-by-the-model-check"  # root-only directory (pytest's tmp is 0700)
    marker_hmac = Path("/tmp") / f"stargazer-test-hmac-pickle-ran-{os.getpid()}"

    cases: dict[str, tuple[dict[str, Path | bytes], str]] = {
        "missing_manifest": ({"model.joblib": versions[1] / "model.joblib"}, "model.json missing"),
        "missing_model": ({"model.json": control_version / "model.json"}, "model.joblib missing"),
        "malformed_json": (
            {"model.json": b"{not json", "model.joblib": b"x"},
            "model.json is not valid JSON",
        ),
        "malformed_schema": (
            {"model.json": json.dumps({"version": _name(4)}).encode(), "model.joblib": b"x"},
            "model.json is malformed at",
        ),
        "unsigned": (version_files(versions[1]), "model.json is not signed"),
        "other_key": (
            version_files(_renamed(versions[1], case_dir("wrong"), _name(5), keys=OTHER_DEPLOY_KEYS)),
            "signature does not match",
        ),
        "retired_hmac": (
            version_files(_hmac_signed(with_model_bytes(
                versions[1], craft, pickle.dumps(PickledCall(os.mkdir, str(marker_hmac))), _name(16),
                sign=False,
            ))),
            "retired HMAC-SHA256 signature",
        ),
        "edited_after_signing": (version_files(edited), "signature does not match"),
        "sha256_mismatch": (version_files(tampered), "does not match model.json"),
        "input_columns": (
            version_files(
                _renamed(versions[1], case_dir("cols"), _name(6), edit={"input_columns": columns})
            ),
            "input_columns differ",
        ),
        "feature_version": (
            version_files(_renamed(versions[1], case_dir("fv"), _name(7), edit={"feature_version": 99})),
            "feature_version 99 differs",
        ),
        "sklearn": (
            version_files(_renamed(versions[1], case_dir("skl"), _name(8), edit={"sklearn": "0.24.2"})),
            "built with scikit-learn 0.24.2",
        ),
        "unloadable": (
            version_files(with_model_bytes(versions[1], craft, b"this is not a pickle", _name(12))),
            "cannot be loaded",
        ),
        "cannot_predict": (
            version_files(with_model_bytes(versions[1], craft, _pipeline_that_cannot_predict(), _name(13))),
            "cannot predict the canned sample",
        ),
        "unsigned_hostile_pickle": (
            version_files(
                with_model_bytes(
                    versions[1],
                    craft,
                    pickle.dumps(PickledCall(os.mkdir, str(marker_unsigned))),
                    _name(14),
                    sign=False,
                )
            ),
            "not signed",
        ),
        "signed_pickle_runs_unprivileged": (
            version_files(
                with_model_bytes(
                    versions[1], craft, pickle.dumps(PickledCall(os.mkdir, str(marker_nobody))), _name(15)
                )
            ),
            "Permission denied" if os.geteuid() == 0 else "cannot be loaded",
        ),
    }
    commits = {label: pusher.commit(files) for label, (files, _) in cases.items()}
    refspecs = [f"{commits[label]}:refs/staging/{_name(20 + i)}" for i, label in enumerate(cases)]
    # The ref names of cases whose manifest carries a version must match it; use that version for those.
    for i, label in enumerate(cases):
        manifest_path = cases[label][0].get("model.json")
        if isinstance(manifest_path, Path):
            version = json.loads(manifest_path.read_text())["version"]
            if label != "missing_model":
                refspecs[i] = f"{commits[label]}:refs/staging/{version}"
    control = pusher.commit(version_files(control_version))
    refspecs.append(f"{control}:refs/staging/{_name(0)}")
    unsigned_deploy = pusher.commit(version_files(versions[2]))
    refspecs.append(f"+{unsigned_deploy}:refs/heads/deploy")
    refspecs.append(f"{control}:refs/heads/main")

    started = time.perf_counter()
    result = pusher.push(host, refspecs)
    seconds = time.perf_counter() - started
    return {
        "host": host,
        "result": result,
        "lines": stargazer_lines(result.stderr),
        "cases": {label: (commits[label], expected) for label, (_, expected) in cases.items()},
        "control": control,
        "unsigned_deploy": unsigned_deploy,
        "markers": (marker_unsigned, marker_nobody, marker_hmac),
        "seconds": seconds,
    }


CASES = [
    "missing_manifest",
    "missing_model",
    "malformed_json",
    "malformed_schema",
    "unsigned",
    "other_key",
    "retired_hmac",
    "edited_after_signing",
    "sha256_mismatch",
    "input_columns",
    "feature_version",
    "sklearn",
    "unloadable",
    "cannot_predict",
    "unsigned_hostile_pickle",
    "signed_pickle_runs_unprivileged",
]


@pytest.mark.parametrize("case", CASES)
def test_each_problem_is_refused_with_one_line(refused_push: dict, case: str) -> None:
    commit, expected = refused_push["cases"][case]
    mine = [line for line in refused_push["lines"] if f"({commit[:10]})" in line]
    assert len(mine) == 1, f"{case}: expected one line, got {mine} in {refused_push['lines']}"
    assert mine[0].startswith("stargazer: refused refs/staging/")
    assert expected in mine[0], mine[0]


def test_whole_push_rejected_and_nothing_switched(refused_push: dict) -> None:
    host: Host = refused_push["host"]
    result = refused_push["result"]
    assert result.returncode != 0
    assert "pre-receive hook declined" in result.stdout
    lines = refused_push["lines"]
    assert len(lines) == len(CASES) + 2  # + unsigned push to deploy + push to main; the control has none
    assert not [line for line in lines if f"refs/staging/{_name(0)}" in line]
    deploy_line = next(line for line in lines if line.startswith("stargazer: refused refs/heads/deploy"))
    assert "model.json is not signed" in deploy_line
    main_line = next(line for line in lines if line.startswith("stargazer: refused refs/heads/main"))
    assert ("only refs/heads/deploy, refs/staging/<version> and refs/stargazer/shadow accept pushes"
            in main_line)
    assert all("\n" not in line for line in lines)
    for keys in (DEPLOY_KEYS, OTHER_DEPLOY_KEYS):
        assert keys.signing_text not in result.stderr
    # Nothing moved: current, the log, the refs; and git dropped the quarantined objects.
    [entry] = host.log()
    assert host.current() == entry["version"]
    refs = host.git("for-each-ref", "--format=%(refname)").stdout.split()
    assert refs == ["refs/heads/deploy", "refs/stargazer/serving"]
    assert host.git("cat-file", "-e", refused_push["control"]).returncode != 0


def test_no_pickle_ran_unsigned_and_signed_ones_ran_unprivileged(refused_push: dict) -> None:
    unsigned_marker, nobody_marker, hmac_marker = refused_push["markers"]
    assert not unsigned_marker.exists(), "an unsigned pickle was unpickled"
    assert not hmac_marker.exists(), "an HMAC-signed pickle was unpickled"
    if os.geteuid() == 0:
        assert not nobody_marker.exists(), "the model check ran with root's rights"


def test_time_limit_kills_a_model_that_hangs(tmp_path: Path, versions: list[Path], git_ready: None) -> None:
    public_key_file = DEPLOY_KEYS.write_public(tmp_path / "public_key")
    host = install_host(tmp_path, "slow", public_key_file)
    host.set("stargazer.checktimeout", "3")
    pusher = Pusher(tmp_path / "scratch.git")
    subprocess.run(["git", "init", "-q", "--bare", str(pusher.repo)], check=True)
    hanging = with_model_bytes(versions[1], tmp_path, pickle.dumps(PickledCall(time.sleep, 120)), _name(1))
    started = time.perf_counter()
    result = pusher.push(host, [f"{pusher.commit(version_files(hanging))}:refs/heads/deploy"])
    seconds = time.perf_counter() - started
    [line] = stargazer_lines(result.stderr)
    assert result.returncode != 0
    assert "did not load and predict the canned sample within 3 s (killed)" in line
    assert seconds < 60
    assert host.current() is None and host.ref("refs/heads/deploy") is None
