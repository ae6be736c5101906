"""Set up the sandbox of the model check on a production host (``githooks/install.py`` runs this as root).

What it puts in place, idempotently, and why:

- the check user (``stargazer.checkuser``, default ``stargazer-check``): a system account with no home, no
  shell and its own group, created when missing. It must hold nothing of value: the installer refuses a
  check user that is root, is the deploy user, is in the deploy user's group (which reads the host's secrets)
  or can write the model directory (tested by running ``test -r`` / ``test -w`` as that user);
- ``/usr/local/libexec/stargazer/check-sandbox``: a root-owned copy of ``githooks/check-sandbox``. A copy,
  because the sudo rule must name a file that only root can change, wherever the checkout lives;
- ``/etc/sudoers.d/stargazer-check-<deploy user>``: the deploy user may run that script as root, with every
  argument pinned (check user, interpreter, app directory, memory limit) except the time limit, which the
  script caps. It is validated with ``visudo -c`` before it is moved into place.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from githooks.check_model import SANDBOX_SCRIPT, Sandbox

SANDBOX_DIR: Final = Path("/usr/local/libexec/stargazer")
SUDOERS_DIR: Final = Path("/etc/sudoers.d")
_SUDO_SAFE: Final = re.compile(r"^[A-Za-z0-9_./@+-]+$")  # no sudoers special characters, no spaces


class SandboxSetupError(Exception):
    """The sandbox cannot be set up as required; one line."""


def installed_script() -> Path:
    return SANDBOX_DIR / SANDBOX_SCRIPT.name


def ensure_check_user(name: str) -> list[str]:
    """Create the check user when missing (``useradd`` may meet a concurrent one: then it exists)."""
    if user_exists(name):
        return []
    command = [
        "useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
        "--shell", "/usr/sbin/nologin", "--comment", "stargazer model check (holds nothing)", name,
    ]  # fmt: skip
    error = ""
    for _ in range(20):  # /etc/passwd is locked while another useradd runs
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode == 0 or user_exists(name):
            return [f"created check user {name}"]
        error = result.stderr.strip()
        time.sleep(0.25)
    raise SandboxSetupError(f"cannot create check user {name}: {error}")


def verify_isolation(check_user: str, owner: str | None, model_dir: Path) -> None:
    """Refuse a check user that could write the models or is in the deploy user's group (which reads the
    host's secrets)."""
    try:
        entry = pwd.getpwnam(check_user)
    except KeyError:
        raise SandboxSetupError(f"check user {check_user!r} does not exist on this host") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise SandboxSetupError(f"check user {check_user} must not be root")
    groups = set(os.getgrouplist(check_user, entry.pw_gid))
    if owner:
        owner_entry = pwd.getpwnam(owner)
        if owner_entry.pw_uid == entry.pw_uid:
            raise SandboxSetupError(f"check user {check_user} must not be the deploy user {owner}")
        if owner_entry.pw_gid in groups:
            group = grp.getgrgid(owner_entry.pw_gid).gr_name
            raise SandboxSetupError(f"check user {check_user} must not be in the deploy user's group {group}")
    if _as_user(entry, "test", "-w", str(model_dir)):
        raise SandboxSetupError(f"check user {check_user} can write the model directory {model_dir}")


def install_script() -> list[str]:
    """Copy githooks/check-sandbox to a root-owned place (atomically: a running check keeps its copy)."""
    target = installed_script()
    wanted = SANDBOX_SCRIPT.read_bytes()
    if (
        target.is_file()
        and target.read_bytes() == wanted
        and (target.stat().st_mode & 0o7777) == 0o755
        and target.stat().st_uid == 0
    ):
        return []
    SANDBOX_DIR.mkdir(parents=True, exist_ok=True)
    SANDBOX_DIR.chmod(0o755)
    with tempfile.NamedTemporaryFile(dir=SANDBOX_DIR, prefix=".check-sandbox-", delete=False) as handle:
        handle.write(wanted)
    Path(handle.name).chmod(0o755)
    os.replace(handle.name, target)
    return [f"installed {target}"]


def sudo_rule(owner: str, sandbox: Sandbox) -> str:
    """The one command the deploy user may run as root: the sandbox with its arguments pinned but SECONDS."""
    words = [owner, *sandbox.fixed_arguments()]
    bad = [word for word in words if not _SUDO_SAFE.match(word)]
    if bad:
        raise SandboxSetupError(f"cannot write a sudo rule for {bad[0]!r} (use plain names and paths)")
    return (
        "# Written by githooks/install.py: the deploy user starts the sandboxed model check, nothing else.\n"
        f"{owner} ALL=(root) NOPASSWD: {' '.join(sandbox.fixed_arguments())} *\n"
    )


def sudo_rule_file(owner: str) -> Path:
    return SUDOERS_DIR / f"stargazer-check-{re.sub(r'[^A-Za-z0-9_-]', '_', owner)}"


def write_sudo_rule(owner: str, sandbox: Sandbox) -> list[str]:
    """Write the rule when it differs; ``visudo -c`` must accept it before it is moved into place."""
    visudo = shutil.which("visudo", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if visudo is None:
        raise SandboxSetupError(
            "sudo is not installed (apt-get install sudo): the deploy user needs its rule"
        )
    content = sudo_rule(owner, sandbox)
    target = sudo_rule_file(owner)
    if target.is_file() and target.read_text() == content and (target.stat().st_mode & 0o777) == 0o440:
        return []
    SUDOERS_DIR.mkdir(mode=0o750, parents=True, exist_ok=True)
    digest = hashlib.sha256(content.encode()).hexdigest()[:8]
    staging = SUDOERS_DIR / f".stargazer-check.{digest}.tmp"  # a name with a dot: sudo never reads it
    staging.write_text(content)
    staging.chmod(0o440)
    check = subprocess.run([visudo, "-cf", str(staging)], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        staging.unlink()
        raise SandboxSetupError(
            f"visudo refuses the sudo rule: {check.stdout.strip()} {check.stderr.strip()}"
        )
    os.replace(staging, target)
    return [f"wrote sudo rule {target}"]


def probe(sandbox: Sandbox, owner: str | None) -> None:
    """Start the real sandbox (as the deploy user through sudo, when there is one) with a dummy model.

    The child must get as far as reading the manifest: that proves the sudo rule matches what the hook
    runs, the check user can start the interpreter with the app's code, and the isolation layers work.
    """
    bundle = b"2\n{}"
    command = sandbox.command(seconds=60)
    if owner and pwd.getpwnam(owner).pw_uid != 0:
        entry = pwd.getpwnam(owner)
        command = [
            "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
            "sudo", "-n", *command,
        ]  # fmt: skip
    result = subprocess.run(
        command,
        input=bundle,
        capture_output=True,
        timeout=180,
        check=False,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    out = result.stdout.decode("utf-8", "replace")
    if "model.json is malformed" not in out:
        last = (
            result.stderr.decode("utf-8", "replace").strip().splitlines() or [out.strip() or "no output"]
        )[-1]
        who = f"{owner} through sudo" if owner else "root"
        raise SandboxSetupError(f"the model check sandbox does not start for {who}: {last}")


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _as_user(entry: pwd.struct_passwd, *command: str) -> bool:
    """True when ``command`` succeeds run as that user (and its own group only)."""
    result = subprocess.run(
        ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--", *command],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return result.returncode == 0
