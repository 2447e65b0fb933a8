"""Offline detection: run the deployed detector and alert rule over CSV files.

`python -m monitor detect --data-dir D --out-dir O` reads every ``*.csv`` (columns ``timestamp,value``,
optionally ``volume``) under D recursively and writes, at the same relative path under O, the same rows
with the columns ``timestamp,value,anomaly_score,alert,lower,upper``. Each file is a series with no
history: the detector warms up online on its first rows, exactly as a new metric would in the Lambda,
and the alert column is `AlertDecision.opened` from the profile's `default_rule` (its volume gate scaled
to the file's period, as the catalog scales it). Output row i depends only on rows 0..i.

Which profile each file gets: ``--profile-map FILE`` (a JSON object of fnmatch patterns, matched against
the CSV's path relative to D, to profile names; the first matching key wins), else ``--profile``
(default ``default``). The profile ``auto`` picks it from the CloudWatch metric name in the file's path
with the catalog's own table (`monitor.catalog.METRIC_PROFILES`; e.g. ``.../Duration.csv`` → latency;
a queue depth under a folder named like a dead-letter queue, ``sqs/orders-dlq/...``, → dlq),
``default`` when no component of the path names a known metric.

The ``volume`` column (requests or invocations in the period) is the denominator of the count and rate
profiles: a ``rate`` file's value is already a ratio; a ``count`` file's value is turned into the ratio
value / volume and scored with the ``rate`` model, the monitor's model for error ratios (its band is
written back in counts). Other profiles ignore it.

Bad input: a file without the two columns, with an unparsable or non-increasing timestamp, or with no
rows is skipped with an error naming the file and line (the other files are still processed, and the
exit status is 1). Rows are taken in file order: a timestamp that does not advance (NAB has repeats
and backward jumps from clock changes) is kept and treated as one second after the previous row's,
so no row is lost; such rows are counted in the summary. A row whose value is empty, unparsable or
not finite is kept as a missing point (score 0, no alert, empty band) and counted too.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from monitor.catalog import (
    METRIC_PROFILES,
    PROFILE_DLQ,
    is_dead_letter_queue,
    is_tail_statistic,
    profile_for_metric,
)
from monitor.detectors import PROFILES, build_detector
from monitor.policy import AlertRule, SeriesAlertState, default_rule

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score", "alert", "lower", "upper")
AUTO = "auto"
PROFILE_CHOICES = (*PROFILES, AUTO)
_METRIC_NAMES_CI = {name.lower(): name for name in METRIC_PROFILES}


class SeriesFileError(ValueError):
    """A CSV file that cannot be read as a time series (the message names the file and line)."""


class ProfileMapError(ValueError):
    """A --profile-map file that cannot be used (unreadable, not a JSON object of names, unknown profile)."""


ProfileMap = tuple[tuple[str, str], ...]  # (fnmatch pattern, profile name), in the file's order


def load_profile_map(path: Path) -> ProfileMap:
    """Read and validate a profile map; raises `ProfileMapError` naming the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileMapError(f"--profile-map {path}: cannot read it ({exc})") from None

    class _Pairs(list[tuple[str, object]]):
        """A JSON object's members in the file's order (the first match wins), duplicates kept."""

    try:
        pairs = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise ProfileMapError(f"--profile-map {path}: not valid JSON ({exc})") from None
    if not isinstance(pairs, _Pairs):
        raise ProfileMapError(
            f"--profile-map {path}: expected a JSON object of pattern -> profile, got {type(pairs).__name__}"
        )
    seen: set[str] = set()
    for pattern, profile in pairs:
        if not isinstance(profile, str):
            raise ProfileMapError(f"--profile-map {path}: the value of {pattern!r} is not a profile name")
        if not pattern:
            raise ProfileMapError(f"--profile-map {path}: an empty pattern matches nothing")
        if pattern in seen:
            raise ProfileMapError(f"--profile-map {path}: the pattern {pattern!r} appears twice")
        if profile not in PROFILE_CHOICES:
            raise ProfileMapError(
                f"--profile-map {path}: unknown profile {profile!r} for {pattern!r}; "
                f"known: {', '.join(PROFILE_CHOICES)}"
            )
        seen.add(pattern)
    return tuple((str(pattern), str(profile)) for pattern, profile in pairs)


