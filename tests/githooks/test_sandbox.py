"""The load check's sandbox, with the hooks running as the unprivileged deploy user (as on a real host).

Set up as Ansible's githooks role does it: as root, ``githooks/install.sh --owner <deploy user> --check-user
<check user>`` creates the check user, the root-owned sandbox script and the deploy user's one sudo rule.
Then every push runs as the deploy user (``git push`` over the local transport runs the hooks as the pusher),
who can read the host's secrets (the Flask secret key, root:deploy group 0640 as the gunicorn role writes it)
and owns the model directory: exactly what a signed hostile pickle would want. The pickle tries to read the
secret, write into the model directory and connect to a listener of this test on 127.0.0.1; none of it may
happen, and the pusher must not see the secret.
"""

from __future__ import annotations

import grp
import os
import pickle
import pwd
import secrets
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from githooks import sandbox_setup
from model_serving import releases
from tests.support import (
    DEPLOY_KEYS,
    INSTALL_SH,
    PickledCall,
    Pusher,
    require_executable,
    require_root,
    signed_copy,
    stargazer_lines,
    version_files,
    with_model_bytes,
)

pytestmark = pytest.mark.integration

#: The host's Flask secret key in this test: what a hostile model would steal.
FLASK_KEY = secrets.token_hex(32)

HOSTILE = """
import os, socket
found = []
try:
    found.append("secret-read:" + open({secret!r}).read().strip())
except OSError as exc:
    found.append("secret-denied:" + type(exc).__name__)
try:
    with open({model_dir!r} + "/written-by-the-check", "w") as handle:
        handle.write("x")
    found.append("model-dir-written")
except OSError as exc:
    found.append("write-denied:" + type(exc).__name__)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"hello from the model check")
    found.append("connected")
except OSError as exc:
    found.append("connect-denied:" + type(exc).__name__)
found.append("uid:%d" % os.getuid())
raise RuntimeError(" ".join(found))
"""


@dataclass(frozen=True)
class SandboxHost:
    root: Path
    repo: Path
    model_dir: Path
    secret_file: Path
    deploy_user: pwd.struct_passwd
    check_user: str
    pusher: Pusher

    def push(self, refspecs: list[str]) -> subprocess.CompletedProcess[str]:
        """``git push`` as the deploy user: the hooks run as that user."""
        user = self.deploy_user
        return subprocess.run(
            [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
                "--",
                "git",
                f"--git-dir={self.pusher.repo}",
                "push",
                "--porcelain",
                str(self.repo),
                *refspecs,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=self.root,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8"},
        )

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={self.repo}", *args], capture_output=True, text=True, check=True
        ).stdout.strip()


