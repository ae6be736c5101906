"""Running the real ansible-playbook from the tests, and reading its PLAY RECAP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO_ROOT

PLAYBOOKS = REPO_ROOT / "playbooks"
BIN = Path(sys.executable).parent
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$", re.MULTILINE)


@dataclass
class Result:
    returncode: int
    output: str
    seconds: float = 0.0

    def recap(self) -> dict[str, dict[str, int]]:
        """{host: {"ok": n, "changed": n, "failed": n, ...}} from the PLAY RECAP."""
        tail = self.output.rsplit("PLAY RECAP", 1)[-1]
        return {
            m["host"]: {k: int(v) for k, v in (kv.split("=") for kv in m["counts"].split())}
            for m in RECAP.finditer(tail)
        }


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
