"""The rehearsed fleet, one per test session: ``make rehearsal``'s own run, kept up for the tests reading it.

Why one shared fleet: a converge of every tier over SSH is the slowest thing the suite does. The rehearsal
already previews (``--check --diff``), converges twice, trains on three Ray nodes, deploys and drills, so the
tests of the playbooks' outcome (tests/playbooks) and of the rehearsal itself (tests/rehearsal) all read
this one run instead of each converging hosts of their own. ``python -m rehearsal all`` runs exactly as
``make rehearsal`` runs it, with ``REHEARSAL_KEEP=1`` so the hosts stay up until the session ends, under its
own prefix, subnet and directory, so it never touches a fleet an operator keeps up.

The run starts in the background as soon as collection shows the session has fleet tests
(``pytest_collection_finish``), so its 10-odd minutes of converges overlap the rest of the suite instead of
following it; its own prefix, subnet, accounts and Ray temp dir keep it apart from every other test. The
tests that read the fleet are moved to the end of the session (``pytest_collection_modifyitems`` below), where
the fixture waits for the run, and the test marked ``fleet_teardown`` runs last. A session that ends before
any fleet test ran (``-x``, an interrupt) stops the run and removes its hosts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from rehearsal import hosts, inventory
from tests.playbooks.cmdline_watch import CmdlineWatch
from tests.support import REPO_ROOT, require_executable, require_root

#: How long the run may take before it is stopped: generous, since a busy machine slows every converge
#: (the wall time of each stage is a measurement, kept in test-artifacts/rehearsal/timings.json, not a test).
RUN_TIMEOUT = 60 * 60
#: The rabbitmqctl calls that handle the broker password: the command-line watch must see them run.
PASSWORD_CALLS = ("add_user", "authenticate_user")
FIXTURE = "rehearsed_fleet"
FLEET_TOOLS = ("ip", "sshd", "supervisord", "nginx", "rabbitmq-server", "git", "openssl")


@dataclass
class RehearsedFleet:
    prefix: str
    root: Path
    returncode: int
    output: str
    results: dict
    timings: dict
    #: The vault's secret values (what must never show in a log, an output or a command line).
    secrets: dict[str, str] = field(repr=False)
    #: The vault's values that are not secret (the public half of the signing key pair).
    public: dict[str, str]
    watch: CmdlineWatch = field(repr=False)
    network: hosts.Network | None = None
    #: Every stage log's text, read before the teardown removes them.
    logs: dict[str, str] = field(default_factory=dict, repr=False)
    torn_down: bool = False

    def tree(self, key: str) -> Path:
        return inventory.host_tree(self.root, key)

    def address(self, key: str) -> str:
        assert self.network is not None, "the rehearsal never brought its hosts up"
        return self.network.address(key)

    def exec(self, key: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return hosts.exec_in(self.prefix, key, *argv, check=False, timeout=timeout)

    def supervisorctl(self, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        conf = self.tree(key) / "supervisor" / "supervisord.conf"
        return subprocess.run(
            ["supervisorctl", "-c", str(conf), *args], capture_output=True, text=True, timeout=60, check=False
        )

    def down(self) -> str:
        """``python -m rehearsal down`` (what ``make rehearsal-down`` runs); once."""
        if self.torn_down:
            return ""
        self.torn_down = True
        return _down(self.prefix, self.root)


def _down(prefix: str, root: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "rehearsal", "down"], cwd=REPO_ROOT, env=_env(prefix, root),
        capture_output=True, text=True, timeout=600, check=False,
    )
    return proc.stdout + proc.stderr


def _env(prefix: str, root: Path) -> dict[str, str]:
    return {**os.environ, "REHEARSAL_PREFIX": prefix, "REHEARSAL_DIR": str(root), "REHEARSAL_KEEP": "1"}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _vault_values(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(secret values, public values) of the rehearsal's vault."""
    vault = root / "group_vars" / "all" / "vault.yml"
    if not vault.exists():
        return {}, {}
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-vault"), "view", "--vault-password-file",
         str(root / ".vault_pass"), str(vault)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    values = {name: str(value) for name, value in (yaml.safe_load(shown) or {}).items()}
    public = {name: value for name, value in values.items() if name.endswith("_public_key")}
    return {name: value for name, value in values.items() if name not in public}, public


def _network(root: Path) -> hosts.Network | None:
    state = _read_json(root / "state.json")
    return hosts.Network(state["prefix"], state["subnet"]) if state else None


