"""Configuration of the hooks: the bare repository's ``stargazer.*`` git config, else the environment.

Why git config first: a push over SSH runs the hooks with an almost empty environment, and a push over the
local transport runs them with the PUSHER's environment. Either way the host's own settings must decide, so
the installer records them in the repository itself (``git config stargazer.modeldir ...``: the values of
``STARGAZER_APP_DIR``, ``STARGAZER_MODEL_DIR`` and ``STARGAZER_DEPLOY_PUBLIC_KEY_FILE`` for this host). The
docs/contracts.md §6 variables are the fallback for a repository set up by hand. git config stores the path of
the public key file, not the key: the file is the one the workers read too.

Each field of ``HookSettings`` names where it is read, git config key first (``validation_alias``);
README.md's configuration table is generated from those fields. A push's ``-o key=value`` options
(``GIT_PUSH_OPTION_*``) are read here too, into ``push_options``.

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
from pathlib import Path
from typing import Any, Final

from pydantic import AliasChoices, Field, field_validator, model_validator

from envsettings import EnvSettings, SettingsError
from envsettings.base import sources_of

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

__all__ = ["DEFAULT_GATE_FLOORS", "DEFAULT_GATE_MARGINS", "HookSettings", "InstallSettings", "SettingsError",
           "git_config"]


def _config(key: str) -> str:
    return f"stargazer.{key}"


class HookSettings(EnvSettings):
    """Every setting of both hooks, read once per push; the pusher's ``-o key=value`` options with them."""

    app_dir: Path = Field(validation_alias=AliasChoices(_config("appdir"), "STARGAZER_APP_DIR"),
                          description="The serving checkout with its venv (the model check runs its code).")
    model_dir: Path = Field(validation_alias=AliasChoices(_config("modeldir"), "STARGAZER_MODEL_DIR"),
                            description="Production model directory the hooks install releases into.")
    #: The raw Ed25519 public key that verifies model.json (None: every push is refused).
    public_key: bytes | None = Field(None, validation_alias="STARGAZER_DEPLOY_PUBLIC_KEY",
                                     description="Base64 public key that verifies model.json.")
    public_key_file: Path | None = Field(
        None, validation_alias=AliasChoices(_config("publickeyfile"), "STARGAZER_DEPLOY_PUBLIC_KEY_FILE"),
        description="File holding that key (git config wins over both variables).")
    keep: int = Field(DEFAULT_KEEP, ge=1, validation_alias=_config("keep"), description="Releases kept.")
    check_user: str | None = Field(DEFAULT_CHECK_USER, validation_alias=_config("checkuser"),
                                   description="Account the model check runs as ('': no sandbox user).")
    check_python: Path = Field(default_factory=lambda: Path(sys.executable),
                               validation_alias=_config("checkpython"),
                               description="Interpreter of the model check (default: the hook's own).")
    check_timeout: float = Field(DEFAULT_CHECK_TIMEOUT, ge=0.1, validation_alias=_config("checktimeout"),
                                 description="Seconds the model check may take.")
    check_memory_mb: int = Field(DEFAULT_CHECK_MEMORY_MB, ge=256, validation_alias=_config("checkmemory"),
                                 description="Address space of the model check, MiB.")
    check_sandbox: Path | None = Field(None, validation_alias=_config("checksandbox"),
                                       description="Sandbox script (default: the app's own).")
    prune_expire: str = Field(DEFAULT_PRUNE_EXPIRE, validation_alias=_config("pruneexpire"),
                              description="`git prune --expire` of replaced models' objects.")
    host_name: str = Field(default_factory=socket.gethostname, validation_alias=_config("hostname"),
                           description="This host's name in messages and the deploy log.")
    evalset: Path | None = Field(None, validation_alias=_config("evalset"),
                                 description="Frozen evaluation set of the quality gate (unset: no gate).")
    evalset_sha256: str | None = Field(None, validation_alias=_config("evalsetsha256"),
                                       description="The sha256 the evaluation set must have.")
    gate_spearman_margin: float = Field(
        DEFAULT_GATE_MARGINS["spearman"], ge=0, validation_alias=_config("gatespearmanmargin"),
        description="Quality gate: how much lower a pushed model's Spearman may be than the serving one's.")
    gate_mae_log_margin: float = Field(
        DEFAULT_GATE_MARGINS["mae_log"], ge=0, validation_alias=_config("gatemaelogmargin"),
        description="Quality gate: how much higher its MAE on log stars may be.")
    gate_coverage_margin: float = Field(
        DEFAULT_GATE_MARGINS["coverage"], ge=0, validation_alias=_config("gatecoveragemargin"),
        description="Quality gate: how much lower its interval coverage may be.")
    gate_spearman_floor: float = Field(
        DEFAULT_GATE_FLOORS["spearman"], ge=-1, validation_alias=_config("gatespearmanfloor"),
        description="Quality gate: the Spearman the first model on a host must reach.")
    gate_mae_log_floor: float = Field(
        DEFAULT_GATE_FLOORS["mae_log"], ge=-1, validation_alias=_config("gatemaelogfloor"),
        description="Quality gate: the MAE on log stars the first model must stay under.")
    gate_coverage_floor: float = Field(
        DEFAULT_GATE_FLOORS["coverage"], ge=-1, validation_alias=_config("gatecoveragefloor"),
        description="Quality gate: the interval coverage the first model must reach.")
    #: ``git push -o key=value`` options of this push (the deploy command sends ``actor=...``).
    push_options: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def display_name(cls, source: str) -> str:
        return f"git config {source}" if source.startswith("stargazer.") else source

    @field_validator("check_user", mode="after")
    @classmethod
    def _no_user(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("evalset_sha256", mode="before")
    @classmethod
    def _digest(cls, value: Any) -> Any:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("public_key", mode="before")
    @classmethod
    def _parse_key(cls, value: Any) -> Any:
        from model_serving import artifact  # imported late: the cheap ref checks must not wait for it

        if isinstance(value, str):
            try:
                return artifact.public_key_from(value)
            except artifact.ArtifactError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _key_file_and_evalset(self) -> HookSettings:
        from model_serving import artifact

        if self.public_key is None and self.public_key_file is not None:
            try:
                object.__setattr__(self, "public_key", artifact.public_key_from(path=self.public_key_file))
            except artifact.ArtifactError as exc:
                raise ValueError(str(exc)) from None
        digest = self.evalset_sha256
        if self.evalset is None:
            object.__setattr__(self, "evalset_sha256", None)
        elif digest is None or len(digest) != 64 or not set(digest) <= _SHA256_HEX:
            raise ValueError(f"git config stargazer.evalsetsha256 must be the 64-hex sha256 of "
                             f"{self.evalset}, got {digest or 'nothing'!r}")
        return self

    @property
    def gate_margins(self) -> dict[str, float]:
        """How much worse than the serving model a pushed one may score, per metric."""
        return {metric: getattr(self, f"gate_{metric}_margin") for metric in GATE_KEYS}

    @property
    def gate_floors(self) -> dict[str, float]:
        """What the first model on a host must reach, per metric (for mae_log, a ceiling)."""
        return {metric: getattr(self, f"gate_{metric}_floor") for metric in GATE_KEYS}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, config: Mapping[str, str] | None = None
    ) -> HookSettings:
        """The host's git config (default: this repository's), else ``environ``; raise SettingsError with one
        line naming the missing or bad value."""
        env = os.environ if environ is None else environ
        cfg = git_config() if config is None else config
        values = cls.env_values(env)
        if cfg.get(_config("publickeyfile")):
            values.pop("STARGAZER_DEPLOY_PUBLIC_KEY", None)  # the host's file decides, not the pusher
        # Keys the hooks do not read (the installer's own, e.g. stargazer.python) are left alone; an empty
        # value is unset, except checkuser's: there it means "no sandbox user".
        known = {source for field in cls.model_fields for source in sources_of(cls, field)}
        values.update({key: value for key, value in cfg.items()
                       if key in known and (value != "" or key == _config("checkuser"))})
        values["push_options"] = _push_options(env)
        return cls.build(values)


class InstallSettings(EnvSettings):
    """The installer's fallbacks for ``--model-dir`` and ``--public-key-file``: the hooks' own variables."""

    model_dir: Path | None = Field(None, validation_alias="STARGAZER_MODEL_DIR",
                                   description="Production model directory the hooks install releases into.")
    public_key_file: Path | None = Field(None, validation_alias="STARGAZER_DEPLOY_PUBLIC_KEY_FILE",
                                         description="File holding the deploy public key.")


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


def _push_options(environ: Mapping[str, str]) -> dict[str, str]:
    """``git push -o key=value`` options, as git hands them to the hooks (GIT_PUSH_OPTION_COUNT, _0, _1 …)."""
    try:
        count = int(environ.get("GIT_PUSH_OPTION_COUNT", "0"))
    except ValueError:
        return {}
    options: dict[str, str] = {}
    for index in range(count):
        key, _, value = environ.get(f"GIT_PUSH_OPTION_{index}", "").partition("=")
        if key:
            options[key] = value
    return options
