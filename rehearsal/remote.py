"""Commands on a rehearsal host over SSH, as the operator runs them: root login, then the service account
with the host's own settings (``stargazer.env``) loaded, in its home directory."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from rehearsal import hosts
from rehearsal.inventory import host_tree


def ssh_argv(root: Path, address: str) -> list[str]:
    return [
        "ssh",
        "-i",
        str(root / "ssh" / "id_ed25519"),
        "-o",
        "BatchMode=yes",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=20",
        f"root@{address}",
    ]


def as_service(root: Path, prefix: str, key: str, command: str) -> str:
    """``command`` wrapped to run as the host's service account with its settings in the environment."""
    tree = host_tree(root, key)
    inner = (
        f"set -a; . {shlex.quote(str(tree / 'etc' / 'stargazer.env'))}; set +a; "
        f"cd {shlex.quote(str(tree / 'home'))} && {command}"
    )
    return f"runuser -u {hosts.account(prefix, key)} -- bash -c {shlex.quote(inner)}"


def run(
    root: Path, address: str, command: str, *, log: Path, timeout: float = 900, check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on the host (as root); its output is appended to ``log``; ``stdin`` is never logged."""
    result = subprocess.run(
        [*ssh_argv(root, address), command], capture_output=True, text=True, timeout=timeout, check=False,
        input=stdin,
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(
            f"$ ssh root@{address} {command}\n{result.stdout}{result.stderr}[exit {result.returncode}]\n"
        )
    if check and result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"on {address}: exit {result.returncode}: {last[0][:300]}")
    return result
