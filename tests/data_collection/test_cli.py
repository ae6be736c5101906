"""CLI failures: one clear line on stderr, non-zero exit, nothing spent or lost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from data_collection.cli import main
from tests.support import REPO_ROOT, free_port


def run_cli(args, env_extra=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update({"GITHUB_MAX_TRIES": "2", "GITHUB_BACKOFF_BASE": "0.01", "GITHUB_BACKOFF_MAX": "0.05",
                **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "data_collection", *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=timeout)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("args, fragment", [
    (["collect", "--out", "x.csv", "--min-stars", "-5"], "--min-stars"),
    (["collect", "--out", "x.csv", "--workers", "0"], "--workers"),
    (["collect", "--out", "x.csv", "--max-repos", "many"], "--max-repos"),
    (["collect"], "--out"),
    (["collect", "--out", "x.csv", "--bogus"], "--bogus"),
    (["fetch"], "fetch"),
])
def test_bad_flags(args, fragment, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    line = one_error_line(err)
    assert fragment in line
    assert len(err.strip().splitlines()) == 1


def test_unreachable_api_is_one_line_and_nonzero(tmp_path):
    port = free_port()
    result = run_cli(["collect", "--out", str(tmp_path / "r.csv"), "--no-progress"],
                     {"GITHUB_API_URL": f"http://127.0.0.1:{port}", "GITHUB_TOKENS": "tok-unreachable-1"})
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"cannot connect to http://127.0.0.1:{port}" in line and "failed after 2 tries" in line
    assert "tok-unreachable-1" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp / "a-file" / "repos.csv",   # parent is a regular file
    lambda tmp: tmp / "a-dir",                  # output is a directory
])
def test_unwritable_output_fails_before_any_request(tmp_path, make_out, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    # An API that does not exist: the output check must come first, so we never get to it.
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GITHUB_MAX_TRIES", "1")
    code = main(["collect", "--out", str(make_out(tmp_path)), "--no-progress"])
    line = one_error_line(capsys.readouterr().err)
    assert code in (1, 2)  # click itself refuses a directory as a usage error (2)
    assert "cannot write" in line or "is a directory" in line


def test_bad_environment_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKENS_FILE", str(tmp_path / "missing-tokens"))
    code = main(["collect", "--out", str(tmp_path / "r.csv")])
    assert code == 1 and "GITHUB_TOKENS_FILE" in one_error_line(capsys.readouterr().err)


def test_resume_with_other_parameters_is_refused(tmp_path, capsys, monkeypatch):
    from data_collection.checkpoint import Checkpoint, checkpoint_path

    out = tmp_path / "r.csv"
    Checkpoint(checkpoint_path(out), {"something": "else"}, resume=False).close()
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")
    code = main(["collect", "--out", str(out), "--resume"])
    assert code == 1 and "other parameters" in one_error_line(capsys.readouterr().err)
