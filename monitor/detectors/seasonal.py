"""SeasonalBaselineDetector: robust, exponentially adapting time-of-day / day-of-week baseline.

The model is an additive Holt-Winters in error-correction form made robust: the forecast is
``level + tod[hour] + dow[weekday]`` and every component moves by a share of the residual clipped
to ``clip_z`` robust standard deviations, so one outlier barely moves the baseline. The scale is an
exponentially weighted mean absolute residual (also clipped). A plain level without seasonality is
tracked alongside, and the seasonal forecast is used only while it explains the series better.
When ``shift_points`` consecutive points sit beyond ``shift_z`` on the same side, the change is
confirmed and the level re-baselines to the median of those points (so a persistent level shift
stops alerting once it is the new normal). Their |z| leave the calibration (a shift is not noise: a
queue backing up for hours put |z| of thousands in it and hid the next day's backlog), and the scale
grows to their spread about the new level, or with ``shift_scale_steps`` (gauges that climb, such as
a queue's age) to their point-to-point noise.

Per point it yields a tail probability for the robust z-score that is calibrated on the series
itself (conformal): the share of the last ``calib_points`` absolute z-scores that were at least as
large. Real metrics are heavy-tailed and often quantised, so a normal tail would call every routine
outlier a 1e-20 event; the conformal p-value cannot go below 1/(N+1) from ranks alone, and beyond the
largest z seen it keeps falling as ``(z_max/z)^tail_power``. The band is the same calibration read
backwards: ``forecast +/- z_band * scale`` with ``z_band`` the |z| whose tail probability is
``band_p``, so a point inside the band never has a tail probability below ``band_p`` (before the
calibration has ``calib_min`` values, or with ``band_p=None``, the band is ``band_z`` scales wide).

Sustained shifts (``shift_delta``): a latency 30 % up for half an hour is rarely a 1e-5 event at any
single point, and by the time it is ``shift_points`` points beyond ``shift_z`` it has become the new
level. Two CUSUMs (up and down) of the log-likelihood ratio "the residual is shifted by
``shift_delta`` scales" against "it is not", on the robust z clipped to ``shift_clip`` (one outlier
adds little), accumulate that evidence point by point; one point adds at most ``1/shift_steps`` of
the alarm level ``h = -ln(shift_p)``, so only a shift that lasts alarms, and the CUSUM is capped at
``1.5 h`` so it drains within a few points of a recovery. Residuals of a seasonal model are
autocorrelated (a slow wander is not a shift), so z is first divided by the variance inflation of
an AR(1) sum, ``sqrt((1 + rho) / (1 - rho))``, with ``rho`` the exponentially weighted lag-1
autocorrelation of ordinary residuals. ``exp(-S)`` bounds the probability of S under no shift
(Ville's inequality), so it is a tail probability like the point's; and the band narrows to the
value that would bring S to h, so a point is outside the band exactly when either test calls it.
A second pair of CUSUMs (``shift_delta_small``, about one scale) finds a smaller shift once it has
lasted longer (+10 % on a 6 % noise for ~20 points): it is capped lower (``shift_small_cap`` x its
alarm level, so it drains within a few points of a recovery) and may ask for more evidence
(``shift_small_p``); with two pairs the alarm level is raised by ln 2, a union bound over the two tests.

Two refinements of that test (the latency profile): ``shift_block`` also measures how far sums of that
many ordinary z in a row spread (their variance over their number), and divides by the larger of that
and the AR(1) inflation: a level that swells and ebbs for hours has a lag-1 autocorrelation that implies
an inflation of ~1.7 where its 24-point sums spread three times as far as independent z would, and the
CUSUMs took each swell for a shift. ``tod_noise`` gives every time-of-day slot a noise factor (the sd
is the scale times it, the factors keep a mean of 1): a latency averaged over a few requests at night
is several times noisier than at the peak, and one scale for both put the peak's band at the night's
width.

Multiplicative seasonality (``log_values``): traffic scales, it does not shift: a weekend at 60 % of a
weekday is 60 % at every hour, and noise grows with the level. The model then runs on ``log(1 + y)``
(a negative value counts as 0) and its forecast and band are mapped back, so the band is narrow at
night and wide at the peak, in proportion.

Two refinements for the operational profiles: ``tod_interp`` reads the time-of-day profile linearly
between the centres of its slots (and each point teaches both slots by their weights), so a steep
ramp is not forecast as a staircase whose steps look like shifts; ``calib_hold`` keeps the |z| of an
excursion's first points out of the calibration until the excursion ends, so an incident's second
point is judged against the series' history and not against its own first point.

Weekday and weekend profiles (``weekend_tod``): beside the time-of-day profile every day shares, a
Monday-Friday one and a Saturday-Sunday one (UTC days) learn from their own days, and the forecast uses
them while they miss less than the shared one over about two weeks. With one profile, a weekend without
the weekdays' rush hours pulled the morning slots down every weekend, and the next weekday's rush rose
out of its band as a surge; a series whose days are all alike learns the same shape twice from fewer
days each, and keeps the shared one. The profile not in use learns its own residual, so the comparison
stays fair; the hour-of-week term (``week_hours``) then learns what either leaves over, such as the hours
a local time zone moves across midnight.

Counts (``count_floor``): the scale is at least the Poisson sd ``sqrt(max(forecast, 1))``, and
|z| up to ``calib_z_floor`` is never surprising, so a series that has always been 1 per period does
not alarm at 2. With ``count_extra`` the seasonal forecast's variance is the Poisson variance of the
forecast plus a learnt extra variance (the residual's square less its Poisson part), so a traffic
band is narrow where counts are many (the peak) and wide where they are few (the night) instead of
one scale for every hour; a forecast of a few counts per period is also tested against its own
negative-binomial tail (see `_count_tail`). ``weekday_offsets`` off: no level offset per weekday, for
models whose weekday and weekend profiles already carry the day kind's level.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Self

import numpy as np

from monitor.detectors.base import (
    OnlineDetector,
    ScoredPoints,
    floats_from_json,
    floats_to_json,
    p_to_score,
)

_MAD_TO_SD = 1.4826
_NORMAL = NormalDist()
_MEAN_ABS_TO_SD = 1.2533
_WEEK_HOURS = 168
_WEEK_SETTLE_S = 2 * 86400  # the hour-of-week term learns from the third day on (see `_accumulate_week`)
_FEW_COUNTS = 5.0  # count_extra: forecasts up to this many per period are also tested as counts
_NOISE_MAX = 5.0  # tod_noise: a slot's factor stays within [1 / this, this]
_WEEKS = 3  # the hour-of-week term is the median of this many weeks (missing weeks count as 0)


def _spread_sd(run: np.ndarray, level: float) -> float:
    """An excursion's spread about its new level (MAD): after a level shift the model is less sure."""
    return float(np.median(np.abs(run - level))) * _MAD_TO_SD


