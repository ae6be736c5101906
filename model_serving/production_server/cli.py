"""``python -m model_serving.production_server drift``: the drift report on a production host's shell.

It reads what the web app reads (``STARGAZER_MODEL_DIR``, ``STARGAZER_PREDICTION_LOG``, the deploy public key,
via ``settings.ReportSettings``); options override them. ``--check`` makes the exit status say it for cron or
a monitor: 3 when the report says RETRAIN.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from model_serving.production_server import drift
from model_serving.production_server.settings import ReportSettings, SettingsError

RETRAIN_EXIT_CODE = 3


@click.group()
def main() -> None:
    """Production-host reports."""


@main.command("drift")
@click.option("--model-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Releases and current (default: STARGAZER_MODEL_DIR).")
@click.option("--prediction-log", type=click.Path(path_type=Path, dir_okay=False),
              help="The prediction log; its rotated files .1, .2 ... are read too (default: "
                   "STARGAZER_PREDICTION_LOG).")
@click.option("--max-requests", type=click.IntRange(min=1), default=drift.DEFAULT_MAX_REQUESTS,
              show_default=True, help="Compare the newest N logged requests.")
@click.option("--min-requests", type=click.IntRange(min=1), default=drift.DEFAULT_MIN_REQUESTS,
              show_default=True, help="Fewer requests than this give no verdict.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the PNG of the most drifted features here.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the API's shape).")
@click.option("--check", is_flag=True, help=f"Exit {RETRAIN_EXIT_CODE} when the verdict is RETRAIN.")
def drift_command(model_dir: Path | None, prediction_log: Path | None, max_requests: int, min_requests: int,
                  plot: Path | None, as_json: bool, check: bool) -> None:
    """Compare live requests with the serving model's training data (PSI per feature, KS beside it)."""
    try:
        settings = ReportSettings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        report = drift.report(model_dir or settings.model_dir, prediction_log or settings.prediction_log,
                              settings.deploy_public_key, require_signature=settings.require_signature,
                              max_requests=max_requests, min_requests=min_requests)
    except drift.DriftError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.to_text())
    if plot is not None:
        from model_serving.production_server.drift_plot import drift_png

        try:
            plot.write_bytes(drift_png(report))
        except OSError as exc:
            raise click.ClickException(f"cannot write the plot {plot}: {exc.strerror}") from None
        click.echo(f"plot: {plot}", err=True)
    if check and report.verdict == "retrain":
        raise SystemExit(RETRAIN_EXIT_CODE)
