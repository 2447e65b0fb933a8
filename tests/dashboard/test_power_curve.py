"""The power-tuning curve (file format, interpolation) and the right-sizing that reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dashboard import cost
from dashboard.power_curve import (
    FunctionCurve,
    PowerCurve,
    PowerCurveError,
    SizePoint,
    billed_ms,
    cost_per_million,
    load_curve,
    vcpu_share,
)


def point(memory_mb: int, mean_ms: float, *, feasible: bool = True) -> SizePoint:
    return SizePoint(
        memory_mb=memory_mb,
        vcpu=vcpu_share(memory_mb),
        invocations=10,
        p50_ms=mean_ms,
        p99_ms=mean_ms * 2,
        mean_ms=mean_ms,
        mean_billed_ms=mean_ms,
        cost_per_million_usd=cost_per_million(memory_mb, mean_ms, gb_s_usd=0.0000133334, request_usd=0.2e-6),
        feasible=feasible,
    )


# A CPU-bound monitor: 237 MB peak; the duration halves with each doubling of memory up to one vCPU.
MONITOR = FunctionCurve(
    function="monitor",
    configured_mb=1024,
    peak_memory_mb=237,
    mix="normal runs",
    points=(
        point(128, 16_000, feasible=False),
        point(256, 8_000, feasible=False),
        point(320, 6_400),
        point(512, 4_000),
        point(1024, 2_000),
        point(1769, 1_200),
        point(3008, 1_190),
    ),
)


def test_lambda_cpu_share_and_billing_rules() -> None:
    assert vcpu_share(1769) == 1.0
    assert vcpu_share(128) == pytest.approx(0.0724, abs=1e-4)
    assert vcpu_share(3008) == pytest.approx(1.70, abs=0.01)
    assert billed_ms(0.2) == 1
    assert billed_ms(10.01) == 11
    # 1 M invocations of 100 ms at 1,024 MB: 100,000 GB-s x $0.0000133334 + $0.20
    assert cost_per_million(1024, 100, gb_s_usd=0.0000133334, request_usd=0.2e-6) == pytest.approx(1.53334)


def test_cheapest_and_fastest_skip_sizes_the_function_does_not_fit() -> None:
    cheapest, fastest = MONITOR.cheapest(), MONITOR.fastest()
    assert cheapest is not None
    assert fastest is not None
    # GB-s per run: 320 MB x 6.4 s = 2.0, 512 x 4 = 2.0, 1024 x 2 = 2.0, 1769 x 1.2 = 2.07; ties: faster
    assert cheapest.memory_mb == 1024
    # 3,008 MB is 1 % faster than 1,769 MB: within the 5 % tolerance, so the smaller one is "fastest"
    assert fastest.memory_mb == 1769


def test_duration_ratio_interpolates_between_measured_sizes_only() -> None:
    assert MONITOR.duration_ratio(512, 1024) == pytest.approx(2.0)
    assert MONITOR.duration_ratio(768, 1024) == pytest.approx(1.5)  # halfway between 4 s and 2 s
    assert MONITOR.duration_ratio(4096, 1024) is None  # beyond the curve: no guess


def test_right_sizing_with_the_curve_does_not_take_the_peak_memory_size_at_todays_duration() -> None:
    # Given the monitor at 1,024 MB, 2 s a run, 288 runs a day, 237 MB peak
    common = {
        "function": "monitor",
        "memory_mb": 1024,
        "max_used_mb": 237.0,
        "avg_duration_ms": 2000.0,
        "invocations_per_day": 288.0,
    }
    # When the peak-memory rule sizes it
    old = cost.right_size(**common)
    # Then it suggests 320 MB and promises 69 % less, as if the run still took 2 s
    assert old.suggested_mb == 320
    assert old.monthly_usd_suggested == pytest.approx(old.monthly_usd_now * 320 / 1024)

    # When the curve sizes it
    new = cost.right_size_with_curve(curve=MONITOR, **common)
    assert new is not None
    # Then 320 MB is known to run 3.2x longer (6.4 s) and cost the same; nothing is cheaper than 1,024 MB
    # (512 MB ties on GB-s and is slower), so it stays, and the fastest size is named
    assert new.suggested_mb == 1024
    assert new.fastest_mb == 1769
    assert new.duration_ms_suggested == pytest.approx(2000.0)
    assert new.monthly_usd_suggested == pytest.approx(new.monthly_usd_now)
    assert "already the cheapest" in new.note


def test_right_sizing_with_the_curve_scales_the_deployments_own_duration() -> None:
    # Given an I/O-bound function: the duration barely moves with memory
    flat = FunctionCurve(
        function="cars-api",
        configured_mb=512,
        peak_memory_mb=80,
        mix="api",
        points=(point(128, 12), point(256, 10.5), point(512, 10), point(1024, 10)),
    )
    # When a deployment at 512 MB that averages 40 ms on Lambda is sized
    new = cost.right_size_with_curve(
        function="cars-api",
        memory_mb=512,
        max_used_mb=90.0,
        avg_duration_ms=40.0,
        invocations_per_day=100_000,
        curve=flat,
    )
    # Then 128 MB (1.2x the duration, a quarter of the memory) is cheapest, at 48 ms
    assert new is not None
    assert new.suggested_mb == 128
    assert new.duration_ms_suggested == pytest.approx(48.0)
    assert new.monthly_usd_suggested == pytest.approx(new.monthly_usd_now * 48 / 40 / 4)


def test_right_sizing_with_the_curve_says_none_outside_the_measured_range() -> None:
    outside = cost.right_size_with_curve(
        function="monitor",
        memory_mb=8192,
        max_used_mb=237.0,
        avg_duration_ms=1000.0,
        invocations_per_day=288,
        curve=MONITOR,
    )
    assert outside is None


def test_load_curve_missing_file_is_none_and_a_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    assert load_curve(tmp_path / "absent.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"functions": "nope"}')
    with pytest.raises(PowerCurveError, match="not a bench_power_tuning curve"):
        load_curve(bad)
    good = tmp_path / "good.json"
    curve = PowerCurve(
        measured_at=datetime(2026, 12, 5, tzinfo=UTC),
        host="test",
        cpu_limit="model",
        cpu_limit_detail="test",
        gb_s_usd=0.0000133334,
        request_usd=0.2e-6,
        prices_note="test",
        functions=(MONITOR,),
    )
    good.write_text(curve.model_dump_json())
    loaded = load_curve(good)
    assert loaded == curve
    assert loaded is not None
    assert loaded.function("monitor") == MONITOR
    assert loaded.function("nope") is None
