"""pre-receive: refuse any push that must not become the served model (DESIGN.md §4).

Accepted refs: ``refs/heads/deploy`` (switched by post-receive) and ``refs/staging/<version>`` (phase 1 of a
multi-host deploy: validated here, switched by nobody). Everything else is refused.

For each pushed commit, in this order, stopping at its first problem (one line per refused ref):
1. the commit has ``model.json`` and ``model.joblib`` at its root;
2. ``model.json`` parses and matches the manifest schema;
3. its HMAC signature verifies with this host's deploy secret — BEFORE anything is unpickled;
4. ``model.joblib``'s sha256 is the signed one;
5. in a separate process, sandboxed (``githooks/check-sandbox``: a dedicated user holding nothing, no
   network, time and memory limits; ``githooks.check_model``, run with the interpreter and code of
   ``STARGAZER_APP_DIR``, so "the serving code" is literal): ``feature_version``,
   ``input_columns`` and the sklearn version match the serving code's (checked before unpickling, by
   ``artifact.load_version``), then the model loads and predicts a canned sample.
A deploy commit that this host already accepted as ``refs/staging/<version>`` skips the load and prediction:
phase 2 of a deploy must switch all hosts quickly, and the same bytes passed them minutes ago on this very
host (steps 1-4 and the compatibility check are repeated in this process: they are cheap).

Why the compatibility check lives in the child: it needs scikit-learn and the feature code (~1.5 s to import),
and the child imports them anyway; this process then only needs hashlib and pydantic, so refusals for a bad
signature or checksum, and phase 2, are fast.

git runs this hook with the pushed objects in a quarantine and discards them when the hook fails, so a refused
push leaves nothing behind. Messages go to stderr, which git shows the pusher as ``remote: ...`` lines.
"""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from githooks import gitcmd
from githooks.settings import (
    DEPLOY_REF,
    SHADOW_REF,
    SHADOW_REPORT_REF,
    STAGING_PREFIX,
    HookSettings,
    SettingsError,
    load,
)

PREFIX = "stargazer:"


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str

    @property
    def label(self) -> str:
        return f"{self.ref} ({self.new[:10]})"


@dataclass
class Candidate:
    """A pushed commit that passed the cheap checks and is extracted in ``directory``."""

    update: Update
    directory: Path
    version: str
    needs_load_check: bool


def parse_updates(stream: TextIO) -> list[Update]:
    updates = []
    for line in stream:
        parts = line.split()
        if len(parts) == 3:
            updates.append(Update(*parts))
    return updates


def ref_problem(update: Update) -> str | None:
    """Refusals that need no object at all (so they cost no sklearn import)."""
    if update.ref == DEPLOY_REF:
        if gitcmd.is_zero(update.new):
            return "deleting the deploy branch is not allowed (push an earlier version to roll back)"
        return None
    if update.ref.startswith(STAGING_PREFIX):
        from model_serving.artifact import VERSION_PATTERN

        name = update.ref[len(STAGING_PREFIX) :]
        if not VERSION_PATTERN.match(name):
            return f"staging ref must be refs/staging/<version>, got {update.ref}"
        return None
    if update.ref == SHADOW_REF:
        return None  # judged like a deploy: post-receive points ``shadow`` (never ``current``) at it
    if update.ref == SHADOW_REPORT_REF:
        if update.new != gitcmd.rev_parse(SHADOW_REF):
            return f"{SHADOW_REPORT_REF} accepts only the commit of {SHADOW_REF} (a report request)"
        return None
    return f"only {DEPLOY_REF}, {STAGING_PREFIX}<version> and {SHADOW_REF} accept pushes on this host"


def extract(update: Update, into: Path) -> None:
    """Write the commit's model.json and model.joblib into ``into`` (nothing is parsed or unpickled here)."""
    from model_serving import artifact

    kind = gitcmd.object_type(update.new)
    if kind != "commit":
        raise artifact.ArtifactError(f"pushed object is a {kind}, not a commit")
    entries = gitcmd.tree_entries(update.new)
    for name in (artifact.MANIFEST_FILE, artifact.MODEL_FILE):
        entry = entries.get(name)
        if entry is None or entry.kind != "blob":
            raise artifact.ArtifactError(f"{name} missing at the root of the pushed commit")
        gitcmd.blob_to_file(entry.oid, into / name)
        (into / name).chmod(0o640)
    # Optional: the training dataset; verify_checksum checks it against the signed manifest that lists it.
    snapshot = entries.get(artifact.SNAPSHOT_FILE)
    if snapshot is not None and snapshot.kind == "blob":
        gitcmd.blob_to_file(snapshot.oid, into / artifact.SNAPSHOT_FILE)
        (into / artifact.SNAPSHOT_FILE).chmod(0o640)


