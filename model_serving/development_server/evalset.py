"""``evalset``: build the frozen evaluation set of the quality gate from a collected CSV (docs/deploy.md).

    python -m model_serving.development_server evalset --from var/collected.csv --exclude data/repos.csv \\
        --out var/evalset/
    # -> var/evalset/evalset-20261206T101500Z-3f2a9c1d.csv.gz, its sha256 on the last line

The evaluation set must be genuine repositories with known stars that NO model was trained on: every
repository of every ``--exclude`` dataset (a training CSV, or a model's ``dataset.csv.gz`` snapshot) is
removed, names compared case-insensitively (GitHub treats ``Owner/Repo`` and ``owner/repo`` as one). Rows are
copied as collected (the dataset columns of docs/data_collection.md, validated by the dataset's own reader),
optionally a seeded sample of ``--rows`` of them, gzipped with a zero mtime so the same rows always give the
same bytes and sha256.

The file name carries its version (``evalset-<UTC time>-<first 8 hex of the CSV's sha256>.csv.gz``): hosts
keep it under that name and the deploy log names it next to every score. The printed sha256 is the one the
githooks role (``githooks_evalset_file``) records in the host's ``stargazer.evalsetsha256``.

``--rest-out`` (the demo's "held out from collection"): also write the collected rows NOT in the evaluation
set as a dataset file (with its meta), to train on. Then the evaluation set is a random sample of the same
collection, not a different population, and never seen by training.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np

from data_collection.dataset import DatasetError, atomic_write_bytes, read_dataset, render_csv, write_dataset
from data_collection.schema import KEY_COLUMN
from githooks.gate import MIN_ROWS

PREFIX = "evalset-"
SUFFIX = ".csv.gz"


class EvalsetError(click.ClickException):
    """One line, exit code 1."""


def excluded_names(path: Path) -> set[str]:
    """Every repository name (case-folded) of a training dataset: CSV or gzipped CSV with ``full_name``."""
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except FileNotFoundError:
        raise EvalsetError(f"{path}: training dataset not found") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise EvalsetError(f"{path}: cannot read the training dataset ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or KEY_COLUMN not in reader.fieldnames:
        raise EvalsetError(f"{path}: no {KEY_COLUMN!r} column: cannot tell which repositories it holds")
    try:
        return {row[KEY_COLUMN].casefold() for row in reader if row.get(KEY_COLUMN)}
    except csv.Error as exc:
        raise EvalsetError(f"{path}: malformed CSV ({exc})") from None


def collected_rows(path: Path) -> list[dict[str, str]]:
    """The collected CSV's rows as written (strings), once the dataset contract's reader accepted it."""
    try:
        read_dataset(path)
    except DatasetError as exc:
        raise EvalsetError(str(exc)) from None
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def build(
    source: Path, excludes: list[Path], out: Path, *, rows: int | None, seed: int, rest_out: Path | None
) -> tuple[Path, str, dict[str, int]]:
    """Write the evaluation set; returns (its path, its sha256, counts for the summary)."""
    collected = collected_rows(source)
    training: set[str] = set()
    for path in excludes:
        training |= excluded_names(path)
    unseen = [row for row in collected if row[KEY_COLUMN].casefold() not in training]
    if rows is not None and rows < len(unseen):
        chosen = np.sort(np.random.default_rng(seed).choice(len(unseen), size=rows, replace=False))
        picked = [unseen[i] for i in chosen]
    else:
        picked = unseen
    if len(picked) < MIN_ROWS:
        raise EvalsetError(
            f"{source}: only {len(picked)} of its {len(collected)} repositories are in no training dataset; "
            f"an evaluation set needs at least {MIN_ROWS} (collect more, or exclude less)"
        )
    data = render_csv(picked)
    digest8 = hashlib.sha256(data).hexdigest()[:8]
    name = f"{PREFIX}{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{digest8}{SUFFIX}"
    target = out / name if out.suffix != ".gz" else out
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as stream:
        stream.write(data)
    atomic_write_bytes(target, packed.getvalue())
    if rest_out is not None:
        held_out = {row[KEY_COLUMN].casefold() for row in picked}
        rest = [row for row in collected if row[KEY_COLUMN].casefold() not in held_out]
        write_dataset(rest, rest_out, {"source": str(source), "held_out_for": target.name})
    counts = {"collected": len(collected), "excluded": len(collected) - len(unseen), "rows": len(picked)}
    return target, hashlib.sha256(packed.getvalue()).hexdigest(), counts


@click.command()
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="A collected dataset CSV (docs/data_collection.md columns, stars known).",
)
@click.option(
    "--exclude",
    "excludes",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="A training dataset (CSV or dataset.csv.gz) whose repositories must not be in the set (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("var/evalset"),
    show_default=True,
    help="Directory for evalset-<version>.csv.gz (or a file name ending in .csv.gz).",
)
@click.option(
    "--rows", type=click.IntRange(min=MIN_ROWS), default=None, help="Sample this many (default: all)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the --rows sample.")
@click.option(
    "--rest-out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the collected rows NOT in the set, as a training dataset (held out from collection).",
)
def evalset_command(
    source: Path, excludes: tuple[Path, ...], out: Path, rows: int | None, seed: int, rest_out: Path | None
) -> None:
    """The quality gate's frozen evaluation set: --from minus every training dataset; prints its sha256."""
    if not excludes and rest_out is None:
        raise EvalsetError(
            "give --exclude <training dataset> (or --rest-out to hold the set out of this collection): "
            "an evaluation set must contain no repository a model was trained on"
        )
    if rest_out is not None and rest_out.resolve() == source.resolve():
        raise EvalsetError(f"--rest-out {rest_out} would overwrite --from {source}")
    target, sha256, counts = build(source, list(excludes), out, rows=rows, seed=seed, rest_out=rest_out)
    click.echo(
        f"evaluation set {target}: {counts['rows']} repositories ({counts['collected']} collected in "
        f"{source}, {counts['excluded']} excluded as training data)"
    )
    if rest_out is not None:
        click.echo(f"training dataset without them: {rest_out}")
    click.echo(f"sha256 {sha256}")
