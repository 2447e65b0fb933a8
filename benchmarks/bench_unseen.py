"""Unseen serverless series: window recall, false alert episodes and delay on series nobody tuned on.

The corpus comes from `benchmarks.unseen_series` (a generator kept out of the detectors' tuning loop:
other demand shapes, other incident shapes, 1- and 5-minute periods, 14-28 days, some series with no
incident). It is written to a temporary directory and run through the offline contract,
`ops.detect.run_directory`, three ways in one run:

- auto: ``--profile auto``, each file gets the catalog's profile for the metric in its path;
- default: ``--profile default`` for every file;
- baseline: a rolling robust z-score, z = (x - median) / (1.4826 MAD) over the previous day
  (1.2533 x mean absolute deviation when the MAD is 0; both recomputed every 5 minutes; silent for the
  first day), a point counts when |z| > 4, an alert opens when 2 of the last 3 points count after a
  point where that did not hold.

Every file is a new series with no history (detectors warm up online on its first rows), scored on
all its rows. Definitions (rows are periods; an incident is rows [start, end) of its labels):
- found: an alert opens in [start, end + GRACE); recall = incidents found / incidents;
- delay: periods from start to the first such alert (median over found incidents);
- false alert episode: an alert that opens outside every [start, end + TAIL) of its file; each
  opening is one episode (the alert rule has already merged consecutive anomalous points into it), so
  two openings outside the windows are two episodes however close; per 1,000 rows of all files;
- reopened: further openings inside an incident's [start, end + TAIL) after the first (flapping),
  printed apart and not counted as false episodes.

The oracle line bounds what any detector could find: per incident, a CUSUM of the exact
log-likelihood ratio between the file's undisturbed distribution and the same with that incident (both
told to it by the generator, `SeriesFile.null`, without the ratio's spread or the latency outliers),
from the incident's first row to its last; found when it reaches ln(1 / ORACLE_P), the monitor's alert
level (score 0.5). A detector that must learn the normal, does not know the incident's size and may
not cry wolf finds fewer; queue and DLQ incidents count as found.

    python -m benchmarks bench_unseen            # or: python -m benchmarks.bench_unseen --jobs 2
    python -m benchmarks bench_unseen --seed 20261205 7 11   # three corpora, each and their sum
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from benchmarks.unseen_series import DEFAULT_SEED, SHAPES, Incident, NullModel, SeriesFile, generate_corpus
from ops.detect import read_series, run_directory

GRACE = 2  # periods after an incident's last row in which an alert still finds it
TAIL = 12  # periods after an incident's last row in which an alert is not a false episode
METHODS = ("auto", "default", "baseline")
BASELINE_Z = 4.0
ORACLE_P = 1e-5  # the oracle's alarm level, the monitor's (a score of 0.5)


@dataclass(frozen=True)
class FileScore:
    found: tuple[bool, ...]  # per incident, in the order given
    delays: tuple[int, ...]  # periods from start to the finding alert, per found incident
    false_episodes: int
    reopened: int


def score_alerts(opened: np.ndarray, incidents: Sequence[tuple[int, int]]) -> FileScore:
    """Score one file's alert openings (1 where an alert opens) against its incidents [start, end)."""
    opens = np.flatnonzero(np.asarray(opened) > 0)
    covered = np.zeros(len(opened), dtype=bool)
    found: list[bool] = []
    delays: list[int] = []
    reopened = 0
    for start, end in incidents:
        hits = opens[(opens >= start) & (opens < end + GRACE)]
        found.append(len(hits) > 0)
        if len(hits):
            delays.append(int(hits[0] - start))
        covered[start : end + TAIL] = True
        reopened += max(0, int(((opens >= start) & (opens < end + TAIL)).sum()) - 1)
    return FileScore(tuple(found), tuple(delays), int((~covered[opens]).sum()), reopened)


def robust_z_alerts(y: np.ndarray, window: int, *, refresh: int = 1, z: float = BASELINE_Z) -> np.ndarray:
    """The baseline's alert openings (int8) for one series (see the module docstring): the median and
    scale of the `window` rows before row i, recomputed every `refresh` rows."""
    n = len(y)
    counts = np.zeros(n, dtype=bool)
    if n > window:
        view = sliding_window_view(
            y[:-1], window
        )  # view[k] = y[k : k + window], the history of row k + window
        for lo in range(window, n, 1024 * refresh):
            starts = np.arange(lo, min(n, lo + 1024 * refresh), refresh)
            hist = view[starts - window]
            median = _median(hist)
            dev = np.abs(hist - median[:, None])
            mad = 1.4826 * _median(dev)
            scale = np.where(mad > 0, mad, 1.2533 * np.nanmean(dev, axis=1))
            rows = np.arange(starts[0], min(n, starts[-1] + refresh))
            k = (rows - starts[0]) // refresh
            with np.errstate(divide="ignore", invalid="ignore"):
                counts[rows] = np.abs(y[rows] - median[k]) / scale[k] > z  # NaN (missing, 0/0) does not count
    two_of_three = np.convolve(counts.astype(np.int64), np.ones(3, dtype=np.int64))[:n] >= 2
    return (two_of_three & ~np.concatenate(([False], two_of_three[:-1]))).astype(np.int8)


