"""Every settings class reads exactly the variables the README documents, and nothing else.

pydantic-settings matches variables case-insensitively, and with `populate_by_name` by field name as
well: a field `home` would then come from `$HOME`, `stage` from `STAGE`. For each class: the
documented variables set (or unset), then every field's name, the field's variable without its
prefix (`HOME`, `STAGE`, `TARGET`, `REGION`, `PERIOD_S`, ...) and a few common shell variables set
to garbage: the settings read must not change.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic.aliases import AliasChoices
from pydantic_settings import BaseSettings

from dashboard.settings import DashboardSettings
from monitor.settings import MonitorSettings
from sandbox.home.settings import HomeSettings, MonitorOverrides, SandboxSettings
from service.settings import ServiceSettings

COMMON_SHELL = ("HOME", "USER", "PATH", "PWD", "STAGE", "TARGET", "REGION", "PORT", "NAME", "TABLE_NAME")

# The documented variables each class needs (or whose reading the test shows), with valid values.
DOCUMENTED: dict[type[BaseSettings], dict[str, str]] = {
    ServiceSettings: {
        "CARS_TABLE_NAME": "cars",
        "IDEMPOTENCY_TABLE_NAME": "idem",
        "OUTBOX_TABLE_NAME": "outbox",
        "EVENT_BUS_NAME": "bus",
        "PAGINATION_SECRET_ID": "secret",
    },
    MonitorSettings: {"MONITOR_TABLE_NAME": "monitor", "ALERTS_TOPIC_NAME": "alerts"},
    HomeSettings: {},
    SandboxSettings: {"FLEETSCOPE_API_PORT": "0"},
    MonitorOverrides: {},
    DashboardSettings: {"FLEETSCOPE_HOME": "/tmp/fs-home"},
}


def _aliases(cls: type[BaseSettings]) -> list[str]:
    names: list[str] = []
    for field in cls.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names += [str(choice) for choice in alias.choices]
        elif alias is not None:
            names.append(str(alias))
    return names


def _garbage_names(cls: type[BaseSettings]) -> set[str]:
    names = set(COMMON_SHELL)
    for name in cls.model_fields:
        names |= {name, name.upper()}
    for alias in _aliases(cls):
        names.add(alias.split("_", 1)[1] if "_" in alias else alias)  # FLEETSCOPE_HOME -> HOME
    return names - set(_aliases(cls))


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda cls: cls.__name__)
def test_every_field_has_an_explicit_alias_and_no_populate_by_name(cls: type[BaseSettings]) -> None:
    assert not cls.model_config.get("populate_by_name")
    assert all(field.validation_alias is not None for field in cls.model_fields.values())


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda cls: cls.__name__)
def test_variables_that_merely_share_a_fields_name_change_nothing(
    cls: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given only the documented variables set
    for alias in _aliases(cls):
        monkeypatch.delenv(alias, raising=False)
    for name, value in DOCUMENTED[cls].items():
        monkeypatch.setenv(name, value)
    for name in _garbage_names(cls):
        monkeypatch.delenv(name, raising=False)
    before: Any = cls()
    # When every look-alike variable is set to garbage
    for name in _garbage_names(cls):
        monkeypatch.setenv(name, "garbage ☠ 99x")
    after: Any = cls()
    # Then the settings read are the same
    assert after == before
