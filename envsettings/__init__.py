"""How every settings module of the project reads the environment (docs/contracts.md §6).

Each server has ONE settings module (``data_collection/settings.py``, ``githooks/settings.py``,
``model_serving/development_server/settings.py``, ``model_serving/production_server/settings.py``,
``rehearsal/settings.py``); each defines pydantic-settings classes on :class:`EnvSettings` and is entered
through ``from_env(environ)``. Nothing else in the project reads an environment variable.
"""

from envsettings.base import EnvSettings, SettingsError, env_name

__all__ = ["EnvSettings", "SettingsError", "env_name"]
