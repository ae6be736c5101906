"""The environment a child process inherits: this process's, minus what must not leak, plus what it needs.

Why here: settings modules are the only readers of the environment, and handing it down to a child (git, a
service, ansible-playbook) is a read too. Callers say what to drop and what to add; nothing is interpreted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping


def child_environment(
    extra: Mapping[str, str] | None = None, *, drop: Iterable[str] = (), drop_prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """``os.environ`` without the names in ``drop`` or starting with ``drop_prefixes``, then ``extra``."""
    dropped = set(drop)
    env = {
        name: value for name, value in os.environ.items()
        if name not in dropped and not (drop_prefixes and name.startswith(drop_prefixes))
    }
    env.update(extra or {})
    return env


def hand_down(values: Mapping[str, str | None]) -> None:
    """Set (or, for None, remove) variables in this process's environment for children it starts in-process.

    Why: Ray starts its raylet and workers from inside ``ray.init``, handing them this process's environment,
    and reads its own auth settings from it; no argument can carry them. This is the one place the project
    changes its own environment.
    """
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
