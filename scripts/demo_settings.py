"""What ``scripts/demo.py`` takes from the environment it was started in, read here and nowhere else.

Why so little: every stage after the converge runs as the ``stargazer`` user with the settings Ansible wrote
(``stargazer.env``), never with root's environment. Only ``ansible-playbook`` inherits the caller's, as an
operator's shell would hand it down (``ANSIBLE_*`` included: a test moves Ansible's temp and control-socket
directories under its own), with the venv's ``bin`` in front of ``PATH``.

The shape follows the project's settings modules (``envsettings``: pydantic-settings, each variable named in
its field's ``validation_alias``, entered through ``from_env``); the demo runs as a script from ``scripts/``,
outside the importable packages, so it defines its own small class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class DemoSettings(BaseSettings):
    """The demo's environment: ``PATH`` and what ``ansible-playbook`` inherits."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, validate_by_name=True, extra="forbid")

    path: str = Field(
        "/usr/local/bin:/usr/bin:/bin", validation_alias="PATH",
        description="Where ansible-playbook finds git, supervisorctl, openssl ... (after the venv's bin).")
    inherited: dict[str, str] = Field(
        default_factory=dict,
        description="The whole environment, handed down to ansible-playbook unchanged but for PATH.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment is read by from_env only

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read ``environ`` (default: os.environ)."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {"inherited": env}
        if env.get("PATH"):
            values["PATH"] = env["PATH"]
        return cls(**values)

    def ansible_environment(self, venv_bin: str, **overrides: str) -> dict[str, str]:
        """What ``ansible-playbook`` runs with: the inherited environment, ``venv_bin`` first on PATH."""
        return {**self.inherited, "PATH": f"{venv_bin}{os.pathsep}{self.path}", **overrides}
