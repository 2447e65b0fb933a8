"""The synthetic incident generator: deterministic, incidents where it says, and caught by the monitor."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.detectors import build_detector
from monitor.policy import SeriesAlertState, default_rule
from ops.synthetic import KINDS, generate


@pytest.mark.parametrize("kind", KINDS)
def test_generator_is_deterministic_and_labels_its_incident(kind: str) -> None:
    a = generate(kind, seed=3)  # type: ignore[arg-type]
    b = generate(kind, seed=3)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.y, b.y)
    ((start, end),) = a.incidents
    assert start >= 5 * 288
    assert start < end <= len(a.y)
    assert generate(kind, seed=3, incident=False).incidents == []  # type: ignore[arg-type]
    assert not np.isnan(a.y).any()


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown incident kind"):
        generate("meteor", seed=1)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["error_burst", "traffic_drop", "queue_backlog", "dlq_arrivals"])
def test_monitor_catches_the_incident_and_stays_quiet_on_the_clean_twin(kind: str) -> None:
    for incident in (True, False):
        s = generate(kind, seed=11, incident=incident, days=12, incident_after_days=8)  # type: ignore[arg-type]
        split = 8 * 288
        det = build_detector(s.profile, period_s=s.period_s)
        vol = s.volume
        det.fit(s.t[:split], s.y[:split], None if vol is None else vol[:split])
        out = det.process(s.t[split:], s.y[split:], None if vol is None else vol[split:])
        state = SeriesAlertState(default_rule(s.profile))
        opened = []
        for k in range(len(out)):
            i = split + k
            v = None if vol is None else float(vol[i])
            d = state.step(
                score=float(out.score[k]),
                value=float(s.y[i]),
                lower=float(out.lower[k]),
                upper=float(out.upper[k]),
                volume=v,
            )
            if d.opened:
                opened.append(i)
        if incident:
            start, end = s.incidents[0]
            assert opened, f"{kind}: incident at {start} missed"
            assert start <= opened[0] <= start + 6
            assert all(start <= i < end + 12 for i in opened)
        else:
            assert opened == [], f"{kind}: false alarms at {opened}"
