"""Shadow runs of the deploy command: ``--shadow``, ``--shadow-requests``, ``--promote``, ``--shadow-stop``.

A shadow run (docs/deploy.md "Shadow scoring"):
1. phase 1 exactly as a deploy: ``refs/staging/<version>`` to every host, every check, nothing switched; one
   refusal and nothing is set anywhere;
2. ``refs/stargazer/shadow`` to every host: post-receive installs the release and points ``shadow`` at it
   (never ``current``); each host's ``ls-remote`` must then show that commit;
3. wait (MINUTES, or until N requests were scored by both models on all hosts together), printing progress;
4. print every host's report. The shadow stays set until ``--promote`` (phase 2 of a deploy of the same
   commit, cheap because it is staged; post-receive drops the shadow with the switch) or ``--shadow-stop``.

How reports reach this command: a push of ``refs/stargazer/shadow-report`` at the shadow's commit, whose
post-receive prints the host's report as one ``stargazer: shadow-report {json}`` line and deletes the ref
(``githooks/postreceive.py`` says why this channel: the deploy key can run nothing but git, and nothing new
is granted to it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import click

from githooks.contract import SHADOW_REF, SHADOW_REPORT_LINE, SHADOW_REPORT_REF, STAGING_PREFIX
from model_serving.development_server.deploy import (
    DeployError,
    DeployRepo,
    _report,
    deploy,
    push,
    push_all,
    serving_commit,
    stage,
)
from model_serving.production_server import shadow_report

#: ``--shadow-requests`` alone waits at most this long for its count.
REQUESTS_ONLY_MAX_MINUTES: Final = 60.0


@dataclass(frozen=True)
class Plan:
    """What the shadow options asked for (validated together, one line per mistake)."""

    minutes: float | None = None
    requests: int | None = None
    promote: bool = False
    thresholds: dict[str, float] | None = None
    stop: bool = False
    poll: float = 15.0

    @property
    def shadowing(self) -> bool:
        return self.minutes is not None or self.requests is not None

    @classmethod
    def from_options(cls, *, minutes: float | None, requests: int | None, promote: bool, within: str | None,
                     stop: bool, poll: float, rollback: bool, target: str | None) -> Plan:
        shadowing = minutes is not None or requests is not None
        modes = [name for name, on in (("--shadow", shadowing), ("--promote", promote),
                                       ("--shadow-stop", stop), ("--rollback", rollback)) if on]
        if len(modes) > 1:
            raise DeployError(f"{' and '.join(modes)} cannot be combined")
        if within is not None and not promote:
            raise DeployError("--if-shadow-within needs --promote")
        if (promote or stop) and target:
            raise DeployError(f"{modes[0]} acts on the version the hosts shadow: give no version")
        thresholds = None
        if within is not None:
            try:
                thresholds = shadow_report.parse_thresholds(within)
            except shadow_report.ThresholdError as exc:
                raise DeployError(f"--if-shadow-within: {exc}") from None
        return cls(minutes, requests, promote, thresholds, stop, poll)


def run(repo: DeployRepo, plan: Plan, *, commit: str, version: str, remotes: Sequence[str], timeout: float,
        actor: str) -> None:
    """Stage and shadow ``commit`` everywhere, wait, print the reports; raises DeployError on failure."""
    stage(repo, commit=commit, version=version, remotes=remotes, timeout=timeout, actor=actor,
          phase="shadow 1/2: validate on every host (push refs/staging/<version>)", outcome="no shadow set")
    answers = push_all(repo, remotes, [f"+{commit}:{SHADOW_REF}"], timeout=timeout, actor=actor)
    for answer, shadowed in zip(answers, _remote_refs(repo, remotes, SHADOW_REF, timeout), strict=True):
        if answer.ok and shadowed != commit:
            answer.ok = False
            answer.lines.append(f"shadow not set: {SHADOW_REF} is {shadowed[:10] if shadowed else 'absent'}")
    _report("shadow 2/2: score beside the served model on every host (push refs/stargazer/shadow)", answers)
    failed = [a.remote for a in answers if not a.ok]
    if failed:
        done = [a.remote for a in answers if a.ok]
        if done:
            push_all(repo, done, [f":{SHADOW_REF}"], timeout=timeout, actor=actor)
        raise DeployError(f"no shadow set: {', '.join(failed)} did not set {version} as shadow"
                          + (f" (shadow removed from {', '.join(done)})" if done else ""))
    reports = _wait(repo, plan, commit=commit, remotes=remotes, timeout=timeout, actor=actor)
    click.echo(f"shadow report of {version}:")
    _print_reports(reports)
    total = sum(r["requests"] for r in reports.values() if isinstance(r, dict))
    if plan.requests is not None and total < plan.requests:
        raise DeployError(f"only {total} of {plan.requests} requests were scored by both models in time; "
                          "the shadow stays set: --promote, --shadow-stop, or shadow again")
    click.echo("the shadow stays set: deploy --promote [--if-shadow-within NAME=VALUE,...] switches to it, "
               "deploy --shadow-stop ends it")


def _wait(repo: DeployRepo, plan: Plan, *, commit: str, remotes: Sequence[str], timeout: float,
          actor: str) -> dict[str, dict[str, Any] | str]:
    """Poll the hosts' reports every ``plan.poll`` seconds until the time or the request count is reached."""
    limit = 60 * (plan.minutes if plan.minutes is not None else REQUESTS_ONLY_MAX_MINUTES)
    started = time.monotonic()
    goal = f"/{plan.requests}" if plan.requests is not None else ""
    while True:
        elapsed = time.monotonic() - started
        time.sleep(max(0.0, min(plan.poll, limit - elapsed)))
        reports = collect_reports(repo, remotes, commit, timeout=timeout, actor=actor)
        counts = {r: (v["requests"] if isinstance(v, dict) else None) for r, v in reports.items()}
        total = sum(c for c in counts.values() if c is not None)
        errors = sum(v["errors"] for v in reports.values() if isinstance(v, dict))
        per_host = ", ".join(f"{r} {c if c is not None else 'no report'}" for r, c in counts.items())
        elapsed = time.monotonic() - started
        click.echo(f"  {elapsed / 60:.1f} of {limit / 60:g} min: {total}{goal} request(s) scored by both "
                   f"models ({per_host}); {errors} shadow error(s)")
        if (plan.requests is not None and total >= plan.requests) or elapsed >= limit:
            return reports


