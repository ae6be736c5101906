"""The process managers on their own: a private RabbitMQ node over real AMQP, nginx with its JSON error pages
in front of a tiny upstream, and the pid-file rule (stop exactly what was started, never a recycled pid)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from model_serving.process_stack import services
from model_serving.process_stack.services import ManagedProcess, Nginx, PidRecord, RabbitMQ, ServiceError
from tests.support import free_port, require_executable, wait_until

# ----------------------------------------------------------------------------------------------------------
# RabbitMQ
# ----------------------------------------------------------------------------------------------------------


def _require_rabbitmq() -> None:
    require_executable("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")


def _node_processes(node: str) -> list[int]:
    """Pids whose command line names this node (the Erlang VM and its helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if node.encode() in cmdline and services._start_ticks(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


@pytest.mark.integration
def test_rabbitmq_node_serves_amqp_survives_restart_and_stops_clean(tmp_path: Path) -> None:
    _require_rabbitmq()
    from amqp.exceptions import AccessRefused
    from kombu import Connection, Exchange, Queue

    # A second node beside it: each test/stack has its own node name and ports, so they never collide.
    broker, neighbour = RabbitMQ(tmp_path / "rmq"), RabbitMQ(tmp_path / "neighbour")
    try:
        broker.start()
        neighbour.start()
        broker.wait_ready(timeout=60)
        neighbour.wait_ready(timeout=60)
        assert broker.node != neighbour.node and broker.port != neighbour.port
        assert services.port_open("127.0.0.1", broker.port)
        queue = Queue("survivor", Exchange("survivor", type="direct"), routing_key="k", durable=True)
        with Connection(broker.url) as conn:
            conn.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key="k", declare=[queue],
                                    delivery_mode=2, retry=True)
        # Another password is refused: the node has no guest/default login open.
        wrong = broker.url.replace(broker.password, "not-the-password")
        with pytest.raises(AccessRefused), Connection(wrong, connect_timeout=2) as conn:
            conn.connect()

        neighbour.stop()
        assert broker.amqp_login() == "ok", "stopping one node touched the other"

        old_pid = broker.pid
        broker.restart()
        assert broker.pid != old_pid
        # Same node, same data directory: the persistent message is still there after the restart.
        with Connection(broker.url) as conn:
            message = queue(conn.default_channel).get(no_ack=True)
        assert message is not None and message.payload == {"n": 1}

        # The password is in no command line and no log file.
        for pid in _node_processes(broker.node):
            assert broker.password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        for log in (tmp_path / "rmq").rglob("*.log"):
            assert broker.password not in log.read_text(errors="replace")
    finally:
        node, epmd_port = broker.node, broker.epmd_port
        broker.stop()
        neighbour.stop()
    assert _node_processes(node) == [], "the Erlang VM or a helper outlived stop()"
    assert _node_processes(neighbour.node) == []
    assert not services.port_open("127.0.0.1", broker.port)
    assert not services.port_open("127.0.0.1", epmd_port), "the node's own epmd outlived stop()"
    assert not broker.pid_file.exists()


# ----------------------------------------------------------------------------------------------------------
# nginx in front of a tiny upstream
# ----------------------------------------------------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, b'{"status": "ok"}')
        elif self.path == "/big":
            self._send(200, json.dumps({"rows": ["x" * 40] * 200}).encode(),
                       extra={"X-Frame-Options": "SAMEORIGIN"})  # nginx must replace it, not duplicate it
        else:
            self._send(200, b"<html>hi</html>", "text/html")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        if self.path == "/api/v1/app-error":
            self._send(503, b'{"error": "no model", "details": {}}')  # the app's own error: passed through
        else:
            self._send(200, b'{"ok": true}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_nginx_limits_headers_gzip_and_json_error_pages(tmp_path: Path, upstream: str) -> None:
    require_executable("nginx", "/usr/sbin/nginx")
    nginx = Nginx(tmp_path / "nginx", upstreams=[upstream],
                  variables={"nginx_limit_req_rate": "1r/s", "nginx_limit_req_burst": 2,
                             "nginx_metrics_allow": []})
    with nginx:
        nginx.start().wait_ready(10)
        base = nginx.url
        health = requests.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        for header, value in {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                              "Referrer-Policy": "same-origin"}.items():
            assert health.headers[header] == value
        assert "default-src 'self'" in health.headers["Content-Security-Policy"]
        assert "nginx/" not in health.headers.get("Server", "")  # server_tokens off

        big = requests.get(f"{base}/big", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
        assert big.headers["Content-Encoding"] == "gzip"
        raw = big.raw.read()
        assert json.loads(gzip.decompress(raw))["rows"][0] == "x" * 40
        assert big.headers["X-Frame-Options"] == "DENY"  # one value, nginx's

        too_big = requests.post(f"{base}/api/v1/predict", data=b"x" * (2 * 1024 * 1024),
                                headers={"Content-Type": "application/json"}, timeout=10)
        assert too_big.status_code == 413
        assert too_big.headers["Content-Type"] == "application/json"
        assert set(too_big.json()) == {"error", "details"} and "too large" in too_big.json()["error"]
        assert too_big.headers["X-Frame-Options"] == "DENY"  # security headers on error pages too

        # A body under the limit but above nginx's default buffer reaches the app (no temp file needed).
        near_limit = requests.post(f"{base}/api/v1/predict", data=b"x" * 900_000,
                                   headers={"Content-Type": "application/json"}, timeout=10)
        assert near_limit.status_code == 200, near_limit.text[:200]

        passed = requests.post(f"{base}/api/v1/app-error", json={}, timeout=5)
        assert passed.status_code == 503 and passed.json()["error"] == "no model"  # not replaced by nginx

        statuses = [requests.post(f"{base}/api/v1/predict", json={}, timeout=5) for _ in range(8)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited, [r.status_code for r in statuses]
        assert limited[0].json()["details"]["status"] == 429
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # /healthz is never limited

        assert requests.get(f"{base}/metrics", timeout=5).status_code == 403  # nobody allowed here

    # Upstream down: nginx's own 502, as JSON on /api/.
    dead = Nginx(tmp_path / "dead", upstreams=[f"127.0.0.1:{free_port()}"])
    with dead:
        dead.start().wait_ready(10)
        answer = requests.post(f"{dead.url}/api/v1/predict", json={}, timeout=10)
        assert answer.status_code == 502
        assert answer.json()["details"] == {"status": 502, "source": "nginx"}


@pytest.mark.integration
def test_nginx_exempt_addresses_are_never_rate_limited(tmp_path: Path, upstream: str) -> None:
    """How the benchmark exempts itself: by configuration (nginx_limit_req_exempt), not by a code path."""
    require_executable("nginx", "/usr/sbin/nginx")
    nginx = Nginx(tmp_path / "nginx", upstreams=[upstream],
                  variables={"nginx_limit_req_rate": "1r/s", "nginx_limit_req_burst": 1,
                             "nginx_limit_req_exempt": ["127.0.0.0/8"]})
    with nginx:
        nginx.start().wait_ready(10)
        codes = {requests.post(f"{nginx.url}/api/v1/predict", json={}, timeout=5).status_code
                 for _ in range(20)}
    assert codes == {200}


class _CountingUpstream(BaseHTTPRequestHandler):
    """Answers 200 and remembers each request's client port (one port: one kept-alive connection);
    ``/api/v1/slow`` takes longer than the nginx under test waits."""

    protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn speaks it
    disable_nagle_algorithm = True
    peers: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        type(self).peers.append(self.client_address[1])
        if self.path.startswith("/api/v1/slow"):
            time.sleep(3)
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # nginx gave up on the slow one already
            self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.mark.integration
def test_nginx_keeps_upstream_connections_alive_and_times_out_as_json(tmp_path: Path) -> None:
    require_executable("nginx", "/usr/sbin/nginx")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _CountingUpstream.peers = []
    nginx = Nginx(tmp_path / "nginx", upstreams=[f"127.0.0.1:{server.server_address[1]}"],
                  variables={"nginx_proxy_read_timeout": 1, "nginx_worker_processes": 1})
    try:
        with nginx:
            nginx.start().wait_ready(10)
            for i in range(20):
                assert requests.get(f"{nginx.url}/page-{i}", timeout=5).status_code == 200
            # 20 requests, each on a new client connection, reached the upstream over ONE kept-alive one.
            assert len(_CountingUpstream.peers) == 20 and len(set(_CountingUpstream.peers)) == 1

            too_big = requests.post(f"{nginx.url}/api/v1/predict", data=b"x" * (2 * 1024 * 1024),
                                    headers={"Content-Type": "application/json"}, timeout=10)
            assert too_big.status_code == 413  # nginx's refusal says it in the app's own words
            assert too_big.json()["error"] == "request body too large: the limit is 1 MB"

            started = time.monotonic()
            slow = requests.get(f"{nginx.url}/api/v1/slow", timeout=10)
            waited = time.monotonic() - started
            assert slow.status_code == 504 and slow.headers["Content-Type"] == "application/json"
            assert slow.json() == {"error": "the application server timed out",
                                   "details": {"status": 504, "source": "nginx"}}
            assert 0.9 < waited < 2.5, waited  # proxy_read_timeout, not the upstream's 3 s
    finally:
        server.shutdown()
        server.server_close()


def test_nginx_template_renders_for_several_upstreams_and_is_valid(tmp_path: Path) -> None:
    nginx_bin = require_executable("nginx", "/usr/sbin/nginx")
    conf = services.render_nginx_conf({
        "nginx_listen": 18080,
        "nginx_upstreams": ["10.0.0.11:8000", "10.0.0.12:8000", "unix:/run/stargazer/gunicorn.sock"],
        "nginx_pid_file": str(tmp_path / "nginx.pid"),
        "nginx_error_log": str(tmp_path / "error.log"),
        "nginx_access_log": "off",
        "nginx_temp_dir": "",
        "nginx_limit_req_exempt": ["10.0.0.0/24", "192.168.1.7"],
    })
    assert conf.count("max_fails=3") == 3 and "10.0.0.0/24 1;" in conf
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    check = subprocess.run([nginx_bin, "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                            "-c", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_bad_nginx_variable_is_one_clear_error(tmp_path: Path) -> None:
    require_executable("nginx", "/usr/sbin/nginx")
    nginx = Nginx(tmp_path / "nginx", upstreams=["127.0.0.1:1"], variables={"nginx_limit_req_rate": "fast"})
    with pytest.raises(ServiceError, match="nginx rejects"):
        nginx.start()
    assert not nginx.pid_file.exists()


# ----------------------------------------------------------------------------------------------------------
# pid files: stop exactly what was started
# ----------------------------------------------------------------------------------------------------------


class _Sleeper(ManagedProcess):
    name = "sleeper"

    def command(self) -> list[str]:
        # A parent that forks a child into its process group: stop() must take both.
        return [sys.executable, "-c",
                "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
                "'import time; time.sleep(60)']); time.sleep(60)"]

    def check_ready(self) -> bool:
        return True


def test_stop_takes_the_process_group_and_only_it(tmp_path: Path) -> None:
    sleeper = _Sleeper(tmp_path)
    sleeper.start()
    record = sleeper.record()
    assert record is not None and record.alive()

    def both_in_the_group() -> list[int] | None:
        members = services.group_members(record.pid)
        return members if len(members) == 2 else None

    group = wait_until(both_in_the_group, 60, "the sleeper and its child in one process group", interval=0.05)
    assert record.pid in group
    # A second manager reading the same pid file (what `local.py stop` does) stops it.
    assert _Sleeper(tmp_path).stop() is True
    assert services.group_members(record.pid) == []
    assert all(services._start_ticks(pid) is None for pid in group)
    assert _Sleeper(tmp_path).stop() is False  # nothing recorded any more


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ticks = services._start_ticks(bystander.pid)
        assert ticks is not None
        # A stale pid file naming the same pid but another start time: a different process in the past.
        PidRecord(bystander.pid, ticks - 1, "sleeper").write(tmp_path / "sleeper.pid.json")
        assert _Sleeper(tmp_path).stop() is False
        assert bystander.poll() is None, "stop() signalled a process it did not start"
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()



def test_stop_takes_orphans_of_a_parent_that_died_on_its_own(tmp_path: Path) -> None:
    sleeper = _Sleeper(tmp_path)
    sleeper.start()
    record = sleeper.record()
    assert record is not None
    wait_until(lambda: len(services.group_members(record.pid)) >= 2, 60, "the sleeper's child in its group",
               interval=0.05)
    orphans = [pid for pid in services.group_members(record.pid) if pid != record.pid]
    assert orphans
    os.kill(record.pid, signal.SIGKILL)  # the parent crashes; its child keeps running in the group
    sleeper._popen.wait()  # type: ignore[union-attr]
    assert not sleeper.is_running()
    assert services.group_members(record.pid) == orphans
    assert sleeper.stop() is False  # the recorded process was already gone ...
    assert services.group_members(record.pid) == []  # ... but what it left behind is stopped too


def test_die_with_parent_leaves_nothing_when_the_starter_is_killed(tmp_path: Path) -> None:
    """A test run killed by SIGKILL cannot tear down; services it started with die_with_parent stop anyway."""
    starter = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
from pathlib import Path
from model_serving.process_stack.services import ManagedProcess

class Sleeper(ManagedProcess):
    name = "sleeper"
    die_with_parent = True
    def command(self):
        return [sys.executable, "-c", "import time; time.sleep(60)"]

Sleeper(Path({str(tmp_path)!r})).start()
print("started", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None and starter.stdout.readline().strip() == "started"
        record = PidRecord.read(tmp_path / "sleeper.pid.json")
        assert record is not None and record.alive()
        starter.kill()  # SIGKILL: no teardown, no finally
        starter.wait()
        wait_until(lambda: not record.alive(), 60, "the service to die with the process that started it",
                   interval=0.05)
    finally:
        starter.kill()
        _Sleeper(tmp_path).stop()
