"""The gate's decision rules (margins, floors, override, rollback) and the pieces the hook process runs."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from githooks import gate
from githooks.settings import DEFAULT_GATE_FLOORS, DEFAULT_GATE_MARGINS, HookSettings, SettingsError
from tests.support import DEPLOY_KEYS

SERVING = gate.Scores(spearman=0.70, mae_log=0.90, coverage=0.80, rows=300)
MARGINS = {"spearman": 0.05, "mae_log": 0.05, "coverage": 0.10}
FLOORS = {"spearman": 0.3, "mae_log": 1.5, "coverage": 0.5}


def _decide(pushed: gate.Scores, serving: gate.Scores | None = SERVING, **kwargs: object) -> gate.Verdict:
    options: dict = {"pushed_version": "V2", "serving_version": "V1", "evalset": "evalset-x.csv.gz",
                     "margins": MARGINS, "floors": FLOORS, "served_before": False, "override": None}
    options.update(kwargs)
    return gate.decide(pushed, serving, **options)


@pytest.mark.parametrize(
    ("pushed", "worse"),
    [
        (gate.Scores(0.66, 0.94, 0.71, 300), []),  # a little worse everywhere: within every margin
        (gate.Scores(0.64, 0.90, 0.80, 300), ["Spearman"]),
        (gate.Scores(0.70, 0.96, 0.80, 300), ["MAE log1p(stars)"]),  # a HIGHER error is worse
        (gate.Scores(0.70, 0.90, 0.69, 300), ["p10-p90 coverage"]),
        (gate.Scores(0.90, 0.50, 0.95, 300), []),  # better everywhere
    ],
)
def test_a_model_worse_by_more_than_a_margin_is_refused_naming_the_metric(
    pushed: gate.Scores, worse: list[str]
) -> None:
    verdict = _decide(pushed)
    assert verdict.accepted is not worse
    for label in worse:
        assert f"{label} " in verdict.message and "(worse by more than" in verdict.message
    assert verdict.message.count("worse by more than") == len(worse)
    assert "\n" not in verdict.message
    assert verdict.record["decision"] == ("refused" if worse else "passed")
    assert verdict.record["serving"] == SERVING.to_json() and verdict.record["pushed"] == pushed.to_json()


def test_the_refusal_names_both_models_and_all_their_numbers() -> None:
    verdict = _decide(gate.Scores(0.123456, 1.5, 0.4, 300))
    assert not verdict.accepted
    assert verdict.message.startswith(
        "quality gate: worse than the serving model: pushed V2 vs serving V1 on evalset-x.csv.gz (300 "
        "repositories): Spearman 0.123 vs 0.700 (worse by more than 0.05); MAE log1p(stars) 1.500 vs 0.900 "
        "(worse by more than 0.05); p10-p90 coverage 0.400 vs 0.800 (worse by more than 0.1); "
    )
    assert verdict.message.endswith("git push -o stargazer.override-gate='<reason>' (deploy --override-gate)")


def test_an_override_accepts_and_is_recorded() -> None:
    verdict = _decide(gate.Scores(0.1, 0.9, 0.8, 300), override="hotfix")
    assert verdict.accepted and verdict.message.startswith("quality gate OVERRIDDEN (hotfix): quality gate:")
    assert verdict.record["decision"] == "overridden" and verdict.record["override_reason"] == "hotfix"
    fields = gate.log_fields(verdict.record)
    assert fields["override_reason"] == "hotfix" and "override_reason" not in fields["gate"]


def test_a_version_served_before_is_a_rollback_and_passes() -> None:
    verdict = _decide(gate.Scores(0.1, 0.9, 0.8, 300), served_before=True)
    assert verdict.accepted and verdict.record["decision"] == "served-before"


@pytest.mark.parametrize(
    ("pushed", "missed"),
    [
        (gate.Scores(0.31, 1.49, 0.51, 50), []),
        (gate.Scores(0.29, 1.0, 0.9, 50), ["Spearman"]),
        (gate.Scores(0.9, 1.51, 0.9, 50), ["MAE log1p(stars)"]),
        (gate.Scores(0.9, 1.0, 0.49, 50), ["p10-p90 coverage"]),
    ],
)
def test_the_first_model_must_beat_the_floors(pushed: gate.Scores, missed: list[str]) -> None:
    verdict = _decide(pushed, None)
    assert verdict.accepted is not missed
    assert "first model on this host" in verdict.message
    assert verdict.message.count(", missed)") == len(missed)
    assert "serving" not in verdict.record


def test_a_serving_model_that_cannot_be_scored_leaves_the_floors() -> None:
    verdict = _decide(gate.Scores(0.9, 1.0, 0.9, 50), None, serving_error="ArtifactError: feature_version 1")
    assert verdict.accepted and "the serving model could not be scored (ArtifactError" in verdict.message
    assert verdict.record["serving_error"].startswith("ArtifactError")


def test_override_reasons_are_one_printable_line_and_never_empty() -> None:
    assert gate.override_reason({}) is None
    assert gate.override_reason({gate.OVERRIDE_OPTION: "a\nb\tc\x1b[31m"}) == "a b c [31m"
    assert len(gate.override_reason({gate.OVERRIDE_OPTION: "x" * 1000}) or "") == 200
    with pytest.raises(gate.GateError, match="needs a reason"):
        gate.override_reason({gate.OVERRIDE_OPTION: "  "})


def test_scores_reported_by_the_child_are_checked() -> None:
    assert gate.Scores.from_json({"spearman": 0.5, "mae_log": 1, "coverage": 0.5, "rows": 30}).rows == 30
    with pytest.raises(gate.GateError, match="no usable scores"):
        gate.Scores.from_json({"spearman": "high", "mae_log": 1, "coverage": 0.5, "rows": 30})


def test_an_evaluation_set_is_verified_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "evalset-1.csv.gz"
    path.write_bytes(gzip.compress(b"full_name\n"))
    gate.verify_evalset(path, hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(gate.GateError, match=r"has sha256 [0-9a-f]{12}…, not the 000000000000… of"):
        gate.verify_evalset(path, "0" * 64)
    with pytest.raises(gate.GateError, match="cannot be read"):
        gate.verify_evalset(tmp_path / "missing.csv.gz", "0" * 64)


def test_records_round_trip_and_a_commit_without_scores_loses_an_old_one(tmp_path: Path) -> None:
    gate.write_record(tmp_path, "abc", {"decision": "passed", "pushed": {"spearman": 0.5}})
    assert gate.read_record(tmp_path, "abc") == {"decision": "passed", "pushed": {"spearman": 0.5}}
    gate.remove_record(tmp_path, "abc")
    assert gate.read_record(tmp_path, "abc") is None and gate.log_fields(None) == {}


def test_gate_settings_come_from_git_config() -> None:
    base = {"stargazer.appdir": "/a", "stargazer.modeldir": "/m"}
    env = {"STARGAZER_DEPLOY_PUBLIC_KEY": DEPLOY_KEYS.public_text}
    plain = HookSettings.from_env(env, base)
    assert plain.evalset is None and plain.gate_margins == DEFAULT_GATE_MARGINS
    assert plain.gate_floors == DEFAULT_GATE_FLOORS
    configured = HookSettings.from_env(env, {**base, "stargazer.evalset": "/e/evalset-1.csv.gz",
                                           "stargazer.evalsetsha256": "a" * 64,
                                           "stargazer.gatemaelogmargin": "0.2",
                                           "stargazer.gatespearmanfloor": "0.4"})
    assert configured.evalset == Path("/e/evalset-1.csv.gz") and configured.evalset_sha256 == "a" * 64
    assert configured.gate_margins["mae_log"] == 0.2 and configured.gate_floors["spearman"] == 0.4
    with pytest.raises(SettingsError, match=r"stargazer\.evalsetsha256 must be the 64-hex sha256"):
        HookSettings.from_env(env, {**base, "stargazer.evalset": "/e/x.csv.gz"})
    with pytest.raises(SettingsError, match=r"^git config stargazer\.gatecoveragemargin: Input should be"):
        HookSettings.from_env(env, {**base, "stargazer.gatecoveragemargin": "lots"})
