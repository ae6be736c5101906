"""`python -m data_collection collect ...`: the command line of the collection.

Fatal errors (bad flags, unreachable API, unwritable output, rejected tokens, bounded retries spent) end with
ONE line on stderr and a non-zero exit code; nothing already fetched is lost (the journal stays for --resume).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path

import click

from data_collection.checkpoint import CheckpointError
from data_collection.client import GitHubError
from data_collection.collector import CollectOptions, OutputError, collect
from data_collection.dataset import DatasetError
from data_collection.search import SearchError
from data_collection.settings import Settings, SettingsError
from data_collection.tokens import NoUsableTokenError

#: Errors that are the user's or GitHub's, not bugs: reported as one line.
FATAL = (GitHubError, SettingsError, OutputError, CheckpointError, SearchError, NoUsableTokenError,
         DatasetError, OSError, sqlite3.Error)


@click.group()
def cli() -> None:
    """Collect GitHub repositories into the stargazer dataset (see docs/data_collection.md)."""


@cli.command("collect")
@click.option("--min-stars", type=click.IntRange(min=0), default=50, show_default=True,
              help="Collect repositories with at least this many stars.")
@click.option("--max-repos", type=click.IntRange(min=1), default=None,
              help="Keep the N most-starred (ties by id); the same N on every run and resume.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Dataset CSV to write (with <out>.meta.json next to it).")
@click.option("--resume", is_flag=True, help="Continue from <out>.checkpoint.sqlite, not from scratch.")
@click.option("--no-enrich", is_flag=True, help="Search fields only; enrichment columns stay empty.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Enrichment threads sharing the token pool.")
@click.option("--query-extra", default="", help='Extra search qualifiers, e.g. "language:python".')
@click.option("--graphql/--no-graphql", default=True, show_default=True,
              help="Batch subscribers/commits/releases/followers through GraphQL when the API has it.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a tty).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors in the log.")
def collect_command(min_stars: int, max_repos: int | None, out: Path, resume: bool, no_enrich: bool,
                    workers: int, query_extra: str, graphql: bool, progress: bool | None,
                    quiet: bool) -> None:
    """Search (past the 1000-result cap), enrich, and write the dataset atomically."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("data_collection").setLevel(logging.WARNING if quiet else logging.INFO)
    settings = Settings.from_env()
    meta = collect(CollectOptions(out=out, min_stars=min_stars, max_repos=max_repos, query_extra=query_extra,
                                  enrich=not no_enrich, workers=workers, resume=resume,
                                  graphql=None if graphql else False, show_progress=progress), settings)
    click.echo(f"{out}: {meta['rows']} repositories, {len(meta['slices'])} search slices, "
               f"api calls {meta['api_calls']}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: every failure becomes `error: <one line>` on stderr and a non-zero exit code."""
    try:
        result = cli.main(args=argv, prog_name="python -m data_collection", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message(), err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: interrupted; run again with --resume to continue", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("error: interrupted; run again with --resume to continue", err=True)
        return 130
    except FATAL as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        click.echo(f"error: {message}", err=True)
        return 1
    return result if isinstance(result, int) else 0
