"""What ``scripts/demo.py`` takes from the environment it was started in, read here and nowhere else.

Why so little: every stage after the converge runs as the ``stargazer`` user with the settings Ansible wrote
(``stargazer.env``), never with root's environment. Only ``ansible-playbook`` inherits the caller's, as an
operator's shell would hand it down (``ANSIBLE_*`` included: a test moves Ansible's temp and control-socket
directories under its own), with the venv's ``bin`` in front of ``PATH``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import Field

from envsettings import EnvSettings


class DemoSettings(EnvSettings):
    """The demo's environment: ``PATH`` and what ``ansible-playbook`` inherits."""

    path: str = Field(
        "/usr/local/bin:/usr/bin:/bin", validation_alias="PATH",
        description="Where ansible-playbook finds git, supervisorctl, openssl ... (after the venv's bin).")
    inherited: dict[str, str] = Field(
        default_factory=dict,
        description="The whole environment, handed down to ansible-playbook unchanged but for PATH.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read ``environ`` (default: os.environ): ``PATH``, and all of it to hand down."""
        env = dict(os.environ if environ is None else environ)
        return cls.build({**cls.env_values(env), "inherited": env})

    def ansible_environment(self, venv_bin: str, **overrides: str) -> dict[str, str]:
        """What ``ansible-playbook`` runs with: the inherited environment, ``venv_bin`` first on PATH."""
        return {**self.inherited, "PATH": f"{venv_bin}{os.pathsep}{self.path}", **overrides}
