"""The monitor's model state between runs: fitted detectors, alert states, open incidents, clocks.

One versioned pydantic document (`ModelState`), stored in two compressed blobs:

- the *models* blob (`encode_models`): the detector states as of the last checkpoint; the large
  part (a few KB per series), rewritten only after training or every `MONITOR_CHECKPOINT_PERIODS`;
- the *online* blob (`encode_state`): everything else, rewritten every run and small: alert
  states, open incidents, clocks, and per series the points processed since the checkpoint
  (`replay`). Loading restores each detector from the checkpoint and replays those points through
  `update`, which gives the same state as if it had been saved every run, at a fraction of the
  DynamoDB write cost.

Codec: JSON in which long lists of floats are packed as little-endian float32 (the detectors keep
about seven significant digits anyway), then zlib. A state of another `STATE_VERSION` is not an
error to crash on: the service logs it and retrains (the data is still in CloudWatch).
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.incidents import TrackerState

STATE_VERSION = 1
_PACK_MIN = 16  # lists shorter than this stay plain JSON
_F32 = "__f32__"


class StateDecodeError(ValueError):
    """A stored model state cannot be read (corrupt, truncated, or of another version)."""


class Replay(BaseModel):
    """Points a series' detector absorbed since its checkpointed state (replayed on load)."""

    model_config = ConfigDict(extra="forbid")

    t: list[int] = Field(default_factory=list)
    y: list[float | None] = Field(default_factory=list)
    volume: list[float | None] | None = None

    def extend(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> None:
        if (self.volume is None) != (volume is None) and self.t:
            raise ValueError("replay points must all have a volume or none")
        self.t += [int(x) for x in t.tolist()]
        self.y += [None if math.isnan(v) else float(v) for v in y.tolist()]
        if volume is not None:
            self.volume = (self.volume or []) + [None if math.isnan(v) else float(v) for v in volume.tolist()]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        t = np.asarray(self.t, dtype=np.int64)
        y = np.array([math.nan if v is None else v for v in self.y], dtype=np.float64)
        vol = None
        if self.volume is not None:
            vol = np.array([math.nan if v is None else v for v in self.volume], dtype=np.float64)
        return t, y, vol


class SeriesState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str
    # monitor.detectors state at the checkpoint (None = not trained yet); stored in the models blob
    detector: dict[str, Any] | None = None
    replay: Replay | None = None  # points absorbed after that checkpoint
    alert: dict[str, Any] | None = None  # monitor.policy.SeriesAlertState state
    trained_points: int = 0
    trained_at: int | None = None  # epoch seconds of this series' last (re)training
    # The newest period the detector (checkpoint + replay) and `alert` have absorbed: the periods
    # after it are re-read and rescored every run (late data); None: a state saved before this field
    settled: int | None = None
    opened_sent: list[int] = Field(default_factory=list)  # periods after `settled` already told OPEN


class ModelState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    catalog_fingerprint: str
    period_s: int = Field(gt=0)
    last_scored: int | None = None  # timestamp of the newest period scored
    series: dict[str, SeriesState] = Field(default_factory=dict)
    incidents: TrackerState = Field(default_factory=TrackerState)
    # Outbox keys this state committed that were not yet seen sent: only these are ever published
    # (None: a state saved before this field, or rebuilt; then every unsent item counts).
    outbox: list[str] | None = None


def _pack(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if len(obj) >= _PACK_MIN and all(type(v) is float or v is None for v in obj):
            arr = np.array([math.nan if v is None else v for v in obj], dtype="<f4")
            return {_F32: base64.b64encode(arr.tobytes()).decode("ascii")}
        return [_pack(v) for v in obj]
    return obj


def _unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and _F32 in obj:
            arr = np.frombuffer(base64.b64decode(obj[_F32]), dtype="<f4").astype(np.float64)
            return [None if math.isnan(v) else float(f"{v:.7g}") for v in arr.tolist()]
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v) for v in obj]
    return obj


def _compress(doc: Any) -> bytes:
    return zlib.compress(json.dumps(_pack(doc), separators=(",", ":")).encode(), 6)


def _decompress(blob: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as err:
        raise StateDecodeError(f"{what} is not zlib-compressed JSON: {err}") from err
    if not isinstance(doc, dict):
        raise StateDecodeError(f"{what} is not a JSON object")
    if doc.get("version") != STATE_VERSION:
        raise StateDecodeError(f"{what} version {doc.get('version')!r} != {STATE_VERSION}")
    return doc


def encode_state(state: ModelState) -> bytes:
    """The online blob: the state without the detectors (those go to `encode_models`)."""
    return _compress(state.model_dump(mode="json", exclude={"series": {"__all__": {"detector"}}}))


def encode_models(state: ModelState) -> bytes:
    detectors = {sid: s.detector for sid, s in state.series.items() if s.detector is not None}
    return _compress({"version": STATE_VERSION, "detectors": detectors})


def decode_state(blob: bytes, models: bytes | None = None) -> ModelState:
    """Online blob (+ models blob) -> ModelState; raises StateDecodeError for anything unusable."""
    doc = _decompress(blob, "model state")
    detectors: dict[str, Any] = {}
    if models is not None:
        detectors = _unpack(_decompress(models, "detector checkpoint")).get("detectors") or {}
        if not isinstance(detectors, dict):
            raise StateDecodeError("detector checkpoint has no 'detectors' object")
    try:
        state = ModelState.model_validate(_unpack(doc))
    except (ValidationError, ValueError) as err:
        raise StateDecodeError(f"model state does not validate: {err}") from err
    for sid, series in state.series.items():
        detector = detectors.get(sid)
        series.detector = detector if isinstance(detector, dict) else None
        if series.detector is None:
            series.replay = None  # nothing to replay onto: the series is retrained
    return state
