"""Configuration of the development server, read from the environment in this one place
(docs/contracts.md §6).

Why a module and not scattered environment reads: the CLI, the Ray helpers, ``deploy`` and the tests then
agree on what each variable means and on its default. Relative defaults are relative to the repository, never
to the directory a command happens to run in.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from envsettings import EnvSettings, SettingsError

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_DEPLOY_REPO: Final = REPO_ROOT / "var" / "deploy.git"

__all__ = ["DEFAULT_DEPLOY_REPO", "REPO_ROOT", "Settings", "SettingsError"]


class Settings(EnvSettings):
    ray_address: str | None = Field(
        None, validation_alias="RAY_ADDRESS",
        description="Ray cluster to join (`auto`, `10.0.0.5:6379` …); unset: start a private local one.")
    ray_temp_root: Path = Field(
        Path(tempfile.gettempdir()), validation_alias="STARGAZER_RAY_TEMP_ROOT",
        description="Where a private local cluster puts its --temp-dir (short: Ray's sockets live there).")
    ray_results: Path | None = Field(
        None, validation_alias="STARGAZER_RAY_RESULTS",
        description="Ray Tune's storage path; unset: a temporary directory removed afterwards.")
    python_path: str = Field(
        "", validation_alias="PYTHONPATH",
        description="Inherited by Ray's workers; the checkout goes in front of it before a local Ray starts.")
    deploy_repo: Path = Field(
        DEFAULT_DEPLOY_REPO, validation_alias="STARGAZER_DEPLOY_REPO",
        description="`deploy`'s local bare repository of deploy commits (created on first use).")
    signing_key: str | None = Field(
        None, repr=False, validation_alias="STARGAZER_DEPLOY_SIGNING_KEY",
        description="Base64 Ed25519 key `deploy` signs model.json with (secret; prefer the file).")
    signing_key_file: Path | None = Field(
        None, validation_alias="STARGAZER_DEPLOY_SIGNING_KEY_FILE",
        description="File holding the signing key (mode 0600, the deploy account's).")
    deploy_remotes: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias="STARGAZER_DEPLOY_REMOTES",
        description="Production hosts `deploy` pushes to, comma-separated; unset: every remote of the repo.")

    @field_validator("ray_address", mode="after")
    @classmethod
    def _blank_is_local(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("ray_results", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.resolve() if value is not None else None

    @field_validator("deploy_remotes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in value.replace(",", " ").split() if part)
        return value
