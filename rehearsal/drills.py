"""Fault drills on the converged fleet: a Ray worker host dies during tuning; a production host is lost
during a deploy.

Both are done to the namespace hosts the way they happen to VMs: the host's cable is cut (its veth goes
down, so nothing it had open gets a goodbye) and, for the Ray worker, every process on it is killed, as a
power loss would. The drills wait for the moment that matters (a trial running on the worker; the
production host's pre-receive checking the model), never for a fixed time.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from rehearsal import hosts, remote
from rehearsal.inventory import handover_dir
from rehearsal.pipeline import Fleet, deploy_command


def _cmdlines(ns: str) -> list[str]:
    found = []
    for pid in hosts.pids(ns):
        try:
            found.append(
                Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
    return found


def wait_for_process(
    ns: str, matches: Callable[[str], bool], what: str, proc: subprocess.Popen, timeout: float = 600
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(matches(c) for c in _cmdlines(ns)):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the command ended before {what} (exit {proc.returncode})")
        time.sleep(0.2)
    raise RuntimeError(f"no {what} in {ns} after {timeout:.0f} s")


def _is_trial(cmdline: str) -> bool:
    """A Ray Tune trial actor (Ray renames its worker process after the actor class)."""
    return cmdline.startswith("ray::ImplicitFunc") or cmdline.startswith("ray::cv_trial")


def _background(fleet: Fleet, key: str, command: str, out: Path) -> subprocess.Popen:
    return _background_root(fleet, key, remote.as_service(fleet.root, fleet.prefix, key, command), out)


def _background_root(fleet: Fleet, key: str, wrapped: str, out: Path) -> subprocess.Popen:
    """``wrapped`` over SSH, its output into ``out`` here (the host's account cannot write the log dir)."""
    handle = out.open("w")
    return subprocess.Popen(
        [*remote.ssh_argv(fleet.root, fleet.network.address(key)), wrapped],
        stdout=handle, stderr=subprocess.STDOUT, text=True,
    )


def ray_worker_lost(fleet: Fleet, log: Path, trials: int, victim: str = "w2") -> dict[str, object]:
    """Train with tuning on 3 nodes; when a trial runs on ``victim``, the host dies. The run must finish
    with every trial done (lost ones retried on the nodes left) and write a model version."""
    out = log.with_suffix(".train.out")
    command = (
        f"{fleet.python('dev')} -m model_serving.development_server train --data data/repos.csv "
        f"--trials {trials} --folds 3 --min-nodes 3 --no-reuse-actors --seed 11 --skip-screening "
        f"--out {shlex.quote(str(handover_dir(fleet.root)))}"
    )
    proc = _background(fleet, "dev", command, out)
    ns = hosts.namespace(fleet.prefix, victim)
    try:
        wait_for_process(ns, _is_trial, "Ray Tune trial", proc)
        fleet.network.link(victim, up=False)
        hosts.kill_all(ns, grace=0)
        killed_at = time.monotonic()
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    with log.open("a") as handle:
        handle.write(text)
    if proc.returncode != 0:
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        raise RuntimeError(f"training did not survive the loss of {victim}: {last[0][:300]}")
    failed = [line for line in text.splitlines() if "a trial failed" in line]
    if failed:
        raise RuntimeError(f"{len(failed)} trial(s) lost with {victim} were not retried: {failed[0][:200]}")
    artifact = next(
        line.split(": ", 1)[1].strip() for line in text.splitlines() if line.startswith("artifact: ")
    )
    return {
        "victim": victim,
        "seconds_after_loss": round(time.monotonic() - killed_at, 1),
        "version": Path(artifact).name,
    }


def restore_host(fleet: Fleet, key: str) -> None:
    """Plug the cable back in and start the host's sshd (a rebooted VM); site.yml then brings it back."""
    fleet.network.link(key, up=True)
    if not any("sshd" in c for c in _cmdlines(hosts.namespace(fleet.prefix, key))):
        hosts.SshHost(fleet.prefix, key, fleet.network.address(key), fleet.root).start(
            fleet.root / "ssh" / "authorized"
        )


def production_lost_during_deploy(
    fleet: Fleet, log: Path, version: str, victim: str = "p2"
) -> dict[str, object]:
    """Deploy ``version``; while ``victim``'s pre-receive checks it, the host drops off the network.
    Phase 1 must refuse to switch anywhere and say so; the other host keeps serving what it served."""
    before = {key: _serving(fleet, key) for key in ("p1", "p2")}
    out = log.with_suffix(".deploy.out")
    proc = _background_root(fleet, "dev", deploy_command(fleet, version), out)
    ns = hosts.namespace(fleet.prefix, victim)
    started = time.monotonic()
    try:
        wait_for_process(ns, lambda c: "pre-receive" in c or "prereceive" in c, "pre-receive hook", proc)
        fleet.network.link(victim, up=False)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        fleet.network.link(victim, up=True)
    text = out.read_text()
    with log.open("a") as handle:
        handle.write(text)
    after = {key: _serving(fleet, key) for key in ("p1", "p2")}
    verdict = next((line for line in text.splitlines() if "no host switched" in line), "")
    if proc.returncode == 0 or not verdict:
        raise RuntimeError(f"deploy with {victim} lost did not refuse: exit {proc.returncode}: {text[-300:]}")
    if after != before:
        raise RuntimeError(f"a host switched although phase 1 failed: before {before}, after {after}")
    return {
        "victim": victim,
        "message": verdict.strip(),
        "seconds": round(time.monotonic() - started, 1),
        "serving": after,
    }


def _serving(fleet: Fleet, key: str) -> str:
    current = fleet.tree(key) / "production" / "current"
    return current.resolve().name if current.exists() else ""
