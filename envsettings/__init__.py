"""How every settings module of the project reads the environment (docs/contracts.md §6).

Each server has ONE settings module (``data_collection/settings.py``, ``githooks/settings.py``,
``model_serving/development_server/settings.py``, ``model_serving/production_server/settings.py``,
``rehearsal/settings.py``); each defines pydantic-settings classes on :class:`EnvSettings` and is entered
through ``from_env(environ)``. Nothing else in the project reads an environment variable; a child process's
environment is built by :func:`child_environment`, and what children started in-process
(Ray) inherit is set by :func:`hand_down`.
"""

from envsettings.base import EnvSettings, SettingsError, env_name
from envsettings.child_env import child_environment, hand_down

__all__ = ["EnvSettings", "SettingsError", "child_environment", "env_name", "hand_down"]
