"""NAB v1.1 scorer (compatible with numenta/NAB's sweeper and optimiser), written for Fleetscope.

Rules (NAB v1.1): rows ``i < min(floor(0.15 n), 750)`` are probationary and not scored; a row
inside a labelled window [L, R] (w = R-L+1 rows) detected at threshold is worth
``tpW * sigma(-(R-i+1)/w) / sigma(-1)`` and a window keeps only its best detection; a window with
none costs ``-fnW``; a detected row outside windows costs ``fpW * sigma(|i-R_prev|/(w_prev-1))``
(negative), or ``-fpW`` before the first window, with ``sigma(p) = 2/(1+exp(5p)) - 1`` and -1 once
``p >= 3``. One threshold for the whole corpus, swept over every distinct score (starting at 1.1);
the best total wins, ties going to the highest threshold. Normalised score
``100 (S - S_null) / (S_perfect - S_null)`` with ``S_null = -fnW * windows`` and
``S_perfect = tpW * windows``, counting the windows that reach past probation.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
_REPO = Path(__file__).resolve().parent.parent


def default_nab_dir() -> Path:
    """Where the NAB corpus is: ``$FLEETSCOPE_NAB_DIR``, else ``../shared/nab`` beside the checkout."""
    if env := os.environ.get("FLEETSCOPE_NAB_DIR"):
        return Path(env)
    return _REPO.parent / "shared" / "nab"


@dataclass(frozen=True)
class CostMatrix:
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True)
class LabeledFile:
    """Per-row scoring facts of one data file, independent of any detector."""

    name: str  # "<category>/<file>.csv"
    n_rows: int
    probation: int
    window_id: np.ndarray  # int, -1 outside windows
    tp_weight: np.ndarray  # sigma(-(R-i+1)/w)/sigma(-1) inside windows, 0 outside
    fp_weight: np.ndarray  # sigma(|i-R_prev|/(w_prev-1)) outside windows (<= 0), 0 inside
    n_windows: int  # windows with at least one scored row


@dataclass(frozen=True)
class ProfileScore:
    profile: str
    threshold: float
    raw: float
    normalized: float
    tp: int
    fp: int
    fn: int


def scaled_sigmoid(position: float) -> float:
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def parse_nab_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def load_profiles(nab_dir: Path) -> dict[str, CostMatrix]:
    data = json.loads((nab_dir / "config" / "profiles.json").read_text())
    return {
        name: CostMatrix(
            tp=c["CostMatrix"]["tpWeight"], fp=c["CostMatrix"]["fpWeight"], fn=c["CostMatrix"]["fnWeight"]
        )
        for name, c in data.items()
    }


def load_windows(nab_dir: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    data = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    return {name: [(parse_nab_time(a), parse_nab_time(b)) for a, b in wins] for name, wins in data.items()}


def label_file(
    name: str, timestamps: list[datetime], windows: list[tuple[datetime, datetime]]
) -> LabeledFile:
    """Mirror of NAB's Sweeper.calcSweepScore: window membership and the sigmoid weights per row."""
    n = len(timestamps)
    probation = int(min(math.floor(0.15 * n), 0.15 * 5000))
    index_of: dict[datetime, int] = {}
    for i, ts in enumerate(timestamps):
        index_of.setdefault(ts, i)  # NAB's list.index: first occurrence
    window_id = np.full(n, -1, dtype=np.int64)
    tp_w = np.zeros(n)
    fp_w = np.zeros(n)
    pending = list(windows)
    cur: tuple[datetime, datetime] | None = None
    cur_id = -1
    cur_right = cur_width = 0
    prev_right: int | None = None
    prev_width = 0
    max_tp = scaled_sigmoid(-1.0)
    for i, ts in enumerate(timestamps):
        if pending and ts == pending[0][0]:
            cur = pending.pop(0)
            cur_id += 1
            cur_right = index_of[cur[1]]
            cur_width = cur_right - index_of[cur[0]] + 1
        if cur is not None:
            window_id[i] = cur_id
            tp_w[i] = scaled_sigmoid(-(cur_right - i + 1) / cur_width) / max_tp
        else:
            pos = 3.0 if prev_right is None else abs(prev_right - i) / float(prev_width - 1)
            fp_w[i] = scaled_sigmoid(pos)
        if cur is not None and ts == cur[1]:
            prev_right, prev_width = i, cur_width
            cur = None
    scored_windows = {int(w) for w in window_id[probation:] if w >= 0}
    return LabeledFile(name, n, probation, window_id, tp_w, fp_w, len(scored_windows))


@dataclass(frozen=True)
class _Flat:
    """All scorable rows of the corpus, concatenated, with globally unique window ids."""

    score: np.ndarray
    window: np.ndarray
    tp_weight: np.ndarray
    fp_weight: np.ndarray
    n_windows: int


