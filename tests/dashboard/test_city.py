"""The city layers of the fleet map: shipped data that covers where the sandbox's fleet drives."""

from __future__ import annotations

from itertools import combinations, pairwise

import pytest

from dashboard import city
from sandbox.traffic.fleet import CITY_BOUNDS

Rect = tuple[float, float, float, float]  # lon0, lat0, lon1, lat1


def _rect(feature: dict) -> Rect:  # type: ignore[type-arg]
    ring = feature["geometry"]["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    assert len(ring) == 5  # a closed rectangle
    assert ring[0] == ring[-1]
    return min(lons), min(lats), max(lons), max(lats)


def _area(r: Rect) -> float:
    return max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])


def test_the_districts_tile_the_fleets_service_area_without_overlap() -> None:
    # Given the fleet's bounding box and the shipped districts
    lat0, lat1, lon0, lon1 = CITY_BOUNDS
    rects = [_rect(f) for f in city.districts()]
    # Then each lies inside the box, no two overlap, and together they cover it
    for r in rects:
        assert lon0 <= r[0] < r[2] <= lon1, r
        assert lat0 <= r[1] < r[3] <= lat1, r
    for a, b in combinations(rects, 2):
        assert _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))) < 1e-12
    assert sum(_area(r) for r in rects) == pytest.approx((lon1 - lon0) * (lat1 - lat0))
    # And every district has a name, drawn inside it
    labels = city.district_labels()
    assert len(labels) == len(rects) >= 6
    for label, r in zip(labels, rects, strict=True):
        lon, lat = label["position"]
        assert label["name"]
        assert r[0] < lon < r[2]
        assert r[1] < lat < r[3]


def test_the_main_roads_run_inside_the_service_area() -> None:
    lat0, lat1, lon0, lon1 = CITY_BOUNDS
    roads = city.roads()
    assert len(roads) >= 4
    for road in roads:
        assert len(road["path"]) >= 2, road["name"]
        for a, b in pairwise(road["path"]):
            assert a != b, road["name"]
        for lon, lat in road["path"]:
            assert lon0 <= lon <= lon1, road["name"]
            assert lat0 <= lat <= lat1, road["name"]
