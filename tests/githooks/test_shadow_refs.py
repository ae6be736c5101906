"""The shadow's refs over real ``git push`` into hosts made by the real installer (no workers here: the
shadow log is written the way a worker writes it; tests/model_serving/production_server/test_shadow_stack.py
runs the whole thing with real workers under load).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import Result

from model_serving import releases
from model_serving.development_server.deploy import DeployRepo
from model_serving.production_server import shadow_log
from tests.support import DEPLOY_KEYS, OTHER_DEPLOY_KEYS, Host, install_host, stargazer_lines

pytestmark = pytest.mark.integration

SHADOW_REF = "refs/stargazer/shadow"


def _pairs(host: Host, serving: str, shadow: str, pairs: list[tuple[list[float], list[float]]]) -> None:
    """Shadow log lines as a worker writes them (after the shadow link was set)."""
    path = shadow_log.path_for(host.model_dir)
    for served, shadowed in pairs:
        entry = shadow_log.record(serving_version=serving, shadow_version=shadow, serving=served,
                                  shadow=shadowed, serving_seconds=0.001, shadow_seconds=0.002, error=None,
                                  dropped_before=0, pid=os.getpid())
        assert shadow_log.append(path, entry, max_bytes=0, backups=0)


def _serve_then_shadow(tmp_path: Path, versions: list[Path], public_key_file: Path, deploy) -> (
        tuple[Host, int, Result]):
    """A host serving ``versions[0]`` with ``versions[1]`` deployed as its shadow; the ``current`` link's
    mtime before the shadow push, and that push's result."""
    host = install_host(tmp_path, "h1", public_key_file)
    models = versions[0].parent
    assert deploy("--version", versions[0].name, models=models, remotes=[host]).exit_code == 0
    served_before = (host.model_dir / "current").lstat().st_mtime_ns
    shadowed = deploy("--version", versions[1].name, "--shadow", "0.005", "--poll", "0.1", models=models,
                      remotes=[host])
    assert shadowed.exit_code == 0, shadowed.output
    return host, served_before, shadowed


def test_shadow_sets_the_link_never_current_then_promote_clears_it(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy
) -> None:
    host, served_before, shadowed = _serve_then_shadow(tmp_path, versions, public_key_file, deploy)
    models = versions[0].parent
    v0, v1 = versions[0].name, versions[1].name
    assert "shadow 1/2: validate on every host" in shadowed.output
    assert "loads and predicts the canned sample" in shadowed.output  # phase 1's full check ran
    assert f"shadow set on h1: shadow -> {v1} (scored beside {v0}, never answered with)" in shadowed.output
    assert "0 request(s), 0 prediction pair(s)" in shadowed.output
    assert host.current() == v0 and releases.shadow_version(host.model_dir) == v1
    assert (host.model_dir / "current").lstat().st_mtime_ns == served_before
    assert os.readlink(host.model_dir / "shadow") == f"releases/{v1}"
    assert [e["version"] for e in host.log()] == [v0]  # a shadow serves nobody: not in the deploy log
    commit = DeployRepo(tmp_path / "deploy.git").resolve(f"refs/tags/model-{v1}")
    assert host.ref(SHADOW_REF) == commit and host.ref(f"refs/staging/{v1}") == commit
    assert host.ref("refs/stargazer/shadow-report") is None  # each report request removes its ref

    _pairs(host, v0, v1, [([10.0, 100.0, 1000.0], [11.0, 90.0, 1100.0])] * 3)
    promoted = deploy("--promote", "--if-shadow-within", "max_abs_log_diff_p90=0.2,min_rank_agreement=0.9",
                      models=models, remotes=[host])
    assert promoted.exit_code == 0, promoted.output
    assert "3 request(s), 9 prediction pair(s), 0 shadow error(s)" in promoted.output
    assert "Spearman mean 1.000" in promoted.output
    assert "within max_abs_log_diff_p90=0.2, min_rank_agreement=0.9 on every host" in promoted.output
    assert "(validated at staging)" in promoted.output  # phase 2 only: the load check is not repeated
    assert host.current() == v1
    assert not (host.model_dir / "shadow").is_symlink()
    assert host.ref(SHADOW_REF) is None and host.ref(f"refs/staging/{v1}") is None
    assert [(e["event"], e["version"]) for e in host.log()] == [("deploy", v0), ("deploy", v1)]


