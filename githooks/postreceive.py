"""post-receive: make the pushed ``deploy`` commit the served release, then drop what is no longer needed.

Runs after git has updated the refs (it cannot refuse anything any more; pre-receive did the judging):
1. under the releases lock, read where ``refs/heads/deploy`` points NOW (not the pushed value: if two pushes
   raced, the one whose hook runs last installs the ref's final value, so ``current`` always ends equal to the
   branch);
2. extract that commit's two files next to the model directory and hand them to
   ``model_serving.releases.install_release`` (copy into ``releases/<version>/``, atomic switch of
   ``current``, keep the last N releases, one deploy-log line with who/when/what/previous);
3. record the switched commit as ``refs/stargazer/serving`` (what the deploy command compares with what it
   pushed);
4. prune git objects nothing refers to any more (the previous versions' blobs), so the repository holds one
   or two models, not every model ever pushed. Each deploy commit is a root commit (see docs/deploy.md), so
   old versions really become unreachable.

Why a failed switch puts ``deploy`` back: git has already moved the branch when this hook runs. Left there, a
re-run of the same deploy would be "up to date", no hook would run, and the host would look deployed while
``current`` still served the old version (or nothing). So on failure the branch goes back to the serving
commit (or is deleted when nothing is served yet), with git's compare-and-swap, so a later push that already
moved it is never undone; the next push of that version runs both hooks again.

Workers notice the new ``current`` themselves (a stat before each task), so nothing here needs the broker.
Pushes of staging refs only print that the version is staged.

Shadow refs (``deploy --shadow``/``--promote``, docs/deploy.md "Shadow scoring"): a push of
``refs/stargazer/shadow`` installs that commit's release and points the ``shadow`` link at it (atomically,
like ``current``, which it never touches); deleting the ref removes the link; a push of
``refs/stargazer/shadow-report`` (at the shadow's own commit) prints this host's shadow report as one
``stargazer: shadow-report {json}`` line and deletes the ref again.

Why the report travels as hook output of a push: the deploy key can only run git (``git-shell``), and these
hooks already run as the account that owns the model directory and its shadow log. A report request costs one
push of an existing commit (no objects sent, none accepted: pre-receive takes only the shadow's commit); it
needs no new SSH command, no HTTP endpoint, no credential, and no account that can do more than push.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from githooks import gate, gitcmd
from githooks.contract import (
    ACTOR_OPTION,
    DEPLOY_REF,
    SERVING_REF,
    SHADOW_REF,
    SHADOW_REPORT_LINE,
    SHADOW_REPORT_REF,
    STAGING_PREFIX,
)
from githooks.contract import HOOK_PREFIX as PREFIX
from githooks.prereceive import Update, extract, parse_updates
from githooks.settings import HookSettings, SettingsError


class SwitchFailed(Exception):
    """``current`` did not follow; ``attempted`` is the commit the switch tried to install."""

    def __init__(self, cause: str, attempted: str) -> None:
        super().__init__(cause)
        self.attempted = attempted


def prune_objects(settings: HookSettings) -> str:
    """Delete unreachable objects older than ``stargazer.pruneexpire``; returns the repository's size after.

    Objects of a concurrent push are protected twice: they sit in git's quarantine until its pre-receive
    passes, and afterwards they are younger than the expiry.
    """
    subprocess.run(["git", "reflog", "expire", "--expire=now", "--all"], capture_output=True, check=False)
    subprocess.run(["git", "prune", f"--expire={settings.prune_expire}"], capture_output=True, check=False)
    counts = gitcmd.git("count-objects", "-v")
    fields = dict(line.split(": ", 1) for line in counts.splitlines() if ": " in line)
    kib = int(fields.get("size", "0")) + int(fields.get("size-pack", "0"))
    return f"{kib / 1024:.1f} MiB"


def switch(settings: HookSettings, pushed: Update) -> str:
    from model_serving import releases

    attempted = pushed.new
    try:
        with releases.release_lock(settings.model_dir):  # fails too when the model directory is unusable
            tip = gitcmd.rev_parse(DEPLOY_REF)
            if tip is None:
                return f"{PREFIX} {DEPLOY_REF} no longer exists on {settings.host_name}: current left as is"
            attempted = tip
            release, entry, kept = _install(settings, pushed, tip, settings.push_options.get(ACTOR_OPTION))
    except Exception as exc:
        raise SwitchFailed(_describe(exc), attempted) from exc
    size = prune_objects(settings)
    return (
        f"{PREFIX} switched {settings.host_name}: current -> {release.name} "
        f"({entry['event']}, previous {entry['previous']}); {kept} release(s) kept; repository {size}"
    )


def _install(
    settings: HookSettings, pushed: Update, tip: str, actor: str | None
) -> tuple[Path, dict[str, Any], int]:
    """Under the release lock: extract ``tip``, install it as ``current``, then record it as serving."""
    from model_serving import releases

    with tempfile.TemporaryDirectory(prefix=".extract-", dir=settings.model_dir) as work:
        extract(Update(pushed.old, tip, DEPLOY_REF), Path(work))
        details = {"commit": tip, "ref": DEPLOY_REF}
        if tip != pushed.new:
            details["pushed_commit"] = pushed.new  # a later push won the race; its version is installed
        git_dir = Path(gitcmd.git("rev-parse", "--absolute-git-dir").strip())
        details.update(gate.log_fields(gate.read_record(git_dir, tip)))  # scores and override reason
        release = releases.install_release(
            Path(work),
            settings.model_dir,
            keep=settings.keep,
            actor=actor,
            host=settings.host_name,
            details=details,
            move=True,
            locked=True,
        )
    gitcmd.git("update-ref", "-m", f"serving {release.name}", SERVING_REF, tip)
    if gitcmd.rev_parse(SHADOW_REF) == tip:  # promoted: install_release dropped the shadow link with it
        gitcmd.git("update-ref", "-d", SHADOW_REF, tip)
    entry = releases.read_deploy_log(settings.model_dir)[-1]
    kept = len(releases.list_releases(settings.model_dir))
    return release, entry, kept


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SettingsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def put_back(attempted: str) -> str:
    """Move ``deploy`` from ``attempted`` back to what ``current`` serves; says what it did (never raises)."""
    serving = gitcmd.rev_parse(SERVING_REF)
    try:
        if serving is not None:
            gitcmd.git("update-ref", "-m", "switch failed", DEPLOY_REF, serving, attempted)
            return f"{DEPLOY_REF} put back to the serving commit {serving[:10]}"
        gitcmd.git("update-ref", "-d", DEPLOY_REF, attempted)
        return f"{DEPLOY_REF} removed (nothing served yet)"
    except gitcmd.GitError as exc:
        return f"{DEPLOY_REF} could NOT be put back ({exc})"


def set_shadow(settings: HookSettings) -> str:
    """Under the release lock: install the commit ``refs/stargazer/shadow`` names NOW as the shadow."""
    from model_serving import releases

    with releases.release_lock(settings.model_dir):
        tip = gitcmd.rev_parse(SHADOW_REF)
        if tip is None:
            return f"{PREFIX} {SHADOW_REF} no longer exists on {settings.host_name}: shadow left as is"
        with tempfile.TemporaryDirectory(prefix=".extract-", dir=settings.model_dir) as work:
            extract(Update("0" * len(tip), tip, SHADOW_REF), Path(work))
            release = releases.install_shadow(Path(work), settings.model_dir, move=True, locked=True)
        serving = releases.current_version(settings.model_dir)
    return (f"{PREFIX} shadow set on {settings.host_name}: shadow -> {release.name} "
            f"(scored beside {serving}, never answered with)")


def shadow_report_line(settings: HookSettings) -> str:
    """This host's shadow report, one JSON line (``deploy`` parses it)."""
    from model_serving import releases
    from model_serving.production_server import shadow_log, shadow_report

    version = releases.shadow_version(settings.model_dir)
    since = releases.shadow_since(settings.model_dir)
    entries = (shadow_log.read(shadow_log.path_for(settings.model_dir), shadow_version=version, since=since)
               if version is not None and since is not None else iter(()))
    report = shadow_report.build(entries, shadow_version=version, since=since, host=settings.host_name,
                                 serving_version=releases.current_version(settings.model_dir))
    return f"{SHADOW_REPORT_LINE}{json.dumps(report, separators=(',', ':'))}"


