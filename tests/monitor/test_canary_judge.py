"""The canary judge (monitor/canary.py): table-driven verdicts, the reasons, the rollout policy."""

from __future__ import annotations

import pytest

from monitor.canary import (
    Action,
    CanaryJudgeConfig,
    Outcome,
    VersionMinute,
    is_last_look,
    judge,
    next_action,
)

# Five minutes of a 10 % canary at 1,000 invocations a minute (ten times the sandbox's fleet at its
# evening peak): the per-minute percentiles move together, as both versions serve the same minutes.
P50 = (41.0, 44.0, 39.0, 47.0, 42.0)
P90 = (88.0, 95.0, 84.0, 101.0, 90.0)
P99 = (160.0, 171.0, 150.0, 190.0, 166.0)


def _minutes(
    invocations: int,
    errors: tuple[int, ...] = (0,) * 5,
    *,
    scale: tuple[float, ...] = (1.0,) * 5,
    p99_scale: float = 1.0,
) -> list[VersionMinute]:
    return [
        VersionMinute(
            invocations=invocations,
            errors=errors[i],
            p50_ms=P50[i] * scale[i],
            p90_ms=P90[i] * scale[i],
            p99_ms=P99[i] * scale[i] * p99_scale,
        )
        for i in range(5)
    ]


BASELINE = _minutes(900, errors=(2,) * 5)  # 10 / 4,500 = 0.22 % errors

CASES = {
    "identical versions": (_minutes(100), Outcome.PASS, None),
    "+50 % p99": (_minutes(200, p99_scale=1.5), Outcome.FAIL, "duration_p99"),
    # 11 / 500 = 2.2 %: two points above the baseline's 0.22 %
    "+2 points error ratio on 10 % of traffic": (
        _minutes(100, errors=(2, 2, 2, 2, 3)),
        Outcome.FAIL,
        "error_ratio",
    ),
    "a single slow minute": (_minutes(100, scale=(1.0, 1.0, 3.0, 1.0, 1.0)), Outcome.PASS, None),
}


@pytest.mark.parametrize(("canary", "expected", "failing"), CASES.values(), ids=CASES.keys())
def test_judge_verdicts(canary: list[VersionMinute], expected: Outcome, failing: str | None) -> None:
    # Given the baseline and the canary over the same five minutes, When judged
    verdict = judge(BASELINE, canary)
    # Then the verdict is the expected one, and a FAIL names the metric that failed
    assert verdict.outcome == expected, verdict.reasons
    assert [m.metric for m in verdict.metrics if m.outcome == Outcome.FAIL] == ([failing] if failing else [])
    assert len(verdict.reasons) >= 1


def test_three_canary_invocations_are_inconclusive_never_a_silent_pass() -> None:
    # Given a canary that served 3 invocations in 3 minutes, all fine
    baseline = [VersionMinute(invocations=30, p50_ms=40, p90_ms=80, p99_ms=150) for _ in range(3)]
    canary = [VersionMinute(invocations=1, p50_ms=40, p90_ms=40, p99_ms=40) for _ in range(3)]
    # When judged
    verdict = judge(baseline, canary)
    # Then it is INCONCLUSIVE, and the error ratio says how much traffic it would take
    assert verdict.outcome == Outcome.INCONCLUSIVE
    errors = next(m for m in verdict.metrics if m.metric == "error_ratio")
    assert errors.outcome == Outcome.INCONCLUSIVE
    assert "too little canary traffic" in errors.reason
    assert "canary invocations needed" in errors.reason


def test_error_fail_needs_a_minimum_increase_even_when_significant() -> None:
    # Given a huge fleet where the canary is significantly but only 0.2 points worse
    baseline = [VersionMinute(invocations=1_000_000, errors=1_000)]
    canary = [VersionMinute(invocations=100_000, errors=300)]
    # When judged with the latency gate out of the way
    verdict = judge(baseline, canary, CanaryJudgeConfig(min_minutes=1))
    errors = next(m for m in verdict.metrics if m.metric == "error_ratio")
    # Then the error ratio is no FAIL (below error_min_increase), and the volume rules out +2 points
    assert errors.p_value is not None
    assert errors.p_value < 0.01
    assert errors.outcome == Outcome.PASS


