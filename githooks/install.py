"""Create (or update) a production host's deploy repository: bare repo, hooks, configuration. Idempotent.

Ansible calls ``githooks/install.sh`` (which runs this module with the application's venv); re-running it
changes nothing when everything is already in place, and prints ``changed=false`` so Ansible can tell.

Repository configuration it sets, and why:

- ``HEAD -> refs/heads/deploy``: the only branch there is.
- ``receive.denyNonFastForwards=false``: every deploy commit is a root commit (one version, no parent), so
  every deploy, rollbacks included, is a forced update of ``deploy``.
- ``receive.denyDeletes=false``: the deploy command deletes its ``refs/staging/<version>`` refs after phase 2;
  pre-receive itself refuses deleting ``deploy``.
- ``receive.advertisePushOptions=true``: the deploy command sends ``-o actor=<user>@<host>`` for the log.
- ``receive.fsckObjects=true``: malformed objects are refused by git before the hook even runs.
- ``receive.unpackLimit=100000``, ``gc.auto=0``, ``receive.autogc=false``, ``core.logAllRefUpdates=false``:
  pushed objects stay loose and unreferenced by reflogs, so post-receive's ``git prune`` really deletes an old
  model's blobs (a pack would keep them until a full repack).
- ``stargazer.*``: the host's settings, read by the hooks (see ``githooks/settings.py``).
- ``stargazer.evalset`` and ``stargazer.evalsetsha256`` (``--evalset``): the quality gate's frozen evaluation
  set and its sha256, checked by pre-receive before each use. The installer refuses a file that is not a
  readable evaluation set or whose sha256 differs from ``--evalset-sha256``; without ``--evalset`` both keys
  are removed (no gate). ``stargazer.gate<metric>margin`` / ``floor`` (``--gate-margin`` / ``--gate-floor
  metric=value``): how much worse than the serving model a pushed one may be, and what the first must reach.

Run as root with a check user (the default), it also sets up the sandbox of the load check
(``githooks/sandbox_setup.py``): the check user, the root-owned sandbox script and, with ``--owner``, the
deploy user's one sudo rule; it refuses a check user in the deploy user's group (the host's secrets) or
able to write the models.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from githooks import sandbox_setup
from githooks.check_model import SANDBOX_SCRIPT, Sandbox
from githooks.settings import (
    DEFAULT_CHECK_MEMORY_MB,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_CHECK_USER,
    DEFAULT_GATE_FLOORS,
    DEFAULT_GATE_MARGINS,
    DEFAULT_KEEP,
    DEFAULT_PRUNE_EXPIRE,
    GATE_KEYS,
    InstallSettings,
    SettingsError,
)

HOOKS_SOURCE = Path(__file__).resolve().parent
HOOK_NAMES = ("pre-receive", "post-receive")
APP_DIR = HOOKS_SOURCE.parent

GIT_SETTINGS = {
    "receive.denyNonFastForwards": "false",
    "receive.denyDeletes": "false",
    "receive.advertisePushOptions": "true",
    "receive.fsckObjects": "true",
    "receive.unpackLimit": "100000",
    "receive.autogc": "false",
    "gc.auto": "0",
    "core.logAllRefUpdates": "false",
}


class InstallError(click.ClickException):
    """One line, exit code 1."""


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", f"--git-dir={repo}", *args], capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):  # 1: "git config --get" of an unset key
        raise InstallError(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass(frozen=True)
class HookOptions:
    """What the installer is told: where the app and models are, and how the hooks check a pushed model.

    Paths are absolute (``from_command_line`` makes them so): they are written into the repository's git
    config, which the hooks read from another working directory.
    """

    app_dir: Path
    model_dir: Path
    #: None: the app's own venv (``interpreter``).
    python: Path | None
    public_key_file: Path | None
    keep: int
    #: '': the hook's own user runs the check, without a sandbox.
    check_user: str
    check_timeout: float
    check_memory_mb: int
    prune_expire: str
    host_name: str | None
    #: Who owns the repository and model directory (chown), and gets the one sudo rule of the sandbox.
    owner: str | None
    probe: bool
    #: None: no quality gate.
    evalset: Path | None
    evalset_sha256: str | None
    gate_margins: dict[str, float]
    gate_floors: dict[str, float]

    @classmethod
    def from_command_line(cls, *, evalset: str, evalset_sha256: str, **values: Any) -> HookOptions:
        """``main``'s options: every path made absolute, and '' (no quality gate, any digest) made None."""
        absolute = {name: v.absolute() if isinstance(v, Path) else v for name, v in values.items()}
        return cls(**absolute, evalset=Path(evalset).absolute() if evalset else None,
                   evalset_sha256=evalset_sha256 or None)

    @property
    def interpreter(self) -> Path:
        """The Python that runs the hooks' load check."""
        return self.python or self.app_dir / ".venv" / "bin" / "python"


