"""The rehearsal's settings, read from the environment in this one place.

Why a prefix and a directory: the fleet's namespaces, bridge, users and Ray temp dirs are named after the
prefix, and all its files live under the directory, so a test can run its own rehearsal beside an operator's
kept fleet, and ``down`` finds everything a rehearsal made from these two values alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,7}$")


@dataclass(frozen=True)
class Settings:
    #: ``REHEARSAL_DIR``: every file of the fleet (inventory, host trees, logs, timings).
    root: Path
    #: ``REHEARSAL_PREFIX``: names of namespaces (``<prefix>-dev``), bridge, users; 2-8 lowercase characters.
    prefix: str
    #: ``REHEARSAL_SUBNET``: first three octets of the fleet's /24 (``auto``: the first free 10.210.x).
    subnet: str
    #: ``REHEARSAL_KEEP``: leave the fleet up after ``make rehearsal``.
    keep: bool
    #: ``REHEARSAL_REPOS``: repositories the GitHub simulator generates (the collection takes them all).
    repos: int
    #: ``REHEARSAL_TRIALS``: Ray Tune trials of the pipeline's tuning.
    trials: int


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    prefix = env.get("REHEARSAL_PREFIX", "sgzr").strip()
    if not _PREFIX.match(prefix):
        raise ValueError(f"REHEARSAL_PREFIX={prefix!r}: 2-8 lowercase letters or digits, a letter first")
    return Settings(
        root=Path(env.get("REHEARSAL_DIR") or REPO_ROOT / "var" / "rehearsal").resolve(),
        prefix=prefix,
        subnet=env.get("REHEARSAL_SUBNET", "auto").strip() or "auto",
        keep=env.get("REHEARSAL_KEEP", "").strip().lower() in {"1", "true", "yes"},
        repos=int(env.get("REHEARSAL_REPOS", "1500")),
        trials=int(env.get("REHEARSAL_TRIALS", "6")),
    )