def cheap_checks(update: Update, directory: Path, settings: HookSettings) -> Candidate:
    """Steps 1-4: files, manifest, signature (before any unpickling), sha256; compatibility when staged."""
    from model_serving import artifact

    extract(update, directory)
    if settings.secret is None:
        raise artifact.ArtifactError("no deploy secret configured on this host: cannot verify signatures")
    manifest = artifact.read_manifest(directory)
    artifact.verify_signature(manifest, settings.secret)
    artifact.verify_checksum(directory, manifest)
    if update.ref.startswith(STAGING_PREFIX) and update.ref[len(STAGING_PREFIX) :] != manifest.version:
        raise artifact.ArtifactError(f"staging ref names {update.ref} but model.json is {manifest.version}")
    staged = gitcmd.rev_parse(f"{STAGING_PREFIX}{manifest.version}")
    needs_load = not (update.ref in (DEPLOY_REF, SHADOW_REF) and staged == update.new)
    if not needs_load:
        artifact.check_compatible(manifest)  # the child, which would do it, does not run on this path
    return Candidate(update, directory, manifest.version, needs_load)


def main(stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr) -> int:
    updates = parse_updates(stdin)
    problems: list[str] = []
    pending: list[Update] = []
    for update in updates:
        removable = update.ref.startswith(STAGING_PREFIX) or update.ref in (SHADOW_REF, SHADOW_REPORT_REF)
        if removable and gitcmd.is_zero(update.new):
            continue  # removing a staging ref or a report request is cleanup, the shadow ref stops the shadow
        problem = ref_problem(update)
        if problem:
            problems.append(f"{PREFIX} refused {update.label}: {problem}")
        elif update.ref == SHADOW_REPORT_REF:
            continue  # a report request carries no new object (the shadow's own commit): nothing to judge
        else:
            pending.append(update)
    if not pending:
        return _finish(problems, [], stderr)

    try:
        settings = load()
    except SettingsError as exc:
        return _finish([*problems, f"{PREFIX} refused: host misconfigured: {exc}"], [], stderr)

    from githooks.check_model import SANDBOX_SCRIPT, Sandbox, run_check
    from model_serving import artifact

    sandbox = Sandbox(
        user=settings.check_user,
        python=settings.check_python,
        app_dir=settings.app_dir,
        memory_mb=settings.check_memory_mb,
        script=settings.check_sandbox or SANDBOX_SCRIPT,
    )

    accepted: list[str] = []
    with tempfile.TemporaryDirectory(prefix="stargazer-prereceive-") as work:
        candidates: list[Candidate] = []
        for index, update in enumerate(pending):
            directory = Path(work) / str(index)
            directory.mkdir()
            try:
                candidates.append(cheap_checks(update, directory, settings))
            except (artifact.ArtifactError, gitcmd.GitError) as exc:
                problems.append(f"{PREFIX} refused {update.label}: {exc}")

        to_load = [c for c in candidates if c.needs_load_check]
        workers = max(1, min(len(to_load), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(
                lambda c: run_check(c.directory, sandbox=sandbox, timeout=settings.check_timeout),
                to_load,
            )
            checked = dict(zip((id(c) for c in to_load), results, strict=True))
        for candidate in candidates:
            label = f"{candidate.update.label} model {candidate.version}"
            result = checked.get(id(candidate))
            if result is None:
                accepted.append(f"{PREFIX} accepted {label} on {settings.host_name} (validated at staging)")
            elif result.ok:
                accepted.append(f"{PREFIX} accepted {label} on {settings.host_name}: {result.message}")
            else:
                problems.append(f"{PREFIX} refused {candidate.update.label}: {result.message}")
    return _finish(problems, accepted, stderr)


def _finish(problems: list[str], accepted: list[str], stderr: TextIO) -> int:
    """git rejects every ref of a push whose pre-receive fails: "accepted" is printed only on success."""
    for line in problems or accepted:
        print(line, file=stderr, flush=True)
    return 1 if problems else 0


def guarded_main() -> int:
    """Whatever goes wrong, the pusher gets one line and the push is refused (never a traceback)."""
    try:
        return main()
    except Exception as exc:
        print(
            f"{PREFIX} refused: pre-receive failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True
        )
        return 1


if __name__ == "__main__":
    sys.exit(guarded_main())