def auto_profile(relative_path: str) -> str:
    """The profile of the CloudWatch metric named in a path (file name first, then its folders); a
    latency whose path also names a tail statistic (``p99``, ``p90``, ``Maximum``: `Duration_p99.csv`,
    `Latency/p99.csv`) gets the tail-latency profile, and the depth of a queue whose folder names a
    dead-letter queue (`sqs/orders-dlq/ApproximateNumberOfMessagesVisible.csv`) the DLQ profile, as in
    the catalog."""
    parts = relative_path.replace("\\", "/").split("/")
    parts[-1] = parts[-1].removesuffix(".csv")
    tokens = [t for part in parts for t in re.split(r"[^A-Za-z0-9.]+", part) if t]
    tail = any(is_tail_statistic("Maximum" if t.lower() == "maximum" else t) for t in tokens)
    for token in reversed([t for part in parts for t in re.split(r"[^A-Za-z0-9]+", part) if t]):
        name = _METRIC_NAMES_CI.get(token.lower())
        if name == "ApproximateNumberOfMessagesVisible" and any(is_dead_letter_queue(p) for p in parts):
            return PROFILE_DLQ
        if name is not None:
            return profile_for_metric(name, "p99" if tail else None)
    return "default"


def resolve_profile(relative_path: str, profile_map: ProfileMap, fallback: str) -> str:
    """The profile a file gets: the first map pattern that matches its relative path, else `fallback`;
    ``auto`` resolved from the path."""
    chosen = next((p for pattern, p in profile_map if fnmatch.fnmatchcase(relative_path, pattern)), fallback)
    return auto_profile(relative_path) if chosen == AUTO else chosen


@dataclass(frozen=True)
class Series:
    raw_timestamps: list[str]
    raw_values: list[str]
    t: np.ndarray  # int64 epoch seconds
    y: np.ndarray  # float64, NaN = missing
    repeated_timestamps: int = 0  # rows whose timestamp did not advance (moved to previous + 1 s)
    volume: np.ndarray | None = None  # float64 from the optional `volume` column, NaN = missing

    @property
    def missing(self) -> int:
        return int(np.isnan(self.y).sum())


@dataclass(frozen=True)
class DetectionResult:
    score: np.ndarray
    alert: np.ndarray  # int8, 1 where an alert opens
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class FileReport:
    path: str
    profile: str = ""
    rows: int = 0
    missing: int = 0
    alerts: int = 0
    repeated_timestamps: int = 0
    error: str | None = None


def parse_timestamp(text: str) -> int:
    """ISO 8601 (naive = UTC) or epoch seconds -> int epoch seconds; raises ValueError."""
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    try:
        return int(float(s)) if s.replace(".", "", 1).isdigit() else _iso(s)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"unparsable timestamp {text!r}") from exc


def _iso(s: str) -> int:
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def parse_value(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def read_series(path: Path) -> Series:
    try:
        # utf-8-sig: a byte-order mark (spreadsheet "CSV UTF-8" exports) is not part of the header.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise SeriesFileError(f"{path}: empty file (expected a header timestamp,value)")
            names = [h.strip().lower() for h in header]
            if "timestamp" not in names or "value" not in names:
                raise SeriesFileError(f"{path}: header {header!r} lacks the columns 'timestamp' and 'value'")
            ti, vi = names.index("timestamp"), names.index("value")
            wi = names.index("volume") if "volume" in names else None
            raw_t: list[str] = []
            raw_v: list[str] = []
            raw_w: list[str] = []
            ts: list[int] = []
            repeated = 0
            for line_no, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) <= max(ti, vi):
                    raise SeriesFileError(f"{path}:{line_no}: expected {len(header)} columns, got {len(row)}")
                try:
                    stamp = parse_timestamp(row[ti])
                except ValueError as exc:
                    raise SeriesFileError(f"{path}:{line_no}: {exc}") from None
                if ts and stamp <= ts[-1]:
                    # Rows are the series in file order. A timestamp that does not advance (NAB has
                    # repeats and small backward jumps from clock changes) is kept as one second
                    # after the previous row's, so no row is lost and the order is preserved.
                    stamp = ts[-1] + 1
                    repeated += 1
                raw_t.append(row[ti])
                raw_v.append(row[vi])
                if wi is not None:
                    raw_w.append(row[wi] if wi < len(row) else "")
                ts.append(stamp)
    except UnicodeDecodeError as exc:
        raise SeriesFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not ts:
        raise SeriesFileError(f"{path}: no data rows")
    y = np.array([parse_value(v) for v in raw_v], dtype=np.float64)
    volume = None
    if wi is not None:
        # A volume that is missing, unparsable or negative is unknown for that row (NaN).
        volume = np.array([parse_value(w) for w in raw_w], dtype=np.float64)
        volume[volume < 0] = np.nan
    return Series(raw_t, raw_v, np.asarray(ts, dtype=np.int64), y, repeated, volume)


