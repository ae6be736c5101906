"""`python -m data_collection.simulator` as the demo and benchmarks start it: a real process, a real port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from data_collection.simulator.__main__ import main
from tests.support import REPO_ROOT, free_port


@pytest.mark.integration
def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    tokens = tmp_path / "tokens"  # as the github_simulator role starts it: never a token on a command line
    tokens.write_text("cli-token-1\ncli-token-2\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_collection.simulator", "--port", str(port), "--repos", "800",
         "--seed", "4", "--tokens-file", str(tokens), "--quota-core", "7", "--reset-seconds", "30",
         "--control"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())  # printed once the port is bound
        assert ready == {"url": f"http://127.0.0.1:{port}", "repositories": 800}
        h = {"Authorization": "token cli-token-2"}
        with requests.Session() as http:
            limits = http.get(f"{ready['url']}/rate_limit", headers=h).json()["resources"]
            assert limits["core"]["limit"] == 7
            found = http.get(f"{ready['url']}/search/repositories", params={"q": "stars:>=50"}, headers=h)
            assert found.status_code == 200 and found.json()["total_count"] > 700
            bad = http.get(f"{ready['url']}/rate_limit", headers={"Authorization": "token x"})
            assert bad.status_code == 401
            # runtime faults and counters of a simulator in another process (--control)
            control = http.post(f"{ready['url']}/_simulator/control",
                                json={"force_errors": {"count": 2, "status": 503}})
            assert control.status_code == 200
            statuses = [http.get(f"{ready['url']}/users/x", headers=h).status_code for _ in range(3)]
            assert statuses == [503, 503, 404]
            stats = http.get(f"{ready['url']}/_simulator/stats").json()
            assert stats["stats"]["faults"] == {"503": 2} and stats["config"]["tokens"] == 2
            refused = http.post(f"{ready['url']}/_simulator/control", json={"explode": True})
            assert refused.status_code == 400 and "explode" in refused.json()["message"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "cli-token" not in err  # tokens never in its output


def _invoke(*args: str) -> tuple[int, str]:
    """The command in-process (click's runner): same code as the process, without its start-up cost."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(("args", "words"), [
    (["--error-rate-502", "2"], "--error-rate-502"),
    (["--repos", "-5"], "--repos"),
    (["--port", "nope"], "--port"),
    (["--tokens", " , "], "no token"),
    (["--tokens-file", "/nonexistent/tokens"], "cannot read /nonexistent/tokens"),
    (["--pages", "/nonexistent/page.json"], "search page not found"),
])
def test_bad_options_give_one_clear_line(args: list[str], words: str) -> None:
    code, output = _invoke("--port", "0", *args)
    assert code != 0
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and words in errors[0], output


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, output = _invoke("--port", str(busy.getsockname()[1]), "--repos", "10")
    assert code == 1
    assert output.strip().splitlines()[-1].startswith("Error: cannot listen on 127.0.0.1:")


@pytest.mark.integration
def test_bad_option_in_a_real_process() -> None:
    result = subprocess.run([sys.executable, "-m", "data_collection.simulator", "--slow-rate", "-1"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("Error")] == [
        "Error: Invalid value for '--slow-rate': -1.0 is not in the range 0<=x<=1."]
