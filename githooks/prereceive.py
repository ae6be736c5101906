"""pre-receive: refuse any push that must not become the served model (docs/contracts.md §4).

Accepted refs: ``refs/heads/deploy`` (switched by post-receive) and ``refs/staging/<version>`` (phase 1 of a
multi-host deploy: validated here, switched by nobody). Everything else is refused.

For each pushed commit, in this order, stopping at its first problem (one line per refused ref):
1. the commit has ``model.json`` and ``model.joblib`` at its root;
2. ``model.json`` parses and matches the manifest schema;
3. its Ed25519 signature verifies with this host's deploy public key — BEFORE anything is unpickled;
4. ``model.joblib``'s sha256 is the signed one;
5. in a separate process, sandboxed (``githooks/check-sandbox``: a dedicated user holding nothing, no
   network, time and memory limits; ``githooks.check_model``, run with the interpreter and code of
   ``STARGAZER_APP_DIR``, so "the serving code" is literal): ``feature_version``,
   ``input_columns`` and the sklearn version match the serving code's (checked before unpickling, by
   ``artifact.load_version``), then the model loads and predicts a canned sample;
6. the quality gate (``githooks/gate.py``), when the host has an evaluation set: the same child scores the
   pushed model and the serving one on it; a model worse than the serving one by more than the host's margins
   (or, first on the host, below its floors) is refused, unless the pusher gives
   ``-o stargazer.override-gate=<reason>``. The scores (and the reason) are kept for post-receive, which
   writes them into the deploy log.
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
from typing import TYPE_CHECKING, TextIO

from githooks import gitcmd
from githooks.contract import DEPLOY_REF, SHADOW_REF, SHADOW_REPORT_REF, STAGING_PREFIX
from githooks.contract import HOOK_PREFIX as PREFIX
from githooks.settings import HookSettings, SettingsError

if TYPE_CHECKING:
    from githooks.check_model import CheckResult, GateInputs
    from githooks.gate import Verdict

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
    sha256: str
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
    if settings.public_key is None:
        raise artifact.ArtifactError("no deploy public key configured on this host: cannot verify signatures")
    manifest = artifact.read_manifest(directory)
    artifact.verify_signature(manifest, settings.public_key)
    artifact.verify_checksum(directory, manifest)
    if update.ref.startswith(STAGING_PREFIX) and update.ref[len(STAGING_PREFIX) :] != manifest.version:
        raise artifact.ArtifactError(f"staging ref names {update.ref} but model.json is {manifest.version}")
    staged = gitcmd.rev_parse(f"{STAGING_PREFIX}{manifest.version}")
    needs_load = not (update.ref in (DEPLOY_REF, SHADOW_REF) and staged == update.new)
    if not needs_load:
        artifact.check_compatible(manifest)  # the child, which would do it, does not run on this path
    return Candidate(update, directory, manifest.version, manifest.sha256, needs_load)


def main(stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr) -> int:
    problems, pending = screen_refs(parse_updates(stdin))
    if not pending:
        return _finish(problems, [], stderr)

    try:
        settings = HookSettings.from_env()
    except SettingsError as exc:
        return _finish([*problems, f"{PREFIX} refused: host misconfigured: {exc}"], [], stderr)

    from githooks import gate
    from model_serving import artifact

    try:
        override = gate.override_reason(settings.push_options)
    except gate.GateError as exc:
        return _finish([*problems, f"{PREFIX} refused: {exc}"], [], stderr)
    gate_inputs, gate_off = _gate_inputs(settings)

    accepted: list[str] = []
    records: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="stargazer-prereceive-") as work:
        candidates: list[Candidate] = []
        for index, update in enumerate(pending):
            directory = Path(work) / str(index)
            directory.mkdir()
            try:
                candidates.append(cheap_checks(update, directory, settings))
            except (artifact.ArtifactError, gitcmd.GitError) as exc:
                problems.append(f"{PREFIX} refused {update.label}: {exc}")

        checked = _load_checks(candidates, settings, gate_inputs if gate_off is None else None)
        served_before = _served_sha256s(settings) if checked and gate_off is None else set()
        for candidate in candidates:
            label = f"{candidate.update.label} model {candidate.version}"
            result = checked.get(id(candidate))
            if result is None:
                accepted.append(f"{PREFIX} accepted {label} on {settings.host_name} (validated at staging)")
                continue
            if not result.ok:
                problems.append(f"{PREFIX} refused {candidate.update.label}: {result.message}")
                continue
            verdict = _gate_verdict(candidate, result.details, settings, (gate_inputs, gate_off),
                                    served_before, override)
            if not verdict.accepted:
                problems.append(f"{PREFIX} refused {candidate.update.label}: {verdict.message}")
                continue
            records[candidate.update.new] = verdict.record
            accepted.append(f"{PREFIX} accepted {label} on {settings.host_name}: {result.message}; "
                            f"{verdict.message}")
    if not problems:
        _keep_gate_records(records)
    return _finish(problems, accepted, stderr)


def screen_refs(updates: list[Update]) -> tuple[list[str], list[Update]]:
    """(one line per refused ref, the updates whose pushed commit must be checked), by ref name alone."""
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
    return problems, pending


def _load_checks(candidates: list[Candidate], settings: HookSettings,
                 gate_inputs: GateInputs | None) -> dict[int, CheckResult]:
    """The sandboxed load-and-predict check (and the gate's scoring) of every candidate that needs one, in
    parallel; keyed by ``id(candidate)``."""
    from githooks.check_model import SANDBOX_SCRIPT, Sandbox, run_check

    to_load = [c for c in candidates if c.needs_load_check]
    if not to_load:
        return {}
    sandbox = Sandbox(
        user=settings.check_user,
        python=settings.check_python,
        app_dir=settings.app_dir,
        memory_mb=settings.check_memory_mb,
        script=settings.check_sandbox or SANDBOX_SCRIPT,
    )
    workers = max(1, min(len(to_load), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(
            lambda c: run_check(c.directory, sandbox=sandbox, timeout=settings.check_timeout,
                                gate_inputs=gate_inputs),
            to_load,
        )
        return dict(zip((id(c) for c in to_load), results, strict=True))


def _gate_verdict(candidate: Candidate, details: dict, settings: HookSettings,
                  gate_state: tuple[GateInputs | None, str | None], served: set[str],
                  override: str | None) -> Verdict:
    """The gate's verdict on a candidate that loaded: its message ends the accepted line, its record is kept.

    ``gate_state`` is ``_gate_inputs``' answer: with a reason the gate is off, and a gate that is configured
    but unusable (its evaluation set fails its sha256) refuses unless overridden.
    """
    from githooks import gate

    gate_inputs, gate_off = gate_state
    if gate_off is None:
        return _judge(candidate, details.get("gate") or {}, settings, served, override)
    if gate_inputs is not None and override is None:
        return gate.Verdict(False, f"quality gate: {gate_off}", {})
    note, record = _without_gate(gate_off, override, gate_inputs is not None)
    return gate.Verdict(True, note, record)


def _keep_gate_records(records: dict[str, dict]) -> None:
    """Each accepted commit's gate record (scores, override reason) for post-receive's deploy log."""
    from githooks import gate

    git_dir = Path(gitcmd.git("rev-parse", "--absolute-git-dir").strip())
    for commit, record in records.items():
        if record:
            gate.write_record(git_dir, commit, record)
        else:
            gate.remove_record(git_dir, commit)


def _gate_inputs(settings: HookSettings) -> tuple[GateInputs | None, str | None]:
    """(what the check needs to score, None) when the gate runs; else (inputs or None, why it does not).

    An eval set that fails its sha256 keeps its inputs in the answer: the caller refuses (unless overridden).
    """
    from githooks import gate
    from githooks.check_model import GateInputs
    from model_serving import releases

    if settings.evalset is None or settings.evalset_sha256 is None:
        return None, "no quality gate (no evaluation set on this host)"
    inputs = GateInputs(settings.evalset, releases.current_release(settings.model_dir))
    try:
        gate.verify_evalset(settings.evalset, settings.evalset_sha256)
    except gate.GateError as exc:
        return inputs, str(exc)
    return inputs, None


def _without_gate(reason: str, override: str | None, configured: bool) -> tuple[str, dict]:
    """The accepted line's note and the record when no scores were computed."""
    if override is None:
        return reason, {}
    note = f"quality gate OVERRIDDEN ({override}): {reason}" if configured else reason
    return note, {"decision": "overridden" if configured else "off", "skipped": reason,
                  "override_reason": override}


def _served_sha256s(settings: HookSettings) -> set[str]:
    """Every model this host has served (its deploy log): pushing one again is a rollback."""
    from model_serving import releases

    try:
        entries = releases.read_deploy_log(settings.model_dir)
    except (OSError, ValueError):
        return set()
    return {str(entry.get("sha256")) for entry in entries if isinstance(entry, dict)}


def _judge(
    candidate: Candidate, reported: dict, settings: HookSettings, served: set[str], override: str | None
) -> Verdict:
    from githooks import gate

    try:
        pushed = gate.Scores.from_json(reported.get("pushed") or {})
        serving = gate.Scores.from_json(reported["serving"]) if reported.get("serving") else None
    except gate.GateError as exc:
        return gate.Verdict(False, f"quality gate: {exc}", {})
    assert settings.evalset is not None
    return gate.decide(
        pushed,
        serving,
        pushed_version=candidate.version,
        serving_version=reported.get("serving_version"),
        serving_error=reported.get("serving_error"),
        evalset=settings.evalset.name,
        margins=settings.gate_margins,
        floors=settings.gate_floors,
        served_before=candidate.sha256 in served,
        override=override,
    )


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
