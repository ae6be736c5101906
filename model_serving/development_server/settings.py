"""Configuration of the development server, read from the environment in this one place
(docs/contracts.md §6).

Why a module and not scattered ``os.environ`` reads: the CLI, the Ray helpers and the tests then agree on
what each variable means and on its default.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    #: ``RAY_ADDRESS``: join this cluster (``auto``, ``10.0.0.5:6379`` …); empty = start a private local one.
    ray_address: str | None
    #: ``STARGAZER_RAY_TEMP_ROOT``: where a private local cluster puts its --temp-dir (short path: Ray's
    #: unix sockets live there and have a ~107-byte path limit).
    ray_temp_root: Path
    #: ``STARGAZER_RAY_RESULTS``: Ray Tune's storage path; empty = a temporary directory removed afterwards.
    ray_results: Path | None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    results = env.get("STARGAZER_RAY_RESULTS", "").strip()
    return Settings(
        ray_address=env.get("RAY_ADDRESS", "").strip() or None,
        ray_temp_root=Path(env.get("STARGAZER_RAY_TEMP_ROOT") or tempfile.gettempdir()),
        ray_results=Path(results).resolve() if results else None,
    )
