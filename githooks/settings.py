"""Configuration of the hooks: the bare repository's ``stargazer.*`` git config, else the environment.

Why git config first: a push over SSH runs the hooks with an almost empty environment, and a push over the
local transport runs them with the PUSHER's environment. Either way the host's own settings must decide, so
the installer records them in the repository itself (``git config stargazer.modeldir ...``: the values of
``STARGAZER_APP_DIR``, ``STARGAZER_MODEL_DIR`` and ``STARGAZER_DEPLOY_PUBLIC_KEY_FILE`` for this host). The
docs/contracts.md §6 variables are the fallback for a repository set up by hand. git config stores the path of
the public key file, not the key: the file is the one the workers read too.

| git config key (first)   | environment variable (else)    | default                                  |
|--------------------------|--------------------------------|------------------------------------------|
| stargazer.appdir         | STARGAZER_APP_DIR              | (required)                               |
| stargazer.modeldir       | STARGAZER_MODEL_DIR            | (required)                               |
| stargazer.publickeyfile  | STARGAZER_DEPLOY_PUBLIC_KEY[_FILE] | (required: unsigned models are refused) |
| stargazer.keep           |                                | 5 releases                               |
| stargazer.checkuser      |                                | stargazer-check ('' = no sandbox user)   |
| stargazer.checkpython    |                                | the hook's own interpreter               |
| stargazer.checktimeout   |                                | 60 seconds                               |
| stargazer.checkmemory    |                                | 3072 MiB of address space                |
| stargazer.checksandbox   |                                | githooks/check-sandbox of the app        |
| stargazer.pruneexpire    |                                | 5.minutes.ago (git prune --expire)       |
| stargazer.hostname       |                                | socket.gethostname()                     |
| stargazer.evalset        |                                | none: no quality gate                    |
| stargazer.evalsetsha256  |                                | (required with stargazer.evalset)        |
| stargazer.gate*margin    |                                | spearman 0.05, maelog 0.05, coverage 0.1 |
| stargazer.gate*floor     |                                | spearman 0.2, maelog 2.0, coverage 0.2   |

The quality gate (``githooks/gate.py``) compares a pushed model with the serving one on the frozen
evaluation set ``stargazer.evalset``: a model worse than the serving one by more than a margin is refused, the
first model on a host must beat the floors (for ``maelog``, a ceiling: lower is better).
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
# A validated candidate the workers score beside ``current`` (post-receive points ``shadow`` at it; deleting
# the ref clears it). ``deploy --shadow`` pushes it after staging the same commit.
SHADOW_REF: Final = "refs/stargazer/shadow"
# Pushed (at the shadow's commit, so no new objects) to ask for the shadow report; post-receive prints the
# report and deletes the ref again.
SHADOW_REPORT_REF: Final = "refs/stargazer/shadow-report"
DEFAULT_KEEP: Final = 5
DEFAULT_CHECK_TIMEOUT: Final = 60.0
DEFAULT_CHECK_USER: Final = "stargazer-check"
DEFAULT_CHECK_MEMORY_MB: Final = 3072  # address space: python + numpy + sklearn reserve ~1.5 GiB of it
DEFAULT_PRUNE_EXPIRE: Final = "5.minutes.ago"
#: How much worse than the serving model a pushed one may score on the evaluation set (per metric).
DEFAULT_GATE_MARGINS: Final = {"spearman": 0.05, "mae_log": 0.05, "coverage": 0.10}
#: What the first model on a host must reach: Spearman and coverage at least, MAE on log stars at most.
DEFAULT_GATE_FLOORS: Final = {"spearman": 0.2, "mae_log": 2.0, "coverage": 0.2}
#: git config key suffix of each metric (git config names allow no underscore).
GATE_KEYS: Final = {"spearman": "spearman", "mae_log": "maelog", "coverage": "coverage"}
_SHA256_HEX: Final = frozenset("0123456789abcdef")


class SettingsError(ValueError):
    """A hook setting is missing or unusable; printed to the pusher as one line."""


@dataclass(frozen=True)
class HookSettings:
    app_dir: Path
    model_dir: Path
    #: The raw Ed25519 public key that verifies model.json (None: every push is refused).
    public_key: bytes | None
    keep: int = DEFAULT_KEEP
    check_user: str | None = DEFAULT_CHECK_USER
    check_python: Path = field(default_factory=lambda: Path(sys.executable))
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    check_memory_mb: int = DEFAULT_CHECK_MEMORY_MB
    check_sandbox: Path | None = None  # None: the app's own githooks/check-sandbox
    prune_expire: str = DEFAULT_PRUNE_EXPIRE
    host_name: str = field(default_factory=socket.gethostname)
    evalset: Path | None = None  # None: no evaluation set on this host, so no quality gate
    evalset_sha256: str | None = None
    gate_margins: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GATE_MARGINS))
    gate_floors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GATE_FLOORS))


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
    try:
        if cfg.get("stargazer.publickeyfile"):
            public_key = artifact.public_key_from(path=cfg["stargazer.publickeyfile"])
        else:
            public_key = artifact.public_key_from(
                env.get(artifact.PUBLIC_KEY_ENV), env.get(artifact.PUBLIC_KEY_FILE_ENV)
            )
    except artifact.ArtifactError as exc:
        raise SettingsError(str(exc)) from None

    check_user = cfg.get("stargazer.checkuser", DEFAULT_CHECK_USER)
    evalset, evalset_sha256 = _evalset(cfg)
    return HookSettings(
        app_dir=Path(app_dir),
        model_dir=Path(model_dir),
        public_key=public_key,
        keep=int(_number(cfg, "keep", DEFAULT_KEEP, integer=True, minimum=1)),
        check_user=check_user or None,
        check_python=Path(cfg.get("stargazer.checkpython") or sys.executable),
        check_timeout=_number(cfg, "checktimeout", DEFAULT_CHECK_TIMEOUT, integer=False, minimum=0.1),
        check_memory_mb=int(_number(cfg, "checkmemory", DEFAULT_CHECK_MEMORY_MB, integer=True, minimum=256)),
        check_sandbox=Path(cfg["stargazer.checksandbox"]) if cfg.get("stargazer.checksandbox") else None,
        prune_expire=cfg.get("stargazer.pruneexpire") or DEFAULT_PRUNE_EXPIRE,
        host_name=cfg.get("stargazer.hostname") or socket.gethostname(),
        evalset=evalset,
        evalset_sha256=evalset_sha256,
        gate_margins={
            metric: _number(cfg, f"gate{key}margin", DEFAULT_GATE_MARGINS[metric], integer=False, minimum=0)
            for metric, key in GATE_KEYS.items()
        },
        gate_floors={
            metric: _number(cfg, f"gate{key}floor", DEFAULT_GATE_FLOORS[metric], integer=False, minimum=-1)
            for metric, key in GATE_KEYS.items()
        },
    )


def _evalset(cfg: Mapping[str, str]) -> tuple[Path | None, str | None]:
    """The evaluation set's path and the sha256 it must have: both, or neither (no gate)."""
    path = cfg.get("stargazer.evalset") or None
    digest = (cfg.get("stargazer.evalsetsha256") or "").strip().lower() or None
    if path is None:
        return None, None
    if digest is None or len(digest) != 64 or not set(digest) <= _SHA256_HEX:
        raise SettingsError(
            f"git config stargazer.evalsetsha256 must be the 64-hex sha256 of {path}, "
            f"got {digest or 'nothing'!r}"
        )
    return Path(path), digest


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