def test_throttles_fail_the_canary_but_do_not_need_volume() -> None:
    baseline = _minutes(900)
    canary = [m.model_copy(update={"throttles": 5}) for m in _minutes(100)]
    verdict = judge(baseline, canary)
    assert verdict.outcome == Outcome.FAIL
    assert [m.metric for m in verdict.metrics if m.outcome == Outcome.FAIL] == ["throttle_ratio"]


def test_a_tail_percentile_of_a_dozen_invocations_a_minute_is_not_judged() -> None:
    # Given a 50 % canary on thin traffic (12 invocations a minute each): its per-minute "p99" is the
    # slowest of a dozen, here 50 % above the baseline's in every minute, the p50 and p90 the same
    thin = _minutes(12)
    canary = [m.model_copy(update={"p99_ms": (m.p99_ms or 0) * 1.5}) for m in thin]
    # When judged
    verdict = judge(thin, canary)
    p99 = next(m for m in verdict.metrics if m.metric == "duration_p99")
    # Then the p99 and p90 are not judged (they would compare the slowest one or two) and fail nothing;
    # the p50 is judged
    assert p99.outcome == Outcome.PASS
    assert p99.reason.startswith("not judged: 0 minutes in which both versions served at least 200")
    p90 = next(m for m in verdict.metrics if m.metric == "duration_p90")
    assert p90.reason.startswith("not judged: 0 minutes in which both versions served at least 20")
    assert Outcome.FAIL not in {m.outcome for m in verdict.metrics}, verdict.reasons
    p50 = next(m for m in verdict.metrics if m.metric == "duration_p50")
    assert p50.p_value is not None
    # And with 200 invocations a minute the same +50 % p99 fails the canary
    busy = [m.model_copy(update={"invocations": 200}) for m in canary]
    assert judge([m.model_copy(update={"invocations": 900}) for m in thin], busy).outcome == Outcome.FAIL


def test_early_minutes_leave_the_tail_percentiles_inconclusive_not_unjudged() -> None:
    # Given two minutes of plenty of traffic: too few minutes for any percentile yet
    verdict = judge(BASELINE[:2], _minutes(200)[:2])
    # Then every percentile waits for more minutes (none says it will not be judged)
    latency = [m for m in verdict.metrics if m.metric.startswith("duration_")]
    assert {m.outcome for m in latency} == {Outcome.INCONCLUSIVE}
    assert not any(m.reason.startswith("not judged") for m in latency)


def test_three_percent_slower_is_not_a_failure() -> None:
    # Given a canary whose every percentile is 3 % slower in every minute (significant by rank)
    verdict = judge(BASELINE, _minutes(100, scale=(1.03,) * 5))
    # Then the effect-size floor keeps it a PASS
    assert verdict.outcome == Outcome.PASS


def test_unequal_minutes_are_bad_input() -> None:
    with pytest.raises(ValueError, match="same minutes"):
        judge(BASELINE, BASELINE[:3])


def test_more_errors_than_invocations_are_bad_input() -> None:
    with pytest.raises(ValueError, match="more events than invocations"):
        judge([VersionMinute(invocations=1, errors=2)], [VersionMinute(invocations=1)])


POLICY = {
    "FAIL rolls back at once": (Outcome.FAIL, 1, "promote", Action.ROLLBACK),
    "PASS inside the window continues": (Outcome.PASS, 3, "promote", Action.CONTINUE),
    "PASS at the end promotes": (Outcome.PASS, 5, "promote", Action.PROMOTE),
    "INCONCLUSIVE at the end extends once": (Outcome.INCONCLUSIVE, 5, "promote", Action.CONTINUE),
    "INCONCLUSIVE after the extension promotes": (Outcome.INCONCLUSIVE, 10, "promote", Action.PROMOTE),
    "or rolls back when so set": (Outcome.INCONCLUSIVE, 10, "rollback", Action.ROLLBACK),
}


