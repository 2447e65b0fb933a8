"""One monitor run: fetch -> (re)train when due -> score -> alert policy -> incidents -> outbox -> SNS.

`MonitorService.run(now)` is the one logic function the Lambda handler calls. It is deterministic in
`now` (the scheduled time of the invocation), its collaborators are injected, and everything it
keeps between runs lives in the monitor table:

1. take the run lease (a conditional write; reserved concurrency 1 is the first guard);
2. load the model state (fitted detectors, alert states, open incidents, last scored period);
   an unreadable state or one of another version is logged and rebuilt by retraining, keeping the
   incidents saved open (so they still resolve; older ones of a group resolve as superseded);
3. retrain series that have no model or whose model is older than the retrain interval, oldest
   first, in batches, within a time budget (the rest wait for the next run), on up to 14 days of
   history fetched for them only;
4. fetch only the periods since the last scored one (+ a small overlap) for every raw metric, compute
   the derived rates in Python, score each new point and step its alert state;
5. turn the decisions into incident transitions and commit them to the outbox (dedup key
   `incident_id#seq`) with the incidents they change and the new state, in one transaction
   (conditional on the state's generation), then publish what the committed state refers to and
   is still unsent (pending -> publishing -> sent). A run that dies before the commit leaves no
   transition behind; its retry recomputes them from the same state. Before publishing, the run reads
   the delivery receipts (`monitor.receipts`): an item SNS already delivered (a run died between the
   publish and its `sent` mark) is marked sent instead of being sent twice.

Detector states are checkpointed, not saved every run: between checkpoints (after training, or
every `MONITOR_CHECKPOINT_PERIODS` periods) a run stores only the points each detector absorbed,
and the next run replays them onto the checkpoint (see `monitor.state`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from monitor.budget import COMMIT_S, FETCH_S, PUBLISH_S, RECEIPTS_S, RunBudget
from monitor.catalog import Catalog, DerivedSpec, MetricSpec
from monitor.deployments import Deployment, DeploymentLog, deployments_of
from monitor.detectors import (
    Detector,
    DetectorInputError,
    DetectorStateError,
    build_detector,
    detector_from_state,
)
from monitor.incidents import Incident, IncidentTracker, PointSignal, Transition, supersede
from monitor.notifier import Notifier, NotifierError, deployment_refs, render
from monitor.policy import AlertRule, AlertRuleError, SeriesAlertState, default_rule
from monitor.receipts import BATCH as RECEIPT_BATCH
from monitor.receipts import DeliveryReceipts, ReceiptsError
from monitor.settings import MonitorSettings
from monitor.source import FetchStats, MetricSource, Series, derive
from monitor.state import (
    STATE_VERSION,
    ModelState,
    Replay,
    SeriesState,
    StateDecodeError,
    decode_state,
    encode_models,
    encode_state,
)
from monitor.store import IncidentStore, OutboxItem, StoreError

logger = logging.getLogger(__name__)

RECEIPT_BATCHES = 10  # receipt batches a run reads at most (each one only while the budget allows it)

DetectorFactory = Callable[[str, int], Detector]


def _default_factory(profile: str, period_s: int) -> Detector:
    return build_detector(profile, period_s=period_s)


@dataclass
class RunResult:
    status: str  # "ok" | "skipped" (another run holds the lease)
    now: int
    scored_until: int | None = None
    series_scored: int = 0
    points_scored: int = 0
    series_trained: int = 0
    series_untrained: int = 0
    transitions: list[dict[str, Any]] = field(default_factory=list)
    published: int = 0
    publish_failures: int = 0
    receipts_matched: int = 0  # unsent items SNS had delivered (by the receipts queue): marked sent
    oldest_unsent_s: int = 0  # age of the oldest committed notification still unsent after the run
    open_incidents: int = 0
    fetch: FetchStats = field(default_factory=FetchStats)
    state_bytes: int = 0
    checkpoint: bool = False  # detector states rewritten this run
    deferred: list[str] = field(default_factory=list)  # work left to the next run for lack of time
    errors: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "now": self.now,
            "scored_until": self.scored_until,
            "series_scored": self.series_scored,
            "points_scored": self.points_scored,
            "series_trained": self.series_trained,
            "series_untrained": self.series_untrained,
            "transitions": self.transitions,
            "published": self.published,
            "publish_failures": self.publish_failures,
            "receipts_matched": self.receipts_matched,
            "oldest_unsent_s": self.oldest_unsent_s,
            "open_incidents": self.open_incidents,
            "get_metric_data_calls": self.fetch.calls,
            "metrics_requested": self.fetch.metrics_requested,
            "state_bytes": self.state_bytes,
            "checkpoint": self.checkpoint,
            "deferred": self.deferred,
            "errors": self.errors,
            "duration_ms": round(self.duration_ms, 1),
        }


def catalog_fingerprint(catalog: Catalog) -> str:
    return hashlib.sha256(catalog.model_dump_json().encode()).hexdigest()[:16]


def rule_for(spec: MetricSpec | DerivedSpec) -> AlertRule:
    """The profile's default rule, with the catalog's direction and volume gate for this series."""
    rule = default_rule(spec.profile)
    return replace(
        rule,
        direction=spec.direction,
        min_volume=spec.min_volume if spec.min_volume is not None else rule.min_volume,
    )


class MonitorService:
    def __init__(
        self,
        *,
        settings: MonitorSettings,
        catalog: Catalog,
        source: MetricSource,
        store: IncidentStore,
        notifier: Notifier,
        owner: str,
        detector_factory: DetectorFactory = _default_factory,
        train_budget_s: float = 60.0,
        train_batch: int = 200,
        clock: Callable[[], float] = time.monotonic,
        budget: RunBudget | None = None,
        deployments: DeploymentLog | None = None,
        receipts: DeliveryReceipts | None = None,
    ) -> None:
        self.settings = settings
        self.receipts = receipts
        self.deployments = deployments
        self.catalog = catalog
        self.source = source
        self.store = store
        self.notifier = notifier
        self.owner = owner
        self.detector_factory = detector_factory
        self.train_budget_s = train_budget_s
        self.train_batch = train_batch
        self._clock = clock
        self.budget = budget or RunBudget()
        self.period = catalog.period_s
        self._models_dirty = False
        self._superseded: list[Transition] = []  # RESOLVED of older incidents a rebuild found open
        self._configs: dict[str, Any] = {}  # per profile: the detector configuration it builds now

    # -- the run -----------------------------------------------------------------------------------

    def run(self, now: int) -> RunResult:
        started = self._clock()
        result = RunResult(status="ok", now=now)
        if not self.store.acquire_lease(self.owner, now=now, lease_s=self.settings.lease_s):
            result.status = "skipped"
            logger.warning("another monitor run holds the lease; skipping")
            return result
        try:
            self._run(now, result)
        finally:
            self.store.release_lease(self.owner)
            result.duration_ms = (self._clock() - started) * 1000
        return result

    def _run(self, now: int, result: RunResult) -> None:
        self._superseded = []
        state, generation, models_ref = self._load_state(result)
        self._models_dirty = models_ref is None
        end = (now - self.settings.settle_s) // self.period * self.period  # exclusive
        if state.last_scored is None:
            state.last_scored = end - self.period  # first run: train on history, score from now on
        if state.last_scored >= end - self.period:
            result.scored_until = state.last_scored
        self._train_due(state, now, result)
        transitions = [*self._superseded, *self._score(state, end, result)]
        outbox: list[OutboxItem] = []
        incidents: dict[str, dict[str, Any]] = {}
        for t in transitions:
            deployments = self._deployments_before(t)
            outbox.append(self._outbox_item(t, now, deployments))
            incidents[t.incident.id] = self._incident_record(t, deployments)
        unsent = {i.dedup_key for i in self.store.unsent()}
        kept = unsent if state.outbox is None else [k for k in state.outbox if k in unsent]
        state.outbox = sorted({*kept, *(i.dedup_key for i in outbox)})
        blob = encode_state(state)
        models = encode_models(state) if result.checkpoint else None
        result.state_bytes = len(blob) + (len(models) if models else 0)
        self.store.save_state(
            blob,
            expected_generation=generation,
            now=now,
            models=models,
            models_ref=models_ref,
            outbox=outbox,
            incidents=list(incidents.values()),
        )
        result.open_incidents = len(state.incidents.open)
        self._publish_unsent(now, set(state.outbox), result)

    # -- state -------------------------------------------------------------------------------------

    def _fresh_state(self) -> ModelState:
        return ModelState(catalog_fingerprint=catalog_fingerprint(self.catalog), period_s=self.period)

    def _rebuilt_state(self) -> ModelState:
        """A fresh state that still holds the incidents saved open: they resolve as usual instead of
        being forgotten (their OPEN was sent; a RESOLVED must follow). A group holds one open incident,
        so when several of a group were saved open the newest carries on and each older one gets its
        RESOLVED in this run's commit (`self._superseded`), naming the newest."""
        state = self._fresh_state()
        by_group: dict[str, list[Incident]] = {}
        for raw in self.store.open_incidents():
            try:
                incident = Incident.model_validate(raw)
            except ValidationError as err:
                logger.error("open incident %s unreadable, not restored: %s", raw.get("id"), err)
                continue
            by_group.setdefault(incident.resource, []).append(incident)
        for group, incidents in by_group.items():
            *older, newest = sorted(incidents, key=lambda i: (i.opened_at, i.id))
            state.incidents.open[group] = newest
            for incident in older:
                logger.warning("incident %s superseded by %s in group %s", incident.id, newest.id, group)
                self._superseded.append(supersede(incident, newest))
        return state

    def _load_state(self, result: RunResult) -> tuple[ModelState, int, str | None]:
        """(state, generation it was loaded from, ref of its detector checkpoint or None)."""
        try:
            loaded = self.store.load_state()
        except StoreError as err:
            result.errors.append(f"model state unreadable, retraining: {err}")
            logger.error("model state unreadable, retraining: %s", err)
            return self._rebuilt_state(), self.store.current_generation(), None
        if loaded is None:
            return self._fresh_state(), 0, None
        try:
            state = decode_state(loaded.blob, loaded.models)
        except StateDecodeError as err:
            result.errors.append(f"model state rejected, retraining: {err}")
            logger.error("model state rejected, retraining: %s", err)
            return self._rebuilt_state(), loaded.generation, None
        if state.period_s != self.period:
            logger.warning("period changed from %ss to %ss: retraining", state.period_s, self.period)
            fresh = self._fresh_state()
            fresh.incidents, fresh.outbox = state.incidents, state.outbox
            return fresh, loaded.generation, None
        fingerprint = catalog_fingerprint(self.catalog)
        if state.catalog_fingerprint != fingerprint:
            # Keep what still matches (same id and profile); new series get trained, gone ones dropped.
            profiles = {x.id: x.profile for x in self.catalog.series}
            kept = {sid: s for sid, s in state.series.items() if profiles.get(sid) == s.profile}
            state = state.model_copy(update={"series": kept, "catalog_fingerprint": fingerprint})
        return state, loaded.generation, loaded.models_ref

    # -- training ----------------------------------------------------------------------------------

    def _train_due(self, state: ModelState, now: int, result: RunResult) -> None:
        due: list[tuple[int, str]] = []
        for spec in self.catalog.series:
            s = state.series.get(spec.id)
            if s is None or s.detector is None or s.trained_at is None:
                due.append((-1, spec.id))
            elif now - s.trained_at >= self.settings.retrain_interval_s:
                due.append((s.trained_at, spec.id))
            elif s.detector.get("version") is None or not self._current_config(spec.profile, s.detector):
                # a model of another configuration (an upgrade changed the profile): it is not what the
                # rule of today was chosen for, so it is retrained now rather than at its next cadence
                due.append((-1, spec.id))
        due.sort()
        assert state.last_scored is not None
        # Fit on periods already scored (or before now), except the last few: those are rescored
        # with whatever arrived late (see `_score`).
        train_end = self._settled_frontier(state.last_scored) + self.period
        history_start = (train_end - int(self.settings.history_days * 86400)) // self.period * self.period
        deadline = self._clock() + self.train_budget_s
        metrics = {m.id: m for m in self.catalog.metrics}
        todo = [sid for _, sid in due]
        first = True
        while todo:
            # At least one batch per run (progress), unless the invocation could not finish it and
            # commit (scoring then waits for the next run, which finds the models trained).
            if (not first and self._clock() > deadline) or not self.budget.allows(FETCH_S + COMMIT_S):
                result.series_untrained = len(todo)
                result.deferred.append("training")
                logger.warning("training budget spent; %d series wait for the next run", len(todo))
                break
            first = False
            batch, todo = todo[: self.train_batch], todo[self.train_batch :]
            raw_ids = self._raw_inputs(batch)
            fetched = self.source.fetch(
                [metrics[i] for i in raw_ids],
                start=history_start,
                end=train_end,
                period_s=self.period,
            )
            result.fetch.add(fetched.stats)
            series = fetched.series | derive(self.catalog, fetched.series)
            for sid in batch:
                self._fit_one(state, sid, series.get(sid), now, result, settled=train_end - self.period)

    def _current_config(self, profile: str, detector: dict[str, Any]) -> bool:
        """Whether a stored model has the configuration the profile's detector is built with now (both as
        JSON, as the state stores them)."""
        if profile not in self._configs:
            built = self.detector_factory(profile, self.period).to_state().get("config")
            self._configs[profile] = json.loads(json.dumps(built))
        return bool(detector.get("config") == self._configs[profile])

    def _settled_frontier(self, last_scored: int) -> int:
        """The newest period no longer rescored: `MONITOR_OVERLAP_PERIODS` before the newest scored."""
        return last_scored - self.settings.overlap_periods * self.period

    def _fit_one(
        self, state: ModelState, sid: str, data: Series | None, now: int, result: RunResult, *, settled: int
    ) -> None:
        spec = self.catalog.get(sid)
        previous = state.series.get(sid)
        try:
            detector = self.detector_factory(spec.profile, self.period)
            if data is not None and len(data.t):
                detector.fit(data.t, data.y, data.volume)
            present = 0 if data is None else int(np.count_nonzero(~np.isnan(data.y)))
            state.series[sid] = SeriesState(
                profile=spec.profile,
                detector=detector.to_state(),
                alert=previous.alert if previous else None,
                trained_points=present,
                trained_at=now,
                settled=settled,
                opened_sent=previous.opened_sent if previous else [],
            )
            result.series_trained += 1
            self._models_dirty = True
        except (DetectorInputError, DetectorStateError, ValueError) as err:
            result.errors.append(f"{sid}: training failed: {err}")
            logger.error("training %s failed: %s", sid, err)

    def _raw_inputs(self, ids: list[str]) -> list[str]:
        out: dict[str, None] = {}
        for sid in ids:
            spec = self.catalog.get(sid)
            if isinstance(spec, DerivedSpec):
                for i in (*spec.numerator, *spec.denominator):
                    out[i] = None
            else:
                out[sid] = None
        return list(out)

    # -- scoring -----------------------------------------------------------------------------------

    def _score(self, state: ModelState, end: int, result: RunResult) -> list[Transition]:
        assert state.last_scored is not None
        last = state.last_scored
        tracker = IncidentTracker(state.incidents, cooldown_s=self.settings.hold_down_s)
        if last + self.period < end and not self.budget.allows(FETCH_S + COMMIT_S):
            result.deferred.append("scoring")
            logger.warning("too little time left to fetch and score; the next run scores these periods")
            end = last + self.period
        if last + self.period >= end:  # nothing new to score (e.g. a retried invocation)
            result.checkpoint = self._models_dirty
            transitions = tracker.process([], until=last)
            state.incidents = tracker.state
            return transitions
        start = max(
            last + self.period - self.settings.overlap_periods * self.period,
            end - int(self.settings.history_days * 86400) // self.period * self.period,
        )
        fetched = self.source.fetch(list(self.catalog.metrics), start=start, end=end, period_s=self.period)
        result.fetch.add(fetched.stats)
        failed = set(fetched.stats.failed_series)
        series = fetched.series | derive(self.catalog, fetched.series)
        until = self._scorable_until(last, end, fetched.stats.latest_t)
        backlog = max((len(x.replay.t) for x in state.series.values() if x.replay), default=0)
        new_periods = (until - last) // self.period
        result.checkpoint = self._models_dirty or backlog + new_periods >= self.settings.checkpoint_periods
        signals: list[PointSignal] = []
        settle_at = self._settled_frontier(until)
        for spec in self.catalog.series:
            s_state = state.series.get(spec.id)
            data = series.get(spec.id)
            if s_state is None or s_state.detector is None or data is None or spec.id in failed:
                continue
            settled = last if s_state.settled is None else s_state.settled
            window = data.between(settled, until)
            if not len(window.t):
                continue
            try:
                signals += self._score_one(
                    spec,
                    s_state,
                    window,
                    last=last,
                    settle_at=max(settled, settle_at),
                    checkpoint=result.checkpoint,
                )
            except (DetectorInputError, DetectorStateError, AlertRuleError, ValueError) as err:
                result.errors.append(f"{spec.id}: scoring failed, retrained next run: {err}")
                logger.error("scoring %s failed, retrained next run: %s", spec.id, err)
                s_state.trained_at = None
                s_state.replay = None
                continue
            result.series_scored += 1
            result.points_scored += int(np.count_nonzero(window.t > last))
        transitions = tracker.process(signals, until=until)
        state.incidents = tracker.state
        state.last_scored = until
        result.scored_until = until
        result.transitions = [
            {"incident_id": t.incident_id, "seq": t.seq, "kind": t.kind, "at": t.at} for t in transitions
        ]
        return transitions

    def _scorable_until(self, last: int, end: int, latest_t: int | None) -> int:
        """The newest period to score now.

        Trailing periods in which no metric at all has a datapoint are most likely not ingested yet
        (CloudWatch delivers late), not zeros: they are held back, for at most
        `MONITOR_OVERLAP_PERIODS` periods, so a late error count is scored when it arrives instead of
        being zero-filled and lost. Past that the data is declared missing and scoring moves on.
        """
        until = end - self.period
        hold_limit = self.settings.overlap_periods * self.period
        data_until = latest_t if latest_t is not None else last
        if data_until < until and until - max(data_until, last) <= hold_limit:
            logger.info(
                "holding back %ds of periods without any datapoint yet", until - max(data_until, last)
            )
            return max(last, data_until)
        return until

    def _score_one(
        self,
        spec: MetricSpec | DerivedSpec,
        s_state: SeriesState,
        window: Series,
        *,
        last: int,
        settle_at: int,
        checkpoint: bool,
    ) -> list[PointSignal]:
        """Score `window`: the periods after the series' settled frontier up to the newest.

        Periods up to `last` were scored by an earlier run, perhaps before all their data had
        arrived (an error count CloudWatch delivered late was a 0 then): they are rescored from the
        state at the frontier, and of their decisions only an OPEN the incident layer was not told
        yet is passed on, so late evidence raises its alert and nothing is sent twice. Newer periods
        are passed on whole. The state is kept at `settle_at`; the periods after it are rescored
        next run.
        """
        assert s_state.detector is not None
        detector = detector_from_state(s_state.detector)
        if s_state.replay is not None and s_state.replay.t:
            detector.update(*s_state.replay.arrays())  # back to the frontier
        rule = rule_for(spec)
        alert = SeriesAlertState(rule)
        if s_state.alert is not None:
            try:
                restored = SeriesAlertState.from_state(s_state.alert)
                if restored.rule == rule:
                    alert = restored
            except (AlertRuleError, KeyError, TypeError, ValueError) as err:
                logger.warning("alert state of %s reset: %s", spec.id, err)
        opened_sent = set(s_state.opened_sent)
        out: list[PointSignal] = []
        settling = window.between(int(window.t[0]) - 1, settle_at)  # the periods up to `settle_at`
        for part in (settling, window.after(settle_at)):
            if len(part.t):
                out += self._step(spec, detector, alert, part, last=last, opened_sent=opened_sent)
            if part is settling:  # the state at the frontier is what the next run starts from
                if checkpoint:  # a copy: the state may share arrays the next part goes on to change
                    s_state.detector = copy.deepcopy(detector.to_state())
                    s_state.replay = None
                elif len(part.t):
                    replay = s_state.replay or Replay()
                    replay.extend(part.t, part.y, part.volume)
                    s_state.replay = replay
                s_state.alert = alert.to_state()
        s_state.settled = settle_at
        s_state.opened_sent = sorted(t for t in opened_sent if t > settle_at)
        return out

    @staticmethod
    def _step(
        spec: MetricSpec | DerivedSpec,
        detector: Detector,
        alert: SeriesAlertState,
        part: Series,
        *,
        last: int,
        opened_sent: set[int],
    ) -> list[PointSignal]:
        scored = detector.process(part.t, part.y, part.volume)
        out: list[PointSignal] = []
        for i, t in enumerate(part.t.tolist()):
            value = float(part.y[i])
            volume = None if part.volume is None else float(part.volume[i])
            score, lower, upper = float(scored.score[i]), float(scored.lower[i]), float(scored.upper[i])
            decision = alert.step(score=score, value=value, lower=lower, upper=upper, volume=volume)
            if math.isnan(value) and not decision.firing:
                continue  # a gap: nothing to tell the incident layer
            rescored = t <= last
            if rescored and not (decision.opened and t not in opened_sent):
                continue  # told already (or nothing new to tell)
            if decision.opened:
                opened_sent.add(int(t))
            out.append(
                PointSignal(
                    series_id=spec.id,
                    resource=spec.resource,
                    group=spec.group,
                    severity=spec.severity,
                    t=int(t),
                    value=value,
                    lower=lower,
                    upper=upper,
                    score=score,
                    firing=decision.firing,
                    opened=decision.opened,
                    resolved=decision.resolved,
                )
            )
        return out

    # -- notifications -----------------------------------------------------------------------------

    def _outbox_item(
        self, transition: Transition, now: int, deployments: Sequence[Deployment] = ()
    ) -> OutboxItem:
        message = render(
            transition,
            self.catalog,
            region=self.settings.region,
            stage=self.settings.stage,
            dashboard_url=self.settings.dashboard_url,
            deployments=deployments,
            runbook_base_url=self.settings.runbook_base_url,
        )
        return OutboxItem(
            dedup_key=transition.dedup_key,
            incident_id=transition.incident_id,
            seq=transition.seq,
            kind=transition.kind,
            created_at=now,
            message=message.publish_input(topic_arn=""),
        )

    @staticmethod
    def _incident_record(transition: Transition, deployments: Sequence[Deployment]) -> dict[str, Any]:
        """The stored incident: its model plus the deployments it names (when there are any)."""
        incident = transition.incident.model_dump(mode="json")
        if deployments:
            refs = deployment_refs(deployments, transition.incident.opened_at)
            incident["deployments"] = [ref.model_dump(mode="json") for ref in refs]
        return incident

    def _deployments_before(self, transition: Transition) -> list[Deployment]:
        """Deployments of the incident's functions in the 30 minutes before it opened (none on error)."""
        if self.deployments is None:
            return []
        try:
            return deployments_of(transition.incident, self.deployments)
        except Exception:  # an alert without the deployments beats no alert
            logger.exception("could not read the deployments for incident %s", transition.incident_id)
            return []

    def _publish_unsent(self, now: int, committed: set[str], result: RunResult) -> None:
        """Publish the unsent items the committed state refers to (others were written by a run
        that died before its commit: never sent), oldest first, each incident's in order."""
        held: set[str] = set()  # incidents whose earlier transition failed: keep their order
        for item in self._not_delivered(self.store.unsent(), now, result):
            if item.dedup_key not in committed:
                continue
            if not held and not self.budget.allows(PUBLISH_S) and "publishing" not in result.deferred:
                result.deferred.append("publishing")
                logger.warning("too little time left to publish; the next run sends the rest")
            if "publishing" in result.deferred:
                self._still_unsent(item, now, result)
                continue
            if item.incident_id in held or not self.store.claim(item, now=now, stale_s=self.settings.lease_s):
                held.add(item.incident_id)
                self._still_unsent(item, now, result)
                continue
            try:
                message_id = self.notifier.publish(item.message)
            except NotifierError as err:
                held.add(item.incident_id)
                self.store.release_claim(item)
                self._still_unsent(item, now, result)
                result.publish_failures += 1
                result.errors.append(f"{item.dedup_key}: {err}")
                logger.error("publishing %s failed (retried next run): %s", item.dedup_key, err)
                continue
            self.store.mark_sent(item, now=now, message_id=message_id)
            result.published += 1

    def _not_delivered(self, unsent: list[OutboxItem], now: int, result: RunResult) -> list[OutboxItem]:
        """The unsent items SNS has no receipt for; those it has are marked sent, not published again
        (a run died between the publish and its mark, or lost SNS's answer). Receipts are read a batch
        at a time while the budget allows, and each batch is deleted only after its items are marked.
        Unreadable receipts leave the items to publish (a duplicate rather than a lost alert) and count
        as a run error."""
        if self.receipts is None:
            return unsent
        waiting = {i.dedup_key: i for i in unsent}
        for _ in range(RECEIPT_BATCHES):
            if not self.budget.allows(RECEIPTS_S):
                break
            try:
                batch = self.receipts.receive()
            except ReceiptsError as err:
                result.errors.append(f"delivery receipts: {err}")
                logger.error("could not read the delivery receipts (alerts may be sent twice): %s", err)
                break
            for receipt in batch:
                item = waiting.pop(receipt.dedup_key, None) if receipt.dedup_key else None
                if item is not None:
                    self.store.mark_sent(item, now=now, message_id=receipt.message_id)
                    result.receipts_matched += 1
                    logger.warning("%s was delivered by an earlier run: marked sent", item.dedup_key)
                elif receipt.dedup_key is None:
                    logger.warning(
                        "receipts queue: dropped a message that is not an alert (%s)", receipt.message_id
                    )
            try:
                self.receipts.delete(batch)
            except ReceiptsError as err:  # read again next run: harmless
                logger.warning("could not delete delivery receipts: %s", err)
            if len(batch) < RECEIPT_BATCH:
                break
        return [i for i in unsent if i.dedup_key in waiting]

    @staticmethod
    def _still_unsent(item: OutboxItem, now: int, result: RunResult) -> None:
        result.oldest_unsent_s = max(result.oldest_unsent_s, now - item.created_at)


__all__ = ["STATE_VERSION", "MonitorService", "RunResult", "catalog_fingerprint", "rule_for"]