def install(repo: Path, options: HookOptions) -> list[str]:
    """Bring ``repo`` to the wanted state; returns what changed (empty when nothing did)."""
    changes: list[str] = []
    evalset = options.evalset
    evalset_digest = _check_evalset(evalset, options.evalset_sha256) if evalset is not None else None
    _check_inputs(repo, options)
    as_root = os.geteuid() == 0
    check_user = options.check_user
    sandbox = Sandbox(
        user=check_user or None,
        python=options.interpreter,
        app_dir=options.app_dir,
        memory_mb=options.check_memory_mb,
        script=sandbox_setup.installed_script() if as_root else SANDBOX_SCRIPT,
    )
    try:
        if check_user and as_root:
            changes += sandbox_setup.ensure_check_user(check_user)
        elif check_user and not sandbox_setup.user_exists(check_user):
            raise InstallError(f"check user {check_user!r} does not exist on this host (install as root)")
    except sandbox_setup.SandboxSetupError as exc:
        raise InstallError(str(exc)) from None
    if not repo.exists():
        subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=deploy", str(repo)], check=True)
        changes.append(f"created bare repository {repo}")
    changes += _configure(repo, _wanted_config(options, sandbox.script if as_root else None, evalset_digest))
    changes += _install_hooks(repo)
    model_dir, owner = options.model_dir, options.owner
    if not model_dir.is_dir():
        model_dir.mkdir(parents=True)
        changes.append(f"created model directory {model_dir}")
    if owner:
        changes += _chown(owner, repo, model_dir)
    try:
        if check_user and as_root:
            changes += sandbox_setup.install_script()
            sandbox_setup.verify_isolation(check_user, owner, model_dir)
            if owner and pwd.getpwnam(owner).pw_uid != 0:
                changes += sandbox_setup.write_sudo_rule(owner, sandbox)
        if options.probe:
            sandbox_setup.probe(sandbox, owner if as_root and check_user else None)
    except sandbox_setup.SandboxSetupError as exc:
        raise InstallError(str(exc)) from None
    return changes


def _check_inputs(repo: Path, options: HookOptions) -> None:
    """Refuse, in one line and before changing anything, what the hooks could not work with."""
    app_dir = options.app_dir
    if not (app_dir / "githooks" / "prereceive.py").is_file():
        raise InstallError(f"{app_dir} is not a stargazer checkout (no githooks/prereceive.py)")
    if not os.access(options.interpreter, os.X_OK):
        raise InstallError(
            f"no Python interpreter at {options.interpreter} (create the app venv or pass --python)"
        )
    if options.public_key_file is not None and not options.public_key_file.is_file():
        raise InstallError(f"deploy public key file {options.public_key_file} does not exist")
    if repo.exists() and not _is_bare_repo(repo):
        raise InstallError(f"{repo} exists and is not a bare git repository")
    if options.owner and not sandbox_setup.user_exists(options.owner):
        raise InstallError(f"user {options.owner!r} does not exist")


