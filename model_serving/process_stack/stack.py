"""The whole local serving stack as one object: broker -> Celery workers -> gunicorn -> nginx.

The integration tests and ``bench/serving.py`` both use this, so the stack the tests check is the one the
benchmark runs. Its state (which processes, which ports, where their pid files are) is written to
``<state_dir>/stack.json`` so that another process (``Stack.from_state``) can stop exactly what was started,
by pid file.

Broker: a private RabbitMQ node by default. ``broker="embedded"`` uses kombu's filesystem transport (messages
are files in a directory, polled every 50 ms) and Celery's file result backend, for machines where RabbitMQ
cannot be installed: slower (both sides poll), but the same code path through Celery. Not kombu's SQLAlchemy
transport: it hands every transport option to ``create_engine``, so its polling interval cannot be shortened
from the default 1 s.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from model_serving.process_stack.services import (
    CeleryWorker,
    Gunicorn,
    ManagedProcess,
    Nginx,
    RabbitMQ,
    ServiceError,
    free_port,
    http_get,
    self_signed_certificate,
)

STATE_FILE = "stack.json"
#: How fast the embedded (polling) broker looks for new messages: fast enough for a demo, cheap enough idle.
EMBEDDED_POLLING_INTERVAL = 0.05


@dataclass
class StackConfig:
    """What to start. Every field has a default that suits one 2-core machine."""

    state_dir: Path
    model_dir: Path
    http_port: int | None = None  # nginx (or gunicorn when use_nginx is False); None = a free port
    broker: Literal["rabbitmq", "embedded"] = "rabbitmq"
    broker_port: int | None = None
    broker_password: str | None = None
    celery_workers: int = 1  # worker instances (each a prefork master)
    celery_concurrency: int = 2  # processes per worker instance
    gunicorn_instances: int = 1  # upstreams behind nginx
    gunicorn_workers: int = 2
    gunicorn_threads: int = 8
    use_nginx: bool = True
    #: nginx serves HTTPS on http_port with a self-signed certificate (plain HTTP on a second port only
    #: redirects), as on a production host; off, the stack is plain HTTP and the session cookie not Secure.
    tls: bool = False
    nginx_variables: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the app and the workers
    die_with_parent: bool = False  # tests: every process gets SIGTERM if the test process dies

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        data["model_dir"] = str(self.model_dir)
        data.pop("broker_password")  # the password lives in its own 0600 file, never in stack.json
        data["env"] = sorted(self.env)  # names only: values may be secrets
        return data


class Stack:
    """Start, check and stop the four tiers in order; stop() stops exactly what start() started."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir)
        self.broker: RabbitMQ | None = None
        self.broker_url = ""
        self.result_backend = "rpc://"
        self.workers: list[CeleryWorker] = []
        self.gunicorns: list[Gunicorn] = []
        self.nginx: Nginx | None = None
        self.http_port = config.http_port or free_port()

    # -- environment shared by gunicorn and Celery ---------------------------------------------------
    @property
    def embedded_dir(self) -> Path:
        return self.state_dir / "embedded-broker"

    @property
    def metrics_dir(self) -> Path:
        return self.state_dir / "metrics"

    def app_env(self) -> dict[str, str]:
        env = {
            "STARGAZER_BROKER_URL": self.broker_url,
            "STARGAZER_RESULT_BACKEND": self.result_backend,
            "STARGAZER_MODEL_DIR": str(self.config.model_dir),
            "STARGAZER_STATE_DIR": str(self.state_dir),
            "STARGAZER_PREDICTION_LOG": str(self.state_dir / "predictions.jsonl"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "STARGAZER_SESSION_COOKIE_SECURE": "1" if self.serves_https else "0",
        }
        if self.config.broker == "embedded":
            queue_dir = self.embedded_dir / "queue"
            env["STARGAZER_BROKER_TRANSPORT_OPTIONS"] = json.dumps({
                "data_folder_in": str(queue_dir), "data_folder_out": str(queue_dir),
                "control_folder": str(self.embedded_dir / "control"),
                "polling_interval": EMBEDDED_POLLING_INTERVAL,
            })
        env.update(self.config.env)
        return env

    @property
    def serves_https(self) -> bool:
        return self.config.tls and self.config.use_nginx

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def tls_certificate(self) -> Path | None:
        """The certificate a client of this stack trusts (None: plain HTTP)."""
        return self.tls_dir / "tls.crt" if self.serves_https else None

    @property
    def url(self) -> str:
        return f"{'https' if self.serves_https else 'http'}://127.0.0.1:{self.http_port}"

    def _nginx_tls_variables(self) -> dict[str, Any]:
        if not self.serves_https:
            return {}
        cert, key = self_signed_certificate(self.tls_dir)
        return {"nginx_https_listen": f"127.0.0.1:{self.http_port}", "nginx_tls_certificate": str(cert),
                "nginx_tls_certificate_key": str(key)}

    def processes(self) -> list[ManagedProcess]:
        """In start order."""
        found: list[ManagedProcess] = []
        if self.broker is not None:
            found.append(self.broker)
        found.extend(self.workers)
        found.extend(self.gunicorns)
        if self.nginx is not None:
            found.append(self.nginx)
        return found

    # -- start / stop ---------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0, progress: Any = None) -> Stack:
        say = progress or (lambda message: None)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)  # multiprocess metrics must start empty
        self.metrics_dir.mkdir(parents=True)
        try:
            self._start_broker(say)
            self._write_state()
            cfg = self.config
            env = self.app_env()
            for index in range(cfg.celery_workers):
                worker = CeleryWorker(self.state_dir / "celery", concurrency=cfg.celery_concurrency,
                                      index=index, env=env)
                worker.die_with_parent = cfg.die_with_parent
                self.workers.append(worker)
                worker.start()
                self._write_state()
            for index in range(cfg.gunicorn_instances):
                bind = None
                if not cfg.use_nginx and index == 0:
                    bind = f"127.0.0.1:{self.http_port}"
                gunicorn = Gunicorn(self.state_dir / "gunicorn", bind=bind, workers=cfg.gunicorn_workers,
                                    threads=cfg.gunicorn_threads, index=index, env=env)
                gunicorn.die_with_parent = cfg.die_with_parent
                self.gunicorns.append(gunicorn)
                gunicorn.start()
                self._write_state()
            say(f"{len(self.workers)} Celery worker(s), {len(self.gunicorns)} gunicorn(s) starting")
            for process in [*self.workers, *self.gunicorns]:
                process.wait_ready(timeout)
            if cfg.use_nginx:
                self.nginx = Nginx(self.state_dir / "nginx",
                                   port=free_port() if self.serves_https else self.http_port,
                                   upstreams=[g.address for g in self.gunicorns],
                                   variables={**self._nginx_tls_variables(), **cfg.nginx_variables})
                self.nginx.die_with_parent = cfg.die_with_parent
                self.nginx.start()
                self._write_state()
                self.nginx.wait_ready(timeout)
                say(f"nginx on {self.url}")
            self.wait_readyz(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_broker(self, say: Any) -> None:
        cfg = self.config
        if cfg.broker == "rabbitmq":
            self.broker = RabbitMQ(self.state_dir / "rabbitmq", port=cfg.broker_port,
                                   password=cfg.broker_password)
            say(f"starting {self.broker.describe()}")
            self.broker.die_with_parent = cfg.die_with_parent
            self.broker.start()
            self._write_state()
            self.broker.wait_ready(timeout=60)
            self.broker_url = self.broker.url
            self.result_backend = "rpc://"
        else:
            shutil.rmtree(self.embedded_dir, ignore_errors=True)  # no stale messages from an earlier run
            for sub in ("queue", "control", "results"):
                (self.embedded_dir / sub).mkdir(parents=True)
            self.broker_url = "filesystem://"
            self.result_backend = f"file://{self.embedded_dir / 'results'}"
            say("embedded broker (kombu filesystem transport, polling every "
                f"{EMBEDDED_POLLING_INTERVAL * 1000:.0f} ms) because RabbitMQ is not available: "
                "fine for a demo, not for production")

    def wait_readyz(self, timeout: float = 60.0) -> dict[str, Any]:
        """Poll /readyz through the front door until it says ready (200)."""
        address = f"127.0.0.1:{self.http_port}"
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for process in self.processes():
                if not process.is_running():
                    raise ServiceError(f"{process.describe()} died; log {process.log_file}")
            try:
                status, body = http_get(address, "/readyz", timeout=5, tls_ca=self.tls_certificate)
                last = f"{status} {body[:200].decode(errors='replace')}"
                if status == 200:
                    return json.loads(body or b"{}")
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ServiceError(f"/readyz not ready after {timeout:.0f} s: {last}")

    def stop(self) -> list[str]:
        """Stop tier by tier (nginx; gunicorn and workers together; the broker last); returns what ran.

        gunicorn and the Celery workers stop gracefully (requests and tasks in flight finish) and in
        parallel: each takes seconds, and none depends on another.
        """
        stopped: list[str] = []

        def stop_one(process: ManagedProcess) -> None:
            with contextlib.suppress(Exception):
                if process.stop():
                    stopped.append(process.describe())

        tiers: list[list[ManagedProcess]] = [
            [self.nginx] if self.nginx else [],
            [*self.gunicorns, *self.workers],
            [self.broker] if self.broker else [],
        ]
        for tier in tiers:
            with ThreadPoolExecutor(max_workers=max(1, len(tier))) as pool:
                list(pool.map(stop_one, tier))
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / STATE_FILE).unlink()
        return stopped

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state file: how another process finds what start started --------------------------------------------
    def _write_state(self) -> None:
        state = {
            "config": self.config.to_json(),
            "url": self.url,
            "http_port": self.http_port,
            "broker": None if self.broker is None else {
                "state_dir": str(self.broker.state_dir), "port": self.broker.port,
                "redacted_url": self.broker.redacted_url,
            },
            "workers": [{"state_dir": str(w.state_dir), "index": w.index, "concurrency": w.concurrency}
                        for w in self.workers],
            "gunicorns": [{"state_dir": str(g.state_dir), "index": g.index, "bind": g.bind,
                           "workers": g.workers, "threads": g.threads} for g in self.gunicorns],
            "nginx": None if self.nginx is None else {"state_dir": str(self.nginx.state_dir),
                                                      "port": self.nginx.port,
                                                      "upstreams": self.nginx.upstreams},
        }
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    @classmethod
    def from_state(cls, state_dir: Path) -> Stack | None:
        """Rebuild the managers of a stack started by another process (enough to check and stop it)."""
        try:
            state = json.loads((Path(state_dir) / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        raw = state["config"]
        config = StackConfig(state_dir=Path(raw["state_dir"]), model_dir=Path(raw["model_dir"]),
                             http_port=state["http_port"], broker=raw["broker"], tls=raw.get("tls", False))
        stack = cls(config)
        if state.get("broker"):
            stack.broker = RabbitMQ(Path(state["broker"]["state_dir"]), port=state["broker"]["port"])
        stack.workers = [
            CeleryWorker(Path(w["state_dir"]), index=w["index"], concurrency=w.get("concurrency", 1))
            for w in state["workers"]
        ]
        stack.gunicorns = [Gunicorn(Path(g["state_dir"]), index=g["index"], bind=g["bind"],
                                    workers=g.get("workers", 2), threads=g.get("threads", 8))
                           for g in state["gunicorns"]]
        if state.get("nginx"):
            stack.nginx = Nginx(Path(state["nginx"]["state_dir"]), port=state["nginx"]["port"],
                                upstreams=state["nginx"].get("upstreams", []))
        return stack

    def status(self) -> list[tuple[str, bool, int | None]]:
        return [(p.describe(), p.is_running(), p.pid) for p in self.processes()]

