"""The rehearsal's machines: one network namespace per host on a bridge, each with its own sshd.

Only the network is isolated: files, users and PIDs are this machine's (docs/contracts.md, "This machine"),
so each host's
trees live under ``<root>/hosts/<key>/`` (the inventory points every path of the roles there) and each host
has its own service account. Everything here is found again from the prefix alone: namespaces
``<prefix>-<key>``, the bridge ``<prefix>-br``, accounts ``<prefix>-<key>``, Ray temp dirs
``/tmp/<prefix>-<key>-ray``. ``teardown`` removes exactly those, stopping processes by the namespace's PIDs
(never by a name pattern), so it also cleans up after a rehearsal that crashed half-way.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IP = "/usr/sbin/ip"
SSHD = "/usr/sbin/sshd"
SUBNET_POOL = "10.210"
SUDOERS_DIR = Path("/etc/sudoers.d")
#: Ray temp dirs: a short, fixed place (Ray's unix sockets live there, ~107-byte path limit).
RAY_TEMP_ROOT = Path("/tmp")  # noqa: S108 - names carry the prefix; teardown removes them


@dataclass(frozen=True)
class HostSpec:
    """One machine of the fleet: its short key, inventory group, index in the group and address octet."""

    key: str
    group: str
    index: int
    octet: int


FLEET: tuple[HostSpec, ...] = (
    HostSpec("orch", "orchestration", 1, 10),
    HostSpec("dev", "development", 1, 11),
    HostSpec("w1", "ray_workers", 1, 21),
    HostSpec("w2", "ray_workers", 2, 22),
    HostSpec("p1", "production", 1, 31),
    HostSpec("p2", "production", 2, 32),
)


def spec(key: str) -> HostSpec:
    return next(h for h in FLEET if h.key == key)


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {(result.stderr or result.stdout).strip()[:300]}")
    return result


def namespace(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"


def bridge(prefix: str) -> str:
    return f"{prefix}-br"


def account(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"


def ray_temp_dir(prefix: str, key: str) -> Path:
    """Short on purpose: Ray's unix sockets live there (~107-byte path limit)."""
    return RAY_TEMP_ROOT / f"{prefix}-{key}-ray"


def free_subnet() -> str:
    """The first 10.210.x.0/24 no interface of this machine uses (other rehearsals or tests may run)."""
    used = set()
    for line in run(IP, "-4", "-o", "addr", "show").stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            used.add(str(ipaddress.ip_network(f"{iface.ip}/24", strict=False).network_address))
    for third in range(0, 256):
        if f"{SUBNET_POOL}.{third}.0" not in used:
            return f"{SUBNET_POOL}.{third}"
    raise RuntimeError(f"no free /24 left in {SUBNET_POOL}.0.0/16")


def existing_namespaces(prefix: str) -> list[str]:
    names = [line.split()[0] for line in run(IP, "netns", "list").stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(f"{prefix}-")]


