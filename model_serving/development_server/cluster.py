"""Join the Ray cluster named by ``RAY_ADDRESS`` or start a private local one, and describe it.

Why a private local cluster gets its own ``--temp-dir``: on a shared machine several Ray instances (tests,
benchmarks, a real head) must never share sockets or session files, and ``ray stop`` would kill them all, so
we only ever shut down what we started, through ``ray.shutdown()``.

Token authentication (on by default in Ray 2.60) is configured through Ray's own environment variables
(``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``; otherwise ``~/.ray/auth_token``),
never passed on the command line, so the token stays out of process listings and logs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ray

from envsettings import hand_down
from model_serving.development_server.settings import Settings

#: The repository root: Ray workers (local or on other nodes sharing this checkout) import our code from it.
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ClusterInfo:
    address: str  # "local" for a private cluster
    nodes: int
    cpus: float
    started_here: bool


def use_token_file(path: Path) -> None:
    """Point this process (and the Ray processes it starts) at the token in ``path``, token mode on.

    Ray reads the auth mode and token once per process and caches them in its C++ core, so a process that
    imported ray before choosing its token (pytest, a benchmark driving several clusters) must refresh that
    cache, as Ray's own tests do (``ray._private.authentication_test_utils.reset_auth_token_state``).
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    hand_down({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path), "RAY_AUTH_TOKEN": None})
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def describe() -> tuple[int, float]:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return len(alive), float(sum(n.get("Resources", {}).get("CPU", 0.0) for n in alive))


def _importable_by_workers(python_path: str) -> None:
    """Put the checkout on PYTHONPATH before a local Ray starts: its workers inherit the environment.

    (A ``runtime_env`` would do the same but gives the job its own worker pool, so the workers Ray prestarts
    would be wasted and every task would wait for a fresh interpreter.) Nodes started by scripts/ray_*.sh
    get the same variable from the script.
    """
    if str(REPO_ROOT) not in python_path.split(os.pathsep):
        hand_down({"PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), python_path) if p)})


def wait_for_nodes(count: int, timeout: float = 120.0) -> None:
    """Block until ``count`` nodes are alive: workers may still be joining when the driver starts."""
    deadline = time.monotonic() + timeout
    while (alive := describe()[0]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {alive} of {count} Ray nodes alive after {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def ray_session(
    *, num_cpus: int | None = None, settings: Settings | None = None, min_nodes: int = 1
) -> Iterator[ClusterInfo]:
    """Yield a connected Ray; disconnect (or stop the private cluster) afterwards.

    If Ray is already initialised in this process (tests, notebooks) it is reused and left running.
    """
    settings = settings or Settings.from_env()
    if ray.is_initialized():
        nodes, cpus = describe()
        yield ClusterInfo(address="existing", nodes=nodes, cpus=cpus, started_here=False)
        return
    temp_dir: Path | None = None
    if settings.ray_address:
        ray.init(address=settings.ray_address)
        address = settings.ray_address
    else:
        settings.ray_temp_root.mkdir(parents=True, exist_ok=True)
        temp_dir = Path(tempfile.mkdtemp(prefix="sg-ray-", dir=settings.ray_temp_root))
        _importable_by_workers(settings.python_path)
        ray.init(num_cpus=num_cpus, _temp_dir=str(temp_dir), include_dashboard=False)
        address = "local"
    try:
        wait_for_nodes(min_nodes)
        nodes, cpus = describe()
        yield ClusterInfo(address=address, nodes=nodes, cpus=cpus, started_here=temp_dir is not None)
    finally:
        ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
