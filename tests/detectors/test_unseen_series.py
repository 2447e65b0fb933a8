"""The unseen-series benchmark: a deterministic corpus, labels inside their series, the catalog's
profiles chosen by `--profile auto`, and the scoring rules of `bench_unseen` on hand-made cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_unseen import (
    GRACE,
    METHODS,
    TAIL,
    FileScore,
    oracle_found,
    report_together,
    robust_z_alerts,
    score_alerts,
)
from benchmarks.unseen_series import WITH_VOLUME, Incident, NullModel, SeriesFile, generate_corpus
from monitor.catalog import METRIC_PROFILES
from ops.detect import read_series, resolve_profile


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SeriesFile]]:
    root = tmp_path_factory.mktemp("unseen") / "corpus"
    return root, generate_corpus(root, seed=7)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_given_the_same_seed_when_generated_again_then_every_file_is_byte_identical(
    corpus: tuple[Path, list[SeriesFile]], tmp_path: Path
) -> None:
    root, files = corpus
    again = generate_corpus(tmp_path / "again", seed=7)
    generate_corpus(tmp_path / "other", seed=8)

    assert again == files
    assert _tree(tmp_path / "again") == _tree(root)
    assert _tree(tmp_path / "other").keys() == _tree(root).keys()
    assert _tree(tmp_path / "other") != _tree(root)


def test_labels_name_every_file_and_fall_on_its_rows(corpus: tuple[Path, list[SeriesFile]]) -> None:
    root, files = corpus
    labels = json.loads((root / "labels.json").read_text())

    assert sorted(labels) == sorted(p.relative_to(root).as_posix() for p in root.rglob("*.csv"))
    assert any(not f.incidents for f in files)
    assert all(labels[f.path] == [] for f in files if not f.incidents)
    assert {f.period_s for f in files} == {60, 300}
    for f in files:
        with (root / f.path).open(newline="") as fh:
            stamps = [row["timestamp"] for row in csv.DictReader(fh)]
        assert len(stamps) == f.rows
        assert 14 <= f.rows * f.period_s / 86400 <= 28
        assert [[stamps[i.start], stamps[i.end - 1]] for i in f.incidents] == labels[f.path]
        for inc in f.incidents:
            assert 6 * 86400 // f.period_s <= inc.start < inc.end <= f.rows


def test_profile_auto_gives_each_file_the_catalog_profile_of_its_metric(
    corpus: tuple[Path, list[SeriesFile]],
) -> None:
    root, files = corpus
    for f in files:
        metric = Path(f.path).stem
        dlq = Path(f.path).parent.name.endswith("-dlq")  # a dead-letter queue's depth: its own profile
        expected = "dlq" if dlq else METRIC_PROFILES[metric]
        assert resolve_profile(f.path, (), "auto") == f.profile == expected, f.path
        with (root / f.path).open(newline="") as fh:
            header = next(csv.reader(fh))
        assert header == (
            ["timestamp", "value", "volume"] if metric in WITH_VOLUME else ["timestamp", "value"]
        )


def _opened(n: int, *rows: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int8)
    out[list(rows)] = 1
    return out


@pytest.mark.parametrize(
    ("opened_at", "found", "delays", "false_episodes", "reopened"),
    [
        ((), (False,), (), 0, 0),  # no alert: missed, nothing false
        ((103,), (True,), (3,), 0, 0),  # inside the incident rows [100, 110)
        ((110 + GRACE - 1,), (True,), (11,), 0, 0),  # just after its last row, within the grace
        ((110 + GRACE,), (False,), (), 0, 0),  # after the grace: not found, but inside the tail: not false
        ((110 + TAIL,), (False,), (), 1, 0),  # after the tail: a false episode
        ((40,), (False,), (), 1, 0),  # before the incident: a false episode
        ((40, 41), (False,), (), 2, 0),  # two openings outside the windows are two episodes
        ((101, 106, 150), (True,), (1,), 1, 1),  # a reopening inside the window is flapping, not false
    ],
)
def test_score_alerts_counts_found_incidents_and_false_episodes(
    opened_at: tuple[int, ...],
    found: tuple[bool, ...],
    delays: tuple[int, ...],
    false_episodes: int,
    reopened: int,
) -> None:
    score = score_alerts(_opened(200, *opened_at), [(100, 110)])

    assert score.found == found
    assert score.delays == delays
    assert score.false_episodes == false_episodes
    assert score.reopened == reopened


def test_score_alerts_finds_each_incident_of_a_file_apart() -> None:
    score = score_alerts(_opened(400, 102, 305), [(100, 110), (200, 210), (300, 320)])

    assert score.found == (True, False, True)
    assert score.delays == (2, 5)
    assert score.false_episodes == 0


@pytest.mark.parametrize("refresh", [1, 5])
def test_baseline_opens_on_two_of_three_outliers_and_not_on_a_single_one(refresh: int) -> None:
    y = np.random.default_rng(0).normal(100.0, 1.0, 400)
    y[300] = 200.0  # one outlier: quiet
    y[350:352] = 200.0  # two in a row: one alert, at the second

    opened = robust_z_alerts(y, window=100, refresh=refresh)

    assert np.flatnonzero(opened).tolist() == [351]


def test_the_null_models_describe_the_rows_outside_the_incidents(
    corpus: tuple[Path, list[SeriesFile]],
) -> None:
    # Given the corpus and each file's undisturbed distribution, as the generator tells the oracle
    root, files = corpus
    described = [f for f in files if f.null is not None]
    assert {f.null.kind for f in described if f.null} == {"poisson", "binomial", "lognormal"}
    assert all(f.null is None for f in files if f.path.startswith("sqs/"))
    for f in described:
        null = f.null
        assert null is not None
        y = read_series(root / f.path).y
        normal = np.ones(f.rows, dtype=bool)
        for inc in f.incidents:
            normal[inc.start : inc.end] = False
        # Then the rows outside the incidents have the distribution's mean (the ratio's period-to-period
        # spread raises a binomial count's by a few per cent; outliers leave a median alone)
        if null.kind == "poisson":
            offset = 0.0 if null.offset is None else null.offset[normal]
            assert np.nansum(y[normal] - offset) == pytest.approx(np.sum((null.a + null.b)[normal]), rel=0.03)
        elif null.kind == "binomial":
            expected = float(np.sum((null.a * null.b)[normal]))
            if expected >= 100.0:  # a few dozen throttles at the very top of the peaks say little
                assert np.nansum(y[normal]) == pytest.approx(expected, rel=0.1), f.path
        else:
            assert abs(float(np.nanmedian((np.log(y) - null.a)[normal]))) < 0.05, f.path


ROWS = 200


@pytest.mark.parametrize(
    ("null", "incident", "value", "found"),
    [
        # 100 requests a period, tripled for 4 periods: found; 5 % more for 4 periods: within the noise
        (
            NullModel("poisson", np.full(ROWS, 100.0), np.zeros(ROWS)),
            Incident("level_shift", 50, 54, 3.0),
            300,
            True,
        ),
        (
            NullModel("poisson", np.full(ROWS, 100.0), np.zeros(ROWS)),
            Incident("level_shift", 50, 54, 1.05),
            105,
            False,
        ),
        # a spike of 30 requests on a quiet hour of 2 a period
        (
            NullModel("poisson", np.full(ROWS, 2.0), np.zeros(ROWS)),
            Incident("quiet_hour_spike", 50, 52, 30.0),
            32,
            True,
        ),
        # 20 requests at 1 % errors: 10 % for 10 periods (2 errors each) is found, one error at 2 % is not
        (
            NullModel("binomial", np.full(ROWS, 20.0), np.full(ROWS, 0.01)),
            Incident("error_burst", 50, 60, 0.09),
            2,
            True,
        ),
        (
            NullModel("binomial", np.full(ROWS, 20.0), np.full(ROWS, 0.01)),
            Incident("error_burst", 50, 51, 0.01),
            1,
            False,
        ),
        # latency with a log sd of 0.1: x2 for 4 periods is found; on a log sd of 1, x1.3 for 4 periods is not
        (
            NullModel("lognormal", np.full(ROWS, np.log(100.0)), np.full(ROWS, 0.1)),
            Incident("latency_regression", 50, 54, 2.0),
            200.0,
            True,
        ),
        (
            NullModel("lognormal", np.full(ROWS, np.log(100.0)), np.full(ROWS, 1.0)),
            Incident("latency_regression", 50, 54, 1.3),
            130.0,
            False,
        ),
    ],
    ids=[
        "x3 requests",
        "+5 % requests",
        "quiet-hour spike",
        "10 % errors",
        "one error",
        "x2 latency",
        "noisy x1.3",
    ],
)
def test_the_oracle_finds_what_the_evidence_allows(
    null: NullModel, incident: Incident, value: float, found: bool
) -> None:
    # Given a series at its normal mean, with the incident's rows at the incident's mean
    normal = (
        np.exp(null.a) if null.kind == "lognormal" else null.a * (null.b if null.kind == "binomial" else 1.0)
    )
    y = normal.copy()
    y[incident.start : incident.end] = value
    f = SeriesFile("x.csv", "x", "traffic", 300, 0, ROWS, (incident,), null)
    # Then the oracle's CUSUM reaches the alarm level (1e-5) only where the incident carries the evidence
    assert oracle_found(f, y) == (found,)
    assert oracle_found(SeriesFile("q.csv", "q", "backlog", 300, 0, ROWS, (incident,)), y) == (True,)


def test_several_seeds_are_reported_together_as_one_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    # Given two seeds' runs: one file each, with 2 and 1 incidents, found 1 of 2 and 1 of 1
    inc = (Incident("level_shift", 10, 20, 1.5), Incident("level_shift", 40, 50, 1.5))
    files_a = [SeriesFile("a.csv", "a", "traffic", 300, 0, 1000, inc)]
    files_b = [SeriesFile("b.csv", "b", "traffic", 300, 0, 1000, inc[:1])]
    score_a = FileScore(found=(True, False), delays=(2,), false_episodes=1, reopened=0)
    score_b = FileScore(found=(True,), delays=(0,), false_episodes=0, reopened=0)
    runs = [
        (files_a, {m: [score_a] for m in METHODS}, [(True, True)]),
        (files_b, {m: [score_b] for m in METHODS}, [(False,)]),
    ]
    # When they are reported together
    report_together([1, 2], runs)
    out = capsys.readouterr().out
    # Then found, false episodes, rows and the oracle are summed over both
    assert "seeds 1, 2 together: 2 files, 2000 rows, 3 incidents" in out
    assert (
        "auto      window recall 0.67 (2/3), false alert episodes 0.50 per 1,000 rows (1), median delay 1"
        in out
    )
    assert "oracle    window recall 0.67 (2/3)" in out