def collect_reports(repo: DeployRepo, remotes: Sequence[str], commit: str, *, timeout: float,
                    actor: str) -> dict[str, dict[str, Any] | str]:
    """Every host's shadow report (a dict), or one line saying why there is none."""
    with ThreadPoolExecutor(max_workers=max(1, len(remotes))) as pool:
        found = list(pool.map(lambda r: _report_of(repo, r, commit, timeout=timeout, actor=actor), remotes))
    return dict(zip(remotes, found, strict=True))


def _report_of(
    repo: DeployRepo, remote: str, commit: str, *, timeout: float, actor: str
) -> dict[str, Any] | str:
    for attempt in range(2):
        answer = push(repo, remote, [f"+{commit}:{SHADOW_REPORT_REF}"], timeout=timeout, actor=actor)
        for line in answer.lines:
            if line.startswith(SHADOW_REPORT_LINE):
                try:
                    return dict(json.loads(line[len(SHADOW_REPORT_LINE):]))
                except ValueError:
                    return f"unreadable report: {line[:120]}"
        if not answer.ok or attempt:
            return answer.summary()
        # No hook ran: a request ref left behind (a hook killed mid-way) made the push "up to date".
        push(repo, remote, [f":{SHADOW_REPORT_REF}"], timeout=timeout, actor=actor)
    return "no report"


def _print_reports(reports: dict[str, dict[str, Any] | str]) -> None:
    for remote, report in reports.items():
        lines = shadow_report.describe(report) if isinstance(report, dict) else [f"no report: {report}"]
        click.echo(f"  {remote}: {lines[0]}")
        for line in lines[1:]:
            click.echo(f"    {line}")


def _remote_refs(repo: DeployRepo, remotes: Sequence[str], ref: str, timeout: float) -> list[str | None]:
    with ThreadPoolExecutor(max_workers=max(1, len(remotes))) as pool:
        return list(pool.map(lambda r: serving_commit(repo, r, timeout=timeout, ref=ref), remotes))


def promote_or_stop(
    repo: DeployRepo, plan: Plan, *, remotes: Sequence[str], timeout: float, actor: str
) -> None:
    """``--promote`` (optionally only within thresholds) or ``--shadow-stop`` on every host."""
    shadows = dict(zip(remotes, _remote_refs(repo, remotes, SHADOW_REF, timeout), strict=True))
    if plan.stop:
        having = [r for r, c in shadows.items() if c]
        if not having:
            click.echo("no host has a shadow: nothing to stop")
            return
        answers = push_all(repo, having, [f":{SHADOW_REF}"], timeout=timeout, actor=actor)
        _report("stop shadow scoring (delete refs/stargazer/shadow)", answers)
        failed = [a.remote for a in answers if not a.ok]
        if failed:
            raise DeployError(f"shadow NOT stopped on {', '.join(failed)}")
        return
    missing = [r for r, c in shadows.items() if c is None]
    if missing:
        raise DeployError(f"nothing to promote: no shadow on {', '.join(missing)} (deploy --shadow first)")
    commits = set(shadows.values())
    if len(commits) > 1:
        described = ", ".join(f"{r} {c[:10] if c else '-'}" for r, c in shadows.items())
        raise DeployError(f"the hosts shadow different commits ({described}): shadow one version again")
    commit = str(next(iter(commits)))
    if repo.resolve(commit) is None:
        raise DeployError(f"the shadowed commit {commit[:10]} is not in {repo.path}: promote from the "
                          "deploy repository that shadowed it")
    version = repo.version_of(commit)
    if plan.thresholds:
        reports = collect_reports(repo, remotes, commit, timeout=timeout, actor=actor)
        click.echo(f"shadow report of {version}:")
        _print_reports(reports)
        failures = []
        for remote, report in reports.items():
            if isinstance(report, str):
                failures.append(f"{remote}: no report ({report})")
                continue
            failures += [f"{remote}: {line}" for line in shadow_report.check(report, plan.thresholds)]
        if failures:
            raise DeployError(f"not promoted: the shadow of {version} is not within the thresholds: "
                              f"{'; '.join(failures)} (the shadow stays set; --shadow-stop ends it)")
        within = ", ".join(f"{k}={v:g}" for k, v in plan.thresholds.items())
        click.echo(f"within {within} on every host")
    click.echo(f"promote {version} (commit {commit[:10]}) on {', '.join(remotes)}")
    deploy(repo, commit=commit, version=version, remotes=remotes, timeout=timeout, actor=actor)
    if len(remotes) == 1:  # a one-host deploy pushes no staging ref of its own: remove the shadow run's
        push_all(repo, remotes, [f":{STAGING_PREFIX}{version}"], timeout=timeout, actor=actor)
