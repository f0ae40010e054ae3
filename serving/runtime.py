"""The service's state: loaded versions per model, rollout phases, policies, API keys, feature context, log.

Everything the request path reads is one immutable :class:`Arms` per model, swapped whole by a background
thread that re-reads the platform database every ``serving_refresh_s``: a promotion, rollback, phase change or
key revocation is in effect within that interval plus the model load time, without a restart, and a request
in flight keeps the snapshot it started with (no request is lost across a switch). New versions are loaded
before the swap, so the switch itself is instantaneous.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy.exc import OperationalError

from governance import rollout
from governance.api_keys import active_keys
from governance.phase_policy import Phase, PhasePolicy, load_policies
from governance.recommendations import pending_count
from governance.registry import Registry, model_name
from governance.signals import would_disagree
from mesops import database
from mesops.settings import Settings
from serving import metrics
from serving.advice import Advice
from serving.auth import KeyRing
from serving.context import FeatureContext, context_signature
from serving.prediction_log import LoggedPrediction, LoggedRecommendation, PredictionLogWriter, ShadowCall
from serving.routing import CHALLENGER, CHAMPION, recommendation_status, route

log = logging.getLogger("mesops.serving")
TASKS = ("failure", "yield", "consumption")


class NotReadyError(RuntimeError):
    """A model has no champion loaded (yet): the service answers 503 for it."""


@dataclass(frozen=True)
class Arms:
    """Who answers for one model: the loaded champion and challenger, the phase and the policy."""

    model_name: str
    champion_version: str
    champion: Any
    challenger_version: str | None = None
    challenger: Any = None
    phase: Phase | None = None
    policy: PhasePolicy | None = None

    @property
    def phase_name(self) -> str:
        return "none" if self.phase is None else self.phase.value

    def forecaster(self, arm: str) -> Any:
        return self.champion if arm == CHAMPION else self.challenger

    def version(self, arm: str) -> str:
        return self.champion_version if arm == CHAMPION else str(self.challenger_version)


@dataclass(frozen=True)
class Scored:
    """One answered request, ready to be returned and logged."""

    request_id: str
    arms: Arms
    answered_by: str
    output: dict[str, Any]
    recommendation_id: str
    status: str
    advice: Advice


@dataclass
class ServingRuntime:
    """Loads and refreshes everything the service answers from; owns the prediction log writer."""

    settings: Settings
    registry: Registry = field(init=False)
    keyring: KeyRing = field(default_factory=KeyRing)
    writer: PredictionLogWriter = field(init=False)
    context: FeatureContext | None = None
    _arms: dict[str, Arms] = field(default_factory=dict)
    _loaded: dict[tuple[str, str], Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _refresh_lock: threading.Lock = field(default_factory=threading.Lock)
    _published: set[tuple[str, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.db_url = self.settings.resolved_database_url
        self.registry = Registry.from_settings(self.settings)
        self.policies = load_policies(self.settings.resolved_policies_dir)
        self.writer = PredictionLogWriter.from_settings(self.settings, on_written=self._on_written)

    # --- life cycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Migrate the schema, start the log writer, load everything once, then refresh in the background."""
        database.upgrade(self.db_url)
        self.writer.start()
        self.refresh()
        self._thread = threading.Thread(target=self._refresh_loop, name="mesops-refresh", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop refreshing and write every logged prediction still waiting."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.writer.close()

    @property
    def ready(self) -> bool:
        """True when every model has its champion loaded and the feature context is built."""
        return self.context is not None and all(model_name(t) in self._arms for t in TASKS)

    # --- refresh ---------------------------------------------------------------------------------------
    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.settings.serving_refresh_s):
            try:
                self.refresh()
            except OperationalError as err:  # the database is away (restarting): one line, not a traceback
                log.warning(
                    "refresh failed (%s); serving the last loaded state",
                    str(err.orig).strip().splitlines()[0],
                )
            except Exception:  # the loop must survive anything; the next tick tries again
                log.exception("refresh failed; serving the last loaded state")

    def refresh(self) -> dict[str, dict[str, str | None]]:
        """Re-read keys, aliases and phases; load versions not loaded yet; rebuild the context if data changed."""
        with self._refresh_lock:
            self.keyring.replace(active_keys(self.db_url))
            views = rollout.snapshot(self.db_url)
            arms = {}
            for task in TASKS:
                name = model_name(task)
                view = views.get(name)
                if view is None or view.champion is None:
                    continue
                arms[name] = Arms(
                    model_name=name,
                    champion_version=view.champion,
                    champion=self._model(name, view.champion),
                    challenger_version=view.challenger,
                    challenger=None if view.challenger is None else self._model(name, view.challenger),
                    phase=view.phase,
                    policy=self.policies.get(name),
                )
            self._publish_loaded(arms)
            self._arms = arms  # one assignment: requests see the old or the new state, never a mix
            if self.context is None or self.context.signature != context_signature(self.settings.home):
                self.context = FeatureContext.load(self.settings.home)
            for name, count in pending_count(self.db_url).items():
                metrics.PENDING_RECOMMENDATIONS.labels(name).set(count)
            return self.loaded()

    def loaded(self) -> dict[str, dict[str, str | None]]:
        """What answers now, per model: champion and challenger versions and the phase."""
        return {
            name: {"champion": a.champion_version, "challenger": a.challenger_version, "phase": a.phase_name}
            for name, a in self._arms.items()
        }

    def _model(self, name: str, version: str) -> Any:
        key = (name, version)
        if key not in self._loaded:
            started = time.perf_counter()
            self._loaded[key] = self.registry.load(name, version)
            log.info("loaded %s version %s in %.1f s", name, version, time.perf_counter() - started)
        return self._loaded[key]

    def _publish_loaded(self, arms: dict[str, Arms]) -> None:
        labels = {(a.model_name, CHAMPION, a.champion_version) for a in arms.values()}
        labels |= {
            (a.model_name, CHALLENGER, str(a.challenger_version))
            for a in arms.values()
            if a.challenger_version
        }
        for gone in self._published - labels:  # multiprocess gauges cannot be cleared: set to 0
            metrics.MODEL_LOADED.labels(*gone).set(0)
        for label in labels:
            metrics.MODEL_LOADED.labels(*label).set(1)
        self._published = labels
        # versions no alias points at any more are dropped (a request in flight holds its own reference)
        wanted = {(a.model_name, a.champion_version) for a in arms.values()}
        wanted |= {(a.model_name, str(a.challenger_version)) for a in arms.values() if a.challenger_version}
        for key in set(self._loaded) - wanted:
            del self._loaded[key]

    # --- the request path -----------------------------------------------------------------------------
    def arms(self, task: str) -> Arms:
        """The current arms of a task's model; NotReadyError when it has no champion loaded."""
        found = self._arms.get(model_name(task))
        if found is None:
            raise NotReadyError(f"{model_name(task)} has no champion loaded: train and promote one first")
        return found

    def require_context(self) -> FeatureContext:
        """The feature context; NotReadyError before it is built."""
        if self.context is None:
            raise NotReadyError("the feature context is not loaded yet")
        return self.context

    def answer(
        self,
        task: str,
        entity_id: str,
        score: Callable[[Any], dict[str, Any]],
        advise: Callable[[dict[str, Any]], Advice],
    ) -> Scored:
        """Route to an arm, score with it, and turn its output into a recommendation with a status."""
        arms = self.arms(task)
        chosen = route(arms.model_name, arms.challenger_version, arms.phase, arms.policy, entity_id)
        output = score(arms.forecaster(chosen.answered_by))
        advice = advise(output)
        status = recommendation_status(chosen.answered_by, arms.phase, arms.policy, advice.action_class)
        return Scored(
            request_id=uuid.uuid4().hex,
            arms=arms,
            answered_by=chosen.answered_by,
            output=output,
            recommendation_id=f"rec-{uuid.uuid4().hex[:24]}",
            status=status.value,
            advice=advice,
        )

    def log(
        self,
        scored: Scored,
        *,
        endpoint: str,
        entity_id: str,
        line_id: str | None,
        correlation_id: str,
        features: dict[str, Any],
        score_many: Callable[[Any, list[Any]], list[dict[str, Any]]],
        payload: Any,
        started: float,
    ) -> None:
        """Queue the prediction and its recommendation for the log; the other arm is scored in the writer.

        ``score_many(forecaster, payloads)`` scores several requests' payloads with one model: the writer
        scores the challenger of a whole batch of shadow records with one call.
        """
        arms, now = scored.arms, datetime.now(UTC)
        champion_output = scored.output if scored.answered_by == CHAMPION else None
        challenger_output = scored.output if scored.answered_by == CHALLENGER else None
        shadow = None
        if arms.challenger_version is not None:
            if scored.answered_by == CHAMPION:  # scored in the writer thread, off the request path
                shadow = ShadowCall(
                    (arms.model_name, arms.challenger_version), partial(score_many, arms.challenger), payload
                )
            else:
                champion_output = score_many(arms.champion, [payload])[0]  # a minority of requests: inline
        recommendation = LoggedRecommendation(
            recommendation_id=scored.recommendation_id,
            model_name=arms.model_name,
            model_version=arms.version(scored.answered_by),
            phase=arms.phase_name,
            entity_id=entity_id,
            line_id=line_id,
            correlation_id=correlation_id,
            action_class=scored.advice.action_class,
            text=scored.advice.text,
            details=scored.advice.details,
            status=scored.status,
            created_at=now,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        self.writer.submit(
            LoggedPrediction(
                request_id=scored.request_id,
                created_at=now,
                endpoint=endpoint,
                model_name=arms.model_name,
                phase=arms.phase_name,
                entity_id=entity_id,
                correlation_id=correlation_id,
                answered_by=scored.answered_by,  # type: ignore[arg-type]
                answered_version=arms.version(scored.answered_by),
                champion_version=arms.champion_version,
                challenger_version=arms.challenger_version,
                features=features,
                champion_output=champion_output,
                challenger_output=challenger_output,
                recommendation=recommendation,
                status="ok",
                latency_ms=latency_ms,
                shadow=shadow,
            )
        )
        metrics.PREDICTIONS.labels(arms.model_name, scored.answered_by, arms.phase_name).inc()
        metrics.PREDICTION_LATENCY.labels(arms.model_name).observe(latency_ms / 1000)

    def _on_written(self, batch: list[LoggedPrediction]) -> None:
        """After a log batch is committed: shadow comparison counters and the log backlog gauge."""
        for record in batch:
            if record.champion_output is None or record.challenger_output is None:
                continue
            if "error" in record.challenger_output:  # a failed shadow is not an agreement: count it apart
                metrics.SHADOW_ERRORS.labels(record.model_name).inc()
                continue
            metrics.SHADOW_SCORED.labels(record.model_name).inc()
            if would_disagree(record.champion_output, record.challenger_output):
                metrics.SHADOW_DISAGREEMENTS.labels(record.model_name).inc()
        metrics.LOG_PENDING.set(self.writer.pending)
