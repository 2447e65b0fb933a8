"""Dashboard render time with 14 days x 60 metrics, cold and cached, next to the raw GetMetricData time.

Starts the AWS emulator (moto + the sandbox's indexed metric store), provisions the `bench` stage,
writes 14 days of 5-minute datapoints for 60 of the monitor's catalog metrics with PutMetricData
(latency metrics as sample distributions, so percentiles are real), 40 cars, their status history
and two incidents, then renders the Overview and Service health pages with Streamlit's AppTest —
the same scripts `streamlit run` executes, through the real query layer:

- cold: caches cleared (every query goes to the emulator, detectors are fitted);
- rerun, cached: the same session's script run again (st.cache_data hits within the TTL), as when
  a user changes a widget or the page redraws itself: the figure a user waits for;
- new session, cached: a fresh AppTest renders the page again (as in this benchmark's first
  version): also pays AppTest's per-instance scan of installed packages for Streamlit components
  (~0.9 s here, once per server in `streamlit run`), so it overstates what a browser waits for.

The baseline is the raw GetMetricData time for the same 60 metrics over the same 14 days (the
floor for a page that draws them), measured through `dashboard.queries.fetch_metrics`.

Usage: python -m benchmarks bench_dashboard [--days 14] [--metrics 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
# The page scripts' folder (`views/` since issue 12; `pages/` before), so this runs on older checkouts.
VIEWS = "views" if (ROOT / "dashboard" / "views").exists() else "pages"


def _timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks bench_dashboard")
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--metrics", type=int, default=60)
    args = parser.parse_args(argv)

    from contract.topology import topology
    from dashboard import queries, specs
    from dashboard.analysis import period_for
    from dashboard.settings import get_settings
    from dashboard.target import Resources
    from sandbox.aws.provision import provision
    from sandbox.emulator.server import Emulator, aws_environment
    from sandbox.home import SandboxState, write_state
    from tests.dashboard.seed import seed_cars, seed_incidents, seed_metrics

    home = Path(tempfile.mkdtemp(prefix="fleetscope-bench-"))
    with Emulator(port=0) as emu:
        os.environ.update(aws_environment(emu.endpoint_url))
        topo = topology("bench")
        provision(topo, session=boto3.Session())
        res = Resources.from_topology(topo)
        now = datetime.now(tz=UTC)
        chosen = list(specs.catalog(res, 300).metrics)[: args.metrics]
        t_seed, points = _timed(lambda: seed_metrics(res, now=now, days=args.days, specs=chosen))
        seed_cars(topo, now=now)
        seed_incidents(topo, now=now, inbox=home / "alerts.jsonl")
        write_state(
            home,
            SandboxState(emulator_url=emu.endpoint_url, stage=topo.stage, pid=os.getpid()),
        )
        shape = f"{len(chosen)} metrics x {args.days:g} d"
        print(f"seeded {points:,} datapoints ({shape} at 5 min) in {t_seed:.1f}s")

        cw = boto3.client("cloudwatch")
        end = queries.align(now, 300)
        start = end - timedelta(days=args.days)
        rows: list[tuple[str, float]] = []
        for period in (300, period_for(args.days * 24)):
            t, frame = _timed(
                lambda p=period: queries.fetch_metrics(cw, chosen, start=start, end=end, period_s=p), repeat=3
            )
            n = len(frame.data) if isinstance(frame, queries.MetricFrame) else 0
            rows.append((f"baseline: raw GetMetricData, {shape} @ {period}s ({n:,} pts)", t))

        os.environ["FLEETSCOPE_TARGET"] = "sandbox"
        os.environ["FLEETSCOPE_HOME"] = str(home)
        os.environ.pop("AWS_ENDPOINT_URL", None)  # the dashboard finds the emulator through sandbox.json
        get_settings.cache_clear()

        import streamlit as st
        from streamlit.testing.v1 import AppTest

        def render(page: str | None, window_key: str, window: str, at: AppTest | None = None) -> AppTest:
            if at is not None:  # a rerun of the same session
                at.run()
                if at.exception:
                    raise RuntimeError(f"{page or 'overview'}: {[e.value for e in at.exception]}")
                return at
            at = AppTest.from_file(APP, default_timeout=600)
            at.session_state[window_key] = window
            if page is None:
                at.run()
            else:
                at.run()
                at.switch_page(page)
                at.session_state[window_key] = window
                at.run()
            if at.exception:
                raise RuntimeError(f"{page or 'overview'}: {[e.value for e in at.exception]}")
            return at

        # Warm the interpreter (imports of streamlit, altair, scikit-learn for the detectors) so that
        # "cold" means cold caches: every query and every detector fit, not module imports.
        render(None, "overview_window", "1 h")
        render(f"{VIEWS}/health.py", "health_window", "1 h")
        for label, page, key in (
            ("Overview", None, "overview_window"),
            ("Service health", f"{VIEWS}/health.py", "health_window"),
        ):
            for window in ("24 h", "14 d"):
                st.cache_data.clear()
                st.cache_resource.clear()
                t_cold, session = _timed(lambda p=page, k=key, w=window: render(p, k, w))
                t_rerun, _ = _timed(lambda p=page, k=key, w=window, a=session: render(p, k, w, a), repeat=3)
                t_cached, _ = _timed(lambda p=page, k=key, w=window: render(p, k, w), repeat=3)
                rows.append((f"{label} {window}: first complete render, cold", t_cold))
                rows.append((f"{label} {window}: rerun, cached", t_rerun))
                rows.append((f"{label} {window}: new session, cached", t_cached))
        width = max(len(r[0]) for r in rows)
        print(f"{'what':<{width}}  seconds")
        for what, seconds in rows:
            print(f"{what:<{width}}  {seconds:7.2f}")
        print("(a page switch includes the entry script's run; Service health fits the monitor's detectors)")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
