"""Command line: ``train`` (the whole run), ``screen`` and ``tune`` alone, ``deploy`` and ``rollback``.

    python -m model_serving.development_server train --data data/repos.csv --trials 50 --out models/

Progress goes to the terminal (tqdm for screening, Ray Tune's own table for tuning); the last lines of
``train`` are the artifact path and the held-out metrics. Bad data ends with one line and exit status 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from model_serving.development_server import protocol, screening, train, tuning
from model_serving.development_server.data import TrainingDataError


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--data",
            "data",
            type=click.Path(path_type=Path),
            required=True,
            help="Dataset CSV (docs/contracts.md §1).",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seeds the held-out split, the folds, the search and every forest.",
        ),
        click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True),
        click.option(
            "--test-size",
            type=click.FloatRange(0.05, 0.5),
            default=0.2,
            show_default=True,
            help="Share of rows held out before screening and tuning.",
        ),
        click.option(
            "--num-cpus",
            type=click.IntRange(1),
            default=None,
            help="CPUs of a private local Ray cluster (ignored when RAY_ADDRESS is set).",
        ),
        click.option(
            "--min-nodes",
            type=click.IntRange(1),
            default=1,
            show_default=True,
            help="Wait (up to 120 s) until this many Ray nodes are alive before starting.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _tuning_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--trials", type=click.IntRange(1), default=50, show_default=True, help="Ray Tune num_samples."
        ),
        click.option("--cpus-per-trial", type=click.FloatRange(0.1), default=1, show_default=True),
        click.option(
            "--max-concurrent",
            type=click.IntRange(1),
            default=None,
            help="max_concurrent_trials (1 makes tuning reproducible).",
        ),
        click.option("--search", type=click.Choice(tuning.SEARCHES), default="optuna", show_default=True),
        click.option(
            "--reuse-actors/--no-reuse-actors",
            default=True,
            show_default=True,
            help="Run successive trials in the same Ray actor (saves a process start per trial).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _fail(exc: Exception) -> NoReturn:
    raise click.ClickException(str(exc)) from None


def _check_writable(out: Path) -> None:
    """Refuse an unusable --out in one line BEFORE minutes of screening and tuning, not after them (creates
    nothing: the directory appears only with results)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise click.ClickException(f"{out}: cannot write results there ({existing} is not a directory)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise click.ClickException(f"{out}: cannot write results there ({existing} is not writable)")


@click.group()
def main() -> None:
    """stargazer development server: screening, Ray Tune tuning and versioned model artifacts."""


@main.command("train")
@_common
@_tuning_options
@click.option("--out", type=click.Path(path_type=Path), default=Path("models"), show_default=True)
@click.option("--skip-screening", is_flag=True, help="Go straight to tuning.")
def train_command(data: Path, out: Path, **kwargs: Any) -> None:
    """Screen, tune, fit, evaluate once on the held-out part and write models/<version>/."""
    options = train.RunOptions(data=data, out=out, **kwargs)
    _check_writable(out)
    try:
        train.train(options, echo=click.echo)
    except TrainingDataError as exc:
        _fail(exc)


def _prepare(options: train.RunOptions) -> protocol.Prepared:
    """The training part of --data, after --out is known to be writable; bad data is one line."""
    _check_writable(options.out)
    try:
        _, prepared = train.load(options, click.echo)
    except TrainingDataError as exc:
        _fail(exc)
    return prepared


@main.command("screen")
@_common
@click.option("--out", type=click.Path(path_type=Path), default=Path("var/screening"), show_default=True)
def screen_command(data: Path, out: Path, **kwargs: Any) -> None:
    """Screening alone (training part only): screening.{csv,md,png} in --out."""
    options = train.RunOptions(data=data, out=out, **kwargs)
    prepared = _prepare(options)
    with train.cluster_session(options, click.echo):
        table = screening.run_screening(prepared, seed=options.seed)
    csv_path = train.write_screening(table, out)
    click.echo(screening.markdown_table(table))
    click.echo(f"screening table: {csv_path}")


@main.command("tune")
@_common
@_tuning_options
@click.option("--out", type=click.Path(path_type=Path), default=Path("var/tuning"), show_default=True)
def tune_command(data: Path, out: Path, **kwargs: Any) -> None:
    """Ray Tune alone (training part only): trials.csv and tuning.png in --out, best params printed."""
    options = train.RunOptions(data=data, out=out, **kwargs)
    prepared = _prepare(options)
    with train.cluster_session(options, click.echo):
        tuned = train.tune(prepared, options)
    csv_path = train.write_trials(tuned, out)
    for message in tuned.errors:
        click.echo(f"a trial failed (reported, not fatal): {message}")
    click.echo(
        f"trials: {csv_path} ({len(tuned.trials)} trials, {tuned.wall_seconds:.1f} s, "
        f"nodes {', '.join(tuned.nodes_used)})"
    )
    click.echo(f"best CV: {json.dumps(tuned.best_cv)}")
    click.echo(f"best params: {json.dumps(tuned.best_params)}")


def _register_deploy() -> None:
    """``deploy`` and ``rollback`` live in deploy.py (git and signing code the training path never needs)."""
    from model_serving.development_server.deploy import deploy_command, rollback_command

    main.add_command(deploy_command, "deploy")
    main.add_command(rollback_command, "rollback")
    from model_serving.development_server.evalset import evalset_command  # the quality gate's eval set

    main.add_command(evalset_command, "evalset")
    from model_serving.development_server.keygen import keygen_command  # the deploy signing key pair

    main.add_command(keygen_command, "keygen")


_register_deploy()
