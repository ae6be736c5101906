"""What ``start_instances.py`` reads from the environment, read here and nowhere else.

Why so little: every credential comes from clouds.yaml, which openstacksdk reads itself; the project only
chooses which entry of it, when ``--cloud`` does not.
"""

from __future__ import annotations

from pydantic import Field

from envsettings import EnvSettings


class ProvisioningSettings(EnvSettings):
    """Which clouds.yaml entry ``start_instances.py`` uses when ``--cloud`` is not given."""

    cloud: str | None = Field(
        None, validation_alias="OS_CLOUD",
        description="clouds.yaml entry start_instances.py uses when --cloud is not given "
                    "(unset: the fleet file's `cloud:`).")
