"""The NAB scorer reproduces NAB's own scorer: on the committed excerpt always, on the corpus when present."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks import nab_scorer
from benchmarks.nab_scorer import (
    PROFILE_NAMES,
    CostMatrix,
    default_nab_dir,
    label_file,
    scaled_sigmoid,
    score_corpus,
    score_results_dir,
)

NAB = default_nab_dir()
needs_nab = pytest.mark.skipif(not (NAB / "results" / "numenta").is_dir(), reason="NAB corpus not present")
STANDARD = {"standard": CostMatrix(1.0, 0.11, 1.0)}
# Five files of NAB with two detectors' published per-row scores (see its README.md).
EXCERPT = Path(__file__).resolve().parents[1] / "data" / "nab"

# NAB's own scorer (nab/sweeper.py, commit ea702d7) on the excerpt: (threshold, raw score, normalised),
# at the best threshold (nab/optimizer.py) and at the published threshold of config/thresholds.json.
NAB_ON_EXCERPT_OPTIMISED = {
    "numenta": {
        "standard": (0.543099145074, 4.43475897188094, 72.1737948594047),
        "reward_low_FP_rate": (0.575335555563, 3.7148748493257076, 68.57437424662854),
        "reward_low_FN_rate": (0.364372693109, 2.51329730982472, 75.0443243660824),
    },
    "windowedGaussian": {
        "standard": (0.999999999997, 3.6230837329385315, 68.11541866469267),
        "reward_low_FP_rate": (0.999999999997, 2.0830852268174445, 60.41542613408723),
        "reward_low_FN_rate": (0.999999999997, 1.6230837329385315, 72.07694577646177),
    },
}
NAB_ON_EXCERPT_AT_PUBLISHED_THRESHOLD = {
    "numenta": {
        "standard": (0.543099145074, 4.43475897188094, 72.1737948594047),
        "reward_low_FP_rate": (0.575335555563, 3.7148748493257076, 68.57437424662854),
        "reward_low_FN_rate": (0.543099145074, 2.4347589718809397, 74.78252990626979),
    },
    "windowedGaussian": {
        "standard": (1.0, 3.6097925582781034, 68.04896279139052),
        "reward_low_FP_rate": (1.0, 2.0697940521570164, 60.34897026078509),
        "reward_low_FN_rate": (1.0, 1.6097925582781034, 72.032641860927),
    },
}


def published(detector: str) -> dict[str, float]:
    return json.loads((NAB / "results" / "final_results.json").read_text())[detector]


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_optimised_scores_on_the_excerpt_reproduce_nabs_own_scorer(detector: str) -> None:
    """Given the excerpt's published per-row scores, when the scorer sweeps every threshold, then each
    profile's best threshold, raw and normalised score are NAB's own."""
    ours = score_results_dir(EXCERPT, EXCERPT / "results" / detector, detector)
    assert set(ours) == set(PROFILE_NAMES)
    for profile, (threshold, raw, normalized) in NAB_ON_EXCERPT_OPTIMISED[detector].items():
        assert ours[profile].threshold == threshold, profile
        assert ours[profile].raw == pytest.approx(raw, abs=1e-9), profile
        assert ours[profile].normalized == pytest.approx(normalized, abs=1e-9), profile


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_scores_at_the_published_thresholds_on_the_excerpt_reproduce_nabs_own_scorer(detector: str) -> None:
    """Given NAB's published threshold of each profile, then the excerpt scores as NAB scores it."""
    thresholds = json.loads((EXCERPT / "config" / "thresholds.json").read_text())[detector]
    for profile, (threshold, raw, normalized) in NAB_ON_EXCERPT_AT_PUBLISHED_THRESHOLD[detector].items():
        ours = score_results_dir(
            EXCERPT,
            EXCERPT / "results" / detector,
            detector,
            fixed_threshold=thresholds[profile]["threshold"],
        )[profile]
        assert ours.threshold == threshold, profile
        assert ours.raw == pytest.approx(raw, abs=1e-9), profile
        assert ours.normalized == pytest.approx(normalized, abs=1e-9), profile


def test_the_corpus_comes_from_fleetscope_nab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSCOPE_NAB_DIR", str(tmp_path / "nab"))
    assert default_nab_dir() == tmp_path / "nab"