@dataclass
class Network:
    """The bridge in this machine's namespace (the controller's side, ``<subnet>.1``) and its hosts."""

    prefix: str
    subnet: str

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def address(self, key: str) -> str:
        return f"{self.subnet}.{spec(key).octet}"

    def create(self, keys: Sequence[str]) -> None:
        br = bridge(self.prefix)
        run(IP, "link", "add", br, "type", "bridge")
        run(IP, "addr", "add", f"{self.gateway}/24", "dev", br)
        run(IP, "link", "set", br, "up")
        for key in keys:
            self.add_host(key)

    def add_host(self, key: str) -> None:
        ns, outside = namespace(self.prefix, key), f"{self.prefix}-{key}h"
        run(IP, "netns", "add", ns)
        run(IP, "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run(IP, "link", "set", outside, "master", bridge(self.prefix))
        run(IP, "link", "set", outside, "up")
        run(IP, "-n", ns, "addr", "add", f"{self.address(key)}/24", "dev", "eth0")
        run(IP, "-n", ns, "link", "set", "eth0", "up")
        run(IP, "-n", ns, "link", "set", "lo", "up")
        run(IP, "-n", ns, "route", "add", "default", "via", self.gateway)

    def link(self, key: str, up: bool) -> None:
        """Cut or restore a host's cable (its processes keep running: a partition, seen from outside)."""
        run(IP, "link", "set", f"{self.prefix}-{key}h", "up" if up else "down")


def exec_in(prefix: str, key: str, *argv: str, check: bool = True, timeout: float = 60):
    return run(IP, "netns", "exec", namespace(prefix, key), *argv, check=check, timeout=timeout)


def pids(ns: str) -> list[int]:
    out = run(IP, "netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def kill_all(ns: str, *, grace: float = 15) -> None:
    """Stop every process in the namespace: TERM, a grace period, then KILL; ``grace=0``: KILL at once, as a
    machine losing power (no process gets to say goodbye)."""
    steps = ((signal.SIGTERM, grace), (signal.SIGKILL, 10)) if grace > 0 else ((signal.SIGKILL, 10),)
    for sig, wait in steps:
        for pid in pids(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids(ns) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids(ns):
            return


@dataclass(frozen=True)
class SshHost:
    """sshd of one host: its config, host key and pid file under ``<root>/hosts/<key>/sshd``."""

    prefix: str
    key: str
    address: str
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / "hosts" / self.key / "sshd"

    def start(self, operator_keys: Path) -> None:
        """Root logs in with the operator's key (``<root>/ssh/authorized/root``); service accounts with the
        keys the playbooks put in their own ``~/.ssh/authorized_keys`` (the deploy key on production)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        host_key = self.dir / "ssh_host_ed25519_key"
        if not host_key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{self.key}-host", "-f", str(host_key))
        config = self.dir / "sshd_config"
        config.write_text(
            f"ListenAddress {self.address}:22\nHostKey {host_key}\nPidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile .ssh/authorized_keys {operator_keys}/%u\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nMaxSessions 50\nMaxStartups 50:30:100\nLogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n"
        )
        run(
            IP,
            "netns",
            "exec",
            namespace(self.prefix, self.key),
            SSHD,
            "-f",
            str(config),
            "-E",
            str(self.dir / "sshd.log"),
        )
        deadline = time.monotonic() + 30
        probe = f"exec 3<>/dev/tcp/{self.address}/22"
        while time.monotonic() < deadline:
            if exec_in(self.prefix, self.key, "bash", "-c", probe, check=False).returncode == 0:
                return
            time.sleep(0.2)
        log = (self.dir / "sshd.log").read_text() if (self.dir / "sshd.log").exists() else ""
        raise RuntimeError(f"sshd of {self.key} not listening on {self.address}:22 after 30 s: {log[-300:]}")


def unlock_for_keys(prefix: str) -> list[str]:
    """Let the fleet's accounts log in with SSH keys: useradd leaves them '!' (locked), which an sshd without
    PAM, as these hosts' must be, refuses even for keys; a VM's sshd (PAM) accepts keys. '*' = no password,
    not locked. Returns the accounts changed."""
    changed = []
    for line in Path("/etc/shadow").read_text().splitlines():
        user, password = line.split(":")[:2]
        if user.startswith(f"{prefix}-") and password.startswith("!"):
            run("usermod", "-p", "*", user)
            changed.append(user)
    return changed


def accounts(prefix: str) -> list[str]:
    return [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(f"{prefix}-")]


def teardown(prefix: str, root: Path) -> list[str]:
    """Remove every namespace (and its processes), the bridge, the accounts and the files of this prefix."""
    removed: list[str] = []
    for ns in existing_namespaces(prefix):
        kill_all(ns)
        run(IP, "netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    for link in run(IP, "-o", "link", "show").stdout.splitlines():
        name = link.split(":")[1].strip().split("@")[0] if ":" in link else ""
        if name.startswith(f"{prefix}-"):
            run(IP, "link", "del", name, check=False)
            removed.append(f"link {name}")
    for user in accounts(prefix):
        run("userdel", user, check=False)
        run("groupdel", user, check=False)
        removed.append(f"account {user}")
        # githooks/install.sh lets each production account run the model check as the check user.
        sudoers = SUDOERS_DIR / f"stargazer-check-{user}"
        if sudoers.exists():
            sudoers.unlink()
            removed.append(f"file {sudoers}")
    for temp in RAY_TEMP_ROOT.glob(f"{prefix}-*-ray"):
        shutil.rmtree(temp, ignore_errors=True)
        removed.append(f"dir {temp}")
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
        removed.append(f"dir {root}")
    return removed
