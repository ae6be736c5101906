"""Deploy over SSH into a production host living in its own network namespace (as root: ip netns, sshd).

Why this test exists beside the local-transport ones: over SSH the hooks run in sshd's near-empty environment,
so this proves that the installer's git config alone is enough for the hooks to find the app, the model
directory and the secret, and that push options (the deploy log's ``actor``) travel over SSH too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Host, install_host, require_executable, require_root, wait_until

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class SshHost:
    host: Host
    address: str
    ssh_command: str

    def url(self) -> str:
        return f"ssh://root@{self.address}{self.host.repo}"


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def ssh_host(tmp_path: Path, public_key_file: Path, git_ready: None) -> Iterator[SshHost]:
    require_root("network namespaces and sshd")
    ip = require_executable("ip", "/usr/sbin/ip")
    sshd = require_executable("sshd", "/usr/sbin/sshd")
    keygen = require_executable("ssh-keygen", "/usr/bin/ssh-keygen")
    tag = f"{os.getpid() % 100000}"
    netns, outside, inside = f"sgd{tag}", f"sgd{tag}o", f"sgd{tag}i"
    subnet = 20 + os.getpid() % 200
    root_ip, host_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    sshd_proc: subprocess.Popen[bytes] | None = None
    _run(ip, "netns", "add", netns)
    try:
        _run(ip, "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run(ip, "link", "set", inside, "netns", netns)
        _run(ip, "addr", "add", f"{root_ip}/30", "dev", outside)
        _run(ip, "link", "set", outside, "up")
        _run(ip, "netns", "exec", netns, ip, "addr", "add", f"{host_ip}/30", "dev", inside)
        _run(ip, "netns", "exec", netns, ip, "link", "set", inside, "up")
        _run(ip, "netns", "exec", netns, ip, "link", "set", "lo", "up")

        ssh_dir = tmp_path / "ssh"
        ssh_dir.mkdir()
        _run(keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_dir / "host_key"))
        _run(keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_dir / "client_key"))
        shutil.copyfile(ssh_dir / "client_key.pub", ssh_dir / "authorized_keys")
        config = ssh_dir / "sshd_config"
        config.write_text(
            f"ListenAddress {host_ip}\nPort 22\nHostKey {ssh_dir / 'host_key'}\n"
            f"PidFile {ssh_dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nUsePAM no\nStrictModes no\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        sshd_proc = subprocess.Popen(["ip", "netns", "exec", netns, sshd, "-D", "-e", "-f", str(config)])
        ssh_command = (
            f"ssh -i {ssh_dir / 'client_key'} -o BatchMode=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5"
        )

        def sshd_answers() -> bool:
            probe = subprocess.run([*ssh_command.split(), f"root@{host_ip}", "true"], capture_output=True,
                                   timeout=30, check=False)
            return probe.returncode == 0

        wait_until(sshd_answers, 60, f"sshd in {netns} to accept the client key", interval=0.3)
        yield SshHost(install_host(tmp_path, "ssh-host", public_key_file), host_ip, ssh_command)
    finally:
        if sshd_proc is not None:
            sshd_proc.send_signal(signal.SIGTERM)
            try:
                sshd_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sshd_proc.kill()
        subprocess.run([ip, "netns", "del", netns], capture_output=True, check=False)
        subprocess.run([ip, "link", "del", outside], capture_output=True, check=False)


def test_deploy_over_ssh_uses_only_the_hosts_git_config(
    ssh_host: SshHost, versions: list[Path], deploy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSH_COMMAND", ssh_host.ssh_command)
    result = deploy("--version", versions[0].name, models=versions[0].parent, remotes=[ssh_host.url()])
    assert result.exit_code == 0, result.output
    assert "as stargazer-check, no network" in result.output  # sshd ran the hook as root: sandboxed check
    host = ssh_host.host
    assert host.current() == versions[0].name
    [entry] = host.log()
    assert entry["user"] == "root"
    assert entry["actor"] and "@" in entry["actor"]  # the push option crossed SSH
    assert entry["host"] == "ssh-host"