def infer_period(t: np.ndarray) -> int:
    """Typical sampling step in seconds (median gap; 300 for a single row)."""
    if len(t) < 2:
        return 300
    return max(1, int(np.median(np.diff(t))))


def deployed_rule(profile: str, period_s: int) -> AlertRule:
    """The profile's rule as the catalog deploys it: volume gates are written per 5 minutes."""
    rule = default_rule(profile)
    if rule.min_volume > 0:
        rule = replace(rule, min_volume=max(1.0, round(rule.min_volume * period_s / 300)))
    return rule


def detect_series(
    t: np.ndarray, y: np.ndarray, *, profile: str = "default", volume: np.ndarray | None = None
) -> DetectionResult:
    """The deployed pipeline for one series with no history: detector + the profile's alert rule.

    With a volume, a `count` series is scored as the ratio y / volume by the `rate` model (its band is
    returned in counts) and a `rate` series is scored with it as its denominator; other profiles
    ignore the volume.
    """
    period_s = infer_period(t)
    model, values, scale = profile, y, None
    if volume is None or profile not in ("count", "rate"):
        volume = None
    elif profile == "count":
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(volume > 0, y / volume, np.nan)
        model, scale = "rate", volume
    scored = build_detector(model, period_s=period_s).process(t, values, volume)
    state = SeriesAlertState(deployed_rule(model, period_s))
    alert = np.zeros(len(y), dtype=np.int8)
    volumes = [None] * len(y) if volume is None else volume.tolist()
    for i, (s, v, lo, hi, w) in enumerate(
        zip(
            scored.score.tolist(),
            values.tolist(),
            scored.lower.tolist(),
            scored.upper.tolist(),
            volumes,
            strict=True,
        )
    ):
        if state.step(score=s, value=v, lower=lo, upper=hi, volume=w).opened:
            alert[i] = 1
    lower, upper = scored.lower, scored.upper
    if scale is not None:
        lower, upper = lower * scale, upper * scale
    return DetectionResult(scored.score, alert, lower, upper)


def _fmt(v: float, spec: str) -> str:
    return "" if math.isnan(v) else format(v, spec)