def _wanted_config(options: HookOptions, sandbox_script: Path | None, evalset_digest: str | None
                   ) -> dict[str, str | None]:
    """The repository's git config the hooks read; None: the key must be unset."""
    wanted: dict[str, str | None] = dict(GIT_SETTINGS)
    wanted.update(
        {
            "stargazer.appdir": str(options.app_dir),
            "stargazer.modeldir": str(options.model_dir),
            "stargazer.keep": str(options.keep),
            "stargazer.checkuser": options.check_user,
            "stargazer.checktimeout": f"{options.check_timeout:g}",
            "stargazer.checkmemory": str(options.check_memory_mb),
            "stargazer.checkpython": str(options.interpreter),
            "stargazer.pruneexpire": options.prune_expire,
        }
    )
    if sandbox_script is not None:
        wanted["stargazer.checksandbox"] = str(sandbox_script)
    if options.python is not None:
        wanted["stargazer.python"] = str(options.python)
    if options.public_key_file is not None:
        wanted["stargazer.publickeyfile"] = str(options.public_key_file)
    if options.host_name:
        wanted["stargazer.hostname"] = options.host_name
    for kind, given, defaults in (("margin", options.gate_margins, DEFAULT_GATE_MARGINS),
                                  ("floor", options.gate_floors, DEFAULT_GATE_FLOORS)):
        for metric, key in GATE_KEYS.items():
            wanted[f"stargazer.gate{key}{kind}"] = f"{given.get(metric, defaults[metric]):g}"
    with_gate = options.evalset is not None and evalset_digest is not None
    wanted["stargazer.evalset"] = str(options.evalset) if with_gate else None
    wanted["stargazer.evalsetsha256"] = evalset_digest if with_gate else None
    wanted["stargazer.secretfile"] = None  # the retired HMAC secret's path: models are verified with the key
    return wanted


#: Why a key is unset, in the installer's report.
_UNSET_REASONS = {
    "stargazer.evalset": "no quality gate",
    "stargazer.evalsetsha256": "no quality gate",
    "stargazer.secretfile": "models are verified with the public key",
}


def _configure(repo: Path, wanted: dict[str, str | None]) -> list[str]:
    """Set (or unset, for None) every key that differs, and point HEAD at the deploy branch."""
    changes = []
    for key in [k for k, v in wanted.items() if v is None]:
        if _git(repo, "config", "--local", "--get", key):
            _git(repo, "config", "--local", "--unset", key)
            changes.append(f"unset {key} ({_UNSET_REASONS[key]})")
    for key, value in wanted.items():
        if value is not None and _git(repo, "config", "--local", "--get", key) != value:
            _git(repo, "config", "--local", key, value)
            changes.append(f"set {key}={value}")
    if _git(repo, "symbolic-ref", "HEAD") != "refs/heads/deploy":
        _git(repo, "symbolic-ref", "HEAD", "refs/heads/deploy")
        changes.append("HEAD -> refs/heads/deploy")
    return changes


def _install_hooks(repo: Path) -> list[str]:
    """Copy the hooks in, executable, when missing or different."""
    changes = []
    for name in HOOK_NAMES:
        source, target = HOOKS_SOURCE / name, repo / "hooks" / name
        if (
            not target.exists()
            or target.read_bytes() != source.read_bytes()
            or (target.stat().st_mode & 0o777) != 0o755
        ):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(0o755)
            changes.append(f"installed hook {name}")
    return changes