def _flatten(files: Iterable[tuple[LabeledFile, np.ndarray]]) -> _Flat:
    scores, wins, tps, fps = [], [], [], []
    offset = 0
    n_windows = 0
    for lab, score in files:
        if len(score) != lab.n_rows:
            raise ValueError(f"{lab.name}: {len(score)} scores for {lab.n_rows} rows")
        sl = slice(lab.probation, lab.n_rows)
        w = lab.window_id[sl]
        scored_ids = sorted({int(x) for x in w if x >= 0})
        remap = {old: offset + k for k, old in enumerate(scored_ids)}
        wins.append(np.array([remap[int(x)] if x >= 0 else -1 for x in w], dtype=np.int64))
        offset += len(scored_ids)
        n_windows += lab.n_windows
        scores.append(np.asarray(score, dtype=np.float64)[sl])
        tps.append(lab.tp_weight[sl])
        fps.append(lab.fp_weight[sl])
    return _Flat(
        np.concatenate(scores), np.concatenate(wins), np.concatenate(tps), np.concatenate(fps), n_windows
    )


def sweep(flat: _Flat, cost: CostMatrix) -> list[tuple[float, float, int, int]]:
    """(threshold, raw score, tp rows, fp rows) for 1.1 and every distinct score, descending.

    Equivalent to NAB's calcScoreByThreshold: a window's contribution is the best weight among its
    detected rows (or -fnW), false positives add ``fpW * weight``."""
    order = np.argsort(-flat.score, kind="stable")
    s = flat.score[order]
    win = flat.window[order]
    tpw = flat.tp_weight[order] * cost.tp
    fpw = flat.fp_weight[order] * cost.fp
    best = np.full(flat.n_windows, -cost.fn)
    total = -cost.fn * flat.n_windows
    results = [(1.1, total, 0, 0)]
    tp = fp = 0
    n = len(s)
    i = 0
    while i < n:
        thr = s[i]
        j = i
        while j < n and s[j] == thr:
            w = win[j]
            if w < 0:
                total += fpw[j]
                fp += 1
            else:
                tp += 1
                if tpw[j] > best[w]:
                    total += tpw[j] - best[w]
                    best[w] = tpw[j]
            j += 1
        results.append((float(thr), float(total), tp, fp))
        i = j
    return results


def score_corpus(
    files: Iterable[tuple[LabeledFile, np.ndarray]],
    profiles: Mapping[str, CostMatrix],
    *,
    fixed_threshold: float | None = None,
) -> dict[str, ProfileScore]:
    """Optimise one corpus-wide threshold per profile (or apply `fixed_threshold`) and normalise."""
    flat = _flatten(files)
    out: dict[str, ProfileScore] = {}
    for name, cost in profiles.items():
        rows = sweep(flat, cost)
        if fixed_threshold is None:
            best = max(rows, key=lambda r: r[1])  # first max = highest threshold on ties
        else:
            eligible = [r for r in rows if r[0] >= fixed_threshold]
            best = eligible[-1]
        null = -cost.fn * flat.n_windows
        perfect = cost.tp * flat.n_windows
        norm = 100.0 * (best[1] - null) / (perfect - null)
        detected = _windows_detected(flat, best[0])
        out[name] = ProfileScore(name, best[0], best[1], norm, detected, best[3], flat.n_windows - detected)
    return out


def _windows_detected(flat: _Flat, threshold: float) -> int:
    hit = flat.window[(flat.score >= threshold) & (flat.window >= 0)]
    return len(np.unique(hit))


def read_score_csv(path: Path, column: str = "anomaly_score") -> tuple[list[datetime], np.ndarray]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        if (
            reader.fieldnames is None
            or "timestamp" not in reader.fieldnames
            or column not in reader.fieldnames
        ):
            raise ValueError(f"{path}: needs the columns timestamp and {column}")
        stamps: list[datetime] = []
        scores: list[float] = []
        for row in reader:
            stamps.append(parse_nab_time(row["timestamp"]))
            scores.append(float(row[column]) if row[column] else 0.0)
    return stamps, np.asarray(scores, dtype=np.float64)


def score_results_dir(
    nab_dir: Path,
    results_dir: Path,
    detector: str,
    *,
    column: str = "anomaly_score",
    fixed_threshold: float | None = None,
    only: Iterable[str] | None = None,
) -> dict[str, ProfileScore]:
    """Score NAB's results layout ``<results_dir>/<category>/<detector>_<file>.csv[.gz]``.

    `only` restricts scoring to some ``<category>/<file>.csv`` names (normalised on their windows)."""
    windows = load_windows(nab_dir)
    if only is not None:
        keep = set(only)
        windows = {k: v for k, v in windows.items() if k in keep}
    profiles = load_profiles(nab_dir)
    files: list[tuple[LabeledFile, np.ndarray]] = []
    for name, wins in sorted(windows.items()):
        category, fname = name.split("/", 1)
        candidates = [results_dir / category / f"{detector}_{fname}{ext}" for ext in ("", ".gz")]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise FileNotFoundError(f"no result for {name} under {results_dir} ({candidates[0].name})")
        stamps, scores = read_score_csv(path, column)
        files.append((label_file(name, stamps, wins), scores))
    return score_corpus(files, profiles, fixed_threshold=fixed_threshold)