def handle_shadow(updates: list[Update], stderr: TextIO) -> int:
    """Shadow set / cleared / report asked for; 1 when a shadow could not be set (the ref is then removed)."""
    shadow = [u for u in updates if u.ref == SHADOW_REF]
    reports = [u for u in updates if u.ref == SHADOW_REPORT_REF and not gitcmd.is_zero(u.new)]
    if not shadow and not reports:
        return 0
    from model_serving import releases

    try:
        settings = HookSettings.from_env()
    except SettingsError as exc:
        print(f"{PREFIX} ERROR: shadow NOT handled: {exc}", file=stderr, flush=True)
        return 1
    status = 0
    for update in shadow[-1:]:
        if gitcmd.is_zero(update.new):
            was = releases.clear_shadow(settings.model_dir)
            print(f"{PREFIX} shadow cleared on {settings.host_name} (was {was})", file=stderr, flush=True)
            continue
        try:
            print(set_shadow(settings), file=stderr, flush=True)
        except Exception as exc:  # say so, and take the ref back so that ``ls-remote`` tells the truth
            status = 1
            try:
                gitcmd.git("update-ref", "-d", SHADOW_REF, update.new)
                undone = f"{SHADOW_REF} removed"
            except gitcmd.GitError as git_exc:
                undone = f"{SHADOW_REF} could NOT be removed ({git_exc})"
            print(f"{PREFIX} ERROR: shadow NOT set: {_describe(exc)}; {undone}", file=stderr, flush=True)
    for update in reports[-1:]:
        try:
            print(shadow_report_line(settings), file=stderr, flush=True)
        except Exception as exc:
            status = 1
            print(f"{PREFIX} ERROR: shadow report failed: {_describe(exc)}", file=stderr, flush=True)
        finally:  # gone again, so the next request is a ref update that runs this hook
            subprocess.run(["git", "update-ref", "-d", SHADOW_REPORT_REF, update.new], capture_output=True,
                           check=False)
    return status


def main(stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr) -> int:
    updates = parse_updates(stdin)
    for update in updates:
        if update.ref.startswith(STAGING_PREFIX) and not gitcmd.is_zero(update.new):
            version = update.ref[len(STAGING_PREFIX) :]
            print(f"{PREFIX} staged {version} (validated, not switched)", file=stderr, flush=True)
    shadow_status = handle_shadow(updates, stderr)
    deploys = [u for u in updates if u.ref == DEPLOY_REF and not gitcmd.is_zero(u.new)]
    if not deploys:
        return shadow_status
    try:
        try:
            settings = HookSettings.from_env()
        except SettingsError as exc:
            raise SwitchFailed(str(exc), deploys[-1].new) from exc
        message = switch(settings, deploys[-1])
    except SwitchFailed as exc:  # the push already happened: say loudly that serving did not follow
        print(
            f"{PREFIX} ERROR: current NOT switched: {exc}; {put_back(exc.attempted)}", file=stderr, flush=True
        )
        return 1
    print(message, file=stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
