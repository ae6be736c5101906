"""`python -m data_collection.simulator`: run the GitHub simulator on a port until interrupted."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from data_collection.simulator.config import SimulatorConfig
from data_collection.simulator.pages import PagesError
from data_collection.simulator.server import SimulatorServer


def _tokens(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    tokens = tuple(t.strip() for t in value.split(",") if t.strip())
    if not tokens:
        raise click.BadParameter("no token in the list")
    return tokens


def _tokens_file(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """Tokens from a file (comma- or line-separated): a command line is readable by every local user."""
    if not value:
        return ()
    try:
        text = Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {value}: {exc.strerror}") from None
    return _tokens(ctx, param, text.replace("\n", ","))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to bind; 0 picks a free one (printed at start).")
@click.option("--repos", type=click.IntRange(0), default=5000, show_default=True,
              help="Repositories to generate.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the generator and of the faults.")
@click.option("--min-stars", type=click.IntRange(0), default=50, show_default=True,
              help="Fewest stars of a generated repository.")
@click.option("--star-alpha", type=click.FloatRange(min=0, min_open=True), default=1.1, show_default=True,
              help="Tail exponent of the star distribution.")
@click.option("--pages", multiple=True, type=click.Path(),
              help="Genuine search API JSON page, or a directory of them, to serve instead of generated "
                   "repositories (repeatable).")
@click.option("--tokens", callback=_tokens,
              help="Comma-separated tokens the simulator accepts (tests; a fleet uses --tokens-file).")
@click.option("--tokens-file", callback=_tokens_file, type=click.Path(dir_okay=False),
              help="File of the tokens the simulator accepts, comma- or line-separated.")
@click.option("--quota-core", type=click.IntRange(0), default=5000, show_default=True)
@click.option("--quota-search", type=click.IntRange(0), default=30, show_default=True)
@click.option("--time-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Speed of simulated time: 3600 turns the hourly window into one second.")
@click.option("--reset-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Length of every rate-limit window in real seconds (overrides --time-scale).")
@click.option("--exhausted-status", type=click.Choice(["403", "429"]), default="403", show_default=True)
@click.option("--error-rate-502", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--error-rate-503", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--slow-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--slow-seconds", type=click.FloatRange(0), default=0.5, show_default=True)
@click.option("--secondary-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--secondary-retry-after", type=click.IntRange(0), default=1, show_default=True)
@click.option("--incomplete-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--too-large-commits", type=click.IntRange(1), default=50_000, show_default=True,
              help="Contributors answer 403 'too large' for repositories with at least this many commits.")
@click.option("--graphql/--no-graphql", default=True, show_default=True,
              help="Answer POST /graphql (a subset); without it /graphql is a 404.")
@click.option("--secondary-status", type=click.Choice(["403", "429"]), default="403", show_default=True)
@click.option("--max-concurrent", type=click.IntRange(0), default=100, show_default=True,
              help="Requests one caller may have in flight before the secondary limit trips (0 = no limit).")
@click.option("--control/--no-control", default=False, show_default=True,
              help="Serve GET /_simulator/stats and POST /_simulator/control (runtime faults, stats).")
@click.option("--access-log/--no-access-log", default=False, help="Log request lines (never headers).")
def main(**opts: Any) -> None:
    """A GitHub REST API simulator (search, repos, counts, users, rate limits, faults) on HOST:PORT."""
    config = SimulatorConfig(
        host=opts["host"], port=opts["port"], repos=opts["repos"], seed=opts["seed"],
        min_stars=opts["min_stars"], star_alpha=opts["star_alpha"], pages=tuple(opts["pages"]),
        tokens=opts["tokens"] + opts["tokens_file"], quota_core=opts["quota_core"],
        quota_search=opts["quota_search"],
        time_scale=opts["time_scale"], reset_seconds=opts["reset_seconds"],
        exhausted_status=int(opts["exhausted_status"]), error_rate_502=opts["error_rate_502"],
        error_rate_503=opts["error_rate_503"], slow_rate=opts["slow_rate"], slow_seconds=opts["slow_seconds"],
        secondary_rate=opts["secondary_rate"], secondary_retry_after=opts["secondary_retry_after"],
        incomplete_rate=opts["incomplete_rate"], contributors_too_large_commits=opts["too_large_commits"],
        access_log=opts["access_log"], graphql=opts["graphql"], control=opts["control"],
        secondary_status=int(opts["secondary_status"]), max_concurrent=opts["max_concurrent"],
    )
    try:
        sim = SimulatorServer(config)
    except (ValueError, PagesError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        sim.bind()
    except OSError as exc:
        reason = exc.strerror or exc
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {reason}") from exc
    signal.signal(signal.SIGTERM, _interrupt)  # kill PID ends serving cleanly, like Ctrl-C
    info = sim.describe()
    click.echo(f"GitHub simulator on {sim.url}: {info['repositories']} repositories "
               f"(built in {info['build_seconds']} s), {len(config.tokens)} token(s)", err=True)
    click.echo(json.dumps({"url": sim.url, "repositories": info["repositories"]}), err=False)
    sys.stdout.flush()
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
