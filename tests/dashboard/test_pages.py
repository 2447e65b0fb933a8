"""Every page of the dashboard, run with AppTest against the seeded emulator (real queries, no patches)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.power_curve import FunctionCurve, PowerCurve
from dashboard.settings import get_settings
from sandbox.home import SandboxState, write_state
from tests.dashboard.conftest import SeededSandbox

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_page(page: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_overview_shows_kpis_with_deltas_and_sparklines(dashboard_env: SeededSandbox) -> None:
    # Given a sandbox with two days of traffic, 40 cars and one open incident
    # When the default page renders
    at = run_page(None)
    # Then every headline figure is there, computed from the data
    assert_clean(at)
    assert not at.warning, [w.value for w in at.warning]
    values = metrics(at)
    assert values["Cars in trip"] == "14"
    assert values["Cars available"] == "12"
    assert values["Open incidents"] == "1"
    assert values["API requests"] not in ("—", "0")
    assert values["p99 latency"].endswith(" ms")
    assert values["Month-to-date cost (estimate)"].startswith("$")
    requests = next(m for m in at.metric if m.label == "API requests")
    assert requests.proto.chart_data, "the requests KPI carries a sparkline"
    assert requests.proto.delta, "the requests KPI is compared with the previous window"


def test_fleet_shows_map_charts_and_searchable_table(dashboard_env: SeededSandbox) -> None:
    at = run_page("views/fleet.py")
    assert_clean(at)
    assert len(at.get("deck_gl_json_chart")) == 1
    assert len(at.get("vega_lite_chart")) >= 3  # status mix, trips per hour, battery
    specs = {}
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        specs[str(spec.get("title", ""))] = spec
    # Bars spanning [at, until) are drawn from 0 (without y2 Vega-Lite draws a flat line at the value)
    assert specs["Trips started per hour"]["encoding"]["y2"] == {"datum": 0}
    # The battery histogram colours statuses as the map and the status mix do
    status_scale = specs["Status mix over time"]["encoding"]["color"]["scale"]
    assert specs["Battery level"]["encoding"]["color"]["scale"] == status_scale
    table = at.dataframe[0].value
    assert len(table) == 40
    assert {"car_id", "vin", "status", "battery_level"} <= set(table.columns)
    # When the operator searches for one car
    at.text_input(key="fleet_search").input("car-007").run()
    # Then the table shows only that car
    assert list(at.dataframe[0].value["car_id"]) == ["car-007"]


def test_service_health_marks_the_injected_anomaly(dashboard_env: SeededSandbox) -> None:
    # Given 5XX errors that jumped by 40 per period in the last 45 minutes
    at = run_page("views/health.py")
    assert_clean(at)
    # Then the monitor's detectors draw bands for the API's series and mark anomalous points
    assert int(metrics(at)["Anomalous points in the window"]) > 0
    assert any("EnsembleDetector" in c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) >= 5
    assert "Telemetry queue: visible now" in metrics(at)
    # And a wider window still renders
    at.selectbox(key="health_window").select("3 d").run()
    assert_clean(at)


def test_service_health_keeps_its_resource_and_window_in_the_query_string(
    dashboard_env: SeededSandbox,
) -> None:
    # Given the page opened once, to learn the catalog's resources
    at = run_page("views/health.py")
    wanted = at.selectbox(key="health_resource").options[1].replace(" · ", ":", 1)  # options are labels
    # When a link opens it with a resource and a window in the query string
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["resource"] = wanted
    at.query_params["window"] = "6h"
    at.run()
    at.switch_page("views/health.py")
    at.query_params["resource"] = wanted
    at.query_params["window"] = "6h"
    at.run()
    # Then that chart is shown, and the query string follows what the user picks next
    assert_clean(at)
    assert at.selectbox(key="health_resource").value == wanted
    assert at.selectbox(key="health_window").value == "6 h"
    at.selectbox(key="health_window").select("3 d").run()
    assert at.query_params["window"] == "3d"
    assert at.query_params["resource"] == wanted


def test_incidents_show_timeline_bands_and_sent_message(dashboard_env: SeededSandbox) -> None:
    at = run_page("views/incidents.py")
    assert_clean(at)
    values = metrics(at)
    assert values["Open"] == "1"
    assert values["Resolved"] == "1"
    assert len(at.get("vega_lite_chart")) >= 2  # timeline + observed vs expected
    sent = [json.loads(c.value) for c in at.code]
    assert any("TopicArn" in m and "Subject" in m for m in sent), "the SNS Publish input is shown"
    # The open incident (selected first) lists the deployment that came just before it
    assert any("began 2 min after cars-api version 8 took 10 % of traffic" in m.value for m in at.markdown)
    assert any("(./deployments?deployment=d-seeded)" in m.value for m in at.markdown)  # its page
    # The resolved incident has its two notifications (OPEN, RESOLVED)
    resolved = [i for i in at.selectbox(key="incident_choice").options if "resolved" in i]
    assert resolved
    at.selectbox(key="incident_choice").set_value(
        next(v for v in at.selectbox(key="incident_choice").options if "resolved" in v).split(" ")[0]
    ).run()
    assert_clean(at)
    assert len([c for c in at.code if "RESOLVED" in c.value]) >= 1


def test_deployments_show_history_verdicts_and_each_metric_the_judge_compared(
    dashboard_env: SeededSandbox,
) -> None:
    # Given two recorded canaries of cars-api (d-seeded rolled back on latency, d-clean promoted)
    # and one unreadable item in the deployment log
    at = run_page("views/deployments.py")
    # Then the history counts them, and says which item it left out
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    values = metrics(at)
    assert (values["Deployments"], values["Rolled back"], values["Promoted"]) == ("2", "1", "1")
    assert any("could not be read" in w.value and "d-broken" in w.value for w in at.warning)
    history = at.dataframe[0].value
    assert list(history["deployment_id"]) == ["d-seeded", "d-clean"]  # newest first
    assert list(history["verdict"]) == ["FAIL", "PASS"]
    # and the newest (selected first) shows the judge's comparison of each metric it used
    assert at.selectbox(key="deployment_choice").value == "d-seeded"
    comparison = at.dataframe[1].value.set_index("metric")
    assert {"error_ratio", "duration_p50", "duration_p90", "duration_p99"} <= set(comparison.index)
    assert comparison.loc["duration_p50", "outcome"] == "FAIL"
    assert comparison.loc["duration_p50", "canary v8"] == "2,042.0 ms"
    assert comparison.loc["duration_p50", "baseline v7"] == "42.0 ms"
    assert any("duration_p50:" in m.value for m in at.markdown)  # the verdict's reasons
    # and its minutes, canary against baseline, one chart per metric
    per_minute = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titles = {str(spec.get("title", "")) for spec in per_minute}
    assert {"invocations", "error ratio (%)", "duration p50 (ms)", "duration p99 (ms)"} <= titles
    # and how its verdict evolved: INCONCLUSIVE for want of minutes, then the FAIL
    verdicts = next(d.value for d in at.dataframe if "minutes judged" in d.value.columns)
    assert list(verdicts["minutes judged"]) == [1, 2, 3, 4, 5]
    assert list(verdicts["verdict"])[:2] == ["INCONCLUSIVE", "INCONCLUSIVE"]
    assert list(verdicts["verdict"])[-1] == "FAIL"
    # When the promoted one is picked
    at.selectbox(key="deployment_choice").set_value("d-clean").run()
    # Then its own verdict is shown, and the choice is in the query string
    assert not at.exception
    assert at.query_params["deployment"] == "d-clean"
    assert set(at.dataframe[1].value["outcome"]) == {"PASS"}


def test_service_health_marks_deployments_on_its_charts(dashboard_env: SeededSandbox) -> None:
    # Given cars-api deployments in the last 24 hours, and the API (a cars-api resource) shown first
    at = run_page("views/health.py")
    assert_clean(at)
    # Then its charts carry the deployment marks (a rule where the canary took traffic) and say so
    marked = [c for c in at.get("vega_lite_chart") if '"rule"' in c.proto.spec]
    assert len(marked) >= 3, "every band chart of the API and the latency chart"
    assert any("2 deployment(s) in the window are marked" in c.value for c in at.caption)
    # When the cars-api function is picked
    fn = next(
        o for o in at.selectbox(key="health_resource").options if o.endswith("-cars-api") and "lambda" in o
    )
    at.selectbox(key="health_resource").set_value(fn.replace(" · ", ":", 1)).run()
    assert_clean(at)
    # Then its slowest version's p50 (every ExecutedVersion that ListMetrics finds) has a band, marked too
    slowest = [c for c in at.get("vega_lite_chart") if "duration p50, slowest version" in c.proto.spec]
    assert len(slowest) == 1
    assert '"rule"' in slowest[0].proto.spec
    # When a resource of no deployed function is picked (a table), its band charts carry none
    table = next(o for o in at.selectbox(key="health_resource").options if o.startswith("dynamodb"))
    at.selectbox(key="health_resource").set_value(table.replace(" · ", ":", 1)).run()
    assert_clean(at)
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3
    marked = [c for c in charts if '"rule"' in c.proto.spec]
    assert len(marked) == 1, "only the latency chart, which shows every function"
    assert "Latency percentiles" in marked[0].proto.spec


def test_cost_estimates_from_usage_metrics(dashboard_env: SeededSandbox) -> None:
    at = run_page("views/cost.py")
    assert_clean(at)
    values = metrics(at)
    assert values["Cost per 1,000 API requests"].startswith("$")
    assert float(values["Fleetscope monitor, per month"].lstrip("$").replace(",", "")) > 0
    assert len(at.get("vega_lite_chart")) >= 1
    rightsizing = at.dataframe[1].value
    cars_api = rightsizing[rightsizing["function"] == "cars-api"].iloc[0]
    assert cars_api["peak used (MB)"] == 88
    assert cars_api["suggested (MB)"] == 128


def test_cost_rightsizing_uses_the_power_tuning_curve_when_there_is_one(
    dashboard_env: SeededSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.dashboard.test_power_curve import point

    # Given a curve for cars-api where 128 MB runs 5x and 256 MB 2.2x longer than 512 MB (CPU-bound)
    sizes = {128: 50.0, 256: 22.0, 512: 10.0, 1024: 9.0, 1769: 8.0, 3008: 8.0}
    curve = PowerCurve(
        measured_at=datetime(2026, 12, 5, tzinfo=UTC),
        host="test",
        cpu_limit="model",
        cpu_limit_detail="test",
        gb_s_usd=0.0000133334,
        request_usd=0.2e-6,
        prices_note="test",
        functions=(
            FunctionCurve(
                function="cars-api",
                configured_mb=512,
                peak_memory_mb=88,
                mix="test",
                points=tuple(point(m, ms) for m, ms in sizes.items()),
            ),
        ),
    )
    path = tmp_path / "power_tuning.json"
    path.write_text(curve.model_dump_json())
    monkeypatch.setenv("FLEETSCOPE_POWER_CURVE", str(path))
    get_settings.cache_clear()
    # When the Cost page draws
    at = run_page("views/cost.py")
    assert_clean(at)
    table = at.dataframe[1].value
    cars_api = table[table["function"] == "cars-api"].iloc[0]
    # Then cars-api is sized from the curve: at 128 MB (the peak-memory rule's answer) a run would cost
    # 5 x 128 = 640 MB-units against 512 at 512 MB, so it stays at 512 MB with the same duration
    assert cars_api["basis"] == "measured curve"
    assert cars_api["memory (MB)"] == 512
    assert cars_api["suggested (MB)"] == 512
    assert cars_api["fastest (MB)"] == 1769
    assert cars_api["duration suggested (ms)"] == pytest.approx(cars_api["duration now (ms)"])


def test_cost_page_says_the_curve_is_missing_and_falls_back_to_peak_memory(
    dashboard_env: SeededSandbox,
) -> None:
    at = run_page("views/cost.py")
    assert_clean(at)
    assert any("No power-tuning curve" in info.value for info in at.info)
    table = at.dataframe[1].value
    assert all(basis == "peak memory only (no curve)" for basis in table["basis"])


def test_sandbox_page_injects_an_incident_and_lists_the_inbox(dashboard_env: SeededSandbox) -> None:
    at = run_page("views/sandbox.py")
    assert_clean(at)
    assert metrics(at)["Alerts delivered"] == "3"
    at.button(key="inject_latency").click().run()
    assert_clean(at)
    injections = json.loads((dashboard_env.home / "incidents.json").read_text())["injections"]
    assert [i["kind"] for i in injections] == ["latency"]
    at.button(key="inject_clear").click().run()
    assert_clean(at)


@pytest.fixture
def fresh_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(tmp_path))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield tmp_path
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


def test_no_sandbox_running_gives_a_message_not_a_traceback(
    fresh_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETSCOPE_TARGET", "sandbox")
    at = run_page(None)
    assert not at.exception
    assert "no running sandbox" in at.error[0].value
    # And the navigation is still the app's: every page is there and says the same, no traceback
    at = run_page("views/fleet.py")
    assert not at.exception
    assert "no running sandbox" in at.error[0].value


def test_a_sandbox_writing_its_history_says_so_on_every_page(
    fresh_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sandbox that is backfilling (its emulator does not answer: port 9 is closed on loopback)
    state = SandboxState(emulator_url="http://127.0.0.1:9", stage="test", pid=os.getpid())
    write_state(
        fresh_caches,
        state.model_copy(
            update={"phase": "backfilling", "progress": 0.4, "detail": "backfilling 5 of 14 days"}
        ),
    )
    monkeypatch.setenv("FLEETSCOPE_TARGET", "sandbox")
    for page in (None, "views/health.py"):
        at = run_page(page)
        # Then the page says what the sandbox is doing, with its progress
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any("backfilling 5 of 14 days" in i.value for i in at.info), page


def test_sandbox_page_refuses_to_inject_into_a_sandbox_that_is_not_local(
    fresh_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sandbox file whose emulator is not on the loopback (0.0.0.0: listening on every interface)
    write_state(fresh_caches, SandboxState(emulator_url="http://0.0.0.0:9", stage="test", pid=os.getpid()))
    monkeypatch.setenv("FLEETSCOPE_TARGET", "sandbox")
    # When the Sandbox page is opened
    at = run_page("views/sandbox.py")
    # Then it offers no injection button, says why, and writes no incidents file
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.key and b.key.startswith("inject_")]
    assert any("Injection refused" in w.value for w in at.warning)
    assert not (fresh_caches / "incidents.json").exists()


def test_unreachable_endpoint_shows_messages_on_every_page(
    fresh_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sandbox file whose emulator does not answer (port 9 is discard, closed on loopback)
    write_state(
        fresh_caches,
        SandboxState(emulator_url="http://127.0.0.1:9", stage="test", pid=os.getpid()),
    )
    monkeypatch.setenv("FLEETSCOPE_TARGET", "sandbox")
    for page in (None, "views/fleet.py", "views/health.py", "views/incidents.py", "views/cost.py"):
        at = run_page(page)
        # Then each page explains what it cannot reach instead of raising
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.warning, page
        assert any("reach" in w.value or "failed" in w.value for w in at.warning), page


def test_aws_target_shows_the_same_pages_from_stack_outputs(
    seeded_sandbox: SeededSandbox, fresh_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployed stack whose outputs name the cars table (the emulator plays AWS through the
    # standard AWS_ENDPOINT_URL setting, exactly as the dashboard's boto3 clients would see AWS)
    import boto3

    cfn = boto3.client("cloudformation")
    template = {
        "Resources": {
            "Marker": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "fleetscope-dash-marker"}}
        },
        "Outputs": {"CarsTableName": {"Value": seeded_sandbox.topo.cars_table.name}},
    }
    stack = f"fleetscope-{seeded_sandbox.topo.stage}-service"
    if stack not in [s["StackName"] for s in cfn.describe_stacks().get("Stacks", [])]:
        cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    monkeypatch.setenv("FLEETSCOPE_TARGET", "aws")
    monkeypatch.setenv("FLEETSCOPE_STAGE", seeded_sandbox.topo.stage)
    # When the Overview renders
    at = run_page(None)
    assert_clean(at)
    assert any("names from cloudformation" in c.value for c in at.sidebar.caption)
    assert metrics(at)["Cars in trip"] == "14"
    # And the sandbox-only page is not offered
    with pytest.raises(ValueError, match=r"not a registered page|Could not find"):
        at.switch_page("views/sandbox.py")
    # And the Cost page shows Cost Explorer actuals, or says why not, never a traceback
    at = run_page("views/cost.py")
    assert_clean(at)
    shown = [i.value for i in at.info] + [w.value for w in at.warning]
    assert any("Cost Explorer" in text for text in shown)  # the emulator's Cost Explorer has no cost


@pytest.mark.e2e
def test_nothing_configured_starts_an_embedded_sandbox_with_a_living_fleet(
    fresh_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import time

    from dashboard import data
    from sandbox.emulator.server import aws_environment

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    # Given no target and no running sandbox (the sandbox sets AWS_* for its own use: restore them after)
    monkeypatch.delenv("FLEETSCOPE_TARGET", raising=False)
    for key in aws_environment("x"):
        monkeypatch.setenv(key, os.environ.get(key, ""))
    monkeypatch.setenv("FLEETSCOPE_EMULATOR_PORT", str(free_port()))
    monkeypatch.setenv("FLEETSCOPE_API_PORT", str(free_port()))
    try:
        # When the dashboard starts
        at = run_page(None)
        assert_clean(at)
        # Then it started a sandbox of its own and shows it
        assert any("embedded sandbox" in c.value for c in at.sidebar.caption)
        assert (fresh_caches / "sandbox.json").exists()
        # And the fleet comes alive: cars appear on the map within a minute or two
        deadline = time.monotonic() + 150
        while True:
            st.cache_data.clear()
            at = run_page("views/fleet.py")
            assert_clean(at)
            if at.get("deck_gl_json_chart"):
                break
            assert time.monotonic() < deadline, "no car registered by the embedded sandbox's fleet"
            time.sleep(3)
        assert len(at.dataframe[0].value) > 0
    finally:
        data.stop_embedded_sandbox()
    # And stopping it removes its description
    assert not (fresh_caches / "sandbox.json").exists()
