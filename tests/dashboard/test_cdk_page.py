"""The CloudWatch dashboards page: the CDK app's dashboards for the shown stage, from its metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import cdk_synth
from dashboard.cdk_preview import load_preview
from dashboard.cdk_render import evaluate, widget_lines
from tests.dashboard.conftest import SeededSandbox
from tests.dashboard.test_pages import APP, assert_clean

GRID = pd.date_range(datetime(2026, 12, 5, 10, tzinfo=UTC), periods=4, freq="300s")


def _series(*values: float) -> pd.Series:
    return pd.Series(values, index=GRID, dtype=float)


def test_metric_math_as_the_cdk_libraries_write_it() -> None:
    requests, errors = _series(10, float("nan"), 40, 0), _series(1, 2, 2, 0)
    series = {"requests": requests, "errors": errors}
    # FILL(m, 0) / PERIOD(m): a rate per second with the gaps filled
    rate = evaluate("FILL(requests,0) / PERIOD(requests)", series, period_s=300, grid=GRID)
    assert rate.round(4).tolist() == [0.0333, 0.0, 0.1333, 0.0]
    # IF with a minimum volume (the 5XX-rate alarm): gated periods are 0, missing stays missing
    pct = evaluate("IF(requests >= 20, 100 * errors / requests, 0)", series, period_s=300, grid=GRID)
    assert pct.tolist()[0] == 0.0
    assert pd.isna(pct.tolist()[1])
    assert pct.tolist()[2:] == [5.0, 0.0]
    # a division by zero gives no point, as in CloudWatch
    assert evaluate("errors / requests", series, period_s=300, grid=GRID).isna().tolist() == [
        False,
        True,
        False,
        True,
    ]


def test_a_widget_draws_visible_lines_with_labels_filled_and_says_what_it_cannot_draw() -> None:
    body = {
        "widgets": [
            {
                "type": "metric",
                "x": 0,
                "y": 0,
                "width": 12,
                "height": 5,
                "properties": {
                    "title": "TPS",
                    "metrics": [
                        [{"label": "TPS (max: ${MAX})", "expression": "FILL(requests,0) / PERIOD(requests)"}],
                        [
                            "AWS/Lambda",
                            "Invocations",
                            "FunctionName",
                            "f",
                            {"id": "requests", "visible": False},
                        ],
                        [{"label": "band", "expression": "ANOMALY_DETECTION_BAND(requests, 2)"}],
                    ],
                },
            }
        ]
    }
    document = {
        "stage": "t",
        "stacks": {
            "S": {
                "D": {
                    "Type": "AWS::CloudWatch::Dashboard",
                    "Properties": {"DashboardName": "d", "DashboardBody": json.dumps(body)},
                }
            }
        },
    }
    (dashboard,) = load_preview(document).dashboards
    data = pd.DataFrame({"id": "w0.requests", "timestamp": GRID, "value": [300.0, 600.0, 0.0, 30.0]})
    drawn = widget_lines(dashboard.widgets[0], 0, data, grid=GRID, unreadable={})
    assert set(drawn.lines["label"]) == {"TPS (max: 2)"}  # the hidden metric line is not drawn
    assert drawn.lines["value"].tolist() == [1.0, 2.0, 0.0, 0.1]
    assert any("ANOMALY_DETECTION_BAND" in note for note in drawn.notes)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.infra
def test_the_page_synthesizes_once_then_draws_the_stage_dashboards_and_alarms(
    dashboard_env: SeededSandbox,
) -> None:
    # Given a sandbox of the `test` stage with two days of the catalog's metrics, no synthesis cached
    stage = dashboard_env.topo.stage
    cached = cdk_synth.preview_file(dashboard_env.home, stage, cdk_synth.source_hash())
    cached.unlink(missing_ok=True)
    # When the page is opened (it synthesizes in the background and redraws until it is done)
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("views/cloudwatch.py")
    at.run()
    # Then the synthesis is cached and the service dashboard is drawn: its header, graphs, no error
    assert cached.exists()
    assert_clean(at)
    assert f"# Fleet service ({stage})" in [m.value for m in at.markdown]
    assert len(at.get("vega_lite_chart")) >= 5  # the widgets whose metrics the seed wrote (API, Lambda, ...)
    assert at.query_params["dashboard"] in ("fleet-service", ["fleet-service"])
    # And the alarms table says which alarms' metrics CloudWatch has: the seeded API latency yes, the
    # canary verdict (published only while a deployment is judged) no
    alarms = at.dataframe[-1].value.set_index("alarm")
    assert (
        alarms.loc[f"fleetscope-{stage}-cars-api-gateway-Latency-P99-Warning", "metrics in CloudWatch"]
        == "yes"
    )
    verdict = [name for name in alarms.index if name.endswith("canary-verdict-fail")]
    assert verdict
    assert alarms.loc[verdict[0], "metrics in CloudWatch"].startswith("no: Fleetscope/Canary CanaryFail")
    # And the monitor's dashboard is one selection away
    at.selectbox[0].set_value("fleet-monitor").run()
    assert_clean(at)
    assert f"# Fleet monitor ({stage})" in [m.value for m in at.markdown]