def _step_sd(run: np.ndarray, level: float) -> float:
    """An excursion's point-to-point noise (MAD of its steps / sqrt 2), not its extent: a queue that
    backs up climbs steadily for hours, and its spread about the median would set a scale of thousands
    that hides the next backlog for a day."""
    if len(run) < 3:
        return 0.0
    return float(np.median(np.abs(np.diff(run)))) * _MAD_TO_SD / math.sqrt(2.0)


def _week_term(weeks: list[float]) -> float:
    """The hour-of-week term from its last weeks' means (NaN: not seen): one week is taken as it is;
    two count only as far as they agree (the smaller, 0 if they differ in sign); three: their median."""
    seen = [v for v in weeks if not math.isnan(v)]
    if len(seen) == 1:
        return seen[0]
    a, b, c = [*seen, 0.0, 0.0, 0.0][:3]
    return max(min(a, b), min(max(a, b), c))


@dataclass(frozen=True)
class SeasonalConfig:
    period_s: int = 300
    warmup_points: int = 24
    level_alpha: float = 0.05  # share of the clipped residual the level absorbs per point
    seasonal_level_share: float = 0.2  # the seasonal model's level moves this much slower
    season_day_weight: float = 0.25  # share of a day's residual a time-of-day slot absorbs
    season_week_weight: float = 0.15  # share of a week's residual a weekday slot absorbs
    scale_beta: float = 0.02  # EW weight of the mean absolute residual
    clip_z: float = 3.0
    band_z: float = 3.0  # band width (in scales) until the calibration is warm
    band_p: float | None = 1e-2  # band level: tail probability of the band edge (score 0.2); None:
    # a fixed band of band_z scales (the NAB-tuned default profile, whose score is not gated by it)
    count_floor: bool = False  # values are event counts: the scale is at least the Poisson sd
    calib_z_floor: float = 0.0  # |z| up to this is never surprising (p = 1)
    tod_slots: int = 48  # time-of-day resolution (48 = half-hours)
    shift_z: float = 3.5
    shift_points: int = 12
    season_gain: float = 0.85  # seasonal scale must be below this share of the flat scale
    min_season_days: float = 2.0
    rel_floor: float = 1e-4  # scale floor relative to the typical magnitude
    calib_points: int = 1000  # |z| history for the conformal tail probability
    calib_min: int = 50  # |z| values needed before giving an opinion
    tail_power: float = 3.0
    log_values: bool = False  # model log(1 + y): a weekend at 60 % scales the whole day (values >= 0)
    shift_delta: float | None = None  # sustained-shift CUSUM: the shift (in scales) it looks for
    shift_delta_small: float | None = None  # a second CUSUM for a smaller shift that lasts longer
    shift_small_p: float = 1e-5  # ...alarming at this tail probability (scored as shift_p there)
    shift_small_cap: float = 1.1  # ...capped at this many times its alarm level, so it drains within points
    shift_p: float = 1e-5  # its alarm level, as a tail probability (h = -ln shift_p)
    shift_steps: int = 4  # one point adds at most h / shift_steps
    shift_clip: float = 3.0  # |z| fed to the CUSUM is clipped here
    shift_rho_alpha: float = 0.01  # EW weight of a point in the lag-1 autocorrelation
    shift_scale_steps: bool = False  # re-baseline: the scale from the excursion's steps, not its spread
    calib_hold: int = 0  # |z| of an excursion's first points join the calibration once it is over
    tod_interp: bool = False  # time-of-day profile read (and learnt) linearly between slot centres
    week_hours: bool = False  # hour-of-week term: the median of the last three weeks' hourly leftovers
    weekend_tod: bool = False  # a weekday and a weekend time-of-day profile, used while they fit better
    weekday_offsets: bool = True  # a level offset per weekday (off: the weekday/weekend profiles carry it)
    count_extra: bool = False  # counts: variance = the forecast's Poisson variance + a learnt extra one
    tod_noise: bool = False  # a noise profile: the sd is the scale times a learnt factor per time-of-day slot
    shift_block: int = 0  # > 0: the shift CUSUM's inflation also from the variance of sums of this many z
    noise_weight: float = 0.1  # share of a day's |residual| (relative to the scale) a slot's factor absorbs


@dataclass
class SeasonalOutput:
    """Raw per-point quantities, for ensembles that combine several models."""

    p: np.ndarray
    z: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_shift: np.ndarray  # the sustained-shift CUSUM's tail probability (1 without one)


