"""post-receive: make the pushed ``deploy`` commit the served release, then drop what is no longer needed.

Runs after git has updated the refs (it cannot refuse anything any more; pre-receive did the judging):
1. under the releases lock, read where ``refs/heads/deploy`` points NOW (not the pushed value: if two pushes
   raced, the one whose hook runs last installs the ref's final value, so ``current`` always ends equal to the
   branch);
2. extract that commit's two files next to the model directory and hand them to
   ``model_serving.releases.install_release`` (copy into ``releases/<version>/``, atomic switch of
   ``current``, keep the last N releases, one deploy-log line with who/when/what/previous);
3. prune git objects nothing refers to any more (the previous versions' blobs), so the repository holds one
   or two models, not every model ever pushed. Each deploy commit is a root commit (see docs/deploy.md), so
   old versions really become unreachable.

Workers notice the new ``current`` themselves (a stat before each task), so nothing here needs the broker.
Pushes of staging refs only print that the version is staged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from githooks import gitcmd
from githooks.prereceive import PREFIX, Update, extract, parse_updates
from githooks.settings import DEPLOY_REF, STAGING_PREFIX, HookSettings, SettingsError, load


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
    with releases.release_lock(settings.model_dir):
        tip = gitcmd.rev_parse(DEPLOY_REF)
        if tip is None:
            return f"{PREFIX} {DEPLOY_REF} no longer exists on {settings.host_name}: current left as it was"
        with tempfile.TemporaryDirectory(prefix=".extract-", dir=settings.model_dir) as work:
            extract(Update(pushed.old, tip, DEPLOY_REF), Path(work))
            details = {"commit": tip, "ref": DEPLOY_REF}
            if tip != pushed.new:
                details["pushed_commit"] = pushed.new  # a later push won the race; its version is installed
            release = releases.install_release(
                Path(work),
                settings.model_dir,
                keep=settings.keep,
                actor=options.get("actor"),
                host=settings.host_name,
                details=details,
                move=True,
                locked=True,
            )
        entry = releases.read_deploy_log(settings.model_dir)[-1]
        kept = len(releases.list_releases(settings.model_dir))
    size = prune_objects(settings)
    return (
        f"{PREFIX} switched {settings.host_name}: current -> {release.name} "
        f"({entry['event']}, previous {entry['previous']}); {kept} release(s) kept; repository {size}"
    )


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
        settings = load()
        message = switch(settings, deploys[-1], dict(os.environ))
    except SettingsError as exc:
        print(
            f"{PREFIX} ERROR: {DEPLOY_REF} updated but current NOT switched: {exc}", file=stderr, flush=True
        )
        return 1
    except Exception as exc:  # the push already happened: say loudly that serving did not follow
        print(
            f"{PREFIX} ERROR: {DEPLOY_REF} updated but current NOT switched: {type(exc).__name__}: {exc}",
            file=stderr,
            flush=True,
        )
        return 1
    print(message, file=stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