def oracle_llr(null: NullModel, inc: Incident, y: np.ndarray) -> np.ndarray:
    """Per row of the incident, log P(y | the incident) - log P(y | normal), both exactly known."""
    rows = slice(inc.start, inc.end)
    a, b, v = null.a[rows], null.b[rows], y[rows]
    m = inc.magnitude
    with np.errstate(divide="ignore", invalid="ignore"):
        if null.kind == "poisson":
            k = v - (0.0 if null.offset is None else null.offset[rows])
            lam0 = np.maximum(a + b, 1e-9)
            lam1 = np.maximum((a + m if inc.shape == "quiet_hour_spike" else a * m) + b, 1e-9)
            llr = k * np.log(lam1 / lam0) - (lam1 - lam0)
        elif null.kind == "binomial":
            r0 = np.clip(b, 1e-6, 0.95)
            r1 = np.clip(r0 + m if inc.shape == "error_burst" else np.full(len(r0), m), 1e-6, 0.95)
            llr = v * np.log(r1 / r0) + (a - v) * np.log((1.0 - r1) / (1.0 - r0))
        else:  # lognormal
            d = math.log(m)
            llr = d / b**2 * (np.log(v) - a) - d * d / (2.0 * b**2)
    return np.where(np.isnan(llr), 0.0, llr)  # a row without a value adds no evidence


def oracle_found(f: SeriesFile, y: np.ndarray) -> tuple[bool, ...]:
    """Per incident: whether the oracle's CUSUM reaches ln(1 / ORACLE_P) inside it."""
    if f.null is None:
        return tuple(True for _ in f.incidents)
    found = []
    for inc in f.incidents:
        s, best = 0.0, 0.0
        for step in oracle_llr(f.null, inc, y).tolist():
            s = max(0.0, s + step)
            best = max(best, s)
        found.append(best >= -math.log(ORACLE_P))
    return tuple(found)


def _median(rows: np.ndarray) -> np.ndarray:
    return np.nanmedian(rows, axis=1) if np.isnan(rows).any() else np.median(rows, axis=1)


