"""The monitor's model state between runs: fitted detectors, alert states, open incidents, clocks.

One versioned pydantic document (`ModelState`), stored compressed (`encode_state` / `decode_state`):
JSON in which long lists of floats are packed as little-endian float32 (the detectors keep about
seven significant digits anyway), then zlib. The store splits the blob into items if it is large.
A state of another `STATE_VERSION`, or a detector state of another kind/version, is not an error
to crash on: the service logs it and retrains (the data is still in CloudWatch).
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


class SeriesState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str
    detector: dict[str, Any] | None = None  # monitor.detectors state (None = not trained yet)
    alert: dict[str, Any] | None = None  # monitor.policy.SeriesAlertState state
    trained_points: int = 0
    trained_at: int | None = None  # epoch seconds of this series' last (re)training


class ModelState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    catalog_fingerprint: str
    period_s: int = Field(gt=0)
    last_scored: int | None = None  # timestamp of the newest period scored
    series: dict[str, SeriesState] = Field(default_factory=dict)
    incidents: TrackerState = Field(default_factory=TrackerState)


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


def encode_state(state: ModelState) -> bytes:
    doc = _pack(state.model_dump(mode="json"))
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)


def decode_state(blob: bytes) -> ModelState:
    try:
        doc = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as err:
        raise StateDecodeError(f"model state is not zlib-compressed JSON: {err}") from err
    if not isinstance(doc, dict):
        raise StateDecodeError("model state is not a JSON object")
    if doc.get("version") != STATE_VERSION:
        raise StateDecodeError(f"model state version {doc.get('version')!r} != {STATE_VERSION}")
    try:
        return ModelState.model_validate(_unpack(doc))
    except (ValidationError, ValueError) as err:
        raise StateDecodeError(f"model state does not validate: {err}") from err