def test_the_corpus_defaults_to_shared_nab_beside_the_checkout_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a checkout with no corpus beside it, then the default is ``../shared/nab`` of that
    checkout, never a fixed location on some machine."""
    monkeypatch.delenv("FLEETSCOPE_NAB_DIR", raising=False)
    monkeypatch.setattr(nab_scorer, "_REPO", tmp_path / "checkout")
    assert default_nab_dir() == tmp_path / "shared" / "nab"


@needs_nab
@pytest.mark.slow
@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_optimised_scores_reproduce_the_published_standard_and_low_fn_results(detector: str) -> None:
    ours = score_results_dir(NAB, NAB / "results" / detector, detector)
    pub = published(detector)
    assert ours["standard"].normalized == pytest.approx(pub["standard"], abs=0.05)
    assert ours["reward_low_FN_rate"].normalized == pytest.approx(pub["reward_low_FN_rate"], abs=0.05)
    # NAB's own optimiser is a local search; an exhaustive sweep can only do as well or better.
    assert ours["reward_low_FP_rate"].normalized >= pub["reward_low_FP_rate"] - 0.05


@needs_nab
@pytest.mark.slow
def test_low_fp_profile_at_nabs_published_threshold_reproduces_the_published_score() -> None:
    threshold = json.loads((NAB / "config" / "thresholds.json").read_text())["numenta"]["reward_low_FP_rate"]
    ours = score_results_dir(
        NAB, NAB / "results" / "numenta", "numenta", fixed_threshold=threshold["threshold"]
    )
    assert ours["reward_low_FP_rate"].normalized == pytest.approx(
        published("numenta")["reward_low_FP_rate"], abs=0.05
    )


def _toy(n: int = 100) -> tuple[list[datetime], list[tuple[datetime, datetime]]]:
    t0 = datetime(2024, 1, 1)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(n)]
    return stamps, [(stamps[40], stamps[49])]


def test_perfect_null_and_always_on_detectors_score_as_nab_defines() -> None:
    stamps, windows = _toy()
    lab = label_file("toy/a.csv", stamps, windows)
    assert lab.probation == 15
    perfect = np.zeros(100)
    perfect[40] = 1.0
    assert score_corpus([(lab, perfect)], STANDARD)["standard"].normalized == pytest.approx(100.0)
    assert score_corpus([(lab, np.zeros(100))], STANDARD)["standard"].normalized == pytest.approx(0.0)
    # Always on at a fixed threshold: every row outside the window is a false positive.
    always = score_corpus([(lab, np.ones(100))], STANDARD, fixed_threshold=0.5)["standard"]
    assert always.fp == 100 - 15 - 10
    assert always.normalized < 0


def test_late_detection_is_worth_less_and_false_positives_cost_by_distance() -> None:
    stamps, windows = _toy()
    lab = label_file("toy/a.csv", stamps, windows)
    assert lab.tp_weight[40] == pytest.approx(1.0)
    assert lab.tp_weight[49] == pytest.approx(scaled_sigmoid(-1 / 10) / scaled_sigmoid(-1.0))
    assert lab.fp_weight[20] == -1.0  # before the first window
    assert lab.fp_weight[50] == pytest.approx(scaled_sigmoid(1 / 9))
    assert lab.fp_weight[50] > lab.fp_weight[80]  # farther from the window costs more
    late = np.zeros(100)
    late[48] = 1.0
    early = np.zeros(100)
    early[41] = 1.0
    s_late = score_corpus([(lab, late)], STANDARD)["standard"].normalized
    s_early = score_corpus([(lab, early)], STANDARD)["standard"].normalized
    assert 0 < s_late < s_early < 100


def test_threshold_ties_go_to_the_highest_threshold() -> None:
    stamps, windows = _toy()
    lab = label_file("toy/a.csv", stamps, windows)
    scores = np.zeros(100)
    scores[40] = 0.9
    scores[45] = 0.8  # same window, later: adds nothing, so 0.9 and 0.8 tie
    result = score_corpus([(lab, scores)], STANDARD)["standard"]
    assert result.threshold == 0.9
