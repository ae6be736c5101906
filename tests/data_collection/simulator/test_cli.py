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

from tests.support import REPO_ROOT, free_port

pytestmark = pytest.mark.integration


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "data_collection.simulator", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_cli_serves_until_terminated() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_collection.simulator", "--port", str(port), "--repos", "800",
         "--seed", "4", "--tokens", "cli-token-1,cli-token-2", "--quota-core", "7", "--reset-seconds", "30",
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


@pytest.mark.parametrize(("args", "words"), [
    (["--error-rate-502", "2"], "--error-rate-502"),
    (["--repos", "-5"], "--repos"),
    (["--port", "nope"], "--port"),
    (["--tokens", " , "], "no token"),
    (["--pages", "/nonexistent/page.json"], "search page not found"),
])
def test_bad_options_give_one_clear_line(args: list[str], words: str) -> None:
    result = _run("--port", "0", *args)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and words in errors[0], result.stderr


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _run("--port", str(busy.getsockname()[1]), "--repos", "10")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: cannot listen on 127.0.0.1:")
