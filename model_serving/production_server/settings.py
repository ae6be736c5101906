"""Configuration of the production server, read from the environment in this one place (docs/contracts.md §6).

The web app, the Celery config, the workers and gunicorn all take their values from the classes here, so an
operator has one table to read (README.md's, generated from these fields) and one place to audit for
secrets. Celery's own settings are built from these values (``celery_config``), not from Flask's
``from_prefixed_env``, so the names an operator sets are the project's documented ones, not Celery's
internals.

Secrets (the broker password inside the URL, the Flask secret key, GitHub tokens) are kept out of ``repr``
and out of error messages, so they never reach a log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from data_collection.settings import Settings as GitHubSettings
from envsettings import EnvSettings, SettingsError
from envsettings.private_files import create_once, read_secret
from model_serving import artifact
from model_serving.production_server import prediction_log as prediction_log_module
from model_serving.production_server.client_address import Network, parse_networks

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_BROKER_URL: Final = "amqp://stargazer:stargazer@127.0.0.1:5672/stargazer"
DEFAULT_STATE_DIR: Final = REPO_ROOT / "var"
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
SECRET_KEY_FILE: Final = "flask_secret_key"  # noqa: S105 - a file name, not a secret
FORM_ROWS: Final = 5

__all__ = ["GunicornSettings", "ReportSettings", "ServingSettings", "SettingsError", "celery_config"]


class ModelSettings(EnvSettings):
    """Where the served model is and how it is verified: what the web app, the workers and reports share."""

    model_dir: Path = Field(DEFAULT_MODEL_DIR, validation_alias="STARGAZER_MODEL_DIR",
                            description="Production model directory: `releases/<version>/` and the `current` "
                                        "link post-receive switches.")
    prediction_log: Path = Field(DEFAULT_PREDICTION_LOG, validation_alias="STARGAZER_PREDICTION_LOG",
                                 description="One JSON line per prediction (drift checks read it).")
    #: The raw Ed25519 public key that verifies model.json (given as its base64 text).
    deploy_public_key: bytes | None = Field(
        None, validation_alias="STARGAZER_DEPLOY_PUBLIC_KEY",
        description="Base64 Ed25519 public key that verifies model.json (not a secret).")
    deploy_public_key_file: Path | None = Field(
        None, validation_alias="STARGAZER_DEPLOY_PUBLIC_KEY_FILE",
        description="File holding that key (how Ansible provides it).")
    allow_unsigned_models: bool = Field(
        False, validation_alias="STARGAZER_ALLOW_UNSIGNED_MODELS",
        description="Serve unsigned models (tests of unsigned artifacts only; never in production).")

    @field_validator("deploy_public_key", mode="before")
    @classmethod
    def _parse_key(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return artifact.parse_public_key(value)
            except artifact.ArtifactError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _key_from_file(self) -> ModelSettings:
        if self.deploy_public_key is None and self.deploy_public_key_file is not None:
            text = read_secret(None, self.deploy_public_key_file, name="STARGAZER_DEPLOY_PUBLIC_KEY")
            if text is not None:
                object.__setattr__(self, "deploy_public_key", self._parse_key(text))  # frozen: set once, here
        return self

    @property
    def require_signature(self) -> bool:
        return not self.allow_unsigned_models

    @property
    def current_link(self) -> Path:
        """``$STARGAZER_MODEL_DIR/current``: the symlink post-receive switches atomically."""
        return self.model_dir / "current"


class ReportSettings(ModelSettings):
    """What the ``drift`` command reads: the serving app's own names, without its web-only settings (a
    report run from a shell must not need, or create, the Flask secret key)."""


class ServingSettings(ModelSettings):
    """Every tunable of the web app and the workers."""

    empty_is_a_value = frozenset({"STARGAZER_EXAMPLE_REPOSITORIES"})

    broker_url: str = Field(DEFAULT_BROKER_URL, repr=False, validation_alias="STARGAZER_BROKER_URL",
                            description="Celery broker (secret: the URL holds the password).")
    broker_transport_options: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, validation_alias="STARGAZER_BROKER_TRANSPORT_OPTIONS",
        description='Extra kombu transport options, a JSON object (e.g. `{"polling_interval": 0.05}`).')
    result_backend: str = Field("rpc://", validation_alias="STARGAZER_RESULT_BACKEND",
                                description="Celery result backend.")
    queue: str = Field("stargazer", validation_alias="STARGAZER_QUEUE",
                       description="Queue tasks go to and workers consume (stacks may share a broker).")
    state_dir: Path = Field(DEFAULT_STATE_DIR, validation_alias="STARGAZER_STATE_DIR",
                            description="State kept between restarts: the generated Flask key, the GitHub "
                                        "budget database.")
    prediction_log_max_bytes: int = Field(
        prediction_log_module.DEFAULT_MAX_BYTES, ge=0, validation_alias="STARGAZER_PREDICTION_LOG_MAX_BYTES",
        description="The prediction log is rotated before it passes this size (0: never).")
    prediction_log_backups: int = Field(
        prediction_log_module.DEFAULT_BACKUPS, ge=0, validation_alias="STARGAZER_PREDICTION_LOG_BACKUPS",
        description="Rotated prediction logs kept.")
    secret_key: str = Field("", repr=False, validation_alias="STARGAZER_SECRET_KEY",
                            description="Flask secret key (CSRF tokens; secret). Unset: one generated per "
                                        "host in the state directory.")
    secret_key_file: Path | None = Field(None, validation_alias="STARGAZER_SECRET_KEY_FILE",
                                         description="File holding the Flask secret key.")
    session_cookie_secure: bool = Field(
        True, validation_alias="STARGAZER_SESSION_COOKIE_SECURE",
        description="Session cookie (it carries the CSRF token) over HTTPS only; off only for plain HTTP.")
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    task_timeout: float = Field(10.0, ge=0.1, validation_alias="STARGAZER_TASK_TIMEOUT",
                                description="Seconds the web process waits for a worker's answer (then 504).")
    task_soft_time_limit: float = Field(8.0, ge=0.1, validation_alias="STARGAZER_TASK_SOFT_TIME_LIMIT",
                                        description="Celery's soft time limit of one batch, s.")
    task_hard_time_limit: float | None = Field(
        None, ge=0.2, validation_alias="STARGAZER_TASK_HARD_TIME_LIMIT",
        description="Celery's hard time limit, s; unset: max(12, soft + 2); must exceed the soft one.")
    ready_timeout: float = Field(2.0, ge=0.1, validation_alias="STARGAZER_READY_TIMEOUT",
                                 description="/readyz: a worker must answer the ping within this, s.")
    #: Broker reachability probe of /readyz.
    broker_probe_timeout: float = 1.0
    ready_cache_seconds: float = Field(1.0, ge=0, validation_alias="STARGAZER_READY_CACHE_SECONDS",
                                       description="/readyz reuses one probe's answer this long, s.")
    lookup_ttl: float = Field(600.0, ge=0, validation_alias="STARGAZER_LOOKUP_TTL",
                              description="Cache lifetime of a repository found on GitHub, s.")
    lookup_negative_ttl: float = Field(60.0, ge=0, validation_alias="STARGAZER_LOOKUP_NEGATIVE_TTL",
                                       description="Cache lifetime of a repository not found, s.")
    lookup_cache_size: int = Field(4096, ge=1, validation_alias="STARGAZER_LOOKUP_CACHE_SIZE",
                                   description="Repositories the lookup cache holds.")
    lookup_threads: int = Field(8, ge=1, validation_alias="STARGAZER_LOOKUP_THREADS",
                                description="GitHub lookups run at once per web process.")
    lookup_timeout: float = Field(5.0, ge=0.1, validation_alias="STARGAZER_LOOKUP_TIMEOUT",
                                  description="Timeout of one GitHub call made during a web request, s.")
    github_budget_per_hour: float = Field(
        DEFAULT_GITHUB_BUDGET, ge=1.0, validation_alias="STARGAZER_GITHUB_BUDGET_PER_HOUR",
        description="GitHub calls one client (by address) may cause per hour.")
    #: The budget's SQLite file, shared by every web process of the host (None: a private temporary file,
    #: for apps built by hand in tests; from_env always names one in the state directory).
    github_budget_db: Path | None = None
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = Field(
        default_factory=lambda: parse_networks("127.0.0.1"), validation_alias="STARGAZER_FORWARDED_ALLOW_IPS",
        description="Peers whose X-Real-IP names the client (nginx), comma-separated; gunicorn reads it too.")
    example_repositories: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_EXAMPLE_REPOSITORIES, validation_alias="STARGAZER_EXAMPLE_REPOSITORIES",
        description="owner/name examples the form shows, comma-separated (empty: none).")
    metrics_dir: Path | None = Field(
        None, validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="Where every gunicorn and Celery process writes its metrics (emptied at each start).")

    @field_validator("broker_transport_options", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not JSON: {exc.msg}") from None
        if not isinstance(decoded, dict):
            raise ValueError("must be a JSON object")
        return decoded

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_networks(value)
        except ValueError:
            raise ValueError(f"must be comma-separated IP addresses or networks, got {value!r}") from None

    @field_validator("example_repositories", mode="before")
    @classmethod
    def _repositories(cls, value: Any) -> Any:
        from model_serving.production_server.inputs import FULL_NAME_PATTERN  # inputs imports this module

        if not isinstance(value, str):
            return value
        names = tuple(name.strip() for name in value.split(",") if name.strip())
        bad = [name for name in names if not FULL_NAME_PATTERN.match(name)]
        if bad:
            raise ValueError(f"must list owner/name, got {bad[0]!r}")
        return names

    @model_validator(mode="after")
    def _limits_and_key_file(self) -> ServingSettings:
        hard = self.task_hard_time_limit
        if hard is None:
            object.__setattr__(self, "task_hard_time_limit", max(12.0, self.task_soft_time_limit + 2.0))
        elif hard <= self.task_soft_time_limit:
            raise ValueError("STARGAZER_TASK_HARD_TIME_LIMIT must exceed STARGAZER_TASK_SOFT_TIME_LIMIT")
        if not self.secret_key and self.secret_key_file is not None:
            key = read_secret(None, self.secret_key_file, name="STARGAZER_SECRET_KEY") or ""
            object.__setattr__(self, "secret_key", key)  # frozen: set once, here
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """The environment's settings; without a configured key, the host's generated one (made once)."""
        values = cls.env_values(environ)
        values["github"] = GitHubSettings.from_env(environ)
        settings = cls.build(values)
        changes: dict[str, Any] = {"github_budget_db": settings.state_dir / BUDGET_FILE}
        if not settings.secret_key:
            path = settings.state_dir / SECRET_KEY_FILE
            try:
                changes["secret_key"] = create_once(path)
            except ValueError as exc:
                raise SettingsError(f"the Flask secret key file {exc}; or set STARGAZER_SECRET_KEY") from None
        return settings.model_copy(update=changes)


class GunicornSettings(EnvSettings):
    """The HTTP server's own knobs, read by ``gunicorn.conf.py`` before the app is imported."""

    bind: str = Field("127.0.0.1:8000", validation_alias="STARGAZER_GUNICORN_BIND",
                      description="gunicorn's address: `host:port` or `unix:/path`.")
    workers: int = Field(2, ge=1, validation_alias="STARGAZER_GUNICORN_WORKERS",
                         description="gunicorn processes.")
    threads: int = Field(8, ge=1, validation_alias="STARGAZER_GUNICORN_THREADS",
                         description="Threads per gunicorn process (requests mostly wait for a worker).")
    timeout: int = Field(30, ge=1, validation_alias="STARGAZER_GUNICORN_TIMEOUT",
                         description="Seconds a gunicorn worker may be silent before it is restarted.")
    loglevel: str = Field("info", validation_alias="STARGAZER_GUNICORN_LOGLEVEL",
                          description="gunicorn's log level.")
    forwarded_allow_ips: str = Field("127.0.0.1", validation_alias="STARGAZER_FORWARDED_ALLOW_IPS",
                                     description="Peers whose X-Forwarded-* gunicorn trusts (nginx).")
    metrics_dir: Path | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR",
                                     description="Shared metrics directory (see the serving settings).")


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
