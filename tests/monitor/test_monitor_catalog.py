"""The catalog of watched metrics: complete, named from the topology, JSON round-trip, bad input rejected."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from contract.metrics import WATCHED_BUSINESS_METRICS
from contract.resources import ResourceNames
from contract.topology import CANARY_FUNCTIONS, LIVE_ALIAS, topology
from monitor.catalog import Catalog, DerivedSpec, MetricSpec, build_catalog
from monitor.settings import MonitorConfigError, MonitorSettings


@pytest.fixture(scope="module")
def names() -> ResourceNames:
    return ResourceNames.from_topology(topology("test"))


@pytest.fixture(scope="module")
def catalog(names: ResourceNames) -> Catalog:
    return build_catalog(names, period_s=300)


def _find(catalog: Catalog, namespace: str, metric: str, **dims: str) -> list[MetricSpec]:
    return [
        m
        for m in catalog.metrics
        if m.namespace == namespace
        and m.metric_name == metric
        and all(m.dimensions.get(k) == v for k, v in dims.items())
    ]


def test_api_gateway_metrics_are_watched_by_api_name_and_stage(catalog: Catalog) -> None:
    topo = topology("test")
    dims = {"ApiName": topo.api_name, "Stage": topo.api_stage}
    for metric in ("Count", "4XXError", "5XXError"):
        assert len(_find(catalog, "AWS/ApiGateway", metric, **dims)) == 1, metric
    latency = {m.statistic for m in _find(catalog, "AWS/ApiGateway", "Latency", **dims)}
    assert latency == {"p50", "p99"}


def test_every_function_has_lambda_metrics_and_powertools_cold_starts(catalog: Catalog) -> None:
    topo = topology("test")
    for fn in topo.functions:
        for metric, stats in (
            ("Invocations", ["Sum"]),
            ("Errors", ["Sum"]),
            ("Throttles", ["Sum"]),
            ("Duration", ["p50", "p99"]),  # the bulk and the tail of the function's own latency
            ("ConcurrentExecutions", ["Maximum"]),
        ):
            found = _find(catalog, "AWS/Lambda", metric, FunctionName=fn.name)
            assert [m.statistic for m in found if m.each is None] == stats, (fn.name, metric)
        cold = _find(catalog, "Fleetscope", "ColdStart", function_name=fn.name, service=fn.service)
        assert len(cold) == 1
        assert set(cold[0].dimensions) == {"function_name", "service"}


def test_canary_functions_are_watched_per_version_by_their_slowest_version(catalog: Catalog) -> None:
    # Given the functions that deploy with a canary through `live`
    topo = topology("test")
    for fn in topo.functions:
        # When the catalog lists their per-version Duration
        per_version = [m for m in _find(catalog, "AWS/Lambda", "Duration", FunctionName=fn.name) if m.each]
        # Then each canary function has one: the p50 of every ExecutedVersion of the alias, the slowest
        # kept, in the function's incident group (so an incident it opens names the deployment)
        if fn.key not in CANARY_FUNCTIONS:
            assert per_version == [], fn.key
            continue
        assert len(per_version) == 1, fn.key
        spec = per_version[0]
        assert spec.dimensions == {"FunctionName": fn.name, "Resource": f"{fn.name}:{LIVE_ALIAS}"}
        assert (spec.each, spec.statistic, spec.direction, spec.profile) == (
            "ExecutedVersion",
            "p50",
            "up",
            "latency",
        )
        assert spec.group == f"service:{fn.service}"


def test_canary_functions_watch_the_judge_s_fail_verdict_in_their_incident_group(catalog: Catalog) -> None:
    # Given the functions that deploy with a canary, each with a CodeDeploy group named like it
    topo = topology("test")
    for fn in topo.functions:
        # When the catalog lists the canary judge's verdict metric for the function's group
        found = _find(catalog, "Fleetscope/Canary", "CanaryFail", DeploymentGroup=fn.name)
        if fn.key not in CANARY_FUNCTIONS:
            assert found == [], fn.key
            continue
        # Then it is watched as a verdict (one FAIL opens), zero-filled, in the function's group
        (spec,) = found
        assert spec.id == f"lambda:{fn.name}:canary-fail"
        assert (spec.statistic, spec.direction, spec.profile, spec.fill_zero) == (
            "Sum",
            "up",
            "verdict",
            True,
        )
        assert spec.group == f"service:{fn.service}"


def test_each_may_not_name_a_fixed_dimension() -> None:
    with pytest.raises(ValidationError, match="already fixes"):
        MetricSpec(
            id="x", title="x", resource="r", namespace="AWS/Lambda", metric_name="Duration",
            dimensions={"FunctionName": "f", "ExecutedVersion": "1"}, each="ExecutedVersion",
            statistic="p50", period_s=60, direction="up", severity="warning", profile="latency",
        )  # fmt: skip


def test_tables_queues_dlq_and_business_metrics_are_watched(catalog: Catalog) -> None:
    topo = topology("test")
    for table in topo.tables:
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
            assert _find(catalog, "AWS/DynamoDB", metric, TableName=table.name), (table.name, metric)
        for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"):
            # not watched: it follows the traffic, and an anomaly there opened a second incident beside
            # the injected one in the e2e incidents (a cost signal the dashboards show)
            assert not _find(catalog, "AWS/DynamoDB", metric, TableName=table.name), (table.name, metric)
        assert _find(catalog, "AWS/DynamoDB", "ThrottledRequests", TableName=table.name)
    queue = topo.telemetry_queue.name
    assert _find(catalog, "AWS/SQS", "ApproximateAgeOfOldestMessage", QueueName=queue)
    assert _find(catalog, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=queue)
    dlq = _find(catalog, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=topo.telemetry_dlq.name)
    assert len(dlq) == 1
    assert dlq[0].severity == "critical"
    assert dlq[0].profile == "dlq"  # every arrival alerts, whatever the depth it rises from
    for key, metrics in WATCHED_BUSINESS_METRICS.items():
        service = next(f.service for f in topo.functions if f.key == key)
        for metric in metrics:
            found = _find(catalog, "Fleetscope", metric, service=service)
            assert len(found) == 1
            assert found[0].dimensions == {"service": service}  # Powertools' default dimension only
    assert {m.metric_name for m in catalog.metrics} >= {
        "CarsRegistered",
        "StatusTransitions",
        "TelemetryApplied",
        "TelemetryRejected",
    }


def test_event_rules_get_failed_invocations_per_bus_and_rule(names: ResourceNames) -> None:
    with_rules = names.model_copy(update={"event_rules": ("to-archive", "to-audit")})
    catalog = build_catalog(with_rules, period_s=60)
    found = _find(catalog, "AWS/Events", "FailedInvocations", EventBusName=names.event_bus)
    assert sorted(m.dimensions["RuleName"] for m in found) == ["to-archive", "to-audit"]


def test_derived_rates_refer_to_raw_series_and_carry_a_volume_gate(catalog: Catalog) -> None:
    by_id = {m.id: m for m in catalog.metrics}
    rates = {d.id: d for d in catalog.derived}
    five = next(d for d in rates.values() if d.title == "API 5XX rate")
    assert [by_id[i].metric_name for i in five.numerator] == ["5XXError"]
    assert [by_id[i].metric_name for i in five.denominator] == ["Count"]
    assert five.min_volume
    assert five.min_volume > 0
    error_rates = [d for d in rates.values() if d.title.endswith("error rate")]
    assert len(error_rates) == len(topology("test").functions)
    for d in error_rates:
        assert [by_id[i].metric_name for i in d.numerator] == ["Errors"]
        assert [by_id[i].metric_name for i in d.denominator] == ["Invocations"]


def test_every_entry_has_the_fields_the_pipeline_needs(catalog: Catalog) -> None:
    for spec in catalog.series:
        assert spec.id
        assert spec.resource
        assert spec.profile
        assert spec.title
        assert spec.direction in ("up", "down", "both")
        if isinstance(spec, MetricSpec):
            assert spec.period_s == 300
        else:
            assert isinstance(spec, DerivedSpec)
            assert spec.min_volume is not None


def test_catalog_round_trips_through_json(catalog: Catalog) -> None:
    assert Catalog.model_validate_json(catalog.model_dump_json()) == catalog


def test_resource_names_fit_a_lambda_environment_and_round_trip(names: ResourceNames) -> None:
    env = names.to_env()
    assert len(env.encode()) < 1500  # Lambda allows 4 KB for all variables together
    assert ResourceNames.model_validate_json(env) == names
    assert names.api_name == topology("test").api_name
    assert {f.name for f in names.functions} == {f.name for f in topology("test").functions}


def test_catalog_is_deterministic_and_period_is_validated(names: ResourceNames) -> None:
    assert build_catalog(names, period_s=60) == build_catalog(names, period_s=60)
    with pytest.raises(ValueError, match="multiple of 60"):
        build_catalog(names, period_s=90)


def test_duplicate_ids_and_dangling_derived_references_are_rejected(catalog: Catalog) -> None:
    data = json.loads(catalog.model_dump_json())
    data["metrics"].append(data["metrics"][0])
    with pytest.raises(ValidationError, match="duplicate series ids"):
        Catalog.model_validate(data)
    data = json.loads(catalog.model_dump_json())
    data["derived"][0]["numerator"] = ["no-such-metric"]
    with pytest.raises(ValidationError, match="unknown metrics"):
        Catalog.model_validate(data)


def test_settings_use_monitor_resources_when_set_and_topology_otherwise(names: ResourceNames) -> None:
    base = {"MONITOR_TABLE_NAME": "t", "ALERTS_TOPIC_NAME": "a", "FLEETSCOPE_STAGE": "test"}
    custom = names.model_copy(update={"api_name": "other-api"})
    from_env = MonitorSettings.model_validate(
        base | {"MONITOR_RESOURCES": custom.to_env(), "MONITOR_PERIOD_S": 60}
    )
    assert from_env.resource_names().api_name == "other-api"
    assert from_env.catalog().period_s == 60
    fallback = MonitorSettings.model_validate(base)
    assert fallback.resource_names() == names


def test_malformed_monitor_resources_is_a_clear_config_error() -> None:
    settings = MonitorSettings.model_validate(
        {"MONITOR_TABLE_NAME": "t", "ALERTS_TOPIC_NAME": "a", "MONITOR_RESOURCES": '{"stage": 1}'}
    )
    with pytest.raises(MonitorConfigError, match="MONITOR_RESOURCES"):
        settings.resource_names()


def test_every_profile_is_known_to_the_detectors_and_the_alert_policy(catalog: Catalog) -> None:
    from monitor.detectors import PROFILES
    from monitor.policy import default_rule

    assert catalog.profiles() <= set(PROFILES)
    for profile in catalog.profiles():
        default_rule(profile)  # raises for an unknown profile


def test_volume_gates_scale_with_the_period(names: ResourceNames) -> None:
    five = {d.id: d.min_volume for d in build_catalog(names, period_s=300).derived}
    one = {d.id: d.min_volume for d in build_catalog(names, period_s=60).derived}
    for series_id, gate in five.items():
        assert gate is not None
        assert one[series_id] == max(1.0, round(gate / 5))


def test_rules_on_the_fleet_bus_come_from_the_topology(catalog: Catalog) -> None:
    topo = topology("test")
    found = _find(catalog, "AWS/Events", "FailedInvocations", EventBusName=topo.event_bus)
    assert sorted(m.dimensions["RuleName"] for m in found) == sorted(topo.event_rules)
    assert found


def test_a_service_s_api_function_queues_and_metrics_share_one_incident_group(names: ResourceNames) -> None:
    # Given the catalog of a deployment
    catalog = build_catalog(names, period_s=60)
    groups: dict[str, set[str]] = {}
    for spec in catalog.series:
        groups.setdefault(spec.group, set()).add(spec.resource)
    # Then the cars API, its function and its business metrics are one group; the telemetry queue and
    # its DLQ belong to their consumer; shared tables and the bus are groups of their own
    api_fn = names.function("cars-api")
    assert api_fn is not None
    cars = {f"api:{names.api_name}", f"lambda:{api_fn.name}", "service:cars-api"}
    assert groups["service:cars-api"] == cars
    assert {f"sqs:{q}" for q in (*names.queues, *names.dlqs)} <= groups["service:telemetry-ingest"]
    for table in names.tables:
        assert groups[f"dynamodb:{table}"] == {f"dynamodb:{table}"}
    # And every series of a queue's group is owned by that service (the SNS `service` attribute)
    owners = {s.service for s in catalog.series if s.group == "service:telemetry-ingest"}
    assert owners == {"telemetry-ingest"}
    # And a spec without a group is a group of its own (so hand-written catalogs keep working)
    spec = catalog.metrics[0]
    assert MetricSpec.model_validate({**spec.model_dump(), "group": ""}).group == spec.resource


@pytest.mark.parametrize(
    ("env", "hold_down_s"),
    [
        ({"MONITOR_PERIOD_S": 60}, 120),  # unset: two periods (the sandbox's 1-minute periods)
        ({}, 600),  # AWS: 5-minute periods
        ({"MONITOR_PERIOD_S": 60, "MONITOR_COOLDOWN_S": 900}, 900),  # set: as given
        ({"MONITOR_COOLDOWN_S": 0}, 0),
    ],
)
def test_the_incident_hold_down_is_two_periods_unless_set(env: dict[str, int], hold_down_s: int) -> None:
    settings = MonitorSettings.model_validate({"MONITOR_TABLE_NAME": "t", "ALERTS_TOPIC_NAME": "a"} | env)
    assert settings.hold_down_s == hold_down_s


def test_settings_are_read_from_their_documented_variables_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a Lambda-like environment with variables that merely share a field's name
    monkeypatch.setenv("MONITOR_TABLE_NAME", "t")
    monkeypatch.setenv("ALERTS_TOPIC_NAME", "a")
    for name, value in {"STAGE": "prod", "REGION": "eu-west-1", "PERIOD_S": "60", "COOLDOWN_S": "5"}.items():
        monkeypatch.setenv(name, value)
    for name in ("FLEETSCOPE_STAGE", "AWS_REGION", "MONITOR_PERIOD_S", "MONITOR_COOLDOWN_S"):
        monkeypatch.delenv(name, raising=False)
    # When the settings are read from the environment
    settings = MonitorSettings()
    # Then only the documented names count
    assert (settings.monitor_table_name, settings.alerts_topic_name) == ("t", "a")
    assert (settings.stage, settings.region, settings.period_s, settings.cooldown_s) == (
        "local",
        "us-east-1",
        300,
        None,
    )
