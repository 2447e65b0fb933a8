"""The simulated city the sandbox's fleet drives in, as map layers that need no tile server.

`city.geojson` (shipped beside this module) holds the service area as 12 districts, named after the
Lisbon neighbourhoods they roughly cover, and six main roads traced approximately by hand: a
simplified picture for orientation, not survey data. The districts tile the fleet's bounding box
(`sandbox.traffic.fleet.CITY_BOUNDS`; a test keeps the two in step).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CITY_FILE = Path(__file__).with_name("city.geojson")


@cache
def city() -> dict[str, Any]:
    """The whole GeoJSON FeatureCollection."""
    return json.loads(CITY_FILE.read_text(encoding="utf-8"))


def districts() -> list[dict[str, Any]]:
    """District polygons (GeoJSON features with `name`)."""
    return [f for f in city()["features"] if f["properties"]["kind"] == "district"]


def roads() -> list[dict[str, Any]]:
    """Main roads as paths: `{"name": ..., "path": [[lon, lat], ...]}` (pydeck's PathLayer input)."""
    return [
        {"name": f["properties"]["name"], "path": f["geometry"]["coordinates"]}
        for f in city()["features"]
        if f["properties"]["kind"] == "road"
    ]


def district_labels() -> list[dict[str, Any]]:
    """Each district's name at the centre of its outline (pydeck's TextLayer input)."""
    out = []
    for f in districts():
        ring = f["geometry"]["coordinates"][0][:-1]
        lon = sum(p[0] for p in ring) / len(ring)
        lat = sum(p[1] for p in ring) / len(ring)
        out.append({"name": f["properties"]["name"], "position": [lon, lat]})
    return out
