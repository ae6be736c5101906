"""Configuration of the production server, read from the environment in this one place (docs/contracts.md §6).

The web app, the Celery config and the workers all take their values from ``ServingSettings``, so an operator
has one table to read (docs/production_server.md) and one place to audit for secrets. Celery's own settings
are built from these values (``celery_config``), not from Flask's ``from_prefixed_env``, so the names an
operator sets are the project's documented ones, not Celery's internals.

Secrets (the broker password inside the URL, the deploy secret, the Flask secret key, GitHub tokens) are kept
out of ``repr`` so they never reach a log line.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from data_collection.settings import Settings as GitHubSettings
from data_collection.settings import SettingsError
from model_serving import artifact
from model_serving.production_server import prediction_log as prediction_log_module
from model_serving.production_server.client_address import Network, parse_networks

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_BROKER_URL: Final = "amqp://stargazer:stargazer@127.0.0.1:5672/stargazer"
DEFAULT_MODEL_DIR: Final = REPO_ROOT / "var" / "production"
DEFAULT_PREDICTION_LOG: Final = REPO_ROOT / "var" / "predictions.jsonl"
#: The JSON API's body limit (docs/contracts.md §5: a body over 1 MB is a 413). nginx's client_max_body_size
#: matches.
MAX_BODY_BYTES: Final = 1024 * 1024
MAX_REPOSITORIES: Final = 100
#: GitHub calls per client per hour: a tenth of one token's hourly quota (5,000).
DEFAULT_GITHUB_BUDGET: Final = 500.0
#: Names the form offers to try when STARGAZER_EXAMPLE_REPOSITORIES is unset: they exist on GitHub itself.
DEFAULT_EXAMPLE_REPOSITORIES: Final = ("pallets/flask", "psf/requests", "numpy/numpy")
BUDGET_FILE: Final = "github_budget.sqlite3"
FORM_ROWS: Final = 5

__all__ = ["ServingSettings", "SettingsError", "celery_config"]


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum:g}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes"}:
        return True
    if raw in {"0", "false", "no"}:
        return False
    raise SettingsError(f"{name} must be 1/true/yes or 0/false/no, got {raw!r}")


def _networks(env: Mapping[str, str], name: str, default: str) -> tuple[Network, ...]:
    raw = env.get(name, "") or default
    try:
        return parse_networks(raw)
    except ValueError:
        raise SettingsError(f"{name} must be comma-separated IP addresses or networks, got {raw!r}") from None


def _example_repositories(env: Mapping[str, str]) -> tuple[str, ...]:
    """STARGAZER_EXAMPLE_REPOSITORIES: comma-separated owner/name; unset: GitHub's own, empty: none shown."""
    from model_serving.production_server.inputs import FULL_NAME_PATTERN  # inputs imports this module

    raw = env.get("STARGAZER_EXAMPLE_REPOSITORIES")
    if raw is None:
        return DEFAULT_EXAMPLE_REPOSITORIES
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    bad = [name for name in names if not FULL_NAME_PATTERN.match(name)]
    if bad:
        raise SettingsError(f"STARGAZER_EXAMPLE_REPOSITORIES must list owner/name, got {bad[0]!r}")
    return names


