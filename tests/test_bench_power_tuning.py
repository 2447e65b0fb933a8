"""bench_power_tuning: the CPU-share model, and one small run end to end whose curve the dashboard reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_power_tuning import ModelLimit, Sample, choose_limit, main, modelled_ms, summarise
from dashboard.power_curve import load_curve


def test_the_model_stretches_only_the_cpu_time_and_not_beyond_one_vcpu() -> None:
    # 10 ms on the CPU, 30 ms waiting for DynamoDB
    sample = Sample(wall_ms=40.0, cpu_ms=10.0, ok=True)
    assert modelled_ms(sample, 0.25) == pytest.approx(30.0 + 40.0)  # a quarter vCPU: CPU time x 4
    assert modelled_ms(sample, 1.0) == pytest.approx(40.0)
    assert modelled_ms(sample, 1.7) == pytest.approx(40.0)  # one thread gains nothing from a 2nd vCPU


def test_a_size_is_priced_from_its_billed_milliseconds() -> None:
    point = summarise(1024, [0.4, 99.2, 100.0], [1.0, 1.0, 1.0], 0, fits=True)
    assert point.mean_billed_ms == pytest.approx((1 + 100 + 100) / 3)
    # 1 M x (67 ms x 1 GB x $0.0000133334 + $0.20/1M)
    assert point.cost_per_million_usd == pytest.approx(1e6 * (0.067 * 0.0000133334 + 0.2e-6))


def test_asking_for_the_model_never_touches_cgroups() -> None:
    limit = choose_limit("model", 20_000)
    assert isinstance(limit, ModelLimit)
    assert "--limit model" in limit.detail


@pytest.mark.integration
@pytest.mark.slow
def test_a_small_run_measures_the_real_handler_and_saves_a_curve_the_dashboard_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the telemetry ingest, two sizes, the model (deterministic about what limits the CPU)
    out = tmp_path / "curve.json"
    # When the benchmark runs against its own emulator
    main(["--functions", "telemetry-ingest", "--invocations", "3", "--sizes", "128,1769", "--limit", "model",
          "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    # Then it says the limit was modelled, prints the sizes with their cost, and saves the curve
    assert "MODELLED (no real limit)" in printed
    assert "telemetry-ingest (configured 256 MB" in printed
    curve = load_curve(out)
    assert curve is not None
    assert curve.cpu_limit == "model"
    ingest = curve.function("telemetry-ingest")
    assert ingest is not None
    sizes = {p.memory_mb: p for p in ingest.points}
    assert {128, 256, 1769} <= set(sizes)  # the configured size is always measured
    assert all(p.invocations == 3 * len(sizes) for p in sizes.values())  # the model reuses every sample
    assert all(p.errors == 0 for p in sizes.values())
    assert ingest.peak_memory_mb > 0
    # less CPU share, never faster (the model is monotonic in the share)
    assert sizes[128].mean_ms >= sizes[1769].mean_ms
