"""The rehearsal's settings, read from the environment in this one place.

Why a prefix and a directory: the fleet's namespaces, bridge, users and Ray temp dirs are named after the
prefix, and all its files live under the directory, so a test can run its own rehearsal beside an operator's
kept fleet, and ``down`` finds everything a rehearsal made from these two values alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import Field, field_validator

from envsettings import EnvSettings, SettingsError

REPO_ROOT: Final = Path(__file__).resolve().parent.parent

__all__ = ["REPO_ROOT", "Settings", "SettingsError"]


class Settings(EnvSettings):
    root: Path = Field(REPO_ROOT / "var" / "rehearsal", validation_alias="REHEARSAL_DIR",
                       description="Every file of the fleet (inventory, host trees, logs, timings).")
    prefix: str = Field("sgzr", pattern=r"^[a-z][a-z0-9]{1,7}$", validation_alias="REHEARSAL_PREFIX",
                        description="Names of namespaces (`<prefix>-dev`), bridge, users: 2-8 lowercase "
                                    "letters or digits, a letter first.")
    subnet: str = Field("auto", validation_alias="REHEARSAL_SUBNET",
                        description="First three octets of the fleet's /24 (`auto`: first free 10.210.x).")
    keep: bool = Field(False, validation_alias="REHEARSAL_KEEP",
                       description="Leave the fleet up after `make rehearsal`.")
    repos: int = Field(1500, ge=1, validation_alias="REHEARSAL_REPOS",
                       description="Repositories the GitHub simulator generates (all are collected).")
    trials: int = Field(6, ge=1, validation_alias="REHEARSAL_TRIALS",
                        description="Ray Tune trials of the pipeline's tuning.")

    @field_validator("root", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("prefix", "subnet", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value
