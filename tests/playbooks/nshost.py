"""A throwaway test host: a network namespace with its own address, reached over real SSH.

Only the network is isolated (files, PIDs and users are shared with this machine, docs/contracts.md, "This
machine"), so
the playbooks under test get every path pointed at a temporary directory through the test inventory.
Everything this module starts is stopped by PID: the sshd it spawned, then every process left in the
namespace (`ip netns pids`), then the namespace itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import poll_until, wait_until

SSHD = "/usr/sbin/sshd"
#: Generous: sshd starts in well under a second on an idle machine, far slower on a saturated one.
SSHD_START_TIMEOUT = 60
IP = "/usr/sbin/ip"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=60)


def _used_subnets() -> set[str]:
    """/24 networks already configured on this machine (other tests may run namespaces too)."""
    out = _run(IP, "-4", "-o", "addr", "show").stdout
    nets = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            nets.add(str(ipaddress.ip_network(f"{iface.ip}/24", strict=False)))
    return nets


@dataclass
class NamespaceHost:
    """One test host: namespace `name`, address `address`, sshd on port 22 there, root login by key."""

    workdir: Path
    name: str = field(default_factory=lambda: f"sgzans{secrets.token_hex(3)}")
    address: str = ""
    gateway: str = ""
    key_file: Path = field(init=False)
    _sshd: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _veth: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_file = self.workdir / "id_ed25519"

    def start(self) -> NamespaceHost:
        used = _used_subnets()
        octet = next(o for o in range(10, 250) if f"10.203.{o}.0/24" not in used)
        self.gateway, self.address = f"10.203.{octet}.1", f"10.203.{octet}.2"
        self._veth = f"{self.name[:10]}h"
        peer = f"{self.name[:10]}n"
        _run(IP, "netns", "add", self.name)
        _run(IP, "link", "add", self._veth, "type", "veth", "peer", "name", peer)
        _run(IP, "link", "set", peer, "netns", self.name)
        _run(IP, "addr", "add", f"{self.gateway}/24", "dev", self._veth)
        _run(IP, "link", "set", self._veth, "up")
        self.exec(IP, "addr", "add", f"{self.address}/24", "dev", peer)
        self.exec(IP, "link", "set", peer, "up")
        self.exec(IP, "link", "set", "lo", "up")
        self._start_sshd()
        return self

    def exec(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (its network, this machine's files)."""
        return subprocess.run(
            [IP, "netns", "exec", self.name, *argv], check=check, capture_output=True, text=True,
            timeout=timeout,
        )

    def _start_sshd(self) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        host_key = self.workdir / "ssh_host_ed25519_key"
        for key in (host_key, self.key_file):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (self.workdir / "authorized_keys").write_text(self.key_file.with_suffix(".pub").read_text())
        config = self.workdir / "sshd_config"
        config.write_text(
            f"ListenAddress {self.address}\nPort 22\nHostKey {host_key}\n"
            f"PidFile {self.workdir / 'sshd.pid'}\nAuthorizedKeysFile {self.workdir / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nMaxSessions 50\nMaxStartups 50\n"
            "Subsystem sftp internal-sftp\n"
        )
        log = open(self.workdir / "sshd.log", "wb")  # noqa: SIM115 - kept open for the daemon's life
        self._sshd = subprocess.Popen(
            [IP, "netns", "exec", self.name, SSHD, "-D", "-e", "-f", str(config)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until(self._sshd_listens, SSHD_START_TIMEOUT, f"sshd to listen in namespace {self.name}")

    def _sshd_listens(self) -> bool:
        assert self._sshd is not None
        if self._sshd.poll() is not None:
            log = (self.workdir / "sshd.log").read_text()
            raise RuntimeError(f"sshd did not start in namespace {self.name}: {log}")
        probe = self.exec("bash", "-c", f"exec 3<>/dev/tcp/{self.address}/22", check=False)
        return probe.returncode == 0

    def pids(self) -> list[int]:
        out = _run(IP, "netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        """Stop sshd, then every process still in the namespace, then delete the namespace."""
        if self._sshd is not None and self._sshd.poll() is None:
            self._sshd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._sshd.wait(timeout=5)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            poll_until(lambda: not self.pids(), 10)
        _run(IP, "netns", "del", self.name, check=False)
        _run(IP, "link", "del", self._veth, check=False)
