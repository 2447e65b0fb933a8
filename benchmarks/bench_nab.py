"""NAB v1.1 benchmark: the deployed detector and alert rule over the whole corpus, next to NAB's table.

Runs `ops.detect` (profile "default", the Lambda's detector and rule, no per-file tuning) over
``<nab>/data``, writes NAB's results layout ``<out>/<detector>/<category>/<detector>_<file>.csv``
(timestamp, value, anomaly_score, label) for two detectors -- ``fleetscope`` (the calibrated score,
threshold optimised by the NAB sweep) and ``fleetscopeAlerts`` (the alert column: what the monitor
would notify, scored as is) -- scores them with `benchmarks.nab_scorer` and prints them next to the
published results (final_results.json).

    python -m benchmarks bench_nab            # whole corpus
    python -m benchmarks.bench_nab [--nab-dir DIR] [--out DIR] [--jobs N] [--only CATEGORY ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.nab_scorer import (
    PROFILE_NAMES,
    ProfileScore,
    default_nab_dir,
    label_file,
    load_windows,
    parse_nab_time,
    score_results_dir,
)
from ops.detect import run_directory

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NAB = default_nab_dir()
SCORE_DETECTOR = "fleetscope"
ALERT_DETECTOR = "fleetscopeAlerts"


def to_nab_layout(detect_dir: Path, out_dir: Path, nab_dir: Path, names: list[str]) -> None:
    """Copy `monitor detect` outputs into NAB's results layout (score and alert detectors)."""
    windows = load_windows(nab_dir)
    for name in names:
        category, fname = name.split("/", 1)
        with (detect_dir / category / fname).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        stamps = [parse_nab_time(r["timestamp"]) for r in rows]
        labels = label_file(name, stamps, windows.get(name, [])).window_id >= 0
        for detector, column in ((SCORE_DETECTOR, "anomaly_score"), (ALERT_DETECTOR, "alert")):
            dst = out_dir / detector / category / f"{detector}_{fname}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            with dst.open("w", newline="") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(("timestamp", "value", "anomaly_score", "label"))
                for r, lab in zip(rows, labels, strict=True):
                    writer.writerow((r["timestamp"], r["value"], r[column] or "0", int(lab)))


def format_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = f"{'detector':<34}" + "".join(f"{p:>20}" for p in PROFILE_NAMES)
    lines = [head, "-" * len(head)]
    for name, scores in rows:
        lines.append(f"{name:<34}" + "".join(f"{scores.get(p, float('nan')):>20.2f}" for p in PROFILE_NAMES))
    return "\n".join(lines)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _norm(scores: dict[str, ProfileScore]) -> dict[str, float]:
    return {k: v.normalized for k, v in scores.items()}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks bench_nab", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--nab-dir", type=Path, default=DEFAULT_NAB)
    parser.add_argument("--out", type=Path, default=None, help="results directory (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: min(2, cores))")
    parser.add_argument("--only", nargs="*", default=None, help="categories to run (default: all)")
    args = parser.parse_args(argv)
    nab_dir: Path = args.nab_dir
    if not (nab_dir / "data").is_dir():
        raise SystemExit(f"NAB corpus not found at {nab_dir} (use --nab-dir)")
    with tempfile.TemporaryDirectory(prefix="nab-") as tmp:
        out = args.out or Path(tmp)
        data_dir = nab_dir / "data"
        names = sorted(load_windows(nab_dir))
        if args.only:
            names = [n for n in names if n.split("/", 1)[0] in args.only]
        started = time.perf_counter()
        cpu_before = _cpu_seconds()
        if args.only:
            # Run only the selected categories (same code path, smaller input).
            for category in sorted({n.split("/", 1)[0] for n in names}):
                run_directory(data_dir / category, out / "detect" / category, jobs=args.jobs)
        else:
            reports = run_directory(data_dir, out / "detect", jobs=args.jobs)
            failed = [r.error for r in reports if r.error]
            if failed:
                raise SystemExit("detection failed:\n" + "\n".join(str(f) for f in failed))
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        to_nab_layout(out / "detect", out, nab_dir, names)
        ours = score_results_dir(nab_dir, out / SCORE_DETECTOR, SCORE_DETECTOR, only=names)
        deployed = score_results_dir(
            nab_dir, out / ALERT_DETECTOR, ALERT_DETECTOR, only=names, fixed_threshold=0.5
        )
    rows_total = sum(1 for n in names for _ in (nab_dir / "data" / n).open()) - len(names)
    published = json.loads((nab_dir / "results" / "final_results.json").read_text())
    table: list[tuple[str, dict[str, float]]] = [
        ("fleetscope (optimised threshold)", _norm(ours)),
        ("fleetscope (as deployed: alerts)", _norm(deployed)),
    ]
    if not args.only:
        table += sorted(published.items(), key=lambda kv: -kv[1]["standard"])
    scope = (
        "whole corpus"
        if not args.only
        else f"subset {', '.join(args.only)} (published scores need all files)"
    )
    print(f"NAB v1.1 -- {len(names)} files, {rows_total} rows, {scope}")
    print(format_table(table))
    std = ours["standard"]
    print(
        f"optimised standard threshold {std.threshold:.4f}: {std.tp}/{std.tp + std.fn} windows detected, "
        f"{std.fp} false-positive rows; as deployed: {deployed['standard'].tp} windows, "
        f"{deployed['standard'].fp} alert rows outside windows"
    )
    print(
        f"detection runtime: {elapsed:.1f} s wall, {cpu:.1f} s CPU (this process and its workers) "
        f"for {rows_total} rows ({rows_total / elapsed:,.0f} rows/s)"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
