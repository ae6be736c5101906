"""A throwaway multi-node Ray cluster on ONE machine: each node in its own network namespace (tests, bench).

Why: the integration test and the scaling benchmark need trials that really run on two Ray nodes with two
addresses, started by the same scripts as a real cluster (scripts/ray_head.sh, scripts/ray_worker.sh, token
auth). Network namespaces give each node its own interface and IP; a veth pair joins the two namespaces.
Only the network is isolated (files and PIDs are shared), so every node gets its own ``--temp-dir``, and
teardown kills exactly this cluster's processes by PID: never ``ray stop``, which would kill every Ray on
the machine. Needs root and ``ip`` (iproute2); ``taskset`` when pinning nodes to cores.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envsettings import child_environment
from envsettings.private_files import write_private

REPO_ROOT = Path(__file__).resolve().parents[2]
RAY_PORT = 6379


class ClusterStartError(RuntimeError):
    pass


@dataclass
class Node:
    namespace: str
    ip: str
    temp_dir: Path
    log: Path
    process: subprocess.Popen | None = None


@dataclass
class NamespaceCluster:
    root: Path
    token_file: Path
    head: Node
    workers: list[Node] = field(default_factory=list)
    link: str = ""

    @property
    def address(self) -> str:
        return f"{self.head.ip}:{RAY_PORT}"

    @property
    def nodes(self) -> list[Node]:
        return [self.head, *self.workers]

    def env(self) -> dict[str, str]:
        """Environment of a driver joining this cluster (token auth, our code importable)."""
        env = child_environment(drop_prefixes=("RAY_",))
        env.update(
            RAY_ADDRESS=self.address,
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_file),
            PYTHONPATH=str(REPO_ROOT),
            STARGAZER_RAY_RESULTS=str(self.root / "tune"),
        )
        return env

    def run_driver(
        self, argv: Sequence[str], *, core: str | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as a Ray driver inside the head's namespace (a driver needs a local raylet)."""
        pin = ["taskset", "-c", core] if core is not None else []
        return subprocess.run(
            ["ip", "netns", "exec", self.head.namespace, *pin, *argv],
            env=self.env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _start_node(node: Node, script: str, extra_env: dict[str, str], core: str | None) -> None:
    env = child_environment(drop_prefixes=("RAY_",))
    env.update(extra_env, RAY_NODE_IP=node.ip, RAY_TEMP_DIR=str(node.temp_dir), RAY_BLOCK="1")
    pin = ["taskset", "-c", core] if core is not None else []
    with node.log.open("w") as log:
        node.process = subprocess.Popen(
            ["ip", "netns", "exec", node.namespace, *pin, "bash", str(REPO_ROOT / "scripts" / script)],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_port(node: Node, port: int, timeout: float) -> None:
    probe = f"import socket; socket.create_connection(('{node.ip}', {port}), timeout=1).close()"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process is not None and node.process.poll() is not None:
            raise ClusterStartError(f"ray node in {node.namespace} exited: {node.log.read_text()[-500:]}")
        probe_run = subprocess.run(
            ["ip", "netns", "exec", node.namespace, "python3", "-c", probe], capture_output=True, timeout=10
        )
        if probe_run.returncode == 0:
            return
        time.sleep(0.5)
    raise ClusterStartError(f"ray head in {node.namespace} not listening on {port} after {timeout:.0f} s")


def _our_pids(root: Path) -> list[int]:
    """PIDs whose command line or environment mentions this cluster's private directory."""
    marker = str(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes() or marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop(cluster: NamespaceCluster, namespaces: Sequence[Node] | None = None) -> None:
    """Kill this cluster's processes (process groups, then any straggler by PID) and delete its namespaces."""
    for node in reversed(cluster.nodes):
        if node.process is not None and node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _our_pids(cluster.root):
        time.sleep(0.3)
    for pid in _our_pids(cluster.root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for node in namespaces or cluster.nodes:
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=5)
        subprocess.run(["ip", "netns", "del", node.namespace], capture_output=True, timeout=30)
    shutil.rmtree(cluster.root, ignore_errors=True)


@contextlib.contextmanager
def namespace_cluster(
    *,
    workers: int = 1,
    cpus_per_node: int = 1,
    subnet: str = "10.201.0",
    cores: Sequence[str] | None = None,
    start_timeout: float = 90,
) -> Iterator[NamespaceCluster]:
    """Head (``<subnet>.11``) plus 0 or 1 worker (``<subnet>.12``), joined by a veth pair; stopped on exit.

    ``cores`` pins node i to ``cores[i]`` with taskset (e.g. ``["0", "1"]``).
    """
    if workers not in (0, 1):
        raise ValueError("a veth pair joins two namespaces: workers must be 0 or 1")
    tag = f"{os.getpid() % 100000}{secrets.token_hex(1)}"
    root = Path(tempfile.mkdtemp(prefix=f"sgn{tag}-", dir="/tmp"))  # short: Ray socket paths
    token = root / "auth_token"
    write_private(token, secrets.token_hex(32))
    head = Node(f"sgr{tag}h", f"{subnet}.11", root / "h", root / "head.log")
    spare = Node(f"sgr{tag}w", f"{subnet}.12", root / "w", root / "worker.log")
    cluster = NamespaceCluster(root=root, token_file=token, head=head, workers=[spare] if workers else [])
    namespaces = [head, spare]  # both exist even for a lone head: its veth end needs a peer to come up
    try:
        for node in namespaces:
            _ip("netns", "add", node.namespace)
            _ip("-n", node.namespace, "link", "set", "lo", "up")
        a, b = f"sgv{tag}h", f"sgv{tag}w"
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
        for iface, node in ((a, head), (b, spare)):
            _ip("link", "set", iface, "netns", node.namespace)
            _ip("-n", node.namespace, "addr", "add", f"{node.ip}/24", "dev", iface)
            _ip("-n", node.namespace, "link", "set", iface, "up")
        auth = {"RAY_TOKEN_FILE": str(token), "RAY_NUM_CPUS": str(cpus_per_node)}
        _start_node(head, "ray_head.sh", auth, cores[0] if cores else None)
        _wait_for_port(head, RAY_PORT, start_timeout)
        for index, node in enumerate(cluster.workers, start=1):
            _start_node(
                node,
                "ray_worker.sh",
                {**auth, "RAY_HEAD_ADDRESS": cluster.address},
                cores[index] if cores else None,
            )
        yield cluster
    finally:
        stop(cluster, namespaces)