@pytest.mark.parametrize(
    ("outcome", "minutes", "on_inconclusive", "action"), POLICY.values(), ids=POLICY.keys()
)
def test_next_action(outcome: Outcome, minutes: int, on_inconclusive: str, action: Action) -> None:
    verdict = judge([VersionMinute(invocations=0)] * minutes, [VersionMinute(invocations=0)] * minutes)
    verdict = verdict.model_copy(update={"outcome": outcome})
    assert next_action(verdict, window_minutes=5, on_inconclusive=on_inconclusive) == action  # type: ignore[arg-type]


def _ten_minutes(n: int, errors: int) -> list[VersionMinute]:
    """Ten minutes of one version at `n` invocations a minute, `errors` errors in all."""
    return [
        VersionMinute(invocations=n, errors=errors if i == 0 else 0, p50_ms=40, p90_ms=80, p99_ms=150)
        for i in range(10)
    ]


def test_the_last_look_decides_an_inconclusive_error_ratio_that_leans_to_the_canary_being_worse() -> None:
    # Given the end of an extended window at ten times the sandbox's traffic: 3 canary errors in 340
    # (+0.8 points) against 3 in 3,030 on the baseline, Fisher p ~ 0.016 (too weak for a FAIL on the way)
    baseline, canary = _ten_minutes(303, 3), _ten_minutes(34, 3)
    on_the_way = next(m for m in judge(baseline, canary).metrics if m.metric == "error_ratio")
    assert on_the_way.outcome == Outcome.INCONCLUSIVE
    # When it is the last look
    verdict = judge(baseline, canary, last_look=True)
    # Then the error ratio fails at the last look's level, and says so
    errors = next(m for m in verdict.metrics if m.metric == "error_ratio")
    assert errors.outcome == Outcome.FAIL
    assert "decided at p < 0.05" in errors.reason
    assert verdict.outcome == Outcome.FAIL


@pytest.mark.parametrize(
    ("canary_errors", "outcome"),
    [(0, Outcome.PASS), (1, Outcome.PASS), (2, Outcome.INCONCLUSIVE)],
)
def test_the_last_look_leaves_a_clean_looking_canary_alone(canary_errors: int, outcome: Outcome) -> None:
    # Given as many canary errors as a clean canary shows (0-2 in 340 against 3 in 3,030)
    baseline, canary = _ten_minutes(303, 3), _ten_minutes(34, canary_errors)
    # When it is the last look, Then no FAIL: 2 errors stay INCONCLUSIVE (promoted by default)
    errors = next(m for m in judge(baseline, canary, last_look=True).metrics if m.metric == "error_ratio")
    assert errors.outcome == outcome, errors.reason


def test_one_error_in_a_thin_canary_is_no_failure_even_at_the_last_look() -> None:
    # Given the sandbox's own traffic: 1 canary error in 34, none in 306 (Fisher p = 0.1)
    errors = next(
        m
        for m in judge(_ten_minutes(31, 0), _ten_minutes(3, 1), last_look=True).metrics
        if m.metric == "error_ratio"
    )
    assert errors.outcome == Outcome.INCONCLUSIVE


@pytest.mark.parametrize(("minutes", "last"), [(5, False), (9, False), (10, True), (11, True)])
def test_the_last_look_is_the_end_of_the_extended_window(minutes: int, last: bool) -> None:
    assert is_last_look(minutes, window_minutes=5) is last


def test_the_last_look_needs_the_errors_to_be_likelier_under_the_regression_it_guards_against() -> None:
    # Given 2 canary errors in 340 against 1 in 3,030: Fisher p ~ 0.03, below the last look's 0.05,
    # but 2 errors are about as likely for a clean canary as for one +2 points worse
    errors = next(
        m
        for m in judge(_ten_minutes(303, 1), _ten_minutes(34, 2), last_look=True).metrics
        if m.metric == "error_ratio"
    )
    assert errors.p_value is not None
    assert errors.p_value < 0.05
    # Then it stays INCONCLUSIVE (promoted by default)
    assert errors.outcome == Outcome.INCONCLUSIVE
