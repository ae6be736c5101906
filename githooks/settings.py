"""Configuration of the hooks: the bare repository's ``stargazer.*`` git config, else the environment.

Why git config first: a push over SSH runs the hooks with an almost empty environment, and a push over the
local transport runs them with the PUSHER's environment. Either way the host's own settings must decide, so
the installer records them in the repository itself (``git config stargazer.modeldir ...``: the values of
``STARGAZER_APP_DIR``, ``STARGAZER_MODEL_DIR`` and ``STARGAZER_DEPLOY_SECRET_FILE`` for this host). The
DESIGN.md §6 variables are the fallback for a repository set up by hand. The secret itself is never stored
in git config: only the path of the file holding it.

| git config key (first)   | environment variable (else)    | default                                  |
|--------------------------|--------------------------------|------------------------------------------|
| stargazer.appdir         | STARGAZER_APP_DIR              | (required)                               |
| stargazer.modeldir       | STARGAZER_MODEL_DIR            | (required)                               |
| stargazer.secretfile     | STARGAZER_DEPLOY_SECRET[_FILE] | (required: unsigned models are refused)  |
| stargazer.keep           |                                | 5 releases                               |
| stargazer.checkuser      |                                | stargazer-check ('' = no sandbox user)   |
| stargazer.checkpython    |                                | the hook's own interpreter               |
| stargazer.checktimeout   |                                | 60 seconds                               |
| stargazer.checkmemory    |                                | 3072 MiB of address space                |
| stargazer.checksandbox   |                                | githooks/check-sandbox of the app        |
| stargazer.pruneexpire    |                                | 5.minutes.ago (git prune --expire)       |
| stargazer.hostname       |                                | socket.gethostname()                     |
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

DEPLOY_REF: Final = "refs/heads/deploy"
STAGING_PREFIX: Final = "refs/staging/"
# The commit ``current`` serves: moved by post-receive after a switch succeeded; pushes to it are refused.
SERVING_REF: Final = "refs/stargazer/serving"
DEFAULT_KEEP: Final = 5
DEFAULT_CHECK_TIMEOUT: Final = 60.0
DEFAULT_CHECK_USER: Final = "stargazer-check"
DEFAULT_CHECK_MEMORY_MB: Final = 3072  # address space: python + numpy + sklearn reserve ~1.5 GiB of it
DEFAULT_PRUNE_EXPIRE: Final = "5.minutes.ago"


class SettingsError(ValueError):
    """A hook setting is missing or unusable; printed to the pusher as one line."""


@dataclass(frozen=True)
class HookSettings:
    app_dir: Path
    model_dir: Path
    secret: bytes | None = field(repr=False)  # never printed
    keep: int = DEFAULT_KEEP
    check_user: str | None = DEFAULT_CHECK_USER
    check_python: Path = field(default_factory=lambda: Path(sys.executable))
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    check_memory_mb: int = DEFAULT_CHECK_MEMORY_MB
    check_sandbox: Path | None = None  # None: the app's own githooks/check-sandbox
    prune_expire: str = DEFAULT_PRUNE_EXPIRE
    host_name: str = field(default_factory=socket.gethostname)


def git_config(cwd: Path | None = None) -> dict[str, str]:
    """The ``stargazer.*`` keys of the repository the hook runs in (lower-cased key names)."""
    result = subprocess.run(
        ["git", "config", "--null", "--get-regexp", r"^stargazer\."],
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    values: dict[str, str] = {}
    for record in result.stdout.decode("utf-8", "replace").split("\0"):
        if record:
            key, _, value = record.partition("\n")
            values[key.lower()] = value
    return values


def load(environ: Mapping[str, str] | None = None, config: Mapping[str, str] | None = None) -> HookSettings:
    """Read every setting once; raise SettingsError with one line naming the missing or bad one."""
    from model_serving import artifact  # imported late: the cheap ref checks must not wait for sklearn

    env = os.environ if environ is None else environ
    cfg = git_config() if config is None else config

    def pick(env_name: str, key: str) -> str | None:
        return cfg.get(f"stargazer.{key}") or env.get(env_name) or None

    app_dir = pick("STARGAZER_APP_DIR", "appdir")
    if not app_dir:
        raise SettingsError(
            "STARGAZER_APP_DIR / git config stargazer.appdir is not set (run githooks/install.sh)"
        )
    model_dir = pick("STARGAZER_MODEL_DIR", "modeldir")
    if not model_dir:
        raise SettingsError(
            "STARGAZER_MODEL_DIR / git config stargazer.modeldir is not set (run githooks/install.sh)"
        )
    if cfg.get("stargazer.secretfile"):
        secret_env = {artifact.SECRET_FILE_ENV: cfg["stargazer.secretfile"]}
    else:
        secret_env = {
            key: value for key, value in env.items() if key in (artifact.SECRET_ENV, artifact.SECRET_FILE_ENV)
        }
    try:
        secret = artifact.deploy_secret_from_env(secret_env)
    except artifact.ArtifactError as exc:
        raise SettingsError(str(exc)) from None

    check_user = cfg.get("stargazer.checkuser", DEFAULT_CHECK_USER)
    return HookSettings(
        app_dir=Path(app_dir),
        model_dir=Path(model_dir),
        secret=secret,
        keep=int(_number(cfg, "keep", DEFAULT_KEEP, integer=True, minimum=1)),
        check_user=check_user or None,
        check_python=Path(cfg.get("stargazer.checkpython") or sys.executable),
        check_timeout=_number(cfg, "checktimeout", DEFAULT_CHECK_TIMEOUT, integer=False, minimum=0.1),
        check_memory_mb=int(_number(cfg, "checkmemory", DEFAULT_CHECK_MEMORY_MB, integer=True, minimum=256)),
        check_sandbox=Path(cfg["stargazer.checksandbox"]) if cfg.get("stargazer.checksandbox") else None,
        prune_expire=cfg.get("stargazer.pruneexpire") or DEFAULT_PRUNE_EXPIRE,
        host_name=cfg.get("stargazer.hostname") or socket.gethostname(),
    )


def _number(cfg: Mapping[str, str], key: str, default: float, *, integer: bool, minimum: float) -> float:
    raw = cfg.get(f"stargazer.{key}")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise SettingsError(f"git config stargazer.{key} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"git config stargazer.{key} must be >= {minimum}, got {raw!r}")
    return value