def _baseline_file(args: tuple[Path, int]) -> np.ndarray:
    path, period_s = args
    return robust_z_alerts(read_series(path).y, 86400 // period_s, refresh=max(1, 300 // period_s))


def _alert_column(path: Path) -> np.ndarray:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        col = next(reader).index("alert")
        return np.array([int(row[col]) for row in reader], dtype=np.int8)


def _detect(corpus: Path, out: Path, files: list[SeriesFile], profile: str, jobs: int) -> list[np.ndarray]:
    reports = run_directory(corpus, out, profile=profile, jobs=jobs)
    by_path = {Path(r.path).relative_to(corpus).as_posix(): r for r in reports}
    for f in files:
        report = by_path[f.path]
        if report.error:
            raise RuntimeError(report.error)
        if profile == "auto" and report.profile != f.profile:
            raise RuntimeError(
                f"{f.path}: --profile auto chose {report.profile}, the catalog says {f.profile}"
            )
    return [_alert_column(out / f.path) for f in files]


def _fmt_delay(delays: list[int]) -> str:
    return f"{statistics.median(delays):g}" if delays else "-"


def _report(
    files: list[SeriesFile], scores: dict[str, list[FileScore]], oracle: list[tuple[bool, ...]]
) -> None:
    print(f"found = an alert opens inside the incident or within {GRACE} periods after its last row;")
    print(f"false episode = an alert opening outside every incident + {TAIL} periods (each opening counts);")
    print("delay = median periods from the incident's first row to the alert that found it")
    kinds = list(dict.fromkeys(f.kind for f in files))
    head = f"{'series kind':<30}{'files':>5}{'rows':>9}{'inc':>5}" + "".join(
        f" | {m + ': found':>15}{'FA/1k':>7}{'delay':>6}" for m in METHODS
    )
    print(head)
    print("-" * len(head))
    for kind in (*kinds, "ALL"):
        idx = [i for i, f in enumerate(files) if kind in ("ALL", f.kind)]
        rows = sum(files[i].rows for i in idx)
        incidents = sum(len(files[i].incidents) for i in idx)
        line = f"{kind:<30}{len(idx):>5}{rows:>9}{incidents:>5}"
        for m in METHODS:
            picked = [scores[m][i] for i in idx]
            found = sum(sum(s.found) for s in picked)
            false = sum(s.false_episodes for s in picked)
            delays = [d for s in picked for d in s.delays]
            recall = f"{found}/{incidents}" if incidents else "-"
            line += f" | {recall:>15}{1000 * false / rows:>7.2f}{_fmt_delay(delays):>6}"
        print(line)
    print()
    _print_totals(files, scores, oracle)
    print()
    print(f"{'incident shape':<22}{'inc':>5}" + "".join(f"{m:>10}" for m in (*METHODS, "oracle")))
    for shape in SHAPES:
        where = [
            (i, k) for i, f in enumerate(files) for k, inc in enumerate(f.incidents) if inc.shape == shape
        ]
        cells = "".join(f"{sum(scores[m][i].found[k] for i, k in where):>10}" for m in METHODS)
        cells += f"{sum(oracle[i][k] for i, k in where):>10}"
        print(f"{shape:<22}{len(where):>5}{cells}")


def _run_seed(
    seed: int, jobs: int, keep: str | None
) -> tuple[list[SeriesFile], dict[str, list[FileScore]], list[tuple[bool, ...]]]:
    """Generate one seed's corpus, run the three methods and the oracle over it, print its report."""
    with tempfile.TemporaryDirectory(prefix="unseen-") as tmp:
        root = Path(keep or tmp)
        corpus = root / "corpus"
        started = time.perf_counter()
        files = generate_corpus(corpus, seed=seed)
        timings = [f"generate {time.perf_counter() - started:.1f}s"]
        oracle = [oracle_found(f, read_series(corpus / f.path).y) for f in files]
        opened: dict[str, list[np.ndarray]] = {}
        for method in ("auto", "default"):
            started = time.perf_counter()
            opened[method] = _detect(corpus, root / f"out-{method}", files, method, jobs)
            timings.append(f"{method} {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
            opened["baseline"] = list(
                pool.map(_baseline_file, [(corpus / f.path, f.period_s) for f in files])
            )
        timings.append(f"baseline {time.perf_counter() - started:.1f}s")
    scores = {
        m: [
            score_alerts(o, [(i.start, i.end) for i in f.incidents])
            for f, o in zip(files, opened[m], strict=True)
        ]
        for m in METHODS
    }
    incidents = sum(len(f.incidents) for f in files)
    clean = sum(not f.incidents for f in files)
    rows = sum(f.rows for f in files)
    print(
        f"{len(files)} files ({clean} without incident), {rows} rows, {incidents} incidents, "
        f"seed {seed}; " + ", ".join(timings)
    )
    _report(files, scores, oracle)
    return files, scores, oracle


def _print_totals(
    files: list[SeriesFile], scores: dict[str, list[FileScore]], oracle: list[tuple[bool, ...]]
) -> None:
    """One line per method (window recall, false episodes, delay, flapping) and the oracle's."""
    rows = sum(f.rows for f in files)
    incidents = sum(len(f.incidents) for f in files)
    for m in METHODS:
        found = sum(sum(s.found) for s in scores[m])
        false = sum(s.false_episodes for s in scores[m])
        reopened = sum(s.reopened for s in scores[m])
        delays = [d for s in scores[m] for d in s.delays]
        print(
            f"{m:<9} window recall {found / incidents:.2f} ({found}/{incidents}), "
            f"false alert episodes {1000 * false / rows:.2f} per 1,000 rows ({false}), "
            f"median delay {_fmt_delay(delays)} periods, reopened inside a window {reopened}"
        )
    bound = sum(sum(o) for o in oracle)
    print(
        f"{'oracle':<9} window recall {bound / incidents:.2f} ({bound}/{incidents}): the most "
        f"a detector finds at p = {ORACLE_P:g} knowing each series' normal distribution and each "
        "incident's size"
    )


def report_together(
    seeds: list[int], runs: list[tuple[list[SeriesFile], dict[str, list[FileScore]], list[tuple[bool, ...]]]]
) -> None:
    """The seeds' corpora as one: found, false episodes and delays summed over them."""
    files = [f for run in runs for f in run[0]]
    incidents = sum(len(f.incidents) for f in files)
    print()
    print(
        f"seeds {', '.join(map(str, seeds))} together: {len(files)} files, "
        f"{sum(f.rows for f in files)} rows, {incidents} incidents"
    )
    scores = {m: [s for run in runs for s in run[1][m]] for m in METHODS}
    _print_totals(files, scores, [o for run in runs for o in run[2]])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_unseen")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[DEFAULT_SEED], help="one corpus per seed, then their sum"
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="write the corpus and the outputs here and keep them (DIR/seed-N with several)",
    )
    args = parser.parse_args(argv)
    seeds: list[int] = args.seed
    runs = []
    for k, seed in enumerate(seeds):
        if k:
            print()
        keep = args.keep if args.keep is None or len(seeds) == 1 else str(Path(args.keep) / f"seed-{seed}")
        runs.append(_run_seed(seed, args.jobs, keep))
    if len(seeds) > 1:
        report_together(seeds, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
