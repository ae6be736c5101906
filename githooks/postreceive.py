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
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from githooks import gitcmd
from githooks.prereceive import PREFIX, Update, extract, parse_updates
from githooks.settings import DEPLOY_REF, SERVING_REF, STAGING_PREFIX, HookSettings, SettingsError, load


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


def switch(settings: HookSettings, pushed: Update, environ: dict[str, str]) -> str:
    from model_serving import releases

    options = gitcmd.push_options(environ)
    attempted = pushed.new
    try:
        with releases.release_lock(settings.model_dir):  # fails too when the model directory is unusable
            tip = gitcmd.rev_parse(DEPLOY_REF)
            if tip is None:
                return f"{PREFIX} {DEPLOY_REF} no longer exists on {settings.host_name}: current left as is"
            attempted = tip
            release, entry, kept = _install(settings, pushed, tip, options.get("actor"))
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


def main(stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr) -> int:
    updates = parse_updates(stdin)
    for update in updates:
        if update.ref.startswith(STAGING_PREFIX) and not gitcmd.is_zero(update.new):
            version = update.ref[len(STAGING_PREFIX) :]
            print(f"{PREFIX} staged {version} (validated, not switched)", file=stderr, flush=True)
    deploys = [u for u in updates if u.ref == DEPLOY_REF and not gitcmd.is_zero(u.new)]
    if not deploys:
        return 0
    try:
        try:
            settings = load()
        except SettingsError as exc:
            raise SwitchFailed(str(exc), deploys[-1].new) from exc
        message = switch(settings, deploys[-1], dict(os.environ))
    except SwitchFailed as exc:  # the push already happened: say loudly that serving did not follow
        print(
            f"{PREFIX} ERROR: current NOT switched: {exc}; {put_back(exc.attempted)}", file=stderr, flush=True
        )
        return 1
    print(message, file=stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
