"""Running the real ansible-playbook from the tests, and reading its PLAY RECAP."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rehearsal.ansible import BIN, PLAYBOOKS, play_recap


@dataclass
class Result:
    returncode: int
    output: str
    seconds: float = 0.0

    def recap(self) -> dict[str, dict[str, int]]:
        return play_recap(self.output)


def ansible_env(workdir: Path) -> dict[str, str]:
    """The project's ansible.cfg, control sockets and temp files under the test's own directory."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(workdir / "cp"),
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def playbook(workdir: Path, *args: str, timeout: float = 300) -> Result:
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=PLAYBOOKS, env=ansible_env(workdir), capture_output=True, text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)


def close_control_sockets(workdir: Path) -> None:
    """End the SSH ControlPersist masters this test's ansible runs left behind (by their sockets)."""
    for sock in (workdir / "cp").glob("*"):
        subprocess.run(
            ["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "ignored"],
            capture_output=True, timeout=10, check=False,
        )
