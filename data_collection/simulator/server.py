"""The HTTP side of the simulator: a threaded stdlib server on loopback, and the in-process API for tests.

WHY the stdlib `ThreadingHTTPServer`: no dependency, one thread per connection (the client's pool of K
keep-alive connections gets K threads), HTTP/1.1 keep-alive with Content-Length. Nagle is off and the headers
and body leave in ONE write: a server that writes them separately stalls ~40 ms per request on keep-alive
connections (Nagle + delayed ACK, measured on this machine).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from data_collection.simulator.app import GitHubApp, Response
from data_collection.simulator.config import SimulatorConfig
from data_collection.simulator.generator import generate
from data_collection.simulator.model import Repo
from data_collection.simulator.stats import Stats, StatsSnapshot
from data_collection.simulator.store import RepoStore

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection frees its thread after this

    server: _Server

    def _serve(self, method: str) -> None:
        sim = self.server.simulator
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""  # always drained, to keep the connection usable
        headers = {k.lower(): v for k, v in self.headers.items()}
        if split.path.startswith("/_simulator/") and sim.config.control:
            self._send(sim.control(method, split.path, body))
            return
        resp = sim.app.handle(method, split.path, query=split.query, headers=headers,
                              client=self.client_address[0], base_url=sim.url, body=body)
        self._send(resp)

    def _send(self, resp: Response) -> None:
        if resp.delay:
            time.sleep(resp.delay)
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        if resp.status not in (204, 304):
            self.send_header("Content-Length", str(len(resp.body)))
        # One write for status line, headers and body (see the module docstring).
        self._headers_buffer.append(b"\r\n" + (resp.body if resp.status not in (204, 304) else b""))
        self.flush_headers()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line and status: never headers (they hold tokens).
        if self.server.simulator.config.access_log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    simulator: SimulatorServer

    def server_activate(self) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop the open keep-alive connections: a stopped simulator must look down to its clients too."""
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SimulatorServer:
    """A GitHub API simulator on a real loopback port. See the package docstring for the API."""

    def __init__(self, config: SimulatorConfig | None = None, *, records: list[Repo] | None = None,
                 **overrides: Any) -> None:
        """`overrides` are SimulatorConfig fields; `records` serves the given repositories as they are."""
        config = (config or SimulatorConfig())
        if overrides:
            config = config.replace(**overrides)
        self._config = config.validate()
        started = time.perf_counter()
        self.store = RepoStore(load_repos(self._config) if records is None else records)
        self.build_seconds = time.perf_counter() - started
        self._stats = Stats()
        self.app = GitHubApp(self.store, lambda: self._config, self._stats)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def bind(self) -> SimulatorServer:
        """Open the listening socket (port 0 = any free port): `url` is known from here on."""
        if self._httpd is None:
            self._httpd = _Server((self._config.host, self._config.port), _Handler)
            self._httpd.simulator = self
        return self

    def start(self) -> SimulatorServer:
        """Bind and serve in a background thread."""
        self.bind()
        if self._thread is None:
            assert self._httpd is not None
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name="github-simulator", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind and serve in the calling thread (the CLI) until interrupted."""
        self.bind()
        assert self._httpd is not None
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._httpd is None:
            return
        if self._thread is not None:  # shutdown() from the serving thread itself would deadlock
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        self._httpd.close_connections()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- where -----------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("simulator not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to use as GITHUB_API_URL (no trailing slash)."""
        return f"http://{self._config.host}:{self.port}"

    # -- observe ---------------------------------------------------------------------------------------------
    @property
    def config(self) -> SimulatorConfig:
        return self._config

    @property
    def stats(self) -> StatsSnapshot:
        """A consistent snapshot of the counters (see stats.StatsSnapshot)."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def truth(self, full_name: str) -> dict[str, Any]:
        """The values a correct collector must find for one repository (KeyError if unknown)."""
        repo = self.store.repo(full_name)
        if repo is None:
            raise KeyError(full_name)
        return repo.truth()

    def expected(self, q: str) -> list[Repo]:
        """Every repository a search for `q` matches (beyond the 1000 cap): the coverage ground truth."""
        return self.store.search(q)

    # -- change at runtime -----------------------------------------------------------------------------------
    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change settings (fault rates, quotas, windows ...) for the following requests."""
        if {"repos", "seed", "pages", "min_stars", "star_alpha", "host", "port"} & set(changes):
            raise ValueError("data and address settings cannot change at runtime: start another simulator")
        self._config = self._config.replace(**changes)
        return self._config

    def add_token(self, token: str) -> None:
        self.app.revoked.discard(token)
        self.app.extra_tokens.add(token)

    def revoke(self, token: str) -> None:
        """The token now gets 401 Bad credentials (as a revoked GitHub token does)."""
        self.app.revoked.add(token)

    def exhaust(self, token: str | None = None, resource: str = "core") -> None:
        """Spend a token's quota for the current window (None: the anonymous quota of 127.0.0.1)."""
        if token is None:
            self.app.limits.exhaust("127.0.0.1", resource, authenticated=False)
        else:
            self.app.limits.exhaust(token, resource, authenticated=True)

    def reset_limits(self, token: str | None = None) -> None:
        """Forget rate-limit windows and secondary blocks (all, or one token's)."""
        self.app.limits.reset(token)

    def force_errors(self, count: int, status: int = 502) -> None:
        """The next `count` requests (any endpoint but /rate_limit) answer `status`: a storm."""
        self.app.force_errors(count, status)

    def force_secondary(self, count: int = 1) -> None:
        """The next `count` requests trip the secondary limit (403 + Retry-After)."""
        self.app.force_secondary(count)

    def control(self, method: str, path: str, body: bytes) -> Response:
        """The `--control` endpoints, for a simulator in another process (benchmarks, demos):
        GET /_simulator/stats; POST /_simulator/control with a JSON object of actions, e.g.
        {"configure": {"error_rate_502": 0.1}, "force_errors": {"count": 5, "status": 502},
         "force_secondary": 1, "exhaust": {"token": "t1", "resource": "core"}, "revoke": "t2",
         "add_token": "t3", "reset_limits": true, "reset_stats": true}."""
        def answer(status: int, payload: Any) -> Response:
            return Response(status, json.dumps(payload).encode(),
                            {"Content-Type": "application/json; charset=utf-8"})

        if method == "GET" and path == "/_simulator/stats":
            return answer(200, {"stats": self.stats.as_dict(), **self.describe()})
        if method != "POST" or path != "/_simulator/control":
            return answer(404, {"message": "Not Found"})
        try:
            actions = json.loads(body or b"{}")
            if not isinstance(actions, dict):
                raise ValueError("the body must be a JSON object of actions")
            unknown = set(actions) - {"configure", "force_errors", "force_secondary", "exhaust", "revoke",
                                      "add_token", "reset_limits", "reset_stats"}
            if unknown:
                raise ValueError(f"unknown action(s): {', '.join(sorted(unknown))}")
            if "configure" in actions:
                self.configure(**actions["configure"])
            if "force_errors" in actions:
                self.force_errors(int(actions["force_errors"]["count"]),
                                  int(actions["force_errors"].get("status", 502)))
            if "force_secondary" in actions:
                self.force_secondary(int(actions["force_secondary"]))
            if "exhaust" in actions:
                self.exhaust(actions["exhaust"].get("token"), actions["exhaust"].get("resource", "core"))
            if "revoke" in actions:
                self.revoke(str(actions["revoke"]))
            if "add_token" in actions:
                self.add_token(str(actions["add_token"]))
            if actions.get("reset_limits"):
                self.reset_limits()
            if actions.get("reset_stats"):
                self.reset_stats()
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return answer(400, {"message": f"bad control request: {exc}"})
        return answer(200, {"ok": True, **self.describe()})

    def describe(self) -> dict[str, Any]:
        cfg = dataclasses.asdict(self._config)
        cfg["tokens"] = len(self._config.tokens)  # never the values
        cfg["snapshot"] = self._config.snapshot.isoformat()
        return {"repositories": len(self.store), "build_seconds": round(self.build_seconds, 3), "config": cfg}


def load_repos(config: SimulatorConfig) -> list[Repo]:
    if config.pages:
        from data_collection.simulator.pages import load_pages

        return load_pages(config.pages, seed=config.seed)
    return generate(config.repos, config.seed, min_stars=config.min_stars, alpha=config.star_alpha,
                    snapshot=config.snapshot)
