"""ansible-playbook against the rehearsal inventory, its output in a log file, its PLAY RECAP parsed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from envsettings import child_environment
from rehearsal.settings import REPO_ROOT

PLAYBOOKS = REPO_ROOT / "playbooks"
BIN = Path(sys.executable).parent
_RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$", re.MULTILINE)


def play_recap(output: str) -> dict[str, dict[str, int]]:
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from the last PLAY RECAP of ``output``."""
    tail = output.rsplit("PLAY RECAP", 1)[-1]
    return {
        m["host"]: {k: int(v) for k, v in (kv.split("=") for kv in m["counts"].split())}
        for m in _RECAP.finditer(tail)
    }


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        return play_recap(self.output)

    def failure(self) -> str:
        """The first failed task's host and message, in one line."""
        lines = self.output.splitlines()
        for index, line in enumerate(lines):
            if line.startswith(("fatal:", "failed:")):
                following = (x.strip() for x in lines[index + 1 : index + 80])
                detail = next((x for x in following if x.startswith(("msg:", "stderr:"))), "")
                return f"{line.strip()} {detail}"[:500]
        return f"ansible-playbook exited {self.returncode}"


def env(root: Path) -> dict[str, str]:
    values = child_environment()
    values.update(
        ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(root / "ansible" / "cp"),
        ANSIBLE_LOCAL_TEMP=str(root / "ansible" / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        PYTHONUNBUFFERED="1",  # lines reach the log when they happen (the log's time stamps are real)
        PATH=f"{BIN}{os.pathsep}{values.get('PATH', '')}",
    )
    return values


def playbook(root: Path, log: Path, *args: str, timeout: float = 1800) -> Run:
    """``cd playbooks && ansible-playbook -i <root>/hosts.yml --vault-password-file <root>/.vault_pass``."""
    started = time.monotonic()
    argv = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(root / "hosts.yml"),
        "--vault-password-file",
        str(root / ".vault_pass"),
        *args,
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(argv)}\n")
        # Each line stamped with the seconds since start: the log shows where a converge spends its time.
        with subprocess.Popen(
            argv, cwd=PLAYBOOKS, env=env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                handle.write(f"[{time.monotonic() - started:7.1f}] {line}")
                handle.flush()
                if time.monotonic() - started > timeout:
                    proc.kill()
                    lines.append(f"fatal: [controller]: ansible-playbook killed after {timeout:.0f} s\n")
    output = "".join(lines)
    return Run(proc.returncode, output, time.monotonic() - started)


def close_control_sockets(root: Path) -> None:
    """End the SSH ControlPersist masters the runs left behind (by their sockets)."""
    for sock in (root / "ansible" / "cp").glob("*"):
        subprocess.run(
            ["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "ignored"],
            capture_output=True,
            timeout=10,
            check=False,
        )