def _readable_venv(into: Path) -> Path:
    """Debian's python3 with this venv's packages (a .pth): the deploy and check users can start it."""
    system_python = require_executable("python3", "/usr/bin/python3")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(into)], check=True, timeout=120)
    site = subprocess.run(
        [str(into / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "stargazer-ci.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    assert system_python
    return into / "bin" / "python"


@pytest.fixture(scope="module")
def sandbox_host(versions: list[Path], git_ready: None) -> Iterator[SandboxHost]:
    require_root("creating the deploy and check users and the sudo rule")
    for tool in ("sudo", "visudo", "unshare", "prlimit", "setpriv", "useradd"):
        require_executable(tool, f"/usr/bin/{tool}", f"/usr/sbin/{tool}")
    root = Path(tempfile.mkdtemp(prefix="sgz-sandbox-", dir="/tmp"))
    root.chmod(0o755)
    tag = secrets.token_hex(2)
    deploy_name, check_name = f"sgzd{tag}", f"sgzc{tag}"
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(root), deploy_name],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        deploy_user = pwd.getpwnam(deploy_name)
        python = _readable_venv(root / "venv")
        etc = root / "etc"
        etc.mkdir()
        os.chown(etc, 0, deploy_user.pw_gid)
        etc.chmod(0o750)
        secret_file = etc / "secret_key"
        secret_file.write_text(FLASK_KEY + "\n")
        os.chown(secret_file, 0, deploy_user.pw_gid)
        secret_file.chmod(0o640)  # as the gunicorn role writes it: root, readable by the deploy group
        public_key_file = DEPLOY_KEYS.write_public(root / "deploy_public_key")
        repo, model_dir = root / "git" / "models.git", root / "models"
        repo.parent.mkdir()
        installed = subprocess.run(
            [
                str(INSTALL_SH),
                "--repo",
                str(repo),
                "--model-dir",
                str(model_dir),
                "--python",
                str(python),
                "--public-key-file",
                str(public_key_file),
                "--owner",
                deploy_name,
                "--check-user",
                check_name,
                "--prune-expire",
                "now",
                "--host-name",
                "sandboxed",
                "--probe",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, installed.stderr
        pusher = Pusher(root / "pusher.git")
        subprocess.run(["git", "init", "-q", "--bare", str(pusher.repo)], check=True)
        yield SandboxHost(root, repo, model_dir, secret_file, deploy_user, check_name, pusher)
    finally:
        sandbox_setup.sudo_rule_file(deploy_name).unlink(missing_ok=True)
        for name in (check_name, deploy_name):
            subprocess.run(["userdel", name], capture_output=True, check=False, timeout=60)
            subprocess.run(["groupdel", name], capture_output=True, check=False, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _give_to_deploy_user(host: SandboxHost) -> None:
    """The pusher's repository is the deploy user's (git refuses repositories of other owners)."""
    for path in [host.pusher.repo, *host.pusher.repo.rglob("*")]:
        os.lchown(path, host.deploy_user.pw_uid, host.deploy_user.pw_gid)


def test_install_sets_up_the_check_user_the_script_and_one_pinned_sudo_rule(
    sandbox_host: SandboxHost,
) -> None:
    check = pwd.getpwnam(sandbox_host.check_user)
    deploy_group = grp.getgrgid(sandbox_host.deploy_user.pw_gid)
    assert check.pw_uid != 0 and check.pw_shell == "/usr/sbin/nologin"
    assert check.pw_gid not in (0, sandbox_host.deploy_user.pw_gid)
    assert sandbox_host.check_user not in deploy_group.gr_mem
    script = sandbox_setup.installed_script()
    assert script.stat().st_uid == 0 and (script.stat().st_mode & 0o777) == 0o755
    rule_file = sandbox_setup.sudo_rule_file(sandbox_host.deploy_user.pw_name)
    assert (rule_file.stat().st_mode & 0o777) == 0o440
    [rule] = [line for line in rule_file.read_text().splitlines() if not line.startswith("#")]
    assert rule.startswith(f"{sandbox_host.deploy_user.pw_name} ALL=(root) NOPASSWD: {script} ")
    assert rule.endswith(" *") and rule.count("*") == 1  # only the time limit is the caller's choice
    assert sandbox_host.git("config", "stargazer.checksandbox") == str(script)
    again = subprocess.run(
        [
            str(INSTALL_SH),
            "--repo",
            str(sandbox_host.repo),
            "--model-dir",
            str(sandbox_host.model_dir),
            "--python",
            sandbox_host.git("config", "stargazer.python"),
            "--public-key-file",
            str(sandbox_host.root / "deploy_public_key"),
            "--owner",
            sandbox_host.deploy_user.pw_name,
            "--check-user",
            sandbox_host.check_user,
            "--prune-expire",
            "now",
            "--host-name",
            "sandboxed",
            "--no-probe",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and again.stdout.strip() == "changed=false", again.stdout + again.stderr


def test_signed_hostile_pickle_reads_no_secret_writes_nothing_and_reaches_no_network(
    sandbox_host: SandboxHost, versions: list[Path]
) -> None:
    host = sandbox_host
    craft = host.root / "craft"
    craft.mkdir()
    good = signed_copy(versions[0], craft)
    first_commit = host.pusher.commit(version_files(good))
    _give_to_deploy_user(host)
    first = host.push([f"{first_commit}:refs/heads/deploy"])
    assert first.returncode == 0, first.stderr
    assert f"as {host.check_user}, no network" in first.stderr
    assert releases.current_version(host.model_dir) == versions[0].name
    assert releases.read_deploy_log(host.model_dir)[-1]["user"] == host.deploy_user.pw_name

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        code = HOSTILE.format(
            secret=str(host.secret_file), model_dir=str(host.model_dir), port=listener.getsockname()[1]
        )
        hostile = with_model_bytes(
            versions[1], craft, pickle.dumps(PickledCall(exec, code)), "20261103T000000Z-0000beef"
        )
        hog = with_model_bytes(versions[1], craft, pickle.dumps(PickledCall(bytearray, 64 * 1024**3)),
                               "20261103T000001Z-0000f00d")
        before = sorted(p.name for p in host.model_dir.iterdir())
        commits = {
            name: host.pusher.commit(version_files(path))
            for name, path in (("hostile", hostile), ("hog", hog))
        }
        _give_to_deploy_user(host)
        started = time.perf_counter()
        result = host.push(
            [f"{commits['hostile']}:refs/staging/{hostile.name}", f"{commits['hog']}:refs/staging/{hog.name}"]
        )
        seconds = time.perf_counter() - started
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected, not even briefly (a finished handshake would wait here)
    finally:
        listener.close()

    assert result.returncode != 0
    lines = stargazer_lines(result.stderr)
    [hostile_line] = [line for line in lines if f"({commits['hostile'][:10]})" in line]
    check_uid = pwd.getpwnam(host.check_user).pw_uid
    for attempt in ("secret-denied:PermissionError", "write-denied:PermissionError", "connect-denied:"):
        assert attempt in hostile_line, hostile_line
    assert f"uid:{check_uid}" in hostile_line
    assert FLASK_KEY not in result.stderr and FLASK_KEY not in result.stdout
    [hog_line] = [line for line in lines if f"({commits['hog'][:10]})" in line]
    assert "cannot be loaded: MemoryError" in hog_line, hog_line
    assert sorted(p.name for p in host.model_dir.iterdir()) == before
    assert releases.current_version(host.model_dir) == versions[0].name
    print(f"hostile + memory-hog push refused in {seconds:.1f} s")
