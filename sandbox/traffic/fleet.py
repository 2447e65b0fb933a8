"""The simulated robotaxi fleet: real HTTP traffic on the cars API, telemetry included.

`FleetSimulator` registers `size` robotaxis through the API (valid VINs, positions in Lisbon), then,
in a background thread, plays a day in the city:

- riders ask for cars at the rate of the shared demand model (`sandbox.traffic.demand.DemandModel`): a
  listing of available cars (GET), then reserve → in_trip → available (PATCH /cars/{id}/status);
- cars with a low battery go charging, now and then one goes to maintenance;
- a back office reads listings and single cars (GET);
- every car reports telemetry (`service.ingest.models.TelemetryMessage`) through the API's
  ``POST /cars/{car_id}/telemetry`` (API Gateway → SQS, no Lambda): moving and draining its battery
  during trips, parked otherwise.

Trip, pickup, charging and maintenance durations are real-world durations multiplied by
`time_scale` (default 0.1: a 15-minute trip takes 90 s), so the state machine is exercised often;
the request *rates* follow the wall clock, the same as the backfilled history. Timestamps are
always the clock's real time (the ingest rejects readings from the future).

Incidents reach the simulator through `FleetControls` (`traffic_factor`, `poison_fraction`); the
fault injector (`sandbox.traffic.faults.FileFaultInjector`) implements it. Every decision is drawn from the
one `random.Random` in the tick loop, so a seed and a `ManualClock` replay the same actions.

This module is the simulation (cars, trips, the schedule of their steps); its parts live beside it:
`vins` (VINs by the service's own check digit), `clock`, `api` (the cars API over HTTP), `telemetry`
(readings, posted to the telemetry route), `stats` (the counters in ``$FLEETSCOPE_HOME/fleet.json``) and
`controls` (what an incident may change).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.home.settings import fleetscope_home
from sandbox.traffic.api import ApiResponse, FleetApi, HttpFleetApi
from sandbox.traffic.clock import Clock, SystemClock
from sandbox.traffic.controls import FleetControls, NormalTraffic
from sandbox.traffic.demand import LOOKUPS_PER_TRIP, MAINTENANCE_SHARE, DemandModel, poisson
from sandbox.traffic.stats import FleetStats, write_stats_file
from sandbox.traffic.telemetry import ApiTelemetry, poisoned, reading
from sandbox.traffic.vins import random_vin

log = logging.getLogger(__name__)

# Lisbon, roughly from Belém to the airport.
CITY_BOUNDS = (38.700, 38.790, -9.220, -9.100)  # lat_min, lat_max, lon_min, lon_max
MODELS: tuple[tuple[str, int], ...] = (  # (model, seats)
    ("Waymo Jaguar I-Pace", 4),
    ("Zoox Robotaxi", 4),
    ("Cruise Origin", 6),
    ("Tesla Cybercab", 2),
    ("Baidu Apollo RT6", 4),
)
LOW_BATTERY = 25.0
DRAIN_PER_TRIP_MINUTE = 0.45  # percent of charge per real-world minute of driving
CHARGE_PER_MINUTE = 1.6  # percent per real-world minute on a fast charger

STATS_FILE = "fleet.json"


class FleetError(RuntimeError):
    """The fleet could not be set up (API unreachable, registration refused)."""


@dataclass
class SimCar:
    car_id: str
    vin: str
    model: str
    status: str
    battery: float
    lat: float
    lon: float
    speed_kmh: float = 0.0
    busy: bool = False  # a request or a scheduled step is pending for this car
    trip: Trip | None = None
    trip_progress: float = 0.0  # share of the current trip driven (position and battery follow it)
    next_telemetry: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))


@dataclass(frozen=True)
class Trip:
    pickup_s: float  # real-world seconds from reservation to pickup
    ride_s: float  # real-world seconds of driving
    dest_lat: float
    dest_lon: float
    maintenance_after: bool


class FleetSimulator:
    """N robotaxis driving real traffic into the sandbox. `start()` runs it in a background thread."""

    def __init__(
        self,
        api_url: str | None,
        *,
        size: int = 50,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        seed: int = 7,
        demand: DemandModel | None = None,
        controls: FleetControls | None = None,
        time_scale: float = 0.1,
        tick_s: float = 0.5,
        workers: int = 4,
        api: FleetApi | None = None,
        telemetry_sink: Callable[[list[str]], list[int]] | None = None,
        stats_file: Path | str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"fleet size must be >= 1, got {size}")
        if not 0 < time_scale <= 10:
            raise ValueError(f"time_scale must be in (0, 10], got {time_scale}")
        if api is None and api_url is None:
            raise ValueError("FleetSimulator needs api_url or api")
        if telemetry_sink is None and api_url is None:
            raise ValueError("FleetSimulator needs api_url or telemetry_sink")
        self.size = size
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random(seed)
        self.demand = demand or DemandModel(fleet_size=size)
        self.controls: FleetControls = controls or NormalTraffic()
        self.time_scale = time_scale
        self.tick_s = tick_s
        self.workers = workers
        self.api: FleetApi = api or HttpFleetApi(str(api_url))
        self._sink = telemetry_sink or ApiTelemetry(str(api_url))
        self.cars: list[SimCar] = []
        self._lock = threading.RLock()
        self._stats = FleetStats()
        self._schedule: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._last_tick: datetime | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.stats_file = Path(stats_file) if stats_file is not None else None
        self._stats_written = 0.0

    # -- lifecycle ----------------------------------------------------------------------------------

    def register_fleet(self, *, attempts: int = 20, retry_s: float = 0.5) -> None:
        """Register `size` cars through POST /cars (retrying while the API comes up)."""
        lat0, lat1, lon0, lon1 = CITY_BOUNDS
        for i in range(len(self.cars), self.size):
            model, seats = MODELS[i % len(MODELS)]
            year = self.rng.choice((2023, 2024, 2025))
            body = {
                "vin": random_vin(self.rng, year),
                "model": model,
                "year": year,
                "seats": seats,
                "bike_rack": self.rng.random() < 0.3,
                "battery_level": round(self.rng.uniform(55, 100), 1),
                "position": {
                    "lat": round(self.rng.uniform(lat0, lat1), 6),
                    "lon": round(self.rng.uniform(lon0, lon1), 6),
                },
            }
            # The VIN is the idempotency key: a retried registration never creates a second car.
            key = {"Idempotency-Key": f"register-{body['vin']}"}
            resp = self._call("POST", "/cars", json_body=body, headers=key)
            for _ in range(attempts):
                if resp.status in (200, 201) or (400 <= resp.status < 500 and resp.status not in (409, 429)):
                    break
                self.clock.sleep(retry_s)
                resp = self._call("POST", "/cars", json_body=body, headers=key)
            if resp.status not in (200, 201) or not isinstance(resp.body, dict) or "car_id" not in resp.body:
                raise FleetError(f"could not register car {body['vin']}: HTTP {resp.status} {resp.body!r}")
            car = SimCar(
                car_id=str(resp.body["car_id"]),
                vin=str(body["vin"]),
                model=model,
                status=str(resp.body.get("status", "available")),
                battery=float(body["battery_level"]),  # type: ignore[arg-type]
                lat=float(body["position"]["lat"]),  # type: ignore[index]
                lon=float(body["position"]["lon"]),  # type: ignore[index]
            )
            # Spread the first reports over one interval so telemetry is steady, not bursty.
            car.next_telemetry = self.clock.now() + timedelta(
                seconds=self.rng.uniform(0, self.demand.telemetry_interval_s)
            )
            with self._lock:
                self.cars.append(car)

    def start(self) -> FleetSimulator:
        """Register the fleet (if not yet) and drive it in a daemon thread until `stop()`."""
        if self._thread is not None:
            return self
        if self.stats_file is None:  # the running sandbox's counters, for `fleetscope` tools and tests
            self.stats_file = fleetscope_home() / STATS_FILE
        self.register_fleet()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fleet")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fleet-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.write_stats()

    def write_stats(self) -> None:
        """Write the counters to `stats_file` (atomically), if there is one."""
        if self.stats_file is None:
            return
        write_stats_file(
            self.stats_file,
            {"updated_at": self.clock.now().isoformat(), "size": len(self.cars), **self.stats().snapshot()},
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> FleetStats:
        with self._lock:
            return FleetStats(
                requests=Counter(self._stats.requests),
                trips_requested=self._stats.trips_requested,
                trips_started=self._stats.trips_started,
                trips_completed=self._stats.trips_completed,
                unserved=self._stats.unserved,
                telemetry_valid=self._stats.telemetry_valid,
                telemetry_poison=self._stats.telemetry_poison,
                telemetry_refused=self._stats.telemetry_refused,
                telemetry_send_failed=self._stats.telemetry_send_failed,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.step()
                if started - self._stats_written >= 2.0:
                    self._stats_written = started
                    self.write_stats()
            except Exception:  # one bad tick must not end the fleet
                log.exception("fleet: tick failed")
            self._stop.wait(max(0.0, self.tick_s - (time.monotonic() - started)))

    # -- one tick -----------------------------------------------------------------------------------

    def step(self) -> None:
        """Advance the fleet to the clock's now: new riders, back-office reads, due steps, telemetry."""
        now = self.clock.now()
        last = self._last_tick or now
        self._last_tick = now
        dt_min = max(0.0, (now - last).total_seconds()) / 60.0
        factor = max(0.0, self.controls.traffic_factor())

        for _ in range(poisson(self.rng, self.demand.trip_requests_per_minute(now) * factor * dt_min)):
            self._request_trip(now)
        for _ in range(poisson(self.rng, self.demand.reads_per_minute(now) * factor * dt_min)):
            self._back_office_read()
        self._run_due(now)
        self._send_telemetry(now)

    def _submit(self, fn: Callable[[], None]) -> None:
        if self._pool is None:
            fn()
        else:
            self._pool.submit(self._guarded, fn)

    @staticmethod
    def _guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("fleet: action failed")

    def _at(self, due: datetime, fn: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._schedule, (due, next(self._seq), fn))

    def _run_due(self, now: datetime) -> None:
        due: list[Callable[[], None]] = []
        with self._lock:
            while self._schedule and self._schedule[0][0] <= now:
                due.append(heapq.heappop(self._schedule)[2])
        for fn in due:
            self._submit(fn)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        resp = self.api.request(method, path, json_body=json_body, params=params, headers=headers)
        with self._lock:
            self._stats.requests[f"{method} {resp.status}"] += 1
        return resp

    def _later(self, real_world_s: float) -> datetime:
        return self.clock.now() + timedelta(seconds=real_world_s * self.time_scale)

    # -- riders -------------------------------------------------------------------------------------

    def _request_trip(self, now: datetime) -> None:
        lat0, lat1, lon0, lon1 = CITY_BOUNDS
        trip = Trip(
            pickup_s=self.rng.uniform(120, 480),
            ride_s=60 * min(60.0, self.rng.lognormvariate(math.log(13), 0.5)),
            dest_lat=self.rng.uniform(lat0, lat1),
            dest_lon=self.rng.uniform(lon0, lon1),
            maintenance_after=self.rng.random() < MAINTENANCE_SHARE,
        )
        with self._lock:
            self._stats.trips_requested += 1
            free = [c for c in self.cars if c.status == "available" and not c.busy]
            car = self.rng.choice(free) if free else None
            if car is not None:
                car.busy = True
        pick = self.rng.random()

        def rider() -> None:
            self._call("GET", "/cars", params={"status": "available", "limit": 10})
            if car is None:
                with self._lock:
                    self._stats.unserved += 1
                return
            if pick < LOOKUPS_PER_TRIP:  # some riders look at the car before booking it
                self._call("GET", f"/cars/{car.car_id}")
            self._move(car, "reserved", on_ok=lambda: self._pickup(car, trip), on_fail=self._release)

        self._submit(rider)

    def _pickup(self, car: SimCar, trip: Trip) -> None:
        def go() -> None:
            self._move(car, "in_trip", on_ok=lambda: self._drive(car, trip), on_fail=self._recover)

        self._at(self._later(trip.pickup_s), go)

    def _drive(self, car: SimCar, trip: Trip) -> None:
        with self._lock:
            car.trip = trip
            car.trip_progress = 0.0
            self._stats.trips_started += 1
            distance_km = _km(car.lat, car.lon, trip.dest_lat, trip.dest_lon)
            car.speed_kmh = min(90.0, distance_km / (trip.ride_s / 3600.0))

        def arrive() -> None:
            with self._lock:
                remaining = 1.0 - car.trip_progress
                car.lat, car.lon = trip.dest_lat, trip.dest_lon
                car.battery = max(1.0, car.battery - remaining * DRAIN_PER_TRIP_MINUTE * trip.ride_s / 60.0)
                car.trip_progress = 1.0
                car.speed_kmh = 0.0
                car.trip = None
            self._move(car, "available", on_ok=lambda: self._after_trip(car, trip), on_fail=self._recover)

        self._at(self._later(trip.ride_s), arrive)

    def _after_trip(self, car: SimCar, trip: Trip) -> None:
        with self._lock:
            self._stats.trips_completed += 1
        if trip.maintenance_after:
            self._move(
                car,
                "maintenance",
                on_ok=lambda: self._at(self._later(1800), lambda: self._back_to_service(car)),
                on_fail=self._release,
            )
        elif car.battery < LOW_BATTERY:
            minutes = (95.0 - car.battery) / CHARGE_PER_MINUTE
            self._move(
                car,
                "charging",
                on_ok=lambda: self._at(self._later(minutes * 60), lambda: self._charged(car)),
                on_fail=self._release,
            )
        else:
            self._release(car)

    def _charged(self, car: SimCar) -> None:
        with self._lock:
            car.battery = 95.0
        self._back_to_service(car)

    def _back_to_service(self, car: SimCar) -> None:
        self._move(car, "available", on_ok=lambda: self._release(car), on_fail=self._recover)

    def _release(self, car: SimCar) -> None:
        with self._lock:
            car.busy = False

    def _recover(self, car: SimCar) -> None:
        """A step failed mid-way: learn the car's real status and put it back in the pool."""
        resp = self._call("GET", f"/cars/{car.car_id}")
        with self._lock:
            if resp.status == 200 and isinstance(resp.body, dict):
                car.status = str(resp.body.get("status", car.status))
            car.trip = None
            car.speed_kmh = 0.0
        if car.status == "reserved":  # the rider got in anyway: finish the trip, a little later
            self._at(
                self._later(60),
                lambda: self._move(
                    car, "in_trip", on_ok=lambda: self._back_to_service(car), on_fail=self._recover
                ),
            )
        elif car.status in ("in_trip", "charging", "maintenance"):
            # Finish what was started, a little later (the API may be having a bad minute).
            self._at(self._later(60), lambda: self._back_to_service(car))
        elif car.status == "available":
            self._release(car)
        # anything else (retired, unknown): the car stays out of the pool

    def _move(
        self,
        car: SimCar,
        status: str,
        *,
        on_ok: Callable[[], None],
        on_fail: Callable[[SimCar], None],
    ) -> None:
        resp = self._call("PATCH", f"/cars/{car.car_id}/status", json_body={"status": status})
        if 200 <= resp.status < 300:
            with self._lock:
                car.status = status
            on_ok()
        else:
            on_fail(car)

    # -- back office --------------------------------------------------------------------------------

    def _back_office_read(self) -> None:
        roll = self.rng.random()
        with self._lock:
            car = self.rng.choice(self.cars) if self.cars else None
        if roll < 0.55 and car is not None:
            path, params = f"/cars/{car.car_id}", None
        elif roll < 0.8:
            status = self.rng.choice(("available", "charging", "in_trip", "maintenance"))
            path, params = "/cars", {"status": status, "limit": 25}
        else:
            path, params = "/cars", {"limit": 50}
        self._submit(lambda: self._read(path, params))

    def _read(self, path: str, params: Any) -> None:
        self._call("GET", path, params=params)

    # -- telemetry ----------------------------------------------------------------------------------

    def _send_telemetry(self, now: datetime) -> None:
        poison = min(1.0, max(0.0, self.controls.poison_fraction()))
        interval = timedelta(seconds=self.demand.telemetry_interval_s)
        bodies: list[tuple[str, str | None]] = []  # (message, poison kind)
        with self._lock:
            for car in self.cars:
                if car.next_telemetry > now:
                    continue
                car.next_telemetry = max(car.next_telemetry + interval, now)
                if car.trip is not None:
                    self._advance_on_trip(car, interval.total_seconds())
                if poison > 0 and self.rng.random() < poison:
                    kind, body = poisoned(self.rng, self._telemetry_body(car, now), now)
                    bodies.append((body, kind))
                else:
                    bodies.append((self._telemetry_body(car, now), None))
        for start in range(0, len(bodies), 10):
            chunk = bodies[start : start + 10]
            statuses = self._sink([b for b, _ in chunk])
            with self._lock:
                for (_, poison_kind), status in zip(chunk, statuses, strict=True):
                    if status == 202:  # queued: SQS has it
                        if poison_kind is None:
                            self._stats.telemetry_valid += 1
                        else:
                            self._stats.telemetry_poison += 1
                    elif status == 400:  # the request model refused it: never queued
                        self._stats.telemetry_refused += 1
                    else:
                        self._stats.telemetry_send_failed += 1

    def _advance_on_trip(self, car: SimCar, real_s: float) -> None:
        """Move a car on its trip by `real_s` of clock time: position and battery follow progress."""
        trip = car.trip
        assert trip is not None
        step = min(1.0 - car.trip_progress, real_s / self.time_scale / trip.ride_s)
        if step <= 0:
            return
        share_of_rest = step / (1.0 - car.trip_progress)
        car.lat += (trip.dest_lat - car.lat) * share_of_rest
        car.lon += (trip.dest_lon - car.lon) * share_of_rest
        car.battery = max(1.0, car.battery - step * DRAIN_PER_TRIP_MINUTE * trip.ride_s / 60.0)
        car.trip_progress += step

    @staticmethod
    def _telemetry_body(car: SimCar, now: datetime) -> str:
        return reading(
            car.car_id, lat=car.lat, lon=car.lon, battery=car.battery, speed_kmh=car.speed_kmh, now=now
        )


def _km(lat0: float, lon0: float, lat1: float, lon1: float) -> float:
    """Equirectangular distance in km (good enough within a city)."""
    x = math.radians(lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2))
    y = math.radians(lat1 - lat0)
    return 6371.0 * math.hypot(x, y)