def _check_evalset(path: Path, expected: str | None) -> str:
    """The eval set's sha256, after checking it is the expected file and a usable evaluation set."""
    from githooks import gate

    if not path.is_file():
        raise InstallError(f"evaluation set {path} does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if expected is not None and digest != expected.strip().lower():
        raise InstallError(
            f"evaluation set {path} has sha256 {digest}, not the {expected} it was given with (copy damaged?)"
        )
    try:
        gate.read_evalset(path)
    except gate.GateError as exc:
        raise InstallError(f"{path}: {exc}") from None
    return digest


def _gate_values(kind: str) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], dict[str, float]]:
    """Parse repeated ``--gate-<kind> metric=value`` options into {metric: value}."""

    def parse(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
        parsed: dict[str, float] = {}
        for item in values:
            metric, _, raw = item.partition("=")
            if metric not in GATE_KEYS:
                raise click.BadParameter(f"{item!r}: the metric must be one of {', '.join(GATE_KEYS)}")
            try:
                parsed[metric] = float(raw)
            except ValueError:
                raise click.BadParameter(f"{item!r}: the value must be a number") from None
        return parsed

    return parse


def _gate_option(kind: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--gate-<kind> METRIC=VALUE`` (repeatable), parsed into ``gate_<kind>s``: {metric: value}."""
    return click.option(f"--gate-{kind}", f"gate_{kind}s", multiple=True, callback=_gate_values(kind),
                        help=f"METRIC=VALUE: {what} (repeatable).")


def _is_bare_repo(path: Path) -> bool:
    result = subprocess.run(
        ["git", f"--git-dir={path}", "rev-parse", "--is-bare-repository"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "true"


def _chown(owner: str, *roots: Path) -> list[str]:
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise InstallError(f"user {owner!r} does not exist") from None
    from model_serving.production_server import shadow_log

    changed = []
    for root in roots:
        # The shadow log directory belongs to the workers' account (the celery_worker role): left alone.
        kept = root / shadow_log.DIR_NAME
        for path in [root, *root.rglob("*")]:
            if path == kept or kept in path.parents:
                continue
            stat = path.lstat()
            if (stat.st_uid, stat.st_gid) != (entry.pw_uid, entry.pw_gid):
                os.lchown(path, entry.pw_uid, entry.pw_gid)
                changed.append(str(path))
    return [f"chown {owner} {len(changed)} path(s)"] if changed else []


@click.command()
@click.option("--repo", type=click.Path(path_type=Path), required=True, help="Bare repository to create.")
@click.option(
    "--app-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=APP_DIR,
    show_default=True,
    help="Deployed stargazer checkout (STARGAZER_APP_DIR) whose serving code judges models.",
)
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="releases/, current, deploy-log.jsonl. Default: STARGAZER_MODEL_DIR (one of them is required).",
)
@click.option(
    "--python", type=click.Path(path_type=Path), default=None, help="Default: <app-dir>/.venv/bin/python."
)
@click.option(
    "--public-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File holding the deploy public key that verifies model.json (its path is stored). "
         "Default: STARGAZER_DEPLOY_PUBLIC_KEY_FILE.",
)
@click.option("--keep", type=click.IntRange(min=1), default=DEFAULT_KEEP, show_default=True)
@click.option(
    "--check-user",
    default=DEFAULT_CHECK_USER,
    show_default=True,
    help="Account of the sandboxed load check (created when root); '' = the hook's user, no sandbox.",
)
@click.option(
    "--check-timeout", type=click.FloatRange(min=0.1), default=DEFAULT_CHECK_TIMEOUT, show_default=True
)
@click.option(
    "--check-memory",
    "check_memory_mb",
    type=click.IntRange(min=256),
    default=DEFAULT_CHECK_MEMORY_MB,
    show_default=True,
    help="Address-space limit of the load check, MiB.",
)
@click.option("--prune-expire", default=DEFAULT_PRUNE_EXPIRE, show_default=True)
@click.option("--host-name", default=None, help="Name in the deploy log. Default: the hostname.")
@click.option(
    "--evalset",
    default="",
    help="The quality gate's frozen evaluation set on this host (evalset-<version>.csv.gz); '' = no gate.",
)
@click.option("--evalset-sha256", default="", help="The sha256 the evaluation set must have ('' = any).")
@_gate_option("margin", "how much worse than the serving model a pushed one may score")
@_gate_option("floor", "what the first model on the host must reach, mae_log at most")
@click.option("--owner", default=None, help="chown the repository and model directory to this user.")
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="Start the check sandbox once, as the hook will.",
)
def main(repo: Path, **options: Any) -> None:
    """Create or update the bare deploy repository REPO with stargazer's hooks."""
    try:
        fallback = InstallSettings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    options["model_dir"] = options.get("model_dir") or fallback.model_dir
    options["public_key_file"] = options.get("public_key_file") or fallback.public_key_file
    if options["model_dir"] is None:
        raise click.UsageError("--model-dir (or STARGAZER_MODEL_DIR) is required")
    changes = install(repo.absolute(), HookOptions.from_command_line(**options))
    for change in changes:
        click.echo(change)
    click.echo(f"changed={'true' if changes else 'false'}")


if __name__ == "__main__":
    main(sys.argv[1:])
