"""Target resolution and the pure parts of the query layer."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from botocore.exceptions import ClientError

from contract.topology import topology
from dashboard import queries
from dashboard.settings import DashboardSettings
from dashboard.target import (
    Resources,
    TargetError,
    aws_target,
    read_sandbox_file,
    resources_from_outputs,
    sandbox_target,
)
from monitor.catalog import MetricSpec, Severity
from ops.fakes import FakeCloudWatch, client_error
from sandbox.home import SandboxState, write_state


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sandbox_file_is_used_only_while_its_process_lives(tmp_path: Path) -> None:
    assert read_sandbox_file(tmp_path) is None  # no file: no sandbox
    write_state(tmp_path, SandboxState(emulator_url="http://127.0.0.1:5055", stage="local", pid=os.getpid()))
    info = read_sandbox_file(tmp_path)
    assert info is not None
    assert info.emulator_url == "http://127.0.0.1:5055"
    write_state(tmp_path, SandboxState(emulator_url="http://127.0.0.1:5055", stage="local", pid=dead_pid()))
    assert read_sandbox_file(tmp_path) is None  # stale file of a dead sandbox


def test_corrupt_sandbox_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    path.write_text('{"pid": "x"}')
    with pytest.raises(TargetError, match="not a valid sandbox description"):
        read_sandbox_file(tmp_path)


def test_sandbox_target_uses_local_credentials_and_the_sandbox_stage(tmp_path: Path) -> None:
    info = SandboxState(emulator_url="http://127.0.0.1:5055", stage="local", pid=os.getpid())
    target = sandbox_target(info, DashboardSettings(FLEETSCOPE_HOME=tmp_path))
    kwargs = target.client_kwargs()
    assert kwargs["endpoint_url"] == "http://127.0.0.1:5055"
    assert kwargs["aws_access_key_id"] == "testing"
    assert target.resources.cars_table == topology("local").cars_table.name


@pytest.mark.parametrize(
    ("emulator_url", "local"),
    [
        ("http://127.0.0.1:5055", True),
        ("http://localhost:5055", True),
        ("http://[::1]:5055", True),
        ("http://0.0.0.0:5055", False),  # a sandbox listening on every interface
        ("http://10.1.2.3:5055", False),
        ("http://sandbox.example.com:5055", False),
    ],
)
def test_only_a_sandbox_on_this_machine_counts_as_local(
    tmp_path: Path, emulator_url: str, local: bool
) -> None:
    # Given a sandbox file naming an emulator address (the file is writable by anyone with the home dir)
    info = SandboxState(emulator_url=emulator_url, stage="local", pid=os.getpid())
    target = sandbox_target(info, DashboardSettings(FLEETSCOPE_HOME=tmp_path))
    # Then only a loopback emulator makes it a local sandbox (the one the Sandbox page may inject into)
    assert target.is_sandbox
    assert target.is_local_sandbox is local


def test_an_aws_target_is_never_a_local_sandbox() -> None:
    target = aws_target(DashboardSettings(FLEETSCOPE_TARGET="aws"), list)
    assert target.is_local_sandbox is False


def test_aws_target_reads_stack_outputs() -> None:
    stacks = [
        {
            "StackName": "Fleetscope-prod-Service",
            "Outputs": [
                {"OutputKey": "CarsTableName", "OutputValue": "cars-xyz"},
                {
                    "OutputKey": "TelemetryQueueUrl",
                    "OutputValue": "https://sqs.us-east-1.amazonaws.com/1/tq-xyz",
                },
                {"OutputKey": "CarsApiFunctionName", "OutputValue": "api-fn-xyz"},
            ],
        },
        {"StackName": "SomethingElse", "Outputs": [{"OutputKey": "CarsTableName", "OutputValue": "nope"}]},
    ]
    target = aws_target(
        DashboardSettings(FLEETSCOPE_TARGET="aws", FLEETSCOPE_STAGE="prod", AWS_REGION="eu-west-1"),
        lambda: stacks,
    )
    assert target.kind == "aws"
    assert target.region == "eu-west-1"
    assert target.resources.source == "cloudformation"
    assert target.resources.cars_table == "cars-xyz"
    assert target.resources.function("cars-api").name == "api-fn-xyz"  # type: ignore[union-attr]
    assert "endpoint_url" not in target.client_kwargs()  # the standard AWS chain, never the emulator
    # Names without an output keep the topology's
    assert target.resources.monitor_table == topology("prod").monitor_table.name


def test_resources_from_outputs_takes_queue_names_from_urls() -> None:
    base = Resources.from_topology(topology("prod"))
    updated = resources_from_outputs(base, {"TelemetryQueueUrl": "https://sqs.x/123/q-name"})
    assert updated.telemetry_queue == "q-name"


def test_aws_target_falls_back_to_topology_names_when_access_is_denied() -> None:
    def denied() -> list[dict[str, object]]:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeStacks")

    target = aws_target(DashboardSettings(FLEETSCOPE_TARGET="aws", FLEETSCOPE_STAGE="prod"), denied)
    assert target.resources.source == "topology"
    assert target.resources.cars_table == topology("prod").cars_table.name
    assert "AccessDenied" in target.notes[0]


def test_explain_maps_errors_to_messages() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "nope"}}, "GetCostAndUsage")
    err = queries.explain(denied, "Cost Explorer")
    assert err.kind == "denied"
    assert "Not allowed to read Cost Explorer" in str(err)
    missing = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "Scan")
    assert queries.explain(missing, "the cars table").kind == "missing"


def test_status_mix_walks_transitions_back_in_time() -> None:
    # Given one car in trip now, that was reserved until 10 minutes ago and available before 30
    now = pd.Timestamp.now(tz=UTC)
    cars = pd.DataFrame({"car_id": ["c1", "c2"], "status": ["in_trip", "available"]})
    events = pd.DataFrame(
        {
            "at": [now - timedelta(minutes=30), now - timedelta(minutes=10)],
            "car_id": ["c1", "c1"],
            "from_status": ["available", "reserved"],
            "to_status": ["reserved", "in_trip"],
        }
    )
    mix = queries.status_mix(cars, events, start=(now - timedelta(minutes=60)).to_pydatetime(), freq="5min")
    status_at = mix.pivot_table(index="at", columns="status", values="cars", aggfunc="sum").fillna(0)
    first, last = status_at.iloc[0], status_at.iloc[-1]
    assert (first["available"], first["in_trip"], first["reserved"]) == (2, 0, 0)
    assert (last["available"], last["in_trip"], last["reserved"]) == (1, 1, 0)
    middle = status_at.loc[
        status_at.index[
            (status_at.index > now - timedelta(minutes=30)) & (status_at.index < now - timedelta(minutes=10))
        ]
    ]
    assert (middle["reserved"] == 1).all()


def test_incidents_frame_reads_the_monitor_items_and_skips_the_outbox() -> None:
    items = [
        {
            "pk": "INCIDENT",
            "sk": "inc-1",
            "incident": '{"id": "inc-1", "resource": "api:x", "status": "open", "severity": "critical",'
            ' "opened_at": 1764200000, "updated_at": 1764200300, "members": {"api:x:5xx": {}}}',
            "status": "open",
        },
        {
            "pk": "OUTBOX",
            "sk": "inc-1#0001",
            "incident_id": "inc-1",
            "seq": 1,
            "created_at": 1,
            "message": "{}",
        },
    ]
    frame = queries.incidents_frame(items)
    assert list(frame["incident_id"]) == ["inc-1"]
    assert frame.loc[0, "series"] == ["api:x:5xx"]
    assert frame.loc[0, "opened_at"] == pd.Timestamp(1764200000, unit="s", tz=UTC)


def test_period_grid_and_fill() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    grid = queries.period_grid(start, start + timedelta(minutes=30), 300)
    assert len(grid) == 6
    assert grid[0] == pd.Timestamp(start)


def test_ratio_and_summed_series_keep_the_datapoints() -> None:
    # A derived rate (5XX / Count) must have a value wherever the denominator has traffic;
    # summing onto an empty Series used to turn every point into NaN ("no datapoints").
    t = pd.to_datetime(["2026-01-01T00:00Z", "2026-01-01T00:05Z", "2026-01-01T00:10Z"], utc=True)
    frame = queries.MetricFrame(
        pd.DataFrame(
            {
                "id": ["e5", "e5", "n", "n", "n", "m"],
                "timestamp": [t[0], t[1], t[0], t[1], t[2], t[2]],
                "value": [1.0, 0.0, 10.0, 20.0, 0.0, 5.0],
            }
        )
    )
    rate = queries.ratio(frame, ["e5"], ["n"])
    assert rate.loc[t[0]] == pytest.approx(0.1)
    assert rate.loc[t[1]] == 0.0
    assert pd.isna(rate.loc[t[2]])  # no traffic: no rate
    total = queries.sum_series(frame, ["n", "m"])
    assert total.to_dict() == {t[0]: 10.0, t[1]: 20.0, t[2]: 5.0}
    assert queries.ratio(frame, ["e5"], ["n", "m"]).loc[t[2]] == 0.0


def test_band_of_a_non_negative_series_is_drawn_from_zero() -> None:
    from dashboard import ui

    t = pd.date_range("2026-01-01", periods=3, freq="5min", tz=UTC)
    frame = pd.DataFrame(
        {
            "timestamp": t,
            "value": [5.0, 0.0, float("nan")],
            "lower": [-500.0, -3.0, -1.0],
            "upper": [900.0, -1.0, 20.0],
            "score": [0.0, 0.0, 0.0],
            "anomalous": [False, False, False],
        }
    )
    spec = ui.band_chart(frame, title="API requests", unit="requests").to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert [r["lower"] for r in rows] == [0.0, 0.0, 0.0]
    assert [r["upper"] for r in rows] == [900.0, 0.0, 20.0]
    # A series that does go negative keeps its band as the detector drew it
    signed = ui.band_chart(frame.assign(value=[-5.0, 1.0, 2.0]), title="x", unit="").to_dict()
    assert [r["lower"] for r in next(iter(signed["datasets"].values()))] == [-500.0, -3.0, -1.0]


def _metric(series_id: str, statistic: str = "Sum", *, fill_zero: bool = False) -> MetricSpec:
    return MetricSpec(
        id=series_id,
        title=series_id,
        resource="r",
        namespace="Test",
        metric_name=series_id,
        dimensions={"k": "v"},
        statistic=statistic,
        period_s=300,
        direction="up",
        severity=Severity.INFO,
        profile="count",
        fill_zero=fill_zero,
    )


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_metrics_are_read_through_the_monitors_reader_following_every_page() -> None:
    # Given 2 series of 500 five-minute datapoints behind an endpoint answering 300 datapoints a page
    fake = FakeCloudWatch(max_datapoints=300)
    specs = [_metric("a"), _metric("b")]
    t = [int((T0 + timedelta(minutes=5 * i)).timestamp()) for i in range(500)]
    for i, spec in enumerate(specs):
        fake.put_series("Test", spec.metric_name, spec.dimensions, t, [float(i)] * 500)
    # When the dashboard reads them
    frame = queries.fetch_metrics(fake, specs, start=T0, end=T0 + timedelta(minutes=5 * 500), period_s=300)
    # Then every page was followed and every datapoint kept, in time order
    assert fake.calls == 4
    assert frame.total("a") == 0.0
    assert frame.total("b") == 500.0
    assert len(frame.series("b")) == 500
    assert frame.series("b").index.is_monotonic_increasing


def test_a_window_off_the_period_grid_keeps_the_timestamps_cloudwatch_returns() -> None:
    # Given datapoints whose periods start 2 minutes past a 5-minute boundary (an incident's window)
    fake = FakeCloudWatch()
    start = T0 + timedelta(minutes=2)
    fake.put_series("Test", "a", {"k": "v"}, [int(start.timestamp()) + 300 * i for i in range(3)], [1, 2, 3])
    # When read (the monitor's own grid would reject this window)
    frame = queries.fetch_metrics(
        fake, [_metric("a")], start=start, end=start + timedelta(minutes=15), period_s=300
    )
    # Then the datapoints keep CloudWatch's timestamps
    assert frame.series("a").to_dict() == {
        pd.Timestamp(start): 1.0,
        pd.Timestamp(start + timedelta(minutes=5)): 2.0,
        pd.Timestamp(start + timedelta(minutes=10)): 3.0,
    }


class _NoPercentiles(FakeCloudWatch):
    """plain moto: a GetMetricData call with a percentile statistic fails with HTTP 500."""

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        if any(q["MetricStat"]["Stat"].startswith("p") for q in kwargs["MetricDataQueries"]):
            self.calls += 1
            raise client_error("InternalFailure", "percentiles are not implemented")
        return super().get_metric_data(**kwargs)


def test_percentiles_the_endpoint_cannot_compute_are_unavailable_and_the_rest_is_drawn() -> None:
    # Given an endpoint without percentiles and a counter (zero-filled) next to a p99
    fake = _NoPercentiles()
    fake.put_series("Test", "count", {"k": "v"}, [int(T0.timestamp())], [7.0])
    specs = [_metric("count", fill_zero=True), _metric("p99", "p99")]
    # When read
    frame = queries.fetch_metrics(fake, specs, start=T0, end=T0 + timedelta(minutes=15), period_s=300)
    # Then the counter is there (zeros where CloudWatch had nothing) and the p99 says why it is not
    assert frame.series("count").tolist() == [7.0, 0.0, 0.0]
    assert frame.series("p99").empty
    assert frame.unavailable == {
        "p99": "Reading percentile statistics failed: InternalFailure: percentiles are not implemented"
    }
    assert fake.calls == 2  # one call each, the failure not retried


def test_metrics_read_without_permission_is_an_explained_error() -> None:
    class Denied:
        def get_metric_data(self, **_kwargs: Any) -> dict[str, Any]:
            raise client_error("AccessDenied", "not for you")

    with pytest.raises(queries.QueryError, match=r"Not allowed to read CloudWatch metrics") as caught:
        queries.fetch_metrics(Denied(), [_metric("a")], start=T0, end=T0 + timedelta(minutes=5), period_s=300)
    assert caught.value.kind == "denied"


def test_the_dashboards_home_is_fleetscope_home_never_the_users_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given HOME set (as in every shell) and FLEETSCOPE_HOME unset
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FLEETSCOPE_HOME", raising=False)
    # Then the dashboard looks for a sandbox in .fleetscope, as documented, not in the user's home
    assert DashboardSettings().home == Path(".fleetscope")
    # And FLEETSCOPE_HOME still names it
    monkeypatch.setenv("FLEETSCOPE_HOME", str(tmp_path / "fs"))
    assert DashboardSettings().home == tmp_path / "fs"