class SeasonalBaselineDetector(OnlineDetector):
    kind = "seasonal_baseline"
    version = 2  # 2: band from the conformal calibration (band_p), count floor

    def __init__(self, config: SeasonalConfig | None = None, **overrides: Any) -> None:
        base = config or SeasonalConfig()
        self.config = SeasonalConfig(**{**asdict(base), **overrides})
        self.reset()

    # -- model state -------------------------------------------------------------------------
    def reset(self) -> None:
        self.last_t_ = None
        self.n_ = 0  # valid points absorbed
        self.first_t_: int | None = None
        self.warm_: list[float] = []
        self.level_ = math.nan  # deseasonalised level
        self.flat_level_ = math.nan
        self.scale_ = math.nan  # robust sd of the seasonal forecast's residual
        self.extra_var_ = math.nan  # count_extra: the residual's variance beyond the Poisson one (see
        # `_seasonal_sd`); NaN until warm-up ends or in a state written before it: the scale's square
        self.flat_scale_ = math.nan
        self.magnitude_ = 0.0  # EW mean |y|, for the scale floor
        self.tod_ = [0.0] * self.config.tod_slots
        self.dow_ = [0.0] * 7
        self.tod_n_ = [0] * self.config.tod_slots  # observations per slot (for a fast first estimate)
        split = self.config.tod_slots if self.config.weekend_tod else 0
        # weekend_tod: Monday-Friday's and Saturday-Sunday's own profiles (and their counts), learnt beside
        # the shared one, and the EW |residual| of each way [split, shared] (see `_split_profile`)
        self.tod_wd_, self.tod_wd_n_ = [0.0] * split, [0] * split
        self.tod_we_, self.tod_we_n_ = [0.0] * split, [0] * split
        self.split_err_ = [0.0, 0.0]
        self.dow_n_ = [0] * 7
        hours = _WEEK_HOURS if self.config.week_hours else 0
        self.tow_ = [0.0] * hours  # per hour of the week: what time of day + weekday leave over...
        self.tow_hist_ = [[math.nan] * _WEEKS for _ in range(hours)]  # ...the median of these weeks' means
        self.tow_acc_ = [-1.0, 0.0, 0.0]  # the hour being accumulated: [slot (-1: none), sum, count]
        self.tow_err_ = [[0.0, 0.0] for _ in range(7)]  # per weekday: EW |residual| with the term, without
        self.prev_: list[float] | None = None  # [level, flat level, scale, flat scale] before a re-baseline
        self.run_sign_ = 0
        self.run_: list[float] = []  # deseasonalised values of the current same-side excursion
        self.flat_run_: list[float] = []
        self.shifts_ = 0
        self.zhist_: deque[float] = deque()  # recent |z| in time order
        self.zsorted_: list[float] = []  # the same values, sorted
        self.cusum_ = [0.0] * (2 * len(self._deltas()))  # sustained-shift CUSUMs, up and down per delta
        self.ac_ = [0.0, 1.0, math.nan]  # EW z(t) z(t-1), EW z^2, the previous ordinary z
        self.block_: list[float] = []  # shift_block: the last ordinary z in a row...
        self.block_var_ = [0.0, 0.0]  # ...the EW (sum of shift_block of them)^2 / shift_block, and its weight
        self.held_: list[float] = []  # |z| of the current excursion, not yet in the calibration
        noise = self.config.tod_slots if self.config.tod_noise else 0
        self.noise_ = [1.0] * noise  # tod_noise: each slot's sd as a multiple of the scale (mean 1)...
        self.noise_n_ = [0] * noise  # ...and the points it learnt from

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "config": asdict(self.config),
            "last_t": self.last_t_,
            "n": self.n_,
            "first_t": self.first_t_,
            "warm": floats_to_json(self.warm_),
            "level": floats_to_json([self.level_, self.flat_level_, self.scale_, self.flat_scale_]),
            "extra_var": floats_to_json([self.extra_var_])[0],
            "magnitude": self.magnitude_,
            "tod": floats_to_json(self.tod_),
            "dow": floats_to_json(self.dow_),
            "tod_n": self.tod_n_,
            "tod_split": [floats_to_json(self.tod_wd_), floats_to_json(self.tod_we_)],
            "tod_split_n": [self.tod_wd_n_, self.tod_we_n_],
            "split_err": self.split_err_,
            "dow_n": self.dow_n_,
            "tow": floats_to_json(self.tow_),
            "tow_hist": [floats_to_json(h) for h in self.tow_hist_],
            "tow_acc": self.tow_acc_,
            "tow_err": self.tow_err_,
            "prev": None if self.prev_ is None else floats_to_json(self.prev_),
            "run_sign": self.run_sign_,
            "run": floats_to_json(self.run_),
            "flat_run": floats_to_json(self.flat_run_),
            "shifts": self.shifts_,
            "zhist": list(self.zhist_),
            "cusum": floats_to_json(self.cusum_),
            "ac": floats_to_json(self.ac_),
            "block": [floats_to_json(self.block_), self.block_var_],
            "held": floats_to_json(self.held_),
            "noise": [floats_to_json(self.noise_), self.noise_n_],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(SeasonalConfig(**state.get("config", {})))
        det._check_state(state)
        det.last_t_ = state["last_t"]
        det.n_ = int(state["n"])
        det.first_t_ = state["first_t"]
        det.warm_ = floats_from_json(state["warm"])
        det.level_, det.flat_level_, det.scale_, det.flat_scale_ = floats_from_json(state["level"])
        det.extra_var_ = floats_from_json([state.get("extra_var")])[0]  # absent before count_extra: NaN
        det.magnitude_ = float(state["magnitude"])
        det.tod_ = floats_from_json(state["tod"])
        det.dow_ = floats_from_json(state["dow"])
        det.tod_n_ = [int(v) for v in state["tod_n"]]
        split = state.get("tod_split")  # states written before it have none: the profiles start empty
        if split is not None and len(split[0]) == len(det.tod_wd_):
            det.tod_wd_, det.tod_we_ = floats_from_json(split[0]), floats_from_json(split[1])
            det.tod_wd_n_, det.tod_we_n_ = ([int(v) for v in n] for n in state["tod_split_n"])
            det.split_err_ = [float(v) for v in state["split_err"]]
        det.dow_n_ = [int(v) for v in state["dow_n"]]
        tow_hist = state.get("tow_hist")  # states written before it have none: the term starts at 0
        if tow_hist is not None and len(tow_hist) == len(det.tow_):
            det.tow_hist_ = [floats_from_json(h) for h in tow_hist]
            det.tow_ = floats_from_json(state["tow"])
            det.tow_acc_ = [float(v) for v in state["tow_acc"]]
            det.tow_err_ = [[float(v) for v in pair] for pair in state["tow_err"]]
        det.prev_ = None if state["prev"] is None else floats_from_json(state["prev"])
        det.run_sign_ = int(state["run_sign"])
        det.run_ = floats_from_json(state["run"])
        det.flat_run_ = floats_from_json(state["flat_run"])
        det.shifts_ = int(state["shifts"])
        det.zhist_ = deque(float(v) for v in state["zhist"])
        det.zsorted_ = sorted(det.zhist_)
        if "cusum" in state:  # states written before the shift CUSUM have none
            cusum = floats_from_json(state["cusum"])
            det.cusum_ = (cusum + [0.0] * len(det.cusum_))[: len(det.cusum_)]
            det.ac_ = floats_from_json(state["ac"])
        block = state.get("block")  # states written before it have none: the block variance starts empty
        if block is not None:
            det.block_, det.block_var_ = floats_from_json(block[0]), [float(v) for v in block[1]]
        det.held_ = floats_from_json(state.get("held", []))
        noise = state.get("noise")  # states written before it have none: every slot's factor starts at 1
        if noise is not None and len(noise[0]) == len(det.noise_):
            det.noise_, det.noise_n_ = floats_from_json(noise[0]), [int(v) for v in noise[1]]
        return det

    # -- scoring -----------------------------------------------------------------------------
    @property
    def warmed_up(self) -> bool:
        return self.n_ >= self.config.warmup_points

    def uses_season(self, t: int | None = None) -> bool:
        cfg = self.config
        if self.first_t_ is None or not self.warmed_up:
            return False
        span_days = ((t if t is not None else (self.last_t_ or self.first_t_)) - self.first_t_) / 86400.0
        return span_days >= cfg.min_season_days and self.scale_ < cfg.season_gain * self.flat_scale_

    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints:
        out = self.process_raw(t, y)
        score = p_to_score(np.minimum(out.p, out.p_shift))
        return ScoredPoints(score=score, lower=out.lower, upper=out.upper)

    def process_raw(self, t: np.ndarray, y: np.ndarray) -> SeasonalOutput:
        """Score then absorb each point in order (inputs already validated)."""
        cfg = self.config
        n = len(y)
        p_out = np.ones(n)
        z_out = np.zeros(n)
        exp_out = np.full(n, np.nan)
        lo_out = np.full(n, np.nan)
        hi_out = np.full(n, np.nan)
        ps_out = np.ones(n)
        slot_s = 86400 // cfg.tod_slots
        obs_per_slot = max(slot_s / max(cfg.period_s, 1), 1.0)
        obs_per_day = max(86400.0 / max(cfg.period_s, 1), 1.0)
        g_tod = min(0.5, cfg.season_day_weight / obs_per_slot)
        g_dow = min(0.5, cfg.season_week_weight / obs_per_day)
        alpha = cfg.level_alpha
        beta = cfg.scale_beta
        tod = self.tod_
        dow = self.dow_
        raw = y
        nb_mu = np.full(n, np.nan)  # count_extra: the forecast's count and extra variance per point
        nb_extra = np.full(n, np.nan)
        if cfg.log_values:  # multiplicative seasonality: the model runs on log(1 + y)
            y = np.log1p(np.maximum(y, 0.0))  # NaN stays NaN
        ts = t.tolist()
        ys = y.tolist()
        for i in range(n):
            ti = ts[i]
            yi = ys[i]
            hour = (ti % 86400) // slot_s
            day = (ti // 86400 + 3) % 7  # epoch day 0 was a Thursday; Monday = 0
            if not self.warmed_up:
                if not math.isnan(yi):
                    if self.first_t_ is None:
                        self.first_t_ = ti
                    self.warm_.append(yi)
                    self.n_ += 1
                    if self.warmed_up:
                        self._finish_warmup()
                if self.warm_:
                    lo_out[i] = min(self.warm_)
                    hi_out[i] = max(self.warm_)
                    exp_out[i] = float(np.median(self.warm_))
                continue
            seasonal = self.uses_season(ti)
            slot2, w2 = hour, 0.0  # the second slot and its weight (tod_interp)
            if cfg.tod_interp:
                x = (ti % 86400) / slot_s - 0.5  # position between the centres of two slots
                near = math.floor(x)
                w2 = x - near
                hour, slot2 = near % cfg.tod_slots, (near + 1) % cfg.tod_slots
            shared_shape = (1.0 - w2) * tod[hour] + w2 * tod[slot2]
            split_shape, split = shared_shape, False
            if self.tod_wd_:
                prof = self._split_profile(day)[0]
                split_shape = (1.0 - w2) * prof[hour] + w2 * prof[slot2]
                split = self.split_err_[0] < self.split_err_[1]
            day_shape = split_shape if split else shared_shape
            week_shape = self._week_shape(ti) if self.tow_ else 0.0
            season = day_shape + dow[day] + (week_shape if self.tow_ and self._uses_week() else 0.0)
            floor = max(1e-12, cfg.rel_floor * self.magnitude_)
            noise = (1.0 - w2) * self.noise_[hour] + w2 * self.noise_[slot2] if self.noise_ else 1.0
            if seasonal:
                forecast = self.level_ + season
                sd = max(self._seasonal_sd(forecast) * noise, floor)
                if cfg.count_extra and cfg.log_values:
                    nb_mu[i] = math.expm1(min(forecast, 700.0))
                    nb_extra[i] = max(self._extra(), 0.0)
            else:
                forecast = self.flat_level_
                sd = max(self.flat_scale_ * noise, floor)
            if cfg.count_floor:
                sd = max(sd, self._count_sd(forecast))
            if self.prev_ is not None and not math.isnan(yi) and abs(yi - forecast) > cfg.shift_z * sd:
                # After a re-baseline, a return to the previous level is recovery, not a new anomaly.
                p_level, p_flat, p_scale, p_flat_scale = self.prev_
                p_forecast = (p_level + season) if seasonal else p_flat
                p_sd = max((p_scale if seasonal else p_flat_scale) * noise, floor)
                if abs(yi - p_forecast) <= cfg.clip_z * p_sd:
                    self.extra_var_ = self._rescaled_extra(self.scale_, p_scale)
                    self.level_, self.flat_level_, self.scale_, self.flat_scale_ = self.prev_
                    self.prev_ = None
                    self.run_sign_, self.run_, self.flat_run_ = 0, [], []
                    forecast, sd = p_forecast, p_sd
                    if cfg.count_floor:
                        sd = max(sd, self._count_sd(forecast))
            z_band = self.band_z()
            exp_out[i] = forecast
            lo_out[i] = forecast - z_band * sd
            hi_out[i] = forecast + z_band * sd
            if cfg.shift_delta is not None:
                z_up, z_down = self._shift_band()
                lo_out[i] = max(lo_out[i], forecast - z_down * sd)
                hi_out[i] = min(hi_out[i], forecast + z_up * sd)
            if math.isnan(yi):
                continue
            if self.tow_ and ti - self.first_t_ >= _WEEK_SETTLE_S:
                # once time of day and weekday have a shape (the first days' ramps, which they are still
                # learning, would stay in it as those days' lag); every point, outliers included
                rest = yi - (self.level_ + day_shape + dow[day])
                self._accumulate_week(ti, rest, floor)
                self._compare_week(day, rest, week_shape, floor)
            if self.tod_wd_:
                base = yi - (self.level_ + dow[day])
                self._compare_split(base - split_shape, base - shared_shape, floor)
            z = (yi - forecast) / sd
            z_out[i] = z
            p_out[i] = self._calibrated_p(abs(z))
            sign = 1 if z > cfg.shift_z else (-1 if z < -cfg.shift_z else 0)
            self._calibrate(abs(z), held=sign != 0)
            if cfg.shift_delta is not None:
                ps_out[i] = self._shift_step(z)
            # -- absorb the point --
            self.n_ += 1
            self.magnitude_ += 0.01 * (abs(yi) - self.magnitude_)
            if sign == 0:
                other = (shared_shape if split else split_shape) - day_shape if self.tod_wd_ else None
                self._absorb(
                    yi, season, (hour, slot2, w2), day, floor, alpha, beta, g_tod, g_dow, split, other, noise
                )
            # -- confirmed level shift: re-baseline once the excursion persists --
            if sign != 0 and sign == self.run_sign_:
                self.run_.append(yi - season)
                self.flat_run_.append(yi)
            elif sign != 0:
                self.run_sign_ = sign
                self.run_ = [yi - season]
                self.flat_run_ = [yi]
            else:
                self.run_sign_ = 0
                self.run_ = []
                self.flat_run_ = []
            if len(self.run_) >= cfg.shift_points:
                self._rebaseline()
                if self.tow_:  # a level shift's hours are no weekly pattern
                    self.tow_acc_ = [-1.0, 0.0, 0.0]
                self.cusum_ = [0.0] * len(self.cusum_)  # the shift is the new level
            if ti % 86400 < cfg.period_s:  # the day's first point
                self._center_season()
        if cfg.log_values:  # back to the series' own units
            exp_out, lo_out, hi_out = np.expm1(exp_out), np.expm1(lo_out), np.expm1(hi_out)
        if cfg.count_extra:
            self._count_tail(raw, nb_mu, nb_extra, p_out, hi_out)
        return SeasonalOutput(p=p_out, z=z_out, expected=exp_out, lower=lo_out, upper=hi_out, p_shift=ps_out)

    def _seasonal_sd(self, forecast: float) -> float:
        """The seasonal forecast's sd. With ``count_extra``, a count's noise is Poisson (its variance is
        its mean: in logs, about 1 / forecast) plus what demand adds (a busy day, a slow wander, the
        model's own misfit: a share of the value at every hour). One scale for both made the band as
        wide at the peak, where a 2,000-request period's Poisson sd is 2 %, as at night, where a 20-request
        one's is 22 %: a +40 % morning surge stayed inside it. The extra variance is learnt from the
        residuals less their Poisson part, so the band is narrow in relative terms where counts are
        large and wide where they are few."""
        if not self.config.count_extra:
            return self.scale_
        return math.sqrt(max(self._extra(), 0.0) + self._count_sd(forecast) ** 2)

    def _extra(self) -> float:
        """The extra variance; the scale's square in a state written before it."""
        return self.scale_ * self.scale_ if math.isnan(self.extra_var_) else self.extra_var_

    def _count_tail(
        self, y: np.ndarray, mu: np.ndarray, extra: np.ndarray, p_out: np.ndarray, hi_out: np.ndarray
    ) -> None:
        """Where a count's forecast is a few per period (up to ``_FEW_COUNTS``, and its Poisson variance
        above its extra one), test it against its own negative-binomial tail (mean mu, variance mu + mu^2
        extra) as well, and narrow the band to it: in logs, 0 -> 10 requests at 01:45 is four scales, which
        a noisy series' calibration does not call, while 10 where 0.3 is expected is a 1e-11 event. Not for
        larger counts: there the log model's own calibrated tail is the heavier, honest one (the night of
        a rush-hour series, 200 a period, cried wolf with it)."""
        from scipy import stats  # imported on first use: keeps `import monitor.detectors` cheap

        rows = np.flatnonzero((mu * extra < 1.0) & (mu > 0.0) & (mu <= _FEW_COUNTS))
        if len(rows) == 0:
            return
        m = np.maximum(mu[rows], 1e-3)
        var = m + m * m * np.maximum(extra[rows], 1e-9)
        size, prob = m * m / (var - m), m / var
        k = np.where(np.isnan(y[rows]), np.inf, y[rows])
        tail = np.where(np.isfinite(k), stats.nbinom.sf(k - 1, size, prob), 1.0)
        p_out[rows] = np.minimum(p_out[rows], tail)
        band = self.config.band_p if self.config.band_p is not None else 1e-2
        hi_out[rows] = np.minimum(hi_out[rows], stats.nbinom.isf(band, size, prob) + 0.5)

    def _rescaled_extra(self, old_scale: float, new_scale: float) -> float:
        """The extra variance once the scale moves from `old_scale` to `new_scale` (a re-baseline, or a return
        to the previous level): in proportion to the scale's square. Below 0 (the residuals are all Poisson)
        it counts as 0: two silent weeks left it at -0.25 and the scale at 1e-177, and the ratio's square,
        1e354, overflowed."""
        if math.isnan(self.extra_var_) or not old_scale > 0.0:
            return self.extra_var_
        ratio = new_scale / old_scale
        return max(self.extra_var_, 0.0) * ratio * ratio

    def _count_sd(self, forecast: float) -> float:
        """The Poisson sd of a count with this forecast (in log units by the delta method: sqrt(mu) / (1 +
        mu), at least that of mu = 1)."""
        if self.config.log_values:
            mu = max(math.expm1(min(forecast, 700.0)), 1.0)
            return math.sqrt(mu) / (1.0 + mu)
        return math.sqrt(max(abs(forecast), 1.0))

    def _inflation(self) -> float:
        """Variance inflation of a sum of AR(1) residuals with the learnt lag-1 autocorrelation."""
        num, den, _ = self.ac_
        rho = min(max(num / den if den > 0 else 0.0, 0.0), 0.9)
        ar1 = (1.0 + rho) / (1.0 - rho)
        var, weight = self.block_var_
        if weight < 0.5 or den <= 0:
            return math.sqrt(ar1)
        return math.sqrt(max(ar1, min(var / weight / den, 25.0)))

    def _deltas(self) -> list[tuple[float, float, float]]:
        """(shift in scales, cap as a multiple of h, extra nats to alarm) of each shift CUSUM pair."""
        cfg = self.config
        out = [] if cfg.shift_delta is None else [(cfg.shift_delta, 1.5, 0.0)]
        if cfg.shift_delta is not None and cfg.shift_delta_small is not None:
            extra = max(0.0, math.log(cfg.shift_p / cfg.shift_small_p))
            out.append((cfg.shift_delta_small, cfg.shift_small_cap, extra))
        return out

    def _shift_step(self, z: float) -> float:
        """Add one point to the shift CUSUMs; the tail probability exp(-S) after it (S the largest;
        with two shift sizes the alarm level is raised by ln 2, a union bound over the two tests)."""
        cfg = self.config
        h = self._shift_h()
        zc = max(-cfg.shift_clip, min(cfg.shift_clip, self._calibrated_z(z) / self._inflation()))
        most = h / cfg.shift_steps
        sums = []
        evidence = 0.0  # the largest sum, less what its test needs beyond h
        for k, (delta, cap, extra) in enumerate(self._deltas()):
            up = min(delta * zc - delta * delta / 2.0, most)
            down = min(-delta * zc - delta * delta / 2.0, most)
            pair = [
                min(max(0.0, self.cusum_[2 * k] + up), cap * (h + extra)),
                min(max(0.0, self.cusum_[2 * k + 1] + down), cap * (h + extra)),
            ]
            sums += pair
            evidence = max(evidence, max(pair) - extra)
        self.cusum_ = sums
        if evidence < h / 2.0 and abs(z) < cfg.shift_clip:  # ordinary: learn the autocorrelation
            num, den, prev = self.ac_
            a = cfg.shift_rho_alpha
            if not math.isnan(prev):
                num += a * (z * prev - num)
                den += a * (z * z - den)
            self.ac_ = [num, den, z]
            if cfg.shift_block > 0:
                self._learn_block(z)
        else:
            self.ac_[2] = math.nan
            self.block_ = []
        return min(1.0, math.exp(-evidence) * math.exp(h + math.log(cfg.shift_p)))

    def _learn_block(self, z: float) -> None:
        """Follow the variance of sums of ``shift_block`` ordinary z in a row (over their number): where the
        misfit wanders for hours, it is several times what the lag-1 autocorrelation implies."""
        b = self.config.shift_block
        self.block_.append(z)
        if len(self.block_) > b:
            del self.block_[0]
        if len(self.block_) == b:
            a = self.config.shift_rho_alpha / 5.0
            total = sum(self.block_)
            var, weight = self.block_var_
            self.block_var_ = [var + a * (total * total / b - var), weight + a * (1.0 - weight)]

    def _shift_h(self) -> float:
        """The alarm level in nats: -ln shift_p, plus ln 2 with two shift sizes (union bound)."""
        return -math.log(self.config.shift_p) + math.log(len(self._deltas()) or 1)

    def _calibrated_z(self, z: float) -> float:
        """z, no larger than the normal quantile of its rank among the recent |z| (the point's own
        |z| already counted): a heavy-tailed series' routine 3-scale residual weighs what its
        frequency says, not what a normal tail would. 0 until the calibration has calib_min values."""
        hist = self.zsorted_
        n = len(hist)
        if n < self.config.calib_min:
            return 0.0
        az = abs(z)
        p = (n - bisect.bisect_left(hist, az)) / (n + 1.0)
        q = _NORMAL.inv_cdf(1.0 - p / 2.0) if p > 0 else math.inf
        return math.copysign(min(az, q), z)

    def _shift_band(self) -> tuple[float, float]:
        """The |z| above (below) the forecast that brings an up (down) CUSUM to its alarm level now
        (inf where no single point can)."""
        cfg = self.config
        h = self._shift_h()
        infl = self._inflation()
        best = [math.inf, math.inf]
        for k, (delta, _cap, extra) in enumerate(self._deltas()):
            for side in (0, 1):
                need = h + extra - self.cusum_[2 * k + side]
                if need > h / cfg.shift_steps + 1e-12:
                    continue
                zc = (need + delta * delta / 2.0) / delta
                if zc <= cfg.shift_clip:
                    best[side] = min(best[side], max(zc, 0.0) * infl)
        return best[0], best[1]

    def _absorb(
        self,
        yi: float,
        season: float,
        slots: tuple[int, int, float],
        day: int,
        floor: float,
        alpha: float,
        beta: float,
        g_tod: float,
        g_dow: float,
        split: bool = False,
        other: float | None = None,
        noise: float = 1.0,
    ) -> None:
        """Move level, seasonal offsets and scales by the clipped residual (points beyond shift_z
        are held back: they either stay outliers or become the new level at the re-baseline).
        `slots`: the time-of-day slot, the next one and its weight (0 without interpolation)."""
        clip_z = self.config.clip_z
        obs_day = max(1, 86400 // max(self.config.period_s, 1))
        g_dow_first = 1.0 / obs_day
        s_sd = max(self._seasonal_sd(self.level_ + season) * noise, floor)
        r = yi - (self.level_ + season)
        rc = max(-clip_z * s_sd, min(clip_z * s_sd, r))
        a_s = alpha * self.config.seasonal_level_share
        self.level_ += a_s * rc
        slot, slot2, w2 = slots
        self.dow_n_[day] += 1
        # the profile in use learns the residual; with weekend_tod the other way learns its own
        in_use = self._split_profile(day) if split else (self.tod_, self.tod_n_)
        learn = [(in_use, rc)]
        if other is not None:
            unused = (self.tod_, self.tod_n_) if split else self._split_profile(day)
            learn.append((unused, max(-clip_z * s_sd, min(clip_z * s_sd, r - other))))
        for (tod, tod_n), res in learn:
            tod_n[slot if w2 <= 0.5 else slot2] += 1
            for k, weight in ((slot, 1.0 - w2), (slot2, w2)):
                if weight > 0.0:
                    tod[k] += weight * max(g_tod, 1.0 / max(tod_n[k], 1)) * (1.0 - a_s) * res
        # the first weeks: a weekday's offset is the mean residual of the days seen so far
        if self.config.weekday_offsets:
            self.dow_[day] += max(g_dow, g_dow_first / (1 + self.dow_n_[day] // obs_day)) * (1.0 - a_s) * rc
        self.scale_ += beta * (_MEAN_ABS_TO_SD * abs(rc) / noise - self.scale_)
        if self.noise_:
            self._learn_noise(slot, slot2, w2, _MEAN_ABS_TO_SD * abs(rc) / max(s_sd / noise, 1e-300))
        if self.config.count_extra:  # the squared residual less its Poisson variance (may dip below 0)
            extra = self._extra()
            pois = self._count_sd(self.level_ - a_s * rc + season) ** 2
            self.extra_var_ = extra + beta * (rc * rc - pois - extra)
        f_sd = max(self.flat_scale_ * noise, floor)
        rf = yi - self.flat_level_
        rfc = max(-clip_z * f_sd, min(clip_z * f_sd, rf))
        self.flat_level_ += alpha * rfc
        self.flat_scale_ += beta * (_MEAN_ABS_TO_SD * abs(rfc) / noise - self.flat_scale_)

    def _learn_noise(self, slot: int, slot2: int, w2: float, ratio: float) -> None:
        """Move the noise factors of the point's slots toward its |residual| / scale (`ratio`): a slot's
        first points weigh as its mean, later ones by ``noise_weight`` per day."""
        cfg = self.config
        obs_per_slot = max((86400 // cfg.tod_slots) / max(cfg.period_s, 1), 1.0)
        g = cfg.noise_weight / obs_per_slot
        self.noise_n_[slot if w2 <= 0.5 else slot2] += 1
        for k, weight in ((slot, 1.0 - w2), (slot2, w2)):
            if weight > 0.0:
                step = weight * max(g, 1.0 / (self.noise_n_[k] + 1))
                moved = self.noise_[k] + step * (ratio - self.noise_[k])
                self.noise_[k] = min(_NOISE_MAX, max(1.0 / _NOISE_MAX, moved))

    def _split_profile(self, day: int) -> tuple[list[float], list[int]]:
        """The weekday or weekend time-of-day profile of `day` (UTC Saturday and Sunday are the weekend)."""
        return (self.tod_we_, self.tod_we_n_) if day >= 5 else (self.tod_wd_, self.tod_wd_n_)

    def _compare_split(self, r_split: float, r_shared: float, floor: float) -> None:
        """Follow how far the forecast misses with the weekday/weekend profiles and with the shared one
        (residuals clipped to ``clip_z`` scales, over about two weeks): the split is used while it misses
        less. A weekend without the weekdays' commute peaks pulls the shared profile's morning down every
        weekend, and Monday's rush rises out of its band; a series whose days are all alike learns the
        same shape twice, from fewer days each, and keeps the shared one."""
        clip = self.config.clip_z * max(self.scale_, floor)
        w = min(1.0, self.config.period_s / (14.0 * 86400.0))
        for k, r in enumerate((r_split, r_shared)):
            self.split_err_[k] += w * (min(abs(r), clip) - self.split_err_[k])

    def _accumulate_week(self, ti: int, rest: float, floor: float) -> None:
        """Add what level, time of day and weekday leave over at `ti` to its hour of the week; when an
        hour is over, its mean (each point clipped to 10 scales) joins that hour's last weeks. A weekend
        evening of another shape than the weekdays' is an outlier to the other terms every week, and
        only this one learns it: the week after it is first seen, then as far as two weeks agree, then
        as the median of three, which one week's incident never moves."""
        limit = 10.0 * max(self.scale_, floor)
        hour = int((((ti // 86400 + 3) % 7) * 86400 + ti % 86400) // 3600)
        slot, total, count = self.tow_acc_
        if hour != slot:
            if slot >= 0 and count > 0:
                k = int(slot)
                self.tow_hist_[k] = [total / count, *self.tow_hist_[k][: _WEEKS - 1]]
                # the hour before it is no longer read until next week (the forecast interpolates between
                # the hours around it): it takes this week's mean now, never within the same week
                before = (k - 1) % _WEEK_HOURS
                self.tow_[before] = _week_term(self.tow_hist_[before])
            slot, total, count = float(hour), 0.0, 0.0
        self.tow_acc_ = [slot, total + max(-limit, min(limit, rest)), count + 1.0]

    def _compare_week(self, day: int, rest: float, week_shape: float, floor: float) -> None:
        """Follow, per weekday, how well the forecast does with the hour-of-week term and without it
        (residuals clipped to ``clip_z`` scales, averaged over about that weekday's last two days, so
        that each weekday weighs the same in `_uses_week`)."""
        clip = self.config.clip_z * max(self.scale_, floor)
        w = min(1.0, self.config.period_s / (2.0 * 86400.0))
        errors = self.tow_err_[day]
        for k, r in enumerate((rest - week_shape, rest)):
            errors[k] += w * (min(abs(r), clip) - errors[k])

    def _uses_week(self) -> bool:
        """The hour-of-week term is used while it explains the series better than time of day and
        weekday alone (as the seasonal model itself against the flat one), over each weekday's last two
        weeks: where those two fit already (every weekday alike), last weeks' hourly leftovers are only
        noise and would widen nothing but the misses."""
        return sum(e[0] for e in self.tow_err_) < sum(e[1] for e in self.tow_err_)

    def _week_shape(self, ti: int) -> float:
        """The hour-of-week term at `ti`, read linearly between the centres of the hours around it."""
        x = (((ti // 86400 + 3) % 7) * 86400 + ti % 86400) / 3600.0 - 0.5
        near = math.floor(x)
        w = x - near
        return (1.0 - w) * self.tow_[near % _WEEK_HOURS] + w * self.tow_[(near + 1) % _WEEK_HOURS]

    def band_z(self) -> float:
        """The |z| of the band's edge: the calibration's inverse at ``band_p`` (see `_calibrated_p`).

        Every |z| <= band_z has a tail probability >= band_p; every |z| beyond it one <= band_p.
        """
        cfg = self.config
        hist = self.zsorted_
        n = len(hist)
        if n < cfg.calib_min or cfg.band_p is None:
            return max(cfg.band_z, cfg.calib_z_floor)
        allowed = cfg.band_p * (n + 1.0) - 1.0  # values at least as large that still give p <= band_p
        if allowed >= 0.0:
            k = math.floor(allowed + 1e-12)
            z = hist[n - 1 - k] if k < n else 0.0
        else:
            top = max(hist[-1], cfg.calib_z_floor)
            z = top * (1.0 / (cfg.band_p * (n + 1.0))) ** (1.0 / cfg.tail_power)
        return max(z, cfg.calib_z_floor)

    def _calibrated_p(self, az: float) -> float:
        """Conformal upper-tail probability of |z| against the recent |z| history."""
        cfg = self.config
        hist = self.zsorted_
        n = len(hist)
        p = 1.0
        if n >= cfg.calib_min and az > cfg.calib_z_floor:
            at_least = n - bisect.bisect_left(hist, az)
            top = max(hist[-1], cfg.calib_z_floor)
            if at_least > 0:
                p = (at_least + 1.0) / (n + 1.0)
            elif az > 0.0:
                p = min(1.0, (top / az) ** cfg.tail_power if top > 0 else 0.0) / (n + 1.0)
        return p

    def _calibrate(self, az: float, *, held: bool) -> None:
        """Add |z| to the calibration history. The |z| of the first ``calib_hold`` points of an
        excursion beyond ``shift_z`` wait (`held`) until a point inside it ends the excursion: the
        second point of an incident is judged against the series' history, not against the first
        point's own outlier, so two in a row confirm it. Later points go in (with the held ones), so
        a long, mild excursion is soon judged against itself, as before. An excursion that becomes
        the new level (re-baseline) drops what it held and takes back what it put in
        (`_uncalibrate`): a shift is not noise."""
        if held and len(self.held_) < self.config.calib_hold:
            self.held_.append(az)
            return
        for v in (*self.held_, az):
            self._insert(v)
        self.held_ = []

    def _insert(self, az: float) -> None:
        hist = self.zsorted_
        bisect.insort(hist, az)
        self.zhist_.append(az)
        if len(self.zhist_) > self.config.calib_points:
            old = self.zhist_.popleft()
            del hist[bisect.bisect_left(hist, old)]

    def _uncalibrate(self, count: int) -> None:
        """Take the newest `count` |z| back out of the calibration: those of an excursion that turned out
        to be a shift. A queue that backs up for hours puts |z| of thousands in it; left in, they would
        widen the band of the next day's backlog out of reach (the tail beyond the top falls as
        (top / z)^tail_power)."""
        hist = self.zsorted_
        for _ in range(max(0, min(count, len(self.zhist_)))):
            old = self.zhist_.pop()
            del hist[bisect.bisect_left(hist, old)]

    def _finish_warmup(self) -> None:
        values = np.asarray(self.warm_)
        med = float(np.median(values))
        mad = float(np.median(np.abs(values - med))) * _MAD_TO_SD
        if mad <= 0.0:
            mad = float(np.mean(np.abs(values - med))) * _MEAN_ABS_TO_SD
        self.magnitude_ = float(np.mean(np.abs(values)))
        scale = max(mad, 1e-12, self.config.rel_floor * self.magnitude_)
        self.level_ = self.flat_level_ = med
        self.scale_ = self.flat_scale_ = scale
        self.extra_var_ = scale * scale
        self.warm_ = []

    def _rebaseline(self) -> None:
        self._uncalibrate(len(self.run_) - len(self.held_))
        self.prev_ = [self.level_, self.flat_level_, self.scale_, self.flat_scale_]
        run = np.asarray(self.run_)
        flat = np.asarray(self.flat_run_)
        self.level_ = float(np.median(run))
        self.flat_level_ = float(np.median(flat))
        spread = _step_sd if self.config.shift_scale_steps else _spread_sd
        before = self.scale_
        self.scale_ = max(self.scale_, spread(run, self.level_))
        self.extra_var_ = self._rescaled_extra(before, self.scale_)
        self.flat_scale_ = max(self.flat_scale_, spread(flat, self.flat_level_))
        self.run_sign_ = 0
        self.run_ = []
        self.flat_run_ = []
        self.shifts_ += 1
        self.held_ = []  # an excursion that became the new level was a shift, not noise to calibrate on

    def _center_season(self) -> None:
        """Keep the seasonal offsets zero-mean (their mean belongs to the level)."""
        m = sum(self.tod_) / len(self.tod_)
        self.tod_[:] = [v - m for v in self.tod_]
        for prof in (self.tod_wd_, self.tod_we_):  # the same shift keeps every forecast as it was
            prof[:] = [v - m for v in prof]
        d = sum(self.dow_) / 7.0
        self.dow_[:] = [v - d for v in self.dow_]
        self.level_ += m + d
        if self.noise_:  # the noise factors keep a mean of 1 (their mean belongs to the scales)
            c = sum(self.noise_) / len(self.noise_)
            self.noise_[:] = [v / c for v in self.noise_]
            self.scale_ *= c
            self.flat_scale_ *= c