def write_result(path: Path, series: Series, result: DetectionResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(OUTPUT_COLUMNS)
        for i in range(len(series.raw_timestamps)):
            writer.writerow(
                (
                    series.raw_timestamps[i],
                    series.raw_values[i],
                    _fmt(float(result.score[i]), ".6f"),
                    int(result.alert[i]),
                    _fmt(float(result.lower[i]), ".8g"),
                    _fmt(float(result.upper[i]), ".8g"),
                )
            )
    tmp.replace(path)


def detect_file(src: Path, dst: Path, profile: str = "default") -> FileReport:
    try:
        series = read_series(src)
    except (SeriesFileError, OSError) as exc:
        return FileReport(str(src), profile=profile, error=str(exc))
    result = detect_series(series.t, series.y, profile=profile, volume=series.volume)
    write_result(dst, series, result)
    return FileReport(
        str(src),
        profile=profile,
        rows=len(series.y),
        missing=series.missing,
        alerts=int(result.alert.sum()),
        repeated_timestamps=series.repeated_timestamps,
    )


def find_csv_files(data_dir: Path, exclude: Path | None = None) -> list[Path]:
    files = sorted(p for p in data_dir.rglob("*.csv") if p.is_file())
    if exclude is not None:
        ex = exclude.resolve()
        files = [p for p in files if not p.resolve().is_relative_to(ex)]
    return files


def run_directory(
    data_dir: Path,
    out_dir: Path,
    *,
    profile: str = "default",
    profile_map: ProfileMap = (),
    jobs: int | None = None,
) -> list[FileReport]:
    """Detect every CSV under data_dir into out_dir (same relative paths), files in parallel."""
    if profile not in PROFILE_CHOICES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILE_CHOICES)}")
    files = find_csv_files(data_dir, exclude=out_dir)
    relative = [src.relative_to(data_dir).as_posix() for src in files]
    for pattern, _ in profile_map:
        if not any(fnmatch.fnmatchcase(r, pattern) for r in relative):
            print(f"warning: --profile-map pattern {pattern!r} matches no file", file=sys.stderr)
    jobs_list = [
        (src, out_dir / rel, resolve_profile(rel, profile_map, profile))
        for src, rel in zip(files, relative, strict=True)
    ]
    # Largest first, so the pool is not left waiting on one long file at the end.
    jobs_list.sort(key=lambda job: job[0].stat().st_size, reverse=True)
    workers = max(1, min(jobs or min(2, os.cpu_count() or 1), len(jobs_list) or 1))
    if workers == 1:
        reports = [detect_file(src, dst, p) for src, dst, p in jobs_list]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            reports = list(pool.map(detect_file, *zip(*jobs_list, strict=True)))
    return sorted(reports, key=lambda r: r.path)


def main_detect(
    data_dir: str,
    out_dir: str,
    *,
    profile: str = "default",
    profile_map: str | None = None,
    jobs: int | None = None,
) -> int:
    src, dst = Path(data_dir), Path(out_dir)
    try:
        mapping = load_profile_map(Path(profile_map)) if profile_map is not None else ()
    except ProfileMapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not src.is_dir():
        print(f"error: --data-dir {data_dir!r} is not a directory", file=sys.stderr)
        return 2
    if src.resolve().is_relative_to(dst.resolve()):
        # Outputs land at the inputs' relative paths under --out-dir: the inputs would be overwritten
        # (or, being excluded as earlier outputs, silently not read at all).
        print(
            f"error: --out-dir {out_dir!r} is --data-dir or contains it; choose a separate directory",
            file=sys.stderr,
        )
        return 2
    reports = run_directory(src, dst, profile=profile, profile_map=mapping, jobs=jobs)
    if not reports:
        print(f"error: no *.csv files under {data_dir!r}", file=sys.stderr)
        return 1
    failed = [r for r in reports if r.error]
    for r in failed:
        print(f"error: {r.error}", file=sys.stderr)
    ok = [r for r in reports if not r.error]
    print(
        f"detected {len(ok)} file(s), {sum(r.rows for r in ok)} rows, "
        f"{sum(r.missing for r in ok)} missing values, {sum(r.repeated_timestamps for r in ok)} repeated "
        f"timestamps, {sum(r.alerts for r in ok)} alerts; "
        f"{len(failed)} file(s) skipped -> {dst}"
    )
    used: dict[str, int] = {}
    for r in ok:
        used[r.profile] = used.get(r.profile, 0) + 1
    print("profiles: " + ", ".join(f"{name} {n}" for name, n in sorted(used.items())))
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m monitor", description="Fleetscope monitor tools")
    sub = parser.add_subparsers(dest="command", required=True)
    det = sub.add_parser("detect", help="run the deployed detector + alert rule over CSV files")
    det.add_argument("--data-dir", required=True, help="directory searched recursively for *.csv")
    det.add_argument("--out-dir", required=True, help="where results go, at the same relative paths")
    det.add_argument(
        "--profile",
        default="default",
        choices=PROFILE_CHOICES,
        help="detector profile of files the map does not match (default: default); "
        "auto = from the CloudWatch metric name in the file's path",
    )
    det.add_argument(
        "--profile-map",
        metavar="FILE",
        help="JSON object: fnmatch pattern (on the path relative to --data-dir) -> profile; first match wins",
    )
    det.add_argument("--jobs", type=int, default=None, help="worker processes (default: min(2, cores))")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return main_detect(
        args.data_dir, args.out_dir, profile=args.profile, profile_map=args.profile_map, jobs=args.jobs
    )
