"""Process managers for the production stack: RabbitMQ, Celery workers, gunicorn and nginx.

``make serve`` (through ``local.py``), the integration tests and the serving benchmark all start the stack
through these classes, so what the tests exercise is what the demo runs.

Why every manager looks the same:
- Each service gets its own state directory (logs, pid file, data), its own ports and, for RabbitMQ, its own
  Erlang node name, epmd port and cookie, so two stacks (a test and ``make serve``) never share anything.
- Each process is started in a new session (its own process group) and recorded in a pid file holding the pid
  AND its kernel start time. ``stop()`` reads that file, so a later command (``local.py stop``) stops exactly
  what was started, and a recycled pid is never signalled.
- ``wait_ready()`` checks the service's real protocol (AMQP login, HTTP ``/healthz``, the worker's own "ready"
  line), never only "the process exists".
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from envsettings import child_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = REPO_ROOT / "nginx" / "nginx.conf.j2"
GUNICORN_CONF = REPO_ROOT / "model_serving" / "production_server" / "gunicorn.conf.py"
CELERY_APP = "model_serving.production_server.make_celery"
WSGI_APP = "model_serving.production_server.wsgi:app"


class ServiceError(RuntimeError):
    """A service that could not be started, became unready or could not be stopped; one line, with the log."""


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port (the kernel picks it); each service instance gets its own."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None if gone.

    A zombie counts as gone: it has exited, only its parent has not reaped it yet.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    if rest[0] in {"Z", "X"}:
        return None
    return int(rest[19])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


@dataclass
class PidRecord:
    """What a pid file holds: enough to signal the right process later, and only it."""

    pid: int
    start_ticks: int
    name: str
    extra: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        try:
            data = json.loads(path.read_text())
            extra = dict(data.get("extra", {}))
            return cls(int(data["pid"]), int(data["start_ticks"]), str(data["name"]), extra)
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _wait_gone(record: PidRecord, timeout: float, popen: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            popen.poll()  # reap our own child, or it stays a zombie
        if not record.alive():
            return True
        time.sleep(0.05)
    return not record.alive()


def _terminate_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, found in /proc (field 5 of stat is the group)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        if rest[0] not in {"Z", "X"} and int(rest[2]) == pgid:
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ManagedProcess:
    """One long-running process in its own session, with a log file and a pid file under ``state_dir``."""

    name: ClassVar[str] = "process"
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 20.0

    #: Tests set this: the process gets SIGTERM when the process that started it dies (even by SIGKILL), so a
    #: killed test run leaves no broker or worker behind. ``make serve`` leaves it off: its processes must
    #: outlive the command that started them.
    die_with_parent: bool = False

    def __init__(self, state_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.extra_env = dict(env or {})
        self._popen: subprocess.Popen[bytes] | None = None

    # -- to be provided by each service ---------------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Create directories and config files before the process starts."""
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def check_ready(self) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    # -- common machinery ------------------------------------------------------------------------------------
    #: Several instances of one service share a state directory (``celery-0``, ``celery-1``): None for a
    #: service that runs once per stack.
    index: int | None = None

    @property
    def instance(self) -> str:
        """The service's name, with the instance index when there may be several."""
        return self.name if self.index is None else f"{self.name}-{self.index}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.instance}.pid.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.instance}.log"

    def environment(self) -> dict[str, str]:
        return child_environment(self.extra_env)

    def cwd(self) -> Path:
        return REPO_ROOT

    def pid_extra(self) -> dict[str, Any]:
        return {}

    def record(self) -> PidRecord | None:
        return PidRecord.read(self.pid_file)

    def is_running(self) -> bool:
        record = self.record()
        return record is not None and record.alive()

    @property
    def pid(self) -> int | None:
        record = self.record()
        return record.pid if record else None

    def start(self) -> ManagedProcess:
        if self.is_running():
            raise ServiceError(f"{self.describe()} already running (pid {self.pid}, {self.pid_file})")
        self.prepare()
        with self.log_file.open("ab") as log:
            self._popen = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.cwd(),
                start_new_session=True,  # own process group: stop() can reach every child it forked
                preexec_fn=_terminate_with_parent if self.die_with_parent else None,
            )
        ticks = _start_ticks(self._popen.pid)
        if ticks is None:
            self._popen.wait()
            raise ServiceError(f"{self.describe()} exited at once:\n{_tail(self.log_file)}")
        PidRecord(self._popen.pid, ticks, self.name, self.pid_extra()).write(self.pid_file)
        return self

    def wait_ready(self, timeout: float = 30.0) -> ManagedProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ServiceError(f"{self.describe()} exited while starting; log {self.log_file}:\n"
                                   f"{_tail(self.log_file)}")
            if self.check_ready():
                return self
            time.sleep(0.1)
        raise ServiceError(f"{self.describe()} not ready after {timeout:.0f} s; log {self.log_file}:\n"
                           f"{_tail(self.log_file)}")

    def stop(self, timeout: float | None = None) -> bool:
        """Stop what this manager started (by pid file); True if something was running."""
        record = self.record()
        if record is None:
            return False
        was_running = record.alive()
        if was_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, self.stop_signal)
            if not _wait_gone(record, timeout or self.stop_timeout, self._popen):
                _signal_group(record.pid, signal.SIGKILL)
                _wait_gone(record, 5, self._popen)
        if was_running or _start_ticks(record.pid) is None:
            # Children that outlived their parent (same process group) go too, also when the parent died
            # on its own. Safe: while any member lives, the kernel gives no new process this group id, and
            # when nothing holds the pid any more, the group can only be what we started.
            if group_members(record.pid):
                _signal_group(record.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while group_members(record.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.after_stop(record)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        self._popen = None
        return was_running

    def after_stop(self, record: PidRecord) -> None:
        """Hook for services that leave helpers outside their process group (epmd)."""

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------------------
# RabbitMQ
# ------------------------------------------------------------------------------------------------------------


def _rabbitmq_bin(tool: str) -> str:
    """The real RabbitMQ script, not Debian's wrapper (it switches to the rabbitmq user and drops our env)."""
    direct = Path("/usr/lib/rabbitmq/bin") / tool
    if direct.exists():
        return str(direct)
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/lib/rabbitmq/sbin")
    if not found:
        raise ServiceError(f"{tool} not found: install rabbitmq-server (scripts/install_system_deps.sh)")
    return found


def rabbitmq_available() -> bool:
    try:
        _rabbitmq_bin("rabbitmq-server")
    except ServiceError:
        return False
    return True


class RabbitMQ(ManagedProcess):
    """A private RabbitMQ node: own node name, AMQP/dist/epmd ports, cookie (HOME), data and logs.

    The user, vhost and permissions are seeded at the first boot through ``rabbitmq.conf``'s ``default_*``
    keys (one boot, no guest user); if the node's database already holds other credentials, ``provision()``
    fixes them with ``rabbitmqctl -n <node>``. The password is passed to rabbitmqctl on stdin, never argv.
    """

    name = "rabbitmq"
    stop_timeout = 30.0

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        user: str = "stargazer",
        password: str | None = None,
        vhost: str = "stargazer",
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(state_dir, env)
        self.host = host
        self.port = port or free_port(host)
        self.dist_port = dist_port or free_port(host)
        self.epmd_port = epmd_port or free_port(host)
        self.user = user
        self.password = password or secrets.token_urlsafe(24)
        self.vhost = vhost
        self.node = f"sg-{self.port}@localhost"

    @property
    def url(self) -> str:
        """The broker URL for Celery/kombu (contains the password: never log it)."""
        user, password, vhost = (quote(v, safe="") for v in (self.user, self.password, self.vhost))
        return f"amqp://{user}:{password}@{self.host}:{self.port}/{vhost}"

    @property
    def redacted_url(self) -> str:
        return f"amqp://{self.user}:***@{self.host}:{self.port}/{self.vhost}"

    def describe(self) -> str:
        return f"RabbitMQ node {self.node} on {self.host}:{self.port}"

    @property
    def beam_pid_file(self) -> Path:
        return self.state_dir / "beam.pid"

    def _node_env(self) -> dict[str, str]:
        base = self.state_dir
        env = child_environment(drop_prefixes=("RABBITMQ_", "ERL_"))
        env.update(
            {
                "HOME": str(base),  # the Erlang cookie lives in $HOME: a private one per node
                "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_IP_ADDRESS": self.host,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_PID_FILE": str(self.beam_pid_file),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                "LC_ALL": "C.UTF-8",
            }
        )
        env.update(self.extra_env)
        return env

    def environment(self) -> dict[str, str]:
        return self._node_env()

    def cwd(self) -> Path:
        return self.state_dir

    def pid_extra(self) -> dict[str, Any]:
        return {"node": self.node, "port": self.port, "dist_port": self.dist_port,
                "epmd_port": self.epmd_port}

    def prepare(self) -> None:
        base = self.state_dir
        for sub in ("mnesia", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        (base / "enabled_plugins").write_text("[].\n")  # no management plugin: faster boot, less surface
        (base / "rabbitmq-env.conf").write_text("# empty on purpose: everything comes from the environment\n")
        conf = base / "rabbitmq.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            "\n".join(
                [
                    "# Written by model_serving/process_stack/services.py; seeds the first boot only.",
                    f"default_vhost = {self.vhost}",
                    f"default_user = {self.user}",
                    f"default_pass = {self.password}",
                    "default_permissions.configure = .*",
                    "default_permissions.read = .*",
                    "default_permissions.write = .*",
                    "loopback_users = none",
                    "disk_free_limit.absolute = 50MB",
                    "log.file.level = info",
                    "log.console = false",
                    "",
                ]
            )
        )
        with contextlib.suppress(FileNotFoundError):
            self.beam_pid_file.unlink()

    def command(self) -> list[str]:
        # Foreground under our own session: the pid we record is the script, whose child is the Erlang VM.
        return [_rabbitmq_bin("rabbitmq-server")]

    def ctl(
        self, *args: str, stdin: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <node> ...`` against this node only."""
        return subprocess.run(
            [_rabbitmq_bin("rabbitmqctl"), "-n", self.node, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self._node_env(),
            cwd=self.state_dir,
            timeout=timeout,
            check=False,
        )

    def amqp_login(self, timeout: float = 2.0) -> str:
        """"ok", "refused" (credentials/vhost wrong) or "down" (no AMQP listener yet)."""
        from amqp.exceptions import AccessRefused, NotAllowed
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=timeout) as conn:
                conn.connect()
            return "ok"
        except (AccessRefused, NotAllowed):
            return "refused"
        except Exception:
            return "down"

    def check_ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        state = self.amqp_login()
        if state == "refused":
            self.provision()
            state = self.amqp_login()
        return state == "ok"

    def provision(self) -> None:
        """Create (or repair) the vhost, user, password and permissions with rabbitmqctl."""
        self.ctl("add_vhost", self.vhost)
        if self.ctl("add_user", self.user, stdin=self.password + "\n").returncode != 0:
            result = self.ctl("change_password", self.user, stdin=self.password + "\n")
            if result.returncode != 0:
                raise ServiceError(f"rabbitmqctl change_password failed: {result.stderr.strip()[:200]}")
        result = self.ctl("set_permissions", "-p", self.vhost, self.user, ".*", ".*", ".*")
        if result.returncode != 0:
            raise ServiceError(f"rabbitmqctl set_permissions failed: {result.stderr.strip()[:200]}")

    def stop(self, timeout: float | None = None) -> bool:
        """SIGTERM to the Erlang VM (a graceful ``init:stop``), then wait for the script to exit.

        Falls back to ``rabbitmqctl -n <node> stop`` when the VM's pid is unknown.
        """
        record = self.record()
        if record is not None and record.alive():
            beam = _read_int(self.beam_pid_file)
            if beam is not None and _start_ticks(beam) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(beam, signal.SIGTERM)
            else:
                self.ctl("stop", timeout=timeout or self.stop_timeout)
        return super().stop(timeout)

    def after_stop(self, record: PidRecord) -> None:
        # epmd daemonizes out of our process group; this node had its own epmd port, so killing it is safe.
        epmd_port = int(record.extra.get("epmd_port", self.epmd_port))
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        if Path(epmd).exists():
            subprocess.run(
                [epmd, "-port", str(epmd_port), "-kill"], capture_output=True, timeout=10, check=False
            )

    def restart(self, timeout: float = 60.0) -> RabbitMQ:
        """Stop and start the same node (same ports, data and credentials): the broker-outage fault test."""
        self.stop()
        self.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> RabbitMQ:
        super().wait_ready(timeout)
        return self


# ------------------------------------------------------------------------------------------------------------
# Celery worker
# ------------------------------------------------------------------------------------------------------------


class CeleryWorker(ManagedProcess):
    """``celery -A model_serving.production_server.make_celery worker`` with a prefork pool.

    Configuration (broker URL, model dir, deploy secret, metrics dir) reaches the worker through ``env``: the
    production server's settings module reads it, as it does for gunicorn. Ready = the worker logged its own
    "<hostname> ready." line (works for every broker, including the embedded fallback).
    """

    name = "celery"
    stop_timeout = 30.0  # SIGTERM = warm shutdown: running tasks finish (acks_late re-queues the rest)

    def __init__(
        self,
        state_dir: Path,
        *,
        concurrency: int = 1,
        index: int = 0,
        env: Mapping[str, str] | None = None,
        loglevel: str = "INFO",
    ) -> None:
        super().__init__(state_dir, env)
        self.concurrency = concurrency
        self.index = index
        self.hostname = f"stargazer-{os.getpid()}-{index}-{secrets.token_hex(3)}@%h"
        self.loglevel = loglevel
        self._log_offset = 0

    def describe(self) -> str:
        return f"Celery worker {self.index} (concurrency {self.concurrency})"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", CELERY_APP, "worker",
            "--pool", "prefork",
            "--concurrency", str(self.concurrency),
            "--hostname", self.hostname,
            "--loglevel", self.loglevel,
            # No gossip/mingle/heartbeat: each worker stands alone, and start-up is a second faster.
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        # One prefork process = one core's worth of prediction: native thread pools (OpenMP/BLAS) inside
        # each process would only fight the other processes for the same cores.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, "1")
        return env

    def prepare(self) -> None:
        super().prepare()
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0

    def check_ready(self) -> bool:
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return False
        return " ready." in text


# ------------------------------------------------------------------------------------------------------------
# gunicorn
# ------------------------------------------------------------------------------------------------------------


def http_get(address: str, path: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None,
             tls_ca: Path | None = None) -> tuple[int, bytes]:
    """GET on "host:port" or "unix:/path" (gunicorn may listen on a unix socket); (status, body).

    With ``tls_ca``, over HTTPS, trusting only that certificate (a stack's self-signed one).
    """
    if address.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixHTTPConnection(address[5:], timeout=timeout)
    elif tls_ca is not None:
        host, _, port = address.rpartition(":")
        context = ssl.create_default_context(cafile=str(tls_ca))
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=context)
    else:
        host, _, port = address.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def http_ok(address: str, path: str, timeout: float = 2.0) -> bool:
    try:
        status, _ = http_get(address, path, timeout)
    except OSError:
        return False
    return status == 200


class Gunicorn(ManagedProcess):
    """gunicorn serving ``wsgi:app`` with ``gunicorn.conf.py``; binds "host:port" or "unix:/path"."""

    name = "gunicorn"
    stop_timeout = 30.0  # SIGTERM = graceful: workers finish their requests (graceful_timeout)

    def __init__(
        self,
        state_dir: Path,
        *,
        bind: str | None = None,
        workers: int = 2,
        threads: int = 8,
        index: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(state_dir, env)
        self.bind = bind or f"127.0.0.1:{free_port()}"
        self.workers = workers
        self.threads = threads
        self.index = index

    @property
    def address(self) -> str:
        """How nginx names this upstream ("127.0.0.1:8001" or "unix:/path")."""
        return self.bind

    def describe(self) -> str:
        return f"gunicorn on {self.bind} ({self.workers} workers x {self.threads} threads)"

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update({
            "STARGAZER_GUNICORN_BIND": self.bind,
            "STARGAZER_GUNICORN_WORKERS": str(self.workers),
            "STARGAZER_GUNICORN_THREADS": str(self.threads),
        })
        return env

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), WSGI_APP]

    def check_ready(self) -> bool:
        return http_ok(self.bind, "/healthz")


# ------------------------------------------------------------------------------------------------------------
# nginx
# ------------------------------------------------------------------------------------------------------------

NGINX_ROLE_DEFAULTS = REPO_ROOT / "playbooks" / "roles" / "nginx" / "defaults" / "main.yml"
#: Where a local stack differs from a production host by design: no worker user to switch to (not root), one
#: plain-HTTP port, no TLS unless a caller asks, and its own gunicorn.
NGINX_LOCAL_VALUES: dict[str, Any] = {
    "nginx_user": "",
    "nginx_listen": 8080,
    "nginx_https_listen": "",
    "nginx_tls_certificate": "",
    "nginx_tls_certificate_key": "",
    "nginx_upstreams": ["127.0.0.1:8000"],
}
#: Where each stack keeps its own files: never a default (two stacks must not share a pid file or a log).
NGINX_PER_STACK = ("nginx_pid_file", "nginx_error_log", "nginx_access_log", "nginx_temp_dir")
_REFERENCE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")


def nginx_template_variables(template: Path = NGINX_TEMPLATE) -> set[str]:
    """The variables the nginx template reads."""
    import jinja2
    from jinja2 import meta

    env = jinja2.Environment(autoescape=False)  # noqa: S701 - parses an nginx config, not HTML
    return set(meta.find_undeclared_variables(env.parse(template.read_text(encoding="utf-8"))))


def nginx_role_defaults(path: Path = NGINX_ROLE_DEFAULTS) -> dict[str, Any]:
    """The nginx role's defaults, each resolved as Ansible would, so a local stack and a host share them.

    A default that is another default (``"{{ nginx_metrics_allow }}"``) takes that value with its type; one
    that needs what only Ansible knows (host facts, other roles' variables) is left out: the local stack sets
    those itself, and the template's StrictUndefined names any that nobody set.
    """
    import jinja2
    import yaml

    role: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - not HTML
    plain = {name: value for name, value in role.items() if not (isinstance(value, str) and "{{" in value)}
    resolved = dict(plain)
    for name, value in role.items():
        if name in plain:
            continue
        reference = _REFERENCE.match(value.strip())
        if reference and reference.group(1) in plain:
            resolved[name] = plain[reference.group(1)]
            continue
        try:
            resolved[name] = env.from_string(value).render(**plain).strip()
        except jinja2.UndefinedError:
            continue
    return resolved


#: The nginx template's variables for a local stack: the role's defaults, then the local differences.
NGINX_DEFAULTS: dict[str, Any] = {
    **{name: value for name, value in nginx_role_defaults().items()
       if name in nginx_template_variables() and name not in NGINX_PER_STACK},
    **NGINX_LOCAL_VALUES,
}


def render_nginx_conf(variables: Mapping[str, Any], template: Path = NGINX_TEMPLATE) -> str:
    """Render nginx/nginx.conf.j2 as Ansible's template module would (StrictUndefined, trim_blocks)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template.parent)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders an nginx config, not HTML
    )
    return env.get_template(template.name).render(**{**NGINX_DEFAULTS, **variables})


def _nginx_bin() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise ServiceError("nginx not found: install nginx (scripts/install_system_deps.sh)")
    return found


def self_signed_certificate(directory: Path, days: int = 30) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1/localhost in ``directory`` (made once, key 0600).

    The same openssl call as playbooks/roles/nginx/tasks/tls.yml makes on a production host.
    """
    cert, key = directory / "tls.crt", directory / "tls.key"
    if cert.exists() and key.exists():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", str(days), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"openssl could not make a certificate: {result.stderr.strip().splitlines()[-1:]}")
    key.chmod(0o600)
    return cert, key


def nginx_available() -> bool:
    try:
        _nginx_bin()
    except ServiceError:
        return False
    return True


class Nginx(ManagedProcess):
    """nginx in the foreground with a config rendered into ``state_dir`` (pid, logs and temp files there)."""

    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful: finish the requests in flight
    stop_timeout = 15.0

    def __init__(
        self,
        state_dir: Path,
        *,
        upstreams: Sequence[str],
        port: int | None = None,
        host: str = "127.0.0.1",
        variables: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(state_dir, env)
        self.host = host
        self.port = port or free_port(host)
        self.upstreams = list(upstreams)
        self.variables = dict(variables or {})

    @property
    def conf_file(self) -> Path:
        return self.state_dir / "nginx.conf"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        return f"nginx on {self.host}:{self.port} -> {', '.join(self.upstreams)}"

    def render(self) -> str:
        base = self.state_dir
        return render_nginx_conf({
            "nginx_listen": f"{self.host}:{self.port}",
            "nginx_upstreams": self.upstreams,
            "nginx_pid_file": str(base / "nginx.pid"),
            "nginx_error_log": str(base / "error.log"),
            "nginx_access_log": str(base / "access.log"),
            "nginx_temp_dir": str(base / "temp"),
            **self.variables,
        })

    def prepare(self) -> None:
        super().prepare()
        (self.state_dir / "temp").mkdir(exist_ok=True)
        self.conf_file.write_text(self.render())
        check = subprocess.run(
            [*self._base_command(), "-t", "-q"], capture_output=True, text=True, timeout=30, check=False
        )
        if check.returncode != 0:
            raise ServiceError(f"nginx rejects {self.conf_file}: {check.stderr.strip().splitlines()[-1:]}")

    def _base_command(self) -> list[str]:
        base = self.state_dir
        # -e: the error log before the config is read (else nginx tries /var/log/nginx first).
        return [_nginx_bin(), "-p", str(base), "-e", str(base / "error.log"), "-c", str(self.conf_file)]

    def command(self) -> list[str]:
        return [*self._base_command(), "-g", "daemon off;"]

    def check_ready(self) -> bool:
        return port_open(self.host, self.port)

    def reload(self) -> None:
        """Re-render the config and let nginx pick it up without dropping connections (SIGHUP)."""
        self.prepare()
        record = self.record()
        if record is None or not record.alive():
            raise ServiceError(f"{self.describe()} is not running")
        os.kill(record.pid, signal.SIGHUP)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


__all__ = [
    "CeleryWorker",
    "Gunicorn",
    "ManagedProcess",
    "Nginx",
    "PidRecord",
    "RabbitMQ",
    "ServiceError",
    "free_port",
    "group_members",
    "http_get",
    "nginx_available",
    "port_open",
    "rabbitmq_available",
    "render_nginx_conf",
    "self_signed_certificate",
]


def _main(argv: Sequence[str]) -> int:  # pragma: no cover - manual smoke test
    """``python -m model_serving.process_stack.services rabbitmq DIR``: start a node, print its URL."""
    if len(argv) != 2 or argv[0] != "rabbitmq":
        print("usage: services.py rabbitmq STATE_DIR", file=sys.stderr)
        return 2
    broker = RabbitMQ(Path(argv[1]))
    broker.start().wait_ready()
    print(broker.redacted_url)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main(sys.argv[1:]))
