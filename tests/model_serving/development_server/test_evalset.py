"""``evalset``: the quality gate's frozen evaluation set from a collected CSV minus every training dataset."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from data_collection.dataset import read_dataset, render_csv, write_dataset
from model_serving.development_server.cli import main
from synthetic.dataset import synthetic_dataset


def _rows(frame: object) -> list[dict]:
    return [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in frame.to_dict("records")]


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["evalset", *args], catch_exceptions=False)


@pytest.fixture
def collected(tmp_path: Path) -> Path:
    frame = synthetic_dataset(120, 4)
    frame["full_name"] = [f"org{i % 7}/project-{i}" for i in range(len(frame))]
    frame.loc[3, "full_name"] = "Org3/Project-3"
    write_dataset(_rows(frame), tmp_path / "collected.csv", {"source": "test"})
    return tmp_path / "collected.csv"


@pytest.fixture
def training(tmp_path: Path) -> Path:
    """A training CSV holding 50 of the collected names, in other letter cases (GitHub ignores case)."""
    frame = synthetic_dataset(50, 9)
    frame["full_name"] = [f"ORG{i % 7}/Project-{i}" for i in range(50)]
    write_dataset(_rows(frame), tmp_path / "repos.csv", {"source": "test"})
    return tmp_path / "repos.csv"


def test_every_training_repository_is_excluded_whatever_its_case(
    collected: Path, training: Path, tmp_path: Path
) -> None:
    result = _run("--from", str(collected), "--exclude", str(training), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    [made] = (tmp_path / "out").glob("evalset-*.csv.gz")
    assert re.fullmatch(r"evalset-\d{8}T\d{6}Z-[0-9a-f]{8}\.csv\.gz", made.name)
    summary = f"evaluation set {made}: 70 repositories (120 collected in {collected}, 50 excluded"
    assert summary in result.output
    assert result.output.splitlines()[-1] == f"sha256 {hashlib.sha256(made.read_bytes()).hexdigest()}"

    plain = tmp_path / "evalset.csv"
    plain.write_bytes(gzip.decompress(made.read_bytes()))
    frame = read_dataset(plain, verify_sha256=False)  # the dataset contract, stars known
    assert {n.casefold() for n in frame["full_name"]} == {f"org{i % 7}/project-{i}" for i in range(50, 120)}
    # The rows are the collected ones, byte for byte (same CSV rendering, same order).
    source = collected.read_text().splitlines()
    assert plain.read_text().splitlines() == [source[0], *source[51:]]


def test_the_same_rows_give_the_same_bytes_and_a_sample_is_seeded(
    collected: Path, training: Path, tmp_path: Path
) -> None:
    args = ["--from", str(collected), "--exclude", str(training), "--rows", "30", "--seed", "3"]
    first = _run(*args, "--out", str(tmp_path / "a.csv.gz"))
    second = _run(*args, "--out", str(tmp_path / "b.csv.gz"))
    assert first.exit_code == second.exit_code == 0
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()
    assert first.output.splitlines()[-1] == second.output.splitlines()[-1]
    other = _run(*args[:-1], "4", "--out", str(tmp_path / "c.csv.gz"))
    assert (tmp_path / "c.csv.gz").read_bytes() != (tmp_path / "a.csv.gz").read_bytes()
    assert "30 repositories" in other.output


def test_a_held_out_sample_and_the_rest_to_train_on(collected: Path, tmp_path: Path) -> None:
    rest = tmp_path / "data" / "repos.csv"
    result = _run("--from", str(collected), "--rows", "40", "--rest-out", str(rest), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    [made] = tmp_path.glob("evalset-*.csv.gz")
    held = tmp_path / "held.csv"
    held.write_bytes(gzip.decompress(made.read_bytes()))
    held_names = set(read_dataset(held, verify_sha256=False)["full_name"])
    train_names = set(read_dataset(rest)["full_name"])  # with its meta file: a dataset training accepts
    assert len(held_names) == 40 and len(train_names) == 80 and not held_names & train_names


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda p, c: ["--from", str(c)], "give --exclude <training dataset>"),
        (lambda p, c: ["--from", str(c), "--exclude", str(c)], "only 0 of its 120 repositories"),
        (lambda p, c: ["--from", str(p / "nope.csv"), "--exclude", str(c)], "cannot read dataset"),
        (lambda p, c: ["--from", str(c), "--exclude", str(p / "nope.csv")], "training dataset not found"),
        (lambda p, c: ["--from", str(c), "--exclude", str(p / "names.csv")], "no 'full_name' column"),
        (lambda p, c: ["--from", str(c), "--rest-out", str(c)], "would overwrite --from"),
    ],
)
def test_bad_input_is_one_line(make_args, expected: str, collected: Path, tmp_path: Path) -> None:
    (tmp_path / "names.csv").write_text("name\nx/y\n")
    result = _run(*make_args(tmp_path, collected))
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and expected in line, line


def test_a_gzipped_snapshot_is_a_training_dataset_too(collected: Path, tmp_path: Path) -> None:
    frame = read_dataset(collected)
    snapshot = tmp_path / "dataset.csv.gz"  # as a model version ships its training data
    snapshot.write_bytes(gzip.compress(render_csv(_rows(frame.head(100).astype(object)))))
    result = _run("--from", str(collected), "--exclude", str(snapshot), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "20 repositories (120 collected" in result.output