def test_promote_refused_by_thresholds_names_the_one_that_failed(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy
) -> None:
    host, _, _ = _serve_then_shadow(tmp_path, versions, public_key_file, deploy)
    models = versions[0].parent
    v0, v1 = versions[0].name, versions[1].name
    # Rankings agree, values do not: twice the stars everywhere.
    _pairs(host, v0, v1, [([10.0, 100.0], [21.0, 201.0])] * 4)
    refused = deploy("--promote", "--if-shadow-within", "min_rank_agreement=0.8,max_abs_log_diff_p90=0.3",
                     models=models, remotes=[host])
    assert refused.exit_code == 1, refused.output
    error = refused.output.strip().splitlines()[-1]
    assert error.startswith(f"Error: not promoted: the shadow of {v1} is not within the thresholds: "
                            f"{host.url}: max_abs_log_diff_p90=0.3: 90th percentile of |log ratio| is 0.6931")
    assert "min_rank_agreement" not in error
    assert host.current() == v0 and releases.shadow_version(host.model_dir) == v1

    no_data = deploy("--promote", "--if-shadow-within", "min_requests=1000", models=models, remotes=[host])
    assert no_data.exit_code == 1
    assert "min_requests=1000: requests scored by both models is 4" in no_data.output

    stopped = deploy("--shadow-stop", models=models, remotes=[host])
    assert stopped.exit_code == 0, stopped.output
    assert f"shadow cleared on h1 (was {v1})" in stopped.output
    assert releases.shadow_version(host.model_dir) is None and host.ref(SHADOW_REF) is None
    nothing = deploy("--promote", models=models, remotes=[host])
    assert nothing.exit_code == 1 and f"nothing to promote: no shadow on {host.url}" in nothing.output
    assert host.current() == v0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--promote", "--if-shadow-within", "max_abs_log_diff_p90"], "is not name=value"),
        (["--promote", "--if-shadow-within", "max_diff=0.3"], "unknown threshold 'max_diff' (known: "),
        (["--promote", "--if-shadow-within", "min_rank_agreement=x"], "min_rank_agreement must be a number"),
        (["--if-shadow-within", "min_requests=3"], "--if-shadow-within needs --promote"),
        (["--shadow", "1", "--promote"], "--shadow and --promote cannot be combined"),
        (["--promote", "model-x"], "--promote acts on the version the hosts shadow: give no version"),
    ],
)
def test_bad_shadow_options_are_one_line_errors(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy, args: list[str], message: str
) -> None:
    result = deploy(*args, models=versions[0].parent, remotes=[str(tmp_path / "nowhere.git")])
    assert result.exit_code != 0
    assert message in result.output, result.output


def test_prereceive_judges_shadow_pushes_and_report_requests(
    tmp_path: Path, versions: list[Path], public_key_file: Path, deploy
) -> None:
    host = install_host(tmp_path, "h1", public_key_file)
    models = versions[0].parent
    v0 = versions[0].name
    assert deploy("--version", v0, models=models, remotes=[host]).exit_code == 0
    dev = DeployRepo(tmp_path / "deploy.git")
    wrong, _ = dev.commit_version(versions[1], OTHER_DEPLOY_KEYS.signing)

    pushed = subprocess.run(["git", f"--git-dir={dev.path}", "push", host.url, f"+{wrong}:{SHADOW_REF}"],
                            capture_output=True, text=True, check=False)
    assert pushed.returncode != 0
    assert stargazer_lines(pushed.stderr) == [
        f"stargazer: refused {SHADOW_REF} ({wrong[:10]}): model.json signature does not match "
        "(signed with another key or edited manifest)"]
    assert host.ref(SHADOW_REF) is None and releases.shadow_version(host.model_dir) is None

    served = host.ref("refs/heads/deploy")
    asked = subprocess.run(["git", f"--git-dir={dev.path}", "push", host.url,
                            f"+{served}:refs/stargazer/shadow-report"], capture_output=True, text=True,
                           check=False)
    assert asked.returncode != 0  # no shadow: a report request can carry nothing
    assert ("refs/stargazer/shadow-report accepts only the commit of refs/stargazer/shadow (a report request)"
            in asked.stderr)

    good, _ = dev.commit_version(versions[1], DEPLOY_KEYS.signing)
    direct = subprocess.run(["git", f"--git-dir={dev.path}", "push", host.url, f"+{good}:{SHADOW_REF}"],
                            capture_output=True, text=True, check=False)
    assert direct.returncode == 0, direct.stderr
    assert "loads and predicts the canned sample" in direct.stderr  # not staged first: the full check
    assert releases.shadow_version(host.model_dir) == versions[1].name and host.current() == v0
    report = subprocess.run(["git", f"--git-dir={dev.path}", "push", host.url,
                             f"+{good}:refs/stargazer/shadow-report"], capture_output=True, text=True,
                            check=False)
    [line] = [x for x in stargazer_lines(report.stderr) if "shadow-report" in x]
    data = json.loads(line.removeprefix("stargazer: shadow-report "))
    assert data["shadow_version"] == versions[1].name and data["serving_version"] == v0
    assert data["requests"] == 0 and data["host"] == "h1"
    assert host.ref("refs/stargazer/shadow-report") is None


def test_a_shadow_release_is_never_pruned(tmp_path: Path, versions: list[Path], public_key_file: Path,
                                          deploy) -> None:
    host = install_host(tmp_path, "h1", public_key_file, keep=1)
    models = versions[0].parent
    names = [v.name for v in versions]
    assert deploy("--version", names[0], models=models, remotes=[host]).exit_code == 0
    assert deploy("--version", names[3], "--shadow", "0.005", "--poll", "0.1", models=models,
                  remotes=[host]).exit_code == 0
    for name in names[1:3]:
        assert deploy("--version", name, models=models, remotes=[host]).exit_code == 0
    kept = sorted(p.name for p in releases.list_releases(host.model_dir))
    assert kept == sorted([names[2], names[3]])  # keep=1 plus the shadow
    assert releases.shadow_version(host.model_dir) == names[3]