def _secret_from(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` or the file named by ``NAME_FILE`` (how Ansible provisions secrets outside git)."""
    value = env.get(name, "")
    if value:
        return value
    path = env.get(f"{name}_FILE", "")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise SettingsError(f"{name}_FILE {path!r} cannot be read: {exc.strerror}") from None
    return None


def _public_key(env: Mapping[str, str]) -> bytes | None:
    """The deploy public key (STARGAZER_DEPLOY_PUBLIC_KEY, else the file STARGAZER_DEPLOY_PUBLIC_KEY_FILE)."""
    try:
        return artifact.public_key_from(env.get(artifact.PUBLIC_KEY_ENV),
                                        env.get(artifact.PUBLIC_KEY_FILE_ENV))
    except artifact.ArtifactError as exc:
        raise SettingsError(str(exc)) from None


def _local_secret_key(path: Path) -> str:
    """A per-machine key kept in ``var/`` (outside git), created once with mode 0600.

    Every gunicorn worker must share the key (a CSRF token made by one worker is checked by another), so a
    random key per process would break the form. The key is written and fsynced under a private temporary
    name first, then hard-linked into place: ``link`` fails if the name exists, so exactly one process's
    key wins, and the name never points to a file that is still being written (the workers of a cold start
    read it while it is created). An empty key (a file someone truncated) is refused, never used.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process linked its key first: use that
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"the Flask secret key file {path} cannot be read: {exc.strerror}") from None
    if not key:
        raise SettingsError(f"the Flask secret key file {path} is empty: delete it (a new key is made) "
                            "or set STARGAZER_SECRET_KEY")
    return key


@dataclass(frozen=True)
class ServingSettings:
    """Every tunable of the web app and the workers. See docs/production_server.md for the table."""

    broker_url: str = field(default=DEFAULT_BROKER_URL, repr=False)
    result_backend: str = "rpc://"
    #: The queue tasks go to and workers consume (two stacks may share one broker with different queues).
    queue: str = "stargazer"
    model_dir: Path = DEFAULT_MODEL_DIR
    #: The raw Ed25519 public key that verifies model.json (STARGAZER_DEPLOY_PUBLIC_KEY[_FILE]).
    deploy_public_key: bytes | None = None
    #: Accept unsigned models (tests of unsigned artifacts only; never in production).
    require_signature: bool = True
    prediction_log: Path = DEFAULT_PREDICTION_LOG
    #: The prediction log is rotated before it passes this size (0: never), keeping this many old files.
    prediction_log_max_bytes: int = prediction_log_module.DEFAULT_MAX_BYTES
    prediction_log_backups: int = prediction_log_module.DEFAULT_BACKUPS
    secret_key: str = field(default="", repr=False)
    #: The session cookie (it carries the form's CSRF token) is sent over HTTPS only: nginx serves HTTPS.
    #: Off only for a stack that really is plain HTTP (STARGAZER_SESSION_COOKIE_SECURE=0).
    session_cookie_secure: bool = True
    github: GitHubSettings = field(default_factory=GitHubSettings)
    #: Extra kombu transport options (JSON), e.g. the embedded broker's ``{"polling_interval": 0.05}``.
    broker_transport_options: dict[str, Any] = field(default_factory=dict)
    #: How long the web process waits for a worker's answer before a 504.
    task_timeout: float = 10.0
    #: Celery's soft / hard time limits of one predict_batch (the soft one raises inside the task).
    task_soft_time_limit: float = 8.0
    task_hard_time_limit: float = 12.0
    #: /readyz: a worker must answer the ping within this many seconds (docs/contracts.md §5: 2 s).
    ready_timeout: float = 2.0
    #: Broker reachability probe of /readyz.
    broker_probe_timeout: float = 1.0
    #: /readyz reuses one probe's answer this long (per web process): callers cannot make it open a broker
    #: connection and send a ping per request.
    ready_cache_seconds: float = 1.0
    #: GitHub lookups: cache lifetime of a found / not-found repository, and the cache size.
    lookup_ttl: float = 600.0
    lookup_negative_ttl: float = 60.0
    lookup_cache_size: int = 4096
    lookup_threads: int = 8
    #: Timeout of one GitHub call made during a web request (the collector's are longer).
    lookup_timeout: float = 5.0
    #: GitHub calls one client (by address) may cause per hour: a tenth of one token's 5,000 (budget.py).
    github_budget_per_hour: float = DEFAULT_GITHUB_BUDGET
    #: The budget's SQLite file, shared by every web process of the host (None: a private temporary file,
    #: for apps built by hand in tests; from_env always names one in STARGAZER_STATE_DIR).
    github_budget_db: Path | None = None
    #: Peers whose X-Real-IP names the client (nginx): STARGAZER_FORWARDED_ALLOW_IPS, as gunicorn reads it.
    trusted_proxies: tuple[Network, ...] = field(default_factory=lambda: parse_networks("127.0.0.1"))
    #: owner/name examples the form shows: names that exist on the GitHub this server asks (the simulator's
    #: in the demo, set by inventory/demo.yml).
    example_repositories: tuple[str, ...] = DEFAULT_EXAMPLE_REPOSITORIES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        env = dict(os.environ if env is None else env)
        model_dir = Path(env.get("STARGAZER_MODEL_DIR") or DEFAULT_MODEL_DIR)
        deploy_public_key = _public_key(env)
        secret_key = _secret_from(env, "STARGAZER_SECRET_KEY") or _local_secret_key(
            Path(env.get("STARGAZER_STATE_DIR") or REPO_ROOT / "var") / "flask_secret_key"
        )
        soft = _number(env, "STARGAZER_TASK_SOFT_TIME_LIMIT", 8.0, minimum=0.1)
        hard = _number(env, "STARGAZER_TASK_HARD_TIME_LIMIT", max(12.0, soft + 2.0), minimum=0.2)
        if hard <= soft:
            raise SettingsError("STARGAZER_TASK_HARD_TIME_LIMIT must exceed STARGAZER_TASK_SOFT_TIME_LIMIT")
        raw_options = env.get("STARGAZER_BROKER_TRANSPORT_OPTIONS") or "{}"
        try:
            transport_options = json.loads(raw_options)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"STARGAZER_BROKER_TRANSPORT_OPTIONS is not JSON: {exc.msg}") from None
        if not isinstance(transport_options, dict):
            raise SettingsError("STARGAZER_BROKER_TRANSPORT_OPTIONS must be a JSON object")
        return cls(
            broker_url=env.get("STARGAZER_BROKER_URL") or DEFAULT_BROKER_URL,
            broker_transport_options=transport_options,
            result_backend=env.get("STARGAZER_RESULT_BACKEND") or "rpc://",
            queue=env.get("STARGAZER_QUEUE") or "stargazer",
            model_dir=model_dir,
            deploy_public_key=deploy_public_key,
            require_signature=env.get("STARGAZER_ALLOW_UNSIGNED_MODELS", "") not in {"1", "true", "yes"},
            prediction_log=Path(env.get("STARGAZER_PREDICTION_LOG") or DEFAULT_PREDICTION_LOG),
            prediction_log_max_bytes=int(_number(env, "STARGAZER_PREDICTION_LOG_MAX_BYTES",
                                                 prediction_log_module.DEFAULT_MAX_BYTES)),
            prediction_log_backups=int(_number(env, "STARGAZER_PREDICTION_LOG_BACKUPS",
                                               prediction_log_module.DEFAULT_BACKUPS)),
            secret_key=secret_key,
            session_cookie_secure=_flag(env, "STARGAZER_SESSION_COOKIE_SECURE", default=True),
            github=GitHubSettings.from_env(env),
            task_timeout=_number(env, "STARGAZER_TASK_TIMEOUT", 10.0, minimum=0.1),
            task_soft_time_limit=soft,
            task_hard_time_limit=hard,
            ready_timeout=_number(env, "STARGAZER_READY_TIMEOUT", 2.0, minimum=0.1),
            ready_cache_seconds=_number(env, "STARGAZER_READY_CACHE_SECONDS", 1.0),
            lookup_ttl=_number(env, "STARGAZER_LOOKUP_TTL", 600.0),
            lookup_negative_ttl=_number(env, "STARGAZER_LOOKUP_NEGATIVE_TTL", 60.0),
            lookup_cache_size=int(_number(env, "STARGAZER_LOOKUP_CACHE_SIZE", 4096, minimum=1)),
            lookup_threads=int(_number(env, "STARGAZER_LOOKUP_THREADS", 8, minimum=1)),
            lookup_timeout=_number(env, "STARGAZER_LOOKUP_TIMEOUT", 5.0, minimum=0.1),
            github_budget_per_hour=_number(env, "STARGAZER_GITHUB_BUDGET_PER_HOUR", DEFAULT_GITHUB_BUDGET,
                                           minimum=1.0),
            github_budget_db=Path(env.get("STARGAZER_STATE_DIR") or REPO_ROOT / "var") / BUDGET_FILE,
            trusted_proxies=_networks(env, "STARGAZER_FORWARDED_ALLOW_IPS", "127.0.0.1"),
            example_repositories=_example_repositories(env),
        )

    @property
    def current_link(self) -> Path:
        """``$STARGAZER_MODEL_DIR/current``: the symlink post-receive switches atomically."""
        return self.model_dir / "current"


@dataclass(frozen=True)
class ReportSettings:
    """What the ``drift`` command reads: the serving app's own names, without its web-only settings (a
    report run from a shell must not need, or create, the Flask secret key)."""

    model_dir: Path = DEFAULT_MODEL_DIR
    prediction_log: Path = DEFAULT_PREDICTION_LOG
    deploy_public_key: bytes | None = None
    require_signature: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReportSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            model_dir=Path(env.get("STARGAZER_MODEL_DIR") or DEFAULT_MODEL_DIR),
            prediction_log=Path(env.get("STARGAZER_PREDICTION_LOG") or DEFAULT_PREDICTION_LOG),
            deploy_public_key=_public_key(env),
            require_signature=env.get("STARGAZER_ALLOW_UNSIGNED_MODELS", "") not in {"1", "true", "yes"},
        )


def celery_config(settings: ServingSettings) -> dict[str, Any]:
    """Celery's settings (lower-case names, Celery 5), all derived from ServingSettings.

    Why each reliability setting:
    - ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged only after it finished, and
      a worker process that dies mid-task gives the message back, so a killed worker loses no request.
    - ``worker_prefetch_multiplier=1``: a worker reserves one message per process, so a slow or dying worker
      never sits on a queue of requests others could answer.
    - ``task_soft/hard_time_limit``: a stuck prediction ends with an error instead of blocking a process.
    - ``confirm_publish``: the broker confirms every published task, so a publish to a broker that just went
      away is an error here (a clear 503), not a silently lost message.
    - JSON only: no pickle crosses the broker (the model is the only pickle, and it is signed).
    - ``task_default_delivery_mode="transient"``: a task is a request someone is waiting for (its answer goes
      to that web thread's reply queue, and it expires after ``task_timeout``), so writing it to RabbitMQ's
      disk store protects nothing: after a broker restart the waiting request has already failed (503, its
      reply consumer died with the connection) and a replayed task would only compute an answer nobody
      reads. Persistence cost RabbitMQ ~0.4 ms of CPU per request (bench/results/serving.md). Redelivery
      after a lost WORKER (acks_late, reject_on_worker_lost) is unaffected: it happens in the broker's memory.
    """
    transport_options: dict[str, Any] = {}
    if settings.broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        transport_options["confirm_publish"] = True
        # Opening a channel on a dead connection: kombu retries for broker_connection_timeout (2 s) by
        # default; two quick tries are enough to tell a blip from an outage, and the 503 comes at once.
        # (The worker's own consumer reconnects with Celery's explicit, patient policy: not affected.)
        transport_options.update({"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                                  "interval_max": 0.5})
    transport_options.update(settings.broker_transport_options)
    result_backend = settings.result_backend
    if result_backend == "rpc://":
        from model_serving.production_server.rpc_backend import BACKEND_PATH

        result_backend = BACKEND_PATH  # rpc:// whose reply-queue declaration cannot hang (see the module)
    return {
        "broker_url": settings.broker_url,
        "result_backend": result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_default_delivery_mode": "transient",
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_hard_time_limit,
        "task_default_queue": settings.queue,
        "task_ignore_result": False,
        "result_expires": 3600,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2.0,
        "broker_heartbeat": 10,
        "broker_transport_options": transport_options,
        "task_publish_retry": True,
        # Publishing retries briefly (a broker blip), then the request fails fast with a 503: a person is
        # waiting, and nginx or the client can retry; a long retry would only pile up web workers.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.25,
            "interval_max": 0.5,
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }
