"""``make serve`` / ``make serve-stop``: the production stack on this one machine, all state under ``var/``.

    python -m model_serving.production_server.local start    # RabbitMQ, Celery worker(s), gunicorn, nginx
    python -m model_serving.production_server.local status
    python -m model_serving.production_server.local stop     # stops exactly what start started (pid files)

``start`` installs RabbitMQ and nginx with apt when they are missing and we are root, serves the model that
``$STARGAZER_MODEL_DIR/current`` points to (installing the newest ``models/<version>`` there first, through
``model_serving.releases`` like the post-receive hook, signed with the local deploy secret), and returns once
``/readyz`` says ready. Without RabbitMQ (no root to install it) it falls back to an embedded broker and says
so; without nginx, gunicorn answers on the HTTP port directly.

Launcher settings (the app's own settings are in ``settings.py``):

    STARGAZER_VAR_DIR            var    all state: var/stack (pids, logs, broker data), secrets, models
    STARGAZER_HTTP_PORT          8080   nginx's port
    STARGAZER_MODEL_DIR          var/production
    STARGAZER_MODELS_DIR         models   where training writes versions (the newest is installed)
    STARGAZER_DEPLOY_SECRET(_FILE)      else var/deploy_secret, generated once (mode 0600, git-ignored)
    STARGAZER_CELERY_WORKERS     1      worker instances;  STARGAZER_CELERY_CONCURRENCY  2 processes each
    STARGAZER_GUNICORN_WORKERS   2      STARGAZER_GUNICORN_THREADS  8
    STARGAZER_BROKER             rabbitmq | embedded   (default: rabbitmq when installed)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from model_serving.production_server.services import (
    ServiceError,
    http_get,
    nginx_available,
    port_open,
    rabbitmq_available,
)
from model_serving.production_server.stack import Stack, StackConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Everything the local stack writes lives here (git-ignored); tests point it at a temporary directory.
VAR = Path(os.environ.get("STARGAZER_VAR_DIR") or REPO_ROOT / "var").resolve()
STACK_DIR = VAR / "stack"
LOCAL_SECRET_FILE = VAR / "deploy_secret"
BROKER_PASSWORD_FILE = STACK_DIR / "broker_password"
LOCAL_ACTOR = "make serve"


class LaunchError(click.ClickException):
    """A one-line reason why the local stack cannot start."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise LaunchError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise LaunchError(f"{name} must be >= 1, got {value}")
    return value


def _private_file(path: Path, make: str) -> str:
    """Read a secret file, or create it once (0600, O_EXCL) with ``make``; never printed anywhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(make + "\n")
    return make


def deploy_secret_env() -> tuple[bytes, dict[str, str], str]:
    """The deploy secret, the environment that hands it to the workers, and where it came from."""
    from model_serving import artifact

    secret = artifact.deploy_secret_from_env()
    if secret:
        return secret, {}, "STARGAZER_DEPLOY_SECRET(_FILE)"
    value = _private_file(LOCAL_SECRET_FILE, secrets.token_urlsafe(32))
    return value.encode(), {"STARGAZER_DEPLOY_SECRET_FILE": str(LOCAL_SECRET_FILE)}, str(LOCAL_SECRET_FILE)


def ensure_model(model_dir: Path, models_dir: Path, secret: bytes) -> str:
    """Make sure ``model_dir/current`` holds a model the workers will accept; returns its version.

    No ``current`` yet: the newest ``models/<version>`` is copied, signed with the local deploy secret (the
    copy, never the training output) and installed with ``releases.install_release``, the code post-receive
    runs. An existing ``current`` is kept (checked first, so a wrong secret is one clear line here instead
    of a stack that never becomes ready), unless ``make serve`` itself installed it and training has since
    written a newer version: then the newer one is installed, so ``make demo`` serves what it just trained.
    """
    # Imported here, not at the top: they pull in scikit-learn, which `stop` and `status` never need.
    from model_serving import artifact, releases

    current = releases.current_release(model_dir)
    newest = artifact.newest_version(models_dir)
    if current is not None and newest is not None and newest.name > current.name:
        log = releases.read_deploy_log(model_dir)
        if log and log[-1].get("actor") == LOCAL_ACTOR:
            # The local stack served an older local model: a newer training run replaces it (make demo).
            # A model that arrived by a deploy (git push) is never replaced from here.
            click.echo(f"models/ holds a newer version than {current.name}: installing {newest.name}")
            current = None
    if current is None:
        if newest is None:
            raise LaunchError(
                f"no model to serve: {model_dir}/current is absent and {models_dir} holds no version "
                "(train one: make demo)"
            )
        VAR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".sign-", dir=VAR) as tmp:
            staged = Path(tmp) / newest.name
            staged.mkdir()
            for name in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):
                shutil.copy2(newest / name, staged / name)
            try:
                artifact.sign_version(staged, secret)
                current = releases.install_release(staged, model_dir, actor=LOCAL_ACTOR, move=True)
            except (artifact.ArtifactError, releases.ReleaseError) as exc:
                raise LaunchError(f"cannot install {newest.name}: {exc}") from None
        click.echo(f"installed model {newest.name} into {model_dir} (signed with the local deploy secret)")
    try:
        manifest = artifact.validate_version(current, secret)
    except artifact.ArtifactError as exc:
        raise LaunchError(f"{model_dir}/current cannot be served: {exc}") from None
    return manifest.version


def ensure_system_packages() -> None:
    """apt-install RabbitMQ/nginx when missing and root (the script says what it cannot do otherwise)."""
    if rabbitmq_available() and nginx_available():
        return
    if os.geteuid() != 0:
        return
    script = REPO_ROOT / "scripts" / "install_system_deps.sh"
    click.echo("installing missing system packages (rabbitmq-server, nginx) with apt")
    subprocess.run(["bash", str(script)], check=False)


@click.group()
def cli() -> None:
    """The local production stack (make serve / make serve-stop)."""


@cli.command()
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for /readyz.")
def start(timeout: float) -> None:
    """Start RabbitMQ, Celery worker(s), gunicorn and nginx; return once /readyz is true."""
    existing = Stack.from_state(STACK_DIR)
    if existing is not None:
        alive = [name for name, running, _ in existing.status() if running]
        if alive:
            raise LaunchError(f"a local stack is already running ({', '.join(alive)}): make serve-stop first")
        existing.stop()  # only stale pid files left: clean them

    http_port = _env_int("STARGAZER_HTTP_PORT", 8080)
    if port_open("127.0.0.1", http_port):
        raise LaunchError(f"port {http_port} is taken: set STARGAZER_HTTP_PORT to a free port")
    model_dir = Path(os.environ.get("STARGAZER_MODEL_DIR") or VAR / "production").resolve()
    models_dir = Path(os.environ.get("STARGAZER_MODELS_DIR") or REPO_ROOT / "models").resolve()
    ensure_system_packages()

    secret, secret_env, secret_from = deploy_secret_env()
    version = ensure_model(model_dir, models_dir, secret)
    click.echo(f"model {version} from {model_dir}/current (deploy secret: {secret_from})")

    broker = os.environ.get("STARGAZER_BROKER", "")
    if broker not in {"", "rabbitmq", "embedded"}:
        raise LaunchError(f"STARGAZER_BROKER must be rabbitmq or embedded, got {broker!r}")
    if broker in {"", "rabbitmq"} and not rabbitmq_available():
        if broker == "rabbitmq":
            raise LaunchError("STARGAZER_BROKER=rabbitmq but rabbitmq-server is not installed")
        click.echo("RabbitMQ is not installed and cannot be (not root): falling back to the EMBEDDED broker "
                   "(kombu filesystem transport, polling) - fine for a demo, not for production")
        broker = "embedded"
    use_nginx = nginx_available()
    if not use_nginx:
        click.echo("nginx is not installed: gunicorn answers on the HTTP port directly (no rate limit/gzip)")

    shutil.rmtree(STACK_DIR / "rabbitmq" / "mnesia", ignore_errors=True)  # a fresh broker per start
    config = StackConfig(
        state_dir=STACK_DIR,
        model_dir=model_dir,
        http_port=http_port,
        broker="embedded" if broker == "embedded" else "rabbitmq",
        broker_password=_private_file(BROKER_PASSWORD_FILE, secrets.token_urlsafe(24)),
        celery_workers=_env_int("STARGAZER_CELERY_WORKERS", 1),
        celery_concurrency=_env_int("STARGAZER_CELERY_CONCURRENCY", 2),
        gunicorn_workers=_env_int("STARGAZER_GUNICORN_WORKERS", 2),
        gunicorn_threads=_env_int("STARGAZER_GUNICORN_THREADS", 8),
        use_nginx=use_nginx,
        env=secret_env,
    )
    stack = Stack(config)
    try:
        stack.start(timeout=timeout, progress=click.echo)
    except ServiceError as exc:
        raise LaunchError(f"{exc}") from None
    click.echo(f"ready: {stack.url}/  (logs and pids under {STACK_DIR}; stop with: make serve-stop)")


@cli.command()
def stop() -> None:
    """Stop exactly what start started (by pid files under var/stack)."""
    stack = Stack.from_state(STACK_DIR)
    if stack is None:
        click.echo("no local stack recorded: nothing to stop")
        return
    stopped = stack.stop()
    click.echo("stopped: " + ("; ".join(stopped) if stopped else "nothing was running"))


@cli.command()
def status() -> None:
    """Each process, alive or not, and /readyz."""
    stack = Stack.from_state(STACK_DIR)
    if stack is None:
        click.echo("no local stack recorded")
        sys.exit(3)
    for name, running, pid in stack.status():
        click.echo(f"{'up  ' if running else 'DOWN'} {name} (pid {pid})")
    try:
        code, body = http_get(f"127.0.0.1:{stack.http_port}", "/readyz", timeout=5)
        click.echo(f"/readyz {code} {body.decode(errors='replace').strip()[:300]}")
    except OSError as exc:
        click.echo(f"/readyz unreachable: {exc}")
        sys.exit(1)
    click.echo(stack.url + "/")


if __name__ == "__main__":
    cli()
