"""``deploy``: sign a model version, commit it to the deploy repository, push it to every production host.

    python -m model_serving.development_server deploy                      # newest models/<version>
    python -m model_serving.development_server deploy --version V          # that version
    python -m model_serving.development_server deploy model-V              # an earlier one: a rollback
    python -m model_serving.development_server deploy --rollback           # the one deployed before the last
    python -m model_serving.development_server deploy --remote prod1 --remote ssh://git@10.0.0.7/srv/models.git

The deploy repository (``STARGAZER_DEPLOY_REPO``, default ``var/deploy.git`` in the checkout, a bare
repository created on first use) holds branch ``deploy``; each commit holds ONE version (``model.joblib`` and
the signed ``model.json`` at the root) and is tagged ``model-<version>``. Production hosts are its git remotes
(``git -C var/deploy.git remote add prod1 git@host:/srv/git/models.git``) or ``--remote`` names/URLs.

Design choices (docs/contracts.md §4; see docs/deploy.md):

- Each deploy commit is a ROOT commit (no parent). Every deploy, rollbacks included, is therefore a forced
  update of ``deploy`` on the hosts, and an old version's blobs become unreachable there once it is replaced,
  so post-receive can prune them: a host's repository holds one model, not all of them. The history lives in
  the tags and in the deploy branch's reflog here, and in each host's deploy log.
- Rollback = pushing an earlier version's commit (its tag). The bytes and the signature are the ones that were
  validated before, and the hooks validate them again.
- Signing happens here (the deploy account holds the Ed25519 signing key; production hosts hold only the
  public key). The training output is not modified: the
  signed ``model.json`` exists only in the deploy commit.
- Several hosts, TWO PHASES: phase 1 pushes ``refs/staging/<version>`` to every host, where pre-receive runs
  every check (signature, sha256, compatibility, load-and-predict); only when all accepted does phase 2 push
  ``deploy`` everywhere (post-receive switches ``current``) and delete the staging refs. One refusing host
  means no host switches, and the command says so. With a single host, one push does both.
- Deploys from this repository are serialized by a lock file, so two concurrent ``deploy`` runs cannot
  interleave their phases across hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from envsettings import child_environment
from githooks.contract import ACTOR_OPTION, DEPLOY_REF, HOOK_PREFIX, SERVING_REF, STAGING_PREFIX
from model_serving import artifact
from model_serving.development_server.settings import DEFAULT_DEPLOY_REPO, Settings, SettingsError

TAG_PREFIX: Final = "model-"
#: How git shows the pusher a hook's line.
REMOTE_HOOK_PREFIX: Final = f"remote: {HOOK_PREFIX}"
DEFAULT_MODELS: Final = Path("models")
#: ssh of every push unless the operator set GIT_SSH_COMMAND or GIT_SSH: a host that drops off the network
#: mid-push is given up after ~15 s of silence (ServerAlive), not after TCP's minutes or --timeout.
SSH_COMMAND: Final = "ssh -o ConnectTimeout=15 -o ServerAliveInterval=5 -o ServerAliveCountMax=3"


class DeployError(click.ClickException):
    """A deploy that cannot start or did not complete; one line, exit code 1."""


@dataclass
class HostAnswer:
    """What one host said about one push."""

    remote: str
    ok: bool
    lines: list[str] = field(default_factory=list)  # the hooks' "stargazer:" lines, else git's last words
    up_to_date: bool = False  # the host's deploy branch already was this commit: no hook ran

    def summary(self) -> str:
        return "; ".join(self.lines) if self.lines else ("ok" if self.ok else "failed (no message)")


class DeployRepo:
    """The local bare repository of deploy commits (plumbing only: no work tree, no index)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.push_options: list[str] = []  # more ``-o key=value`` for every push of a run (--override-gate)

    def git(self, *args: str, input_text: str | None = None, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["git", f"--git-dir={self.path}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            env=child_environment(env),
            check=False,
        )
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[0]
            raise DeployError(f"git {args[0]} failed in {self.path}: {first}")
        return result.stdout.strip()

    def ensure(self) -> None:
        if not (self.path / "HEAD").exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["git", "init", "--quiet", "--bare", "--initial-branch=deploy", str(self.path)],
                check=True,
                capture_output=True,
            )
        # The reflog of ``deploy`` is the local deploy history that ``--rollback`` walks.
        if self.git_optional("config", "--local", "--get", "core.logAllRefUpdates") != "always":
            self.git("config", "--local", "core.logAllRefUpdates", "always")

    def git_optional(self, *args: str) -> str:
        result = subprocess.run(
            ["git", f"--git-dir={self.path}", *args], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One deploy at a time from this repository (blocks until the other one is finished)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / "stargazer-deploy.lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def resolve(self, rev: str) -> str | None:
        result = subprocess.run(
            ["git", f"--git-dir={self.path}", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or None

    def remotes(self) -> list[str]:
        return [r for r in self.git("remote").splitlines() if r]

    def commit_version(
        self, version_dir: Path, signing_key: Ed25519PrivateKey
    ) -> tuple[str, artifact.Manifest]:
        """Sign (a scratch copy of model.json) and commit a version; reuse its tag if the content is equal."""
        with tempfile.TemporaryDirectory(prefix="stargazer-sign-") as scratch:
            work = Path(scratch)
            (work / artifact.MANIFEST_FILE).write_bytes((version_dir / artifact.MANIFEST_FILE).read_bytes())
            unsigned = artifact.read_manifest(version_dir)
            for name in artifact.release_files(unsigned):  # the model and its dataset snapshot, if any
                if name != artifact.MANIFEST_FILE:
                    (work / name).symlink_to((version_dir / name).resolve())
            manifest = artifact.sign_version(work, signing_key)  # checks the sha256s before signing
            artifact.check_compatible(manifest)  # refuse here what every host would refuse anyway
            blobs = {
                name: self.git("hash-object", "-w", "--", str(work / name))
                for name in artifact.release_files(manifest)
            }
        tree = self.git(
            "mktree",
            input_text="".join(f"100644 blob {oid}\t{name}\n" for name, oid in sorted(blobs.items())),
        )
        tag = TAG_PREFIX + manifest.version
        existing = self.resolve(f"refs/tags/{tag}")
        if existing is not None and self.git("rev-parse", f"{existing}^{{tree}}") == tree:
            return existing, manifest
        message = (
            f"model {manifest.version}\n\nsha256 {manifest.sha256}\ncode_version {manifest.code_version}\n"
            f"holdout {manifest.metrics.holdout.model_dump()}\n"
        )
        commit = self.git("commit-tree", tree, "-m", message, env=_identity_env(self))
        self.git(
            "tag", "--force", tag, commit
        )  # re-signed with a new key: the tag moves to the new commit
        return commit, manifest

    def version_of(self, commit: str) -> str:
        """The version a deploy commit carries (read from its model.json, not trusted beyond naming)."""
        raw = self.git("cat-file", "blob", f"{commit}:{artifact.MANIFEST_FILE}")
        try:
            return str(json.loads(raw)["version"])
        except (ValueError, KeyError, TypeError):
            raise DeployError(f"commit {commit[:10]} has no readable model.json version") from None

    def previous_deployed(self) -> str | None:
        """The commit deployed before the current one (walking the reflog of ``deploy``)."""
        current = self.resolve(DEPLOY_REF)
        if current is None:
            return None
        result = subprocess.run(
            ["git", f"--git-dir={self.path}", "reflog", "show", "--format=%H", DEPLOY_REF],
            capture_output=True,
            text=True,
            check=False,
        )
        for commit in result.stdout.split():
            if commit != current:
                return commit
        return None


def _identity_env(repo: DeployRepo) -> dict[str, str]:
    """commit-tree needs an identity; fall back to user@host when git has none configured."""
    env: dict[str, str] = {}
    result = subprocess.run(
        ["git", f"--git-dir={repo.path}", "var", "GIT_COMMITTER_IDENT"], capture_output=True, check=False
    )
    if result.returncode != 0:
        user, host = _actor().split("@", 1)
        for role in ("AUTHOR", "COMMITTER"):
            env[f"GIT_{role}_NAME"] = user
            env[f"GIT_{role}_EMAIL"] = f"{user}@{host}"
    return env


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def push(repo: DeployRepo, remote: str, refspecs: Sequence[str], *, timeout: float, actor: str) -> HostAnswer:
    """One ``git push`` to one host; its answer is the hooks' ``stargazer:`` lines (never raises)."""
    command = [
        "git",
        f"--git-dir={repo.path}",
        "push",
        "--porcelain",
        "--push-option",
        f"{ACTOR_OPTION}={actor}",
        *(word for option in repo.push_options for word in ("--push-option", option)),
        remote,
        *refspecs,
    ]
    # The signing key stays in this process: a push over the local transport would hand it to the hooks.
    hidden = (artifact.SIGNING_KEY_ENV, artifact.SIGNING_KEY_FILE_ENV)
    env = child_environment({"GIT_TERMINAL_PROMPT": "0"}, drop=hidden)
    if "GIT_SSH" not in env:
        env.setdefault("GIT_SSH_COMMAND", SSH_COMMAND)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return HostAnswer(remote, False, [f"no answer within {timeout:g} s"])
    output = result.stderr.splitlines() + result.stdout.splitlines()
    lines = [line[len("remote: ") :].strip() for line in output if line.startswith(REMOTE_HOOK_PREFIX)]
    rejected = [line.split("\t")[-1] for line in result.stdout.splitlines() if line.startswith("!")]
    ok = result.returncode == 0 and not rejected
    up_to_date = ok and any(
        line.startswith("=") and DEPLOY_REF in line for line in result.stdout.splitlines()
    )
    if up_to_date:
        lines.append("already serving this commit (deploy branch up to date)")
    if not ok and not any("refused" in line for line in lines):
        # No hook verdict: the host is unreachable, or git itself refused (e.g. a concurrent update).
        reason = "; ".join(rejected) or next(
            (line.strip() for line in reversed(result.stderr.splitlines()) if line.strip()), "push failed"
        )
        lines.append(f"push failed: {reason}")
    return HostAnswer(remote, ok, lines, up_to_date)


def push_all(
    repo: DeployRepo, remotes: Sequence[str], refspecs: Sequence[str], *, timeout: float, actor: str
) -> list[HostAnswer]:
    """The same push to every host at once (hosts are independent; the slowest decides the wait)."""
    with ThreadPoolExecutor(max_workers=max(1, len(remotes))) as pool:
        return list(pool.map(lambda r: push(repo, r, refspecs, timeout=timeout, actor=actor), remotes))


def _report(phase: str, answers: Sequence[HostAnswer]) -> None:
    click.echo(phase)
    for answer in answers:
        verdict = "ok" if answer.ok else "REFUSED" if any("refused" in x for x in answer.lines) else "FAILED"
        click.echo(f"  {answer.remote}: {verdict}: {answer.summary()}")


def serving_commit(repo: DeployRepo, remote: str, *, timeout: float, ref: str = SERVING_REF) -> str | None:
    """The commit a host's ``current`` serves (its ``refs/stargazer/serving``, or ``ref``), or None."""
    try:
        result = subprocess.run(
            ["git", f"--git-dir={repo.path}", "ls-remote", remote, ref],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_environment({"GIT_TERMINAL_PROMPT": "0"}),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    fields = result.stdout.split()
    return fields[0] if result.returncode == 0 and fields else None


def confirm_serving(repo: DeployRepo, answers: Sequence[HostAnswer], commit: str, *, timeout: float) -> None:
    """Ask every host that took the push what it serves now: a host whose switch failed is not "ok".

    Why not trust the push alone: git moves ``deploy`` before post-receive runs, so a failed switch followed
    by a re-run of the same deploy is "up to date" with no hook running. The host's serving ref is the truth.
    """
    pushed = [a for a in answers if a.ok]
    with ThreadPoolExecutor(max_workers=max(1, len(pushed))) as pool:
        serving = list(pool.map(lambda a: serving_commit(repo, a.remote, timeout=timeout), pushed))
    for answer, served in zip(pushed, serving, strict=True):
        if served != commit:
            answer.ok = False
            answer.lines.append(
                f"not switched: serves {served[:10] if served else 'nothing known'}, not {commit[:10]}"
            )


def deploy(
    repo: DeployRepo,
    *,
    commit: str,
    version: str,
    remotes: Sequence[str],
    timeout: float,
    actor: str,
) -> None:
    """Push ``commit`` to every remote (two phases when there are several); raises DeployError on failure."""
    switch = [f"+{commit}:{DEPLOY_REF}"]
    staging_ref = f"{STAGING_PREFIX}{version}"
    if len(remotes) > 1:
        stage(repo, commit=commit, version=version, remotes=remotes, timeout=timeout, actor=actor,
              phase="phase 1/2: validate on every host (push refs/staging/<version>)",
              outcome="no host switched")
        switch.append(f":{staging_ref}")
    answers = push_all(repo, remotes, switch, timeout=timeout, actor=actor)
    confirm_serving(repo, answers, commit, timeout=timeout)
    _report("phase 2/2: switch every host (push deploy)" if len(remotes) > 1 else "push deploy", answers)
    done = [a.remote for a in answers if a.ok]
    failed = [a.remote for a in answers if not a.ok]
    if failed:
        if not done:
            raise DeployError(f"no host switched: {', '.join(failed)} did not switch to {version}")
        raise DeployError(
            f"DEPLOY INCOMPLETE: {', '.join(done)} switched to {version}, {', '.join(failed)} did not: "
            f"hosts now serve different versions; re-run the deploy, or roll back with --rollback"
        )
    repo.git("update-ref", "-m", f"deploy {version} to {', '.join(remotes)}", DEPLOY_REF, commit)
    click.echo(f"deployed {version} to {len(remotes)} host(s): {', '.join(remotes)}")


def stage(
    repo: DeployRepo,
    *,
    commit: str,
    version: str,
    remotes: Sequence[str],
    timeout: float,
    actor: str,
    phase: str,
    outcome: str,
) -> None:
    """Phase 1: push ``refs/staging/<version>`` everywhere; on any refusal remove it again and raise.

    ``outcome`` starts the error line ("no host switched", "no shadow set").
    """
    staging_ref = f"{STAGING_PREFIX}{version}"
    staged = push_all(repo, remotes, [f"+{commit}:{staging_ref}"], timeout=timeout, actor=actor)
    _report(phase, staged)
    refused = [a for a in staged if not a.ok]
    if refused:
        accepted = [a.remote for a in staged if a.ok]
        if accepted:
            push_all(repo, accepted, [f":{staging_ref}"], timeout=timeout, actor=actor)
        said_no = [a.remote for a in refused if any("refused" in line for line in a.lines)]
        # A host that is down or cut off mid-push gives no verdict: say so, with git's last words.
        silent = [a for a in refused if a.remote not in said_no]
        reasons = [f"{', '.join(said_no)} refused {version}"] if said_no else []
        if silent:
            names = ", ".join(a.remote for a in silent)
            reasons.append(f"{names} did not accept {version} ({silent[0].summary()})")
        raise DeployError(
            f"{outcome}: {'; '.join(reasons)}"
            + (f" (staging ref removed from {', '.join(accepted)})" if accepted else "")
        )


def choose_commit(
    repo: DeployRepo, target: str | None, *, rollback: bool, models_dir: Path,
    signing_key: Ed25519PrivateKey | None,
) -> tuple[str, str]:
    """(commit, version) for the deploy: a tag/earlier version, a models/<version>, or the newest one."""
    if rollback:
        if target:
            raise DeployError("give either a version/tag or --rollback, not both")
        previous = repo.previous_deployed()
        if previous is None:
            raise DeployError(
                f"nothing to roll back to: {repo.path} records fewer than two deployed versions"
            )
        return previous, repo.version_of(previous)
    name = target[len(TAG_PREFIX) :] if target and target.startswith(TAG_PREFIX) else target
    if name and not (models_dir / name).is_dir():
        tagged = repo.resolve(f"refs/tags/{TAG_PREFIX}{name}")
        if tagged is None:
            raise DeployError(
                f"unknown version {target}: no tag {TAG_PREFIX}{name} and no {models_dir / name}"
            )
        return tagged, repo.version_of(tagged)
    version_dir = models_dir / name if name else artifact.newest_version(models_dir)
    if version_dir is None:
        raise DeployError(f"no model version in {models_dir}: train one first")
    if signing_key is None:
        raise DeployError(
            f"no deploy signing key: set {artifact.SIGNING_KEY_FILE_ENV} (or {artifact.SIGNING_KEY_ENV})"
        )
    try:
        commit, manifest = repo.commit_version(version_dir, signing_key)
    except artifact.ArtifactError as exc:
        raise DeployError(f"{version_dir.name}: {exc}") from None
    return commit, manifest.version


def _split_remotes(values: Sequence[str]) -> list[str]:
    return [part for value in values for part in value.replace(",", " ").split() if part]


@click.command()
@click.argument("target", required=False)
@click.option("--version", "version", default=None, help="Version under --models (default: the newest).")
@click.option("--rollback", is_flag=True, help="Deploy the version that was deployed before the current one.")
@click.option(
    "--remote",
    "remotes",
    multiple=True,
    help="Remote name or URL (repeatable). Default: STARGAZER_DEPLOY_REMOTES, else every remote of the repo.",
)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_MODELS,
    show_default=True,
    help="Directory of model versions (training output).",
)
@click.option(
    "--repo",
    "repo_path",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Local bare deploy repository (created on first use). Default: STARGAZER_DEPLOY_REPO, else "
         f"{DEFAULT_DEPLOY_REPO.relative_to(DEFAULT_DEPLOY_REPO.parents[1])} in the checkout.",
)
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True, help="Per push.")
@click.option(
    "--override-gate",
    "override_gate",
    metavar="REASON",
    default=None,
    help="Deploy even if a host's quality gate refuses the model; REASON goes into every host's deploy log.",
)
@click.option("--shadow", "shadow_minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stage the version and score every live request with it beside the served one for MINUTES "
                   "(never answered with), then print the shadow report.")
@click.option("--shadow-requests", type=click.IntRange(min=1), default=None,
              help="Shadow until N requests were scored by both models (with --shadow: whichever is first).")
@click.option("--promote", is_flag=True, help="Switch every host to the version they shadow (phase 2).")
@click.option("--if-shadow-within", "shadow_within", default=None, metavar="NAME=VALUE,...",
              help="With --promote: promote only if every host's shadow report is within these thresholds "
                   "(e.g. max_abs_log_diff_p90=0.3,min_rank_agreement=0.8).")
@click.option("--shadow-stop", is_flag=True, help="Stop shadow scoring on every host (nothing is switched).")
@click.option("--poll", "poll_seconds", type=click.FloatRange(min=0.1), default=15.0, show_default=True,
              help="Seconds between progress reports while shadowing.")
def deploy_command(
    target: str | None,
    version: str | None,
    rollback: bool,
    remotes: tuple[str, ...],
    models_dir: Path,
    repo_path: Path | None,
    timeout: float,
    override_gate: str | None = None,
    shadow_minutes: float | None = None,
    shadow_requests: int | None = None,
    promote: bool = False,
    shadow_within: str | None = None,
    shadow_stop: bool = False,
    poll_seconds: float = 15.0,
) -> None:
    """Deploy a model version (TARGET: a version or a model-<version> tag) to every production host."""
    if target and version:
        raise DeployError("give the version once: either TARGET or --version")
    from model_serving.development_server import shadow_run

    plan = shadow_run.Plan.from_options(
        minutes=shadow_minutes, requests=shadow_requests, promote=promote, within=shadow_within,
        stop=shadow_stop, poll=poll_seconds, rollback=rollback, target=target or version,
    )
    try:
        settings = Settings.from_env()
        signing_key = artifact.signing_key_from(settings.signing_key, settings.signing_key_file)
    except (artifact.ArtifactError, SettingsError) as exc:
        raise DeployError(str(exc)) from None
    repo_path = repo_path or settings.deploy_repo
    repo = DeployRepo(repo_path)
    if override_gate is not None:
        from githooks.gate import OVERRIDE_OPTION

        if not override_gate.strip():
            raise DeployError("--override-gate needs a reason (it goes into the deploy log)")
        repo.push_options.append(f"{OVERRIDE_OPTION}={override_gate}")
    with repo.lock():
        repo.ensure()
        chosen = _split_remotes(remotes) or list(settings.deploy_remotes) or repo.remotes()
        if not chosen:
            raise DeployError(
                f"no production remote: pass --remote or `git -C {repo_path} remote add NAME URL`"
            )
        if plan.promote or plan.stop:
            shadow_run.promote_or_stop(repo, plan, remotes=chosen, timeout=timeout, actor=_actor())
            return
        commit, name = choose_commit(
            repo, target or version, rollback=rollback, models_dir=models_dir, signing_key=signing_key
        )
        if plan.shadowing:
            click.echo(f"shadow {name} (commit {commit[:10]}, tag {TAG_PREFIX}{name}) on {', '.join(chosen)}")
            shadow_run.run(repo, plan, commit=commit, version=name, remotes=chosen, timeout=timeout,
                           actor=_actor())
            return
        click.echo(f"deploy {name} (commit {commit[:10]}, tag {TAG_PREFIX}{name}) to {', '.join(chosen)}")
        deploy(repo, commit=commit, version=name, remotes=chosen, timeout=timeout, actor=_actor())


@click.command()
@click.option("--remote", "remotes", multiple=True)
@click.option("--repo", "repo_path", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True)
@click.pass_context
def rollback_command(
    ctx: click.Context, remotes: tuple[str, ...], repo_path: Path | None, timeout: float
) -> None:
    """Roll every host back to the version deployed before the current one (same as deploy --rollback)."""
    ctx.invoke(
        deploy_command,
        target=None,
        version=None,
        rollback=True,
        remotes=remotes,
        models_dir=DEFAULT_MODELS,
        repo_path=repo_path,
        timeout=timeout,
    )


@click.group()
def main() -> None:
    """Deploy commands on their own (the development-server CLI also registers ``deploy``)."""


main.add_command(deploy_command, "deploy")
main.add_command(rollback_command, "rollback")

if __name__ == "__main__":
    main()