@dataclass
class _Run:
    """The rehearsal (``python -m rehearsal all``) in the background, watched from /proc, till it is read.

    Started by ``pytest_collection_finish``; the fixture waits for it, ``pytest_sessionfinish`` cleans up.
    """

    prefix: str
    root: Path
    process: subprocess.Popen[bytes]
    watch: CmdlineWatch
    output: Path
    started: float
    consumed: bool = False

    def wait(self) -> tuple[int, str]:
        """Its exit status and everything it printed; a run over RUN_TIMEOUT is stopped and fails."""
        try:
            returncode = self.process.wait(timeout=max(1.0, self.started + RUN_TIMEOUT - time.monotonic()))
            stopped = ""
        except subprocess.TimeoutExpired:
            self.stop()
            returncode, stopped = -9, f"\nstopped after {RUN_TIMEOUT} s\n"
        self.watch.__exit__(None, None, None)
        return returncode, self.output.read_text(errors="replace") + stopped

    def stop(self) -> None:
        """Kill the run and every process it started (its own session: ansible-playbook, ssh, git)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self.watch.__exit__(None, None, None)

    def abandon(self) -> None:
        """The session ended before any fleet test ran (``-x``, an interrupt): stop it, remove the hosts."""
        self.stop()
        _down(self.prefix, self.root)
        shutil.rmtree(self.root, ignore_errors=True)


_RUN = pytest.StashKey[_Run]()


def _fleet_tools_present() -> bool:
    return os.geteuid() == 0 and all(
        shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists() or Path(f"/usr/bin/{tool}").exists()
        for tool in FLEET_TOOLS
    )


def _start_run() -> _Run:
    prefix = f"sgt{secrets.token_hex(2)}"
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    root.chmod(0o755)  # the hosts' service accounts traverse it
    output = root / "rehearsal-output.txt"
    # Every process's command line is read the whole run: what `ps` shows any local user.
    watch = CmdlineWatch(markers=PASSWORD_CALLS, keep=True, interval=0.2).__enter__()
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "rehearsal", "all"], cwd=REPO_ROOT, env=_env(prefix, root),
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return _Run(prefix, root, process, watch, output, time.monotonic())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the rehearsal as soon as the session knows it has fleet tests, so it runs beside the others."""
    if session.config.option.collectonly or not _fleet_tools_present():
        return
    if any(FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[_RUN] = _start_run()
        # A session stopped from outside (CI's own timeout, kill) still stops the run and removes its hosts:
        # pytest ends an interrupted session through pytest_sessionfinish.
        signal.signal(signal.SIGTERM, functools.partial(_interrupt, os.getpid()))


def _interrupt(session_pid: int, signum: int, frame: object) -> None:
    if os.getpid() != session_pid:  # a child forked by a test inherited this handler: end as SIGTERM ends it
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is not None and not run.consumed:
        run.abandon()


@pytest.fixture(scope="session")
def rehearsed_fleet(request: pytest.FixtureRequest) -> Iterator[RehearsedFleet]:
    require_root("network namespaces, sshd and service accounts")
    for tool in FLEET_TOOLS:
        require_executable(tool, f"/usr/sbin/{tool}", f"/usr/bin/{tool}")
    run = request.config.stash.get(_RUN, None)
    if run is None:
        run = request.config.stash[_RUN] = _start_run()
    run.consumed = True
    prefix, root = run.prefix, run.root
    fleet: RehearsedFleet | None = None
    try:
        returncode, output = run.wait()
        logs = {p.stem: p.read_text(errors="replace") for p in sorted((root / "log").glob("*.log"))}
        # What the run measured stays readable after the teardown; a failed run's stage logs too.
        kept = REPO_ROOT / "test-artifacts" / "rehearsal"
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        (kept / "output.txt").write_text(output)
        for name in ("results.json", "timings.json"):
            if (root / name).exists():
                shutil.copy(root / name, kept / name)
        if returncode != 0 and (root / "log").exists():
            shutil.copytree(root / "log", kept / "log", dirs_exist_ok=True)
        fleet = RehearsedFleet(
            prefix, root, returncode, output, _read_json(root / "results.json"),
            _read_json(root / "timings.json"), *_vault_values(root), run.watch, _network(root), logs,
        )
        yield fleet
    finally:
        if run.process.poll() is None:  # interrupted while waiting for it
            run.stop()
        if fleet is not None:
            fleet.down()
        else:
            _down(prefix, root)
        shutil.rmtree(root, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fleet tests last and together (the hosts are up only while they run); the teardown test at the end."""
    def rank(item: pytest.Item) -> int:
        if FIXTURE not in getattr(item, "fixturenames", ()):
            return 0
        return 2 if item.get_closest_marker("fleet_teardown") else 1

    items.sort(key=rank)  # stable: the order within each group is kept
